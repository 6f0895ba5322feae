"""``python -m verify reconstruct``: tune the BatchNorm layers of a saved frozen network to a saved target.

::

    python -m verify reconstruct --target target.pt --frozen frozen.pt --domain ball:1.0 --out tuned.pt

Both inputs are plain PyTorch state dicts (``torch.save(model.state_dict(), path)``), read with
``torch.load(..., weights_only=True)`` only: no pickled code is ever run. A state dict records
tensors, not layer types, so the architecture is inferred from the keys ``<layer index>.<name>``
of an ``nn.Sequential`` and the tensors' shapes (`read_layers`): a 2-D ``weight`` is a Linear, a
``weight``/``bias`` with ``running_mean``/``running_var`` a BatchNorm1d. Layers without
parameters leave gaps in the indices; every gap between two Linear layers is read as a ReLU.

The target ``Linear -> ReLU -> … -> Linear`` and the frozen ``Linear -> BatchNorm1d -> ReLU …``
stack (what `verify.nn.frozen_mlp` builds) are rebuilt as modules and solved with
`verify.nn.fit_norm_layers`. The output is the frozen state dict with only the BatchNorm ``weight``
and ``bias`` replaced (same keys, same dtypes), written atomically, never over an input.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import math
import os
import pickle
import re
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from verify.construction.reconstruct import MODES
from verify.core.domains import Ball, Box, Domain
from verify.core.errors import CertificateError, InfeasibleError
from verify.core.networks import paper_width
from verify.solvers.registry import METHODS

__all__ = [
    "DomainSpec",
    "SavedLayer",
    "UsageError",
    "check_out_path",
    "frozen_module",
    "load_state_dict",
    "main",
    "parse_domain",
    "read_layers",
    "target_module",
    "tuned_state_dict",
    "write_atomically",
]

PROG = "python -m verify reconstruct"
DOMAIN_FORMS = "ball:R, ball:R@c1,...,cd, box:LO,HI or all"
SUPPORTED_DTYPES = ("float32", "float64")
CHECK_POINTS = 256
"""Points of the torch forward check of the tuned module against the target module."""

_RESAVE = "save the weights alone with torch.save(model.state_dict(), path)"
_LAYERNORM_WHY = (
    "LayerNorm is unsupported: it normalizes with statistics of its own input (LN(c·h) = LN(h) for c > 0), so tuning "
    "it cannot reproduce a target that is not scale-invariant (docs/design.md §7); "
    "the frozen network needs BatchNorm1d "
    "with running statistics"
)


class UsageError(ValueError):
    """A problem with the command's inputs, reported as one ``error: …`` line and exit status 2."""


# --------------------------------------------------------------------------------------------- domain


@dataclass(frozen=True)
class DomainSpec:
    """A parsed ``--domain``: ``kind`` is ``"ball"``, ``"box"`` or ``"all"``; `build` makes the `verify.Domain`.

    Attributes
    ----------
    kind : str
        ``"ball"`` (radius, optional centre), ``"box"`` (the same ``[lo, hi]`` in every coordinate)
        or ``"all"`` (all of R^d, for a paired frozen network).
    radius : float
        Ball radius.
    center : tuple of float or None
        Ball centre; ``None`` is the origin.
    lo, hi : float
        Box bounds.
    """

    kind: str
    radius: float = 1.0
    center: tuple[float, ...] | None = None
    lo: float = -1.0
    hi: float = 1.0

    def build(self, dim: int) -> Domain | None:
        """The domain in input dimension ``dim`` (``None`` for ``all``); UsageError on a centre of another size."""
        if self.kind == "all":
            return None
        if self.kind == "box":
            return Box(np.full(dim, self.lo), np.full(dim, self.hi))
        if self.center is not None and len(self.center) != dim:
            raise UsageError(
                f"--domain centre has {len(self.center)} coordinates but the target takes d_0 = {dim} inputs"
            )
        return Ball(self.radius, None if self.center is None else np.array(self.center))

    def describe(self, dim: int) -> str:
        """A short human-readable description, e.g. ``ball of radius 1 centred at 0 in R^3``."""
        if self.kind == "all":
            return f"all of R^{dim} (paired frozen network, no bias shift)"
        if self.kind == "box":
            return f"box [{self.lo:g}, {self.hi:g}]^{dim}"
        centre = "0" if self.center is None else "(" + ", ".join(f"{c:g}" for c in self.center) + ")"
        return f"ball of radius {self.radius:g} centred at {centre} in R^{dim}"


