"""Saved state dicts in and out: read one safely, copy it with new BatchNorm γ, β, write it atomically.

A state dict (``torch.save(model.state_dict(), path)``) is read with ``torch.load(...,
weights_only=True)`` only: no pickled code is ever run. What its layers are is read by
`verify.nn.rebuild`; the tuned copy keeps every key, order and dtype of the frozen input and
replaces only what the grammar says is tuned (`verify.nn.grammar.NORM`, docs/design.md §2).
"""

from __future__ import annotations

import collections
import os
import pickle
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from verify.core.paths import node_problem
from verify.nn.grammar import NORM
from verify.nn.modules import norm_layers

__all__ = ["SUPPORTED_DTYPES", "StateDictError", "load_state_dict", "tuned_state_dict", "write_atomically"]

SUPPORTED_DTYPES = ("float32", "float64")
"""The floating-point dtypes a state dict may hold (one of them throughout)."""

_RESAVE = "save the weights alone with torch.save(model.state_dict(), path)"


class StateDictError(ValueError):
    """A saved file or state dict that cannot be read or rebuilt; the message names the file and the entry."""


def load_state_dict(path: str | os.PathLike, option: str) -> dict[str, Any]:
    """Read a state dict with ``torch.load(path, map_location="cpu", weights_only=True)`` and check it.

    ``option`` (``"--target"``, ``"--frozen"``) names the file in messages. Raises `StateDictError` when
    the file is missing, is not a PyTorch file, holds pickled objects that ``weights_only=True``
    refuses (a whole module saved with ``torch.save(model)``), or is not a flat mapping from
    string keys to floating-point tensors of one dtype. The file is only read.
    """
    path = Path(path)
    if not path.exists():
        raise StateDictError(f"{option} {str(path)!r}: no such file")
    if not path.is_file():
        raise StateDictError(f"{option} {str(path)!r} is not a file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise StateDictError(
            f"{option} {str(path)!r} holds pickled Python objects (e.g. a whole module saved with torch.save(model)), "
            f"which torch.load(..., weights_only=True) refuses to run; a state dict is expected: {_RESAVE} "
            "(load the old file with weights_only=False only if you trust it)"
        ) from None
    except Exception as error:  # torch raises RuntimeError, KeyError, EOFError, … on files it cannot parse
        kind = type(error).__name__
        raise StateDictError(f"{option} {str(path)!r} could not be read as a PyTorch file ({kind})") from None
    if not isinstance(state, Mapping):
        raise StateDictError(
            f"{option} {str(path)!r} holds a {type(state).__name__}, not a state dict; a state dict is expected: "
            f"{_RESAVE}"
        )
    if not state:
        raise StateDictError(f"{option} {str(path)!r} holds an empty dict; a state dict is expected: {_RESAVE}")
    bad = [key for key, value in state.items() if not isinstance(key, str) or not isinstance(value, torch.Tensor)]
    if bad:
        first = bad[0]
        raise StateDictError(
            f"{option} {str(path)!r} is not a state dict: entry {first!r} holds a {type(state[first]).__name__}, "
            f"not a tensor (a checkpoint with several entries?); a state dict is expected: {_RESAVE}"
        )
    for key, value in state.items():
        _check_entry(key, value, f"{option} {str(path)!r}")
    dtypes = sorted({str(v.dtype).removeprefix("torch.") for v in state.values() if v.is_floating_point()})
    if not dtypes:
        raise StateDictError(f"{option} {str(path)!r} holds no floating-point tensors")
    if len(dtypes) > 1 or dtypes[0] not in SUPPORTED_DTYPES:
        raise StateDictError(
            f"{option} {str(path)!r} holds tensors of dtype {', '.join(dtypes)}; expected one of "
            f"{' or '.join(SUPPORTED_DTYPES)} throughout"
        )
    return state


def _check_entry(key: str, value: torch.Tensor, where: str) -> None:
    """Refuse an entry no layer of the grammar can hold: a sparse tensor, a non-float parameter or
    statistic, or a BatchNorm counter (`NORM.stored`) that is not one integer."""
    dtype = str(value.dtype).removeprefix("torch.")
    if value.layout != torch.strided:
        raise StateDictError(
            f"{where}: entry {key!r} is a {str(value.layout).removeprefix('torch.')} tensor; "
            "save dense tensors (tensor.to_dense())"
        )
    if key.rsplit(".", 1)[-1] in NORM.stored:
        if value.dim() != 0 or value.is_floating_point() or value.is_complex():
            raise StateDictError(
                f"{where}: entry {key!r} has shape {tuple(value.shape)} and dtype {dtype}; "
                "a BatchNorm batch counter is one integer (shape ())"
            )
        return
    if not value.is_floating_point():
        raise StateDictError(
            f"{where}: entry {key!r} has dtype {dtype}; every weight, bias and "
            f"running statistic must be {' or '.join(SUPPORTED_DTYPES)}"
        )


def tuned_state_dict(
    frozen_state: Mapping[str, Any], module: nn.Module, norm_prefixes: Sequence[str]
) -> dict[str, Any]:
    """``frozen_state`` with each BatchNorm ``weight``/``bias`` taken from ``module`` (same keys, order, dtypes).

    ``norm_prefixes`` are the key prefixes of the BatchNorm layers, in order (what
    `verify.nn.rebuild.frozen_module` returns). Every other entry (Linear weights and biases,
    running statistics, ``num_batches_tracked``) is the input's own tensor; ``frozen_state`` itself
    is not modified. torch's ``_metadata`` (layer versions) is carried over.
    """
    replaced = {}
    for prefix, norm in zip(norm_prefixes, norm_layers(module), strict=True):
        for name in NORM.tunes:
            original = frozen_state[prefix + name]
            replaced[prefix + name] = getattr(norm, name).detach().to(dtype=original.dtype).clone()
    out = collections.OrderedDict((key, replaced.get(key, value)) for key, value in frozen_state.items())
    metadata = getattr(frozen_state, "_metadata", None)
    if metadata is not None:
        out._metadata = metadata  # type: ignore[attr-defined]
    return out


def write_atomically(state: Mapping[str, Any], out: Path) -> None:
    """``torch.save(state, out)`` through a temporary file in the same directory and `os.replace`.

    A reader never sees a half-written file, and a failed write leaves ``out`` as it was. The new
    file gets the mode of the file it replaces, or the umask default (``0o666 & ~umask``). Only a
    regular file (or a symbolic link to one) is ever replaced: a directory, FIFO, device or socket
    at ``out`` raises ValueError and is left untouched (`verify.core.paths.node_problem`).
    """
    out = Path(out)
    problem = node_problem(out, "out")
    if problem is not None:
        raise ValueError(problem)
    if out.exists():
        mode = out.stat().st_mode & 0o777
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    handle, temporary = tempfile.mkstemp(dir=out.resolve().parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(state, file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