def _number(text: str, what: str, domain: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"--domain {domain!r}: {what} {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise UsageError(f"--domain {domain!r}: {what} must be finite, got {text.strip()!r}")
    return value


def parse_domain(text: str) -> DomainSpec:
    """Parse ``--domain``: ``ball:R``, ``ball:R@c1,...,cd``, ``box:LO,HI`` or ``all``; UsageError otherwise."""
    kind, colon, rest = text.strip().partition(":")
    kind = kind.strip().lower()
    if kind == "all" and not colon:
        return DomainSpec("all")
    if kind == "ball":
        radius_text, at, centre_text = rest.partition("@")
        radius = _number(radius_text, "radius", text) if colon else 1.0
        if radius <= 0:
            raise UsageError(f"--domain {text!r}: the radius must be > 0, got {radius:g}")
        if not at:
            return DomainSpec("ball", radius=radius)
        centre = tuple(_number(c, "centre coordinate", text) for c in centre_text.split(","))
        return DomainSpec("ball", radius=radius, center=centre)
    if kind == "box" and colon:
        bounds = rest.split(",")
        if len(bounds) != 2:
            raise UsageError(f"--domain {text!r}: a box is box:LO,HI (two numbers), got {len(bounds)} value(s)")
        lo, hi = (_number(b, name, text) for b, name in zip(bounds, ("LO", "HI"), strict=True))
        if lo > hi:
            raise UsageError(f"--domain {text!r}: LO must be <= HI, got LO = {lo:g} > HI = {hi:g}")
        return DomainSpec("box", lo=lo, hi=hi)
    raise UsageError(f"--domain {text!r} is not understood; expected {DOMAIN_FORMS}")


# --------------------------------------------------------------------------------------------- files


def _import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise UsageError(f"{PROG} needs PyTorch: pip install 'verify[torch]'") from None
    return torch


def load_state_dict(path: str | os.PathLike, option: str) -> dict[str, Any]:
    """Read a state dict with ``torch.load(path, map_location="cpu", weights_only=True)`` and check it.

    ``option`` (``"--target"``, ``"--frozen"``) names the file in messages. Raises UsageError when
    the file is missing, is not a PyTorch file, holds pickled objects that ``weights_only=True``
    refuses (a whole module saved with ``torch.save(model)``), or is not a flat mapping from
    string keys to floating-point tensors of one dtype. The file is only read.
    """
    torch = _import_torch()
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{option} {str(path)!r}: no such file")
    if not path.is_file():
        raise UsageError(f"{option} {str(path)!r} is not a file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise UsageError(
            f"{option} {str(path)!r} holds pickled Python objects (e.g. a whole module saved with torch.save(model)), "
            f"which torch.load(..., weights_only=True) refuses to run; a state dict is expected: {_RESAVE} "
            "(load the old file with weights_only=False only if you trust it)"
        ) from None
    except Exception as error:  # torch raises RuntimeError, KeyError, EOFError, … on files it cannot parse
        kind = type(error).__name__
        raise UsageError(f"{option} {str(path)!r} could not be read as a PyTorch file ({kind})") from None
    if not isinstance(state, Mapping):
        raise UsageError(
            f"{option} {str(path)!r} holds a {type(state).__name__}, not a state dict; a state dict is expected: "
            f"{_RESAVE}"
        )
    if not state:
        raise UsageError(f"{option} {str(path)!r} holds an empty dict; a state dict is expected: {_RESAVE}")
    bad = [key for key, value in state.items() if not isinstance(key, str) or not isinstance(value, torch.Tensor)]
    if bad:
        first = bad[0]
        raise UsageError(
            f"{option} {str(path)!r} is not a state dict: entry {first!r} holds a {type(state[first]).__name__}, "
            f"not a tensor (a checkpoint with several entries?); a state dict is expected: {_RESAVE}"
        )
    dtypes = sorted({str(v.dtype).removeprefix("torch.") for v in state.values() if v.is_floating_point()})
    if not dtypes:
        raise UsageError(f"{option} {str(path)!r} holds no floating-point tensors")
    if len(dtypes) > 1 or dtypes[0] not in SUPPORTED_DTYPES:
        raise UsageError(
            f"{option} {str(path)!r} holds tensors of dtype {', '.join(dtypes)}; expected one of "
            f"{' or '.join(SUPPORTED_DTYPES)} throughout"
        )
    return state


def check_out_path(out: str | os.PathLike, inputs: Mapping[str, str | os.PathLike], *, force: bool) -> Path:
    """Check that ``--out`` may be written; return it as a Path.

    It must never be one of ``inputs`` (option name -> path), compared after resolving symlinks and
    ``..`` and, when both exist, with `os.path.samefile` (hard links); ``force`` does not change
    that. An existing file is replaced only with ``force``; a directory never is.
    """
    out = Path(out)
    for option, path in inputs.items():
        same = out.resolve() == Path(path).resolve()
        if not same and out.exists() and Path(path).exists():
            same = os.path.samefile(out, path)
        if same:
            raise UsageError(
                f"--out {str(out)!r} is the {option} file {str(path)!r}; inputs are never overwritten "
                "(not even with --force): choose another --out"
            )
    if out.is_dir():
        raise UsageError(f"--out {str(out)!r} is a directory; give a file name such as tuned.pt")
    if not out.resolve().parent.is_dir():
        raise UsageError(f"--out {str(out)!r}: directory {str(out.parent)!r} does not exist")
    if out.exists() and not force:
        raise UsageError(f"--out {str(out)!r} exists; pass --force to replace it")
    return out


def write_atomically(state: Mapping[str, Any], out: Path) -> None:
    """``torch.save(state, out)`` through a temporary file in the same directory and `os.replace`.

    A reader never sees a half-written file, and a failed write leaves ``out`` as it was. The new
    file gets the mode of the file it replaces, or the umask default (``0o666 & ~umask``).
    """
    torch = _import_torch()
    out = Path(out)
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


# --------------------------------------------------------------------------------------------- architecture


@dataclass(frozen=True)
class SavedLayer:
    """One layer with parameters in a saved ``nn.Sequential``.

    Attributes
    ----------
    index : int
        Its position in the Sequential (the integer in its keys).
    kind : str
        ``"Linear"`` or ``"BatchNorm1d"``.
    keys : dict
        Parameter name (``weight``, ``bias``, ``running_mean``, …) -> key in the state dict.
    in_features, out_features : int
        Input and output widths (equal for BatchNorm1d).
    """

    index: int
    kind: str
    keys: dict[str, str] = field(compare=False)
    in_features: int
    out_features: int


_KEY = re.compile(r"^(?P<prefix>(?:.*\.)?)(?P<index>\d+)\.(?P<name>[^.]+)$")
_BN_NAMES = {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}


def _shape(tensor: Any) -> str:
    return "(" + ", ".join(str(s) for s in tensor.shape) + ("," if tensor.dim() == 1 else "") + ")"


def _classify(index: int, entries: dict[str, Any], keys: dict[str, str], where: str) -> SavedLayer:
    unknown = sorted(set(entries) - _BN_NAMES)
    if unknown:
        raise UsageError(
            f"{where} layer {index}: unexpected entry {keys[unknown[0]]!r}; only Linear (weight, bias) and "
            "BatchNorm1d (weight, bias, running_mean, running_var) layers are supported"
        )
    weight, bias = entries.get("weight"), entries.get("bias")
    if "running_mean" in entries or "running_var" in entries:
        missing = [n for n in ("running_mean", "running_var") if n not in entries]
        if missing:
            raise UsageError(f"{where} layer {index}: BatchNorm1d statistics without {missing[0]!r}")
        if weight is None or bias is None:
            raise UsageError(
                f"{where} layer {index}: a BatchNorm1d without weight and bias (affine=False) has nothing to tune; "
                "build it with affine=True"
            )
        width = entries["running_mean"].shape[0] if entries["running_mean"].dim() == 1 else -1
        for name in ("weight", "bias", "running_mean", "running_var"):
            if entries[name].dim() != 1 or entries[name].shape[0] != width:
                raise UsageError(
                    f"{where} layer {index}: BatchNorm1d entry {keys[name]!r} has shape {_shape(entries[name])}, "
                    f"expected ({width},) like its running_mean"
                )
        return SavedLayer(index, "BatchNorm1d", keys, width, width)
    if weight is None:
        raise UsageError(f"{where} layer {index}: {keys['bias']!r} without a weight is no supported layer")
    if weight.dim() == 1:
        raise UsageError(
            f"{where} layer {index}: a 1-D weight {_shape(weight)} without running_mean/running_var is a LayerNorm "
            f"(or GroupNorm, RMSNorm, BatchNorm1d with track_running_stats=False); {_LAYERNORM_WHY}"
        )
    if weight.dim() >= 3:
        raise UsageError(
            f"{where} layer {index}: {keys['weight']!r} has a {weight.dim()}-D shape {_shape(weight)}, a "
            f"convolution (Conv{weight.dim() - 2}d); only Linear layers (2-D weight) are supported: a convolution is "
            "not a per-neuron affine map of an MLP"
        )
    if weight.dim() != 2:
        raise UsageError(f"{where} layer {index}: {keys['weight']!r} is a scalar; expected a Linear weight (out, in)")
    if bias is not None and (bias.dim() != 1 or bias.shape[0] != weight.shape[0]):
        raise UsageError(
            f"{where} layer {index}: Linear bias {keys['bias']!r} has shape {_shape(bias)}, expected "
            f"({weight.shape[0]},) for weight {_shape(weight)}"
        )
    return SavedLayer(index, "Linear", keys, int(weight.shape[1]), int(weight.shape[0]))


def read_layers(state: Mapping[str, Any], where: str) -> list[SavedLayer]:
    """The layers with parameters of a saved ``nn.Sequential``, by index; UsageError naming the key otherwise.

    Keys must read ``<prefix><index>.<name>`` with one prefix shared by all keys (``""``,
    ``"module."``, ``"net."``, …). ``where`` names the file in messages.
    """
    groups: dict[int, tuple[dict[str, Any], dict[str, str]]] = {}
    prefixes = set()
    for key, value in state.items():
        match = _KEY.match(key)
        if match is None:
            raise UsageError(
                f"{where}: key {key!r} is not '<layer index>.<name>' as an nn.Sequential saves it; a model with "
                "named submodules is not supported (rebuild it as nn.Sequential of Linear/BatchNorm1d/ReLU)"
            )
        prefixes.add(match["prefix"])
        entries, keys = groups.setdefault(int(match["index"]), ({}, {}))
        entries[match["name"]], keys[match["name"]] = value, key
    if len(prefixes) > 1:
        shown = ", ".join(repr(p) for p in sorted(prefixes))
        raise UsageError(f"{where}: keys have different prefixes ({shown}); expected one nn.Sequential")
    return [_classify(index, *groups[index], where) for index in sorted(groups)]


def _check_chain(previous: SavedLayer, layer: SavedLayer, where: str) -> None:
    if layer.in_features != previous.out_features:
        raise UsageError(
            f"{where}: layer {layer.index} ({layer.kind}) takes {layer.in_features} inputs but layer "
            f"{previous.index} ({previous.kind}) before it gives {previous.out_features}"
        )


def _check_start(layers: list[SavedLayer], where: str) -> None:
    if layers[0].index != 0:
        raise UsageError(
            f"{where}: the first layer with parameters is layer {layers[0].index}; layers before it have none, so a "
            "state dict cannot say what they are. Expected the first Linear at index 0"
        )


def _linear(layer: SavedLayer, state: Mapping[str, Any]) -> Any:
    torch = _import_torch()
    weight = state[layer.keys["weight"]]
    bias = state.get(layer.keys.get("bias", ""))
    module = torch.nn.utils.skip_init(
        torch.nn.Linear, layer.in_features, layer.out_features, bias=bias is not None, dtype=weight.dtype
    )
    with torch.no_grad():
        module.weight.copy_(weight)
        if bias is not None:
            module.bias.copy_(bias)
    return module


def target_module(state: Mapping[str, Any], where: str = "--target") -> Any:
    """Rebuild a target ``Linear -> ReLU -> … -> Linear`` ``nn.Sequential`` (eval mode) from its state dict.

    Every gap in the layer indices between two Linear layers is read as a ReLU; Linear layers
    with adjacent indices, BatchNorm layers and any non-Linear entry are refused. The tensors are
    copied: ``state`` is not modified.
    """
    torch = _import_torch()
    layers = read_layers(state, where)
    _check_start(layers, where)
    modules = []
    for position, layer in enumerate(layers):
        if layer.kind != "Linear":
            raise UsageError(
                f"{where}: layer {layer.index} is a {layer.kind}, but a target is Linear -> ReLU -> … -> Linear "
                "without normalization (did you swap --target and --frozen?)"
            )
        if position:
            previous = layers[position - 1]
            if layer.index == previous.index + 1:
                raise UsageError(
                    f"{where}: Linear layers {previous.index} and {layer.index} have nothing between them; a target "
                    "needs a ReLU (a layer without parameters) between consecutive Linear layers"
                )
            _check_chain(previous, layer, where)
            modules.append(torch.nn.ReLU())
        modules.append(_linear(layer, state))
    return torch.nn.Sequential(*modules).eval()


def frozen_module(state: Mapping[str, Any], where: str = "--frozen", *, eps: float = 1e-5) -> tuple[Any, list[str]]:
    """Rebuild a frozen ``Linear -> BatchNorm1d -> ReLU -> … -> Linear -> BatchNorm1d`` stack (eval mode).

    This is what `verify.nn.frozen_mlp` builds: each Linear is followed directly (next index) by a
    BatchNorm1d with running statistics and weight/bias, and every later Linear by a gap (a ReLU).
    A state dict does not record BatchNorm's ``eps``; ``eps`` is used for every layer. Returns the
    module and, per BatchNorm layer, the key prefix of its entries (``"1."``, ``"module.4."``, …).
    The tensors are copied: ``state`` is not modified.
    """
    torch = _import_torch()
    layers = read_layers(state, where)
    _check_start(layers, where)
    modules, norm_prefixes = [], []
    for position, layer in enumerate(layers):
        previous = layers[position - 1] if position else None
        if position % 2 == 0:
            if layer.kind != "Linear":
                raise UsageError(
                    f"{where}: layer {layer.index} is a {layer.kind} where a Linear is expected; a frozen network is "
                    "Linear -> BatchNorm1d -> ReLU -> … -> Linear -> BatchNorm1d"
                )
            if previous is not None:
                if layer.index == previous.index + 1:
                    raise UsageError(
                        f"{where}: Linear layer {layer.index} follows BatchNorm1d layer {previous.index} directly; "
                        "expected a ReLU (a layer without parameters) between them"
                    )
                _check_chain(previous, layer, where)
                modules.append(torch.nn.ReLU())
            modules.append(_linear(layer, state))
            if position + 1 == len(layers):
                raise UsageError(
                    f"{where}: Linear layer {layer.index} is not followed by a BatchNorm1d; every Linear of a frozen "
                    "network is followed by the BatchNorm1d whose weight and bias are tuned (did you swap --target "
                    "and --frozen?)"
                )
            continue
        if layer.kind != "BatchNorm1d" or layer.index != previous.index + 1:
            found = (
                f"layer {layer.index} is a {layer.kind}"
                if layer.kind != "BatchNorm1d"
                else f"it is at index {layer.index}, after a layer without parameters (a ReLU before BatchNorm1d?)"
            )
            raise UsageError(
                f"{where}: Linear layer {previous.index} must be followed directly by a BatchNorm1d at index "
                f"{previous.index + 1}, but {found} (did you swap --target and --frozen?)"
            )
        _check_chain(previous, layer, where)
        norm = torch.nn.BatchNorm1d(layer.out_features, eps=eps, dtype=state[layer.keys["weight"]].dtype)
        with torch.no_grad():
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(norm, name).copy_(state[layer.keys[name]])
            if "num_batches_tracked" in layer.keys:
                norm.num_batches_tracked.copy_(state[layer.keys["num_batches_tracked"]])
        modules.append(norm)
        norm_prefixes.append(layer.keys["weight"].removesuffix("weight"))
    return torch.nn.Sequential(*modules).eval(), norm_prefixes


def _widths(module: Any) -> list[int]:
    linears = [m for m in module if type(m).__name__ == "Linear"]
    return [linears[0].in_features] + [m.out_features for m in linears]


def _suggestion(d: Sequence[int], paired: bool) -> str:
    """frozen_mlp widths that work for a target of widths ``d`` in paper mode."""
    widths = [d[0]]
    for d_in, d_out in itertools.pairwise(d):
        widths += [(2 if paired else 1) * paper_width(d_out, d_in), d_out]
    return f"verify.nn.frozen_mlp({widths}{', paired=True' if paired else ''}) fits this target in paper mode"


def _check_pair(d: Sequence[int], n: Sequence[int], paired: bool) -> None:
    hint = _suggestion(d, paired)
    if len(n) - 1 != 2 * (len(d) - 1):
        raise UsageError(
            f"the frozen network has {len(n) - 1} Linear -> BatchNorm1d layers but a target of depth "
            f"L = {len(d) - 1} needs 2L = {2 * (len(d) - 1)}; {hint}"
        )
    if n[0] != d[0]:
        raise UsageError(f"the target takes {d[0]} inputs but the frozen network takes {n[0]}; {hint}")
    if n[-1] != d[-1]:
        raise UsageError(f"the target gives {d[-1]} outputs but the frozen network gives {n[-1]}; {hint}")


def tuned_state_dict(frozen_state: Mapping[str, Any], module: Any, norm_prefixes: Sequence[str]) -> dict[str, Any]:
    """``frozen_state`` with each BatchNorm ``weight``/``bias`` taken from ``module`` (same keys, order, dtypes).

    Every other entry (Linear weights and biases, running statistics, ``num_batches_tracked``) is
    the input's own tensor; ``frozen_state`` itself is not modified. torch's ``_metadata`` (layer
    versions) is carried over.
    """
    norms = [m for m in module if type(m).__name__ == "BatchNorm1d"]
    replaced = {}
    for prefix, norm in zip(norm_prefixes, norms, strict=True):
        for name in ("weight", "bias"):
            original = frozen_state[prefix + name]
            replaced[prefix + name] = getattr(norm, name).detach().to(dtype=original.dtype).clone()
    out = collections.OrderedDict((key, replaced.get(key, value)) for key, value in frozen_state.items())
    metadata = getattr(frozen_state, "_metadata", None)
    if metadata is not None:
        out._metadata = metadata  # type: ignore[attr-defined]
    return out


def _torch_check(target: Any, frozen: Any, spec: DomainSpec, dim: int, seed: int) -> float:
    """``max |g − f| / max |f|`` of the tuned module against the target module on fresh domain points."""
    torch = _import_torch()
    rng = np.random.default_rng(seed + 1)
    domain = spec.build(dim)
    if domain is None:
        half = CHECK_POINTS // 2
        points = np.vstack([Ball(radius, np.zeros(dim)).sample(half, rng) for radius in (1.0, 1e6)])
    else:
        points = domain.resolve(dim).sample(CHECK_POINTS, rng)
    dtypes = (next(target.parameters()).dtype, next(frozen.parameters()).dtype)
    with torch.no_grad():
        f = target(torch.tensor(points, dtype=dtypes[0])).double()
        g = frozen(torch.tensor(points, dtype=dtypes[1])).double()
    error, size = float((g - f).abs().max()), float(f.abs().max())
    return error / size if size > 0 else error


# --------------------------------------------------------------------------------------------- command

_DESCRIPTION = """\
Solve for the BatchNorm weight and bias of a saved frozen network (Linear -> BatchNorm1d -> ReLU ...,
as verify.nn.frozen_mlp builds it) so that it computes a saved target ReLU network (Linear -> ReLU
-> ... -> Linear) exactly on --domain, check the result's certificate, and write the frozen state
dict with only the BatchNorm weight/bias replaced to --out.

Inputs are plain state dicts, torch.save(model.state_dict(), path) of an nn.Sequential, read with
torch.load(..., weights_only=True). A state dict does not record layers without parameters: each
gap in the layer indices between two Linear layers is read as a ReLU (eval-mode Dropout/Identity
may sit there too); any other activation there would make the result wrong. Nor does it record
BatchNorm's eps: --bn-eps must match the module the output will be loaded into.

--domain:
  ball:R              the ball of radius R centred at 0 (default ball:1.0)
  ball:R@c1,...,cd    the ball of radius R centred at (c1, ..., cd)
  box:LO,HI           the box [LO, HI] in every coordinate
  all                 all of R^d: needs a paired frozen network, frozen_mlp(..., paired=True)
"""

_EPILOG = """\
example:
  python -m verify reconstruct --target target.pt --frozen frozen.pt --domain ball:1.0 --out tuned.pt

  # then, in Python, with the frozen module the file was saved from:
  frozen.load_state_dict(torch.load("tuned.pt", weights_only=True))
  frozen.eval()(x)   # equals target(x) for x in the domain, up to rounding

exit status: 0 on success, 1 if the certificate fails (nothing is written), 2 for a usage error
(missing or unsupported file, too narrow a frozen network, --out equal to an input or existing).
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=_DESCRIPTION, epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", required=True, metavar="PT", help="state dict of the target Linear/ReLU network")
    parser.add_argument(
        "--frozen", required=True, metavar="PT", help="state dict of the frozen Linear/BatchNorm1d/ReLU network"
    )
    parser.add_argument("--out", required=True, metavar="PT", help="where to write the tuned frozen state dict")
    parser.add_argument("--domain", default="ball:1.0", metavar="SPEC", help=f"{DOMAIN_FORMS} (default: ball:1.0)")
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="paper",
        help="paper: odd widths >= d_k*d_(k-1); minimal: >= d_k*(d_(k-1)-1)+1 (default: paper)",
    )
    parser.add_argument(
        "--method",
        choices=METHODS,
        default="auto",
        help="solver of the scale equation, docs/design.md §5 (default: auto)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the certificate's sample points (default: 0)")
    parser.add_argument(
        "--bn-eps", type=float, default=1e-5, metavar="EPS", help="BatchNorm eps of the frozen network (default: 1e-5)"
    )
    parser.add_argument("--force", action="store_true", help="replace --out if it exists (never an input file)")
    return parser


def _error(message: str, status: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return status


def _run(args: argparse.Namespace, say: Callable[[str], None]) -> int:
    from verify.nn import fit_norm_layers

    spec = parse_domain(args.domain)
    if not math.isfinite(args.bn_eps) or args.bn_eps < 0:
        raise UsageError(f"--bn-eps must be a finite number >= 0, got {args.bn_eps}")
    inputs = {"--target": args.target, "--frozen": args.frozen}
    for option, path in inputs.items():
        if not Path(path).exists():
            raise UsageError(f"{option} {path!r}: no such file")
    out = check_out_path(args.out, inputs, force=args.force)
    target_state = load_state_dict(args.target, "--target")
    frozen_state = load_state_dict(args.frozen, "--frozen")
    target = target_module(target_state, f"--target {args.target!r}")
    frozen, norm_prefixes = frozen_module(frozen_state, f"--frozen {args.frozen!r}", eps=args.bn_eps)
    d, n = _widths(target), _widths(frozen)
    _check_pair(d, n, spec.kind == "all")
    domain = spec.build(d[0])
    try:
        result = fit_norm_layers(frozen, target, domain, mode=args.mode, method=args.method, seed=args.seed)
    except InfeasibleError as error:
        raise UsageError(f"the frozen network cannot reproduce the target: {error}") from None
    except CertificateError as error:
        return _error(f"{error}; nothing was written", status=1)
    except ValueError as error:
        paired = spec.kind == "all" and "paired" in str(error)
        hint = "; save a paired one: verify.nn.frozen_mlp(widths, paired=True)" if paired else ""
        raise UsageError(f"{error}{hint}") from None
    state = tuned_state_dict(frozen_state, frozen, norm_prefixes)
    relative = _torch_check(target, frozen, spec, d[0], args.seed)
    try:
        write_atomically(state, out)
    except OSError as error:
        raise UsageError(f"could not write --out {str(out)!r}: {error.strerror or error}") from None

    certificate = result.certificate
    sampled = certificate.sampled
    arrow = " → ".join
    dtype = str(next(frozen.parameters()).dtype).removeprefix("torch.")
    target_dtype = str(next(target.parameters()).dtype).removeprefix("torch.")
    solvers = ", ".join(dict.fromkeys(b.solver for b in certificate.blocks))
    margin = f"; min activity margin {certificate.min_margin:.3g}" if math.isfinite(certificate.min_margin) else ""
    say(f"target       {args.target}: Linear/ReLU, widths {arrow(map(str, d))} ({target_dtype})")
    say(
        f"frozen       {args.frozen}: Linear/BatchNorm1d/ReLU, widths {arrow(map(str, n))} "
        f"({dtype}, BatchNorm eps {args.bn_eps:g})"
    )
    say(f"solved       mode {args.mode}, method {args.method} (solver: {solvers}); domain: {spec.describe(d[0])}")
    verdict = "holds" if certificate.holds else "FAILS"
    say(
        f"certificate  {verdict}: max relative error {sampled.max_relative_error:.3g} "
        f"on {sampled.points} sampled points (rtol {sampled.rtol:g}){margin}"
    )
    say(f"torch check  tuned module vs target: max |g - f| / max |f| = {relative:.3g} on {CHECK_POINTS} points")
    say(f"wrote        {out} (BatchNorm weight and bias of {len(norm_prefixes)} layers; all else as in {args.frozen})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m verify reconstruct``; return the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments after ``reconstruct`` (default: ``sys.argv[2:]``); see ``--help``.

    Returns
    -------
    int
        0 on success (``--out`` written), 1 if the certificate fails (nothing written), 2 for a
        usage error, reported as one ``error: …`` line on stderr.
    """
    arguments = list(sys.argv[2:] if argv is None else argv)
    try:
        args = _parser().parse_args(arguments)
    except SystemExit as exit_:  # --help, or argparse's own usage error (already printed)
        return 0 if exit_.code is None else exit_.code if isinstance(exit_.code, int) else 2
    try:
        return _run(args, print)
    except UsageError as error:
        return _error(str(error))
