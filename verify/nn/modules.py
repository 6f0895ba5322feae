"""Torch modules in, numpy networks out: read an ``nn.Sequential`` by the grammar of `verify.nn.grammar`.

A model written as a class whose forward is a chain of layers (``F.relu`` and ``torch.flatten``
allowed) is traced with torch.fx and read as the ``nn.Sequential`` of its layers
(`verify.nn.graph.as_chain`); graphs with branches go to `verify.nn.fit_norm_layers`.

Only ``nn.Sequential`` stacks of ``Linear``, ``BatchNorm1d`` and ``ReLU`` are read (``Dropout`` and
``Identity`` in eval mode, and ``Flatten``, are skipped as the identity on flat inputs). Anything
else is refused with a `ValueError`
naming the layer, its index and why (docs/design.md §7 for the normalizations).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from verify.core.interop import TorchSpec, dtype_name, refuse_tf32
from verify.core.networks import FrozenNetwork, TargetNetwork
from verify.nn.grammar import FROZEN, LINEAR, NORM, REFUSED, RELU, SKIPPED, TARGET, Grammar, LayerKind, walk
from verify.nn.graph import as_chain

__all__ = [
    "check_dense",
    "check_precision",
    "from_module",
    "frozen_from_layers",
    "linear_widths",
    "norm_layers",
    "target_from_module",
]


def check_dense(module: nn.Module, role: str) -> None:
    """ValueError naming the first parameter or buffer of ``module`` that is not a dense (strided) tensor.

    The construction reads every weight as a dense array; a torch sparse tensor (``to_sparse()``, CSR, …)
    would fail deep inside with a raw ``TypeError``. ``role`` names the module in the message (``"target"``).
    """
    if not isinstance(module, nn.Module):
        return
    tensors = [*module.named_parameters(), *module.named_buffers()]
    for name, tensor in tensors:
        if tensor.layout != torch.strided:
            raise ValueError(
                f"{role} tensor {name!r} is a torch sparse tensor (layout {tensor.layout}); the construction "
                "reads dense weights: make it dense, e.g. layer.weight = nn.Parameter(layer.weight.to_dense())"
            )


_KINDS = tuple((getattr(nn, kind.name), kind) for kind in (LINEAR, NORM, RELU))
_SKIPPED = tuple(getattr(nn, name) for name in SKIPPED)
_REFUSED = tuple((getattr(nn, name), why) for name, why in REFUSED.items())

Layer = tuple[int, nn.Module]
"""A layer of the Sequential with its index there."""
Step = tuple[LayerKind, Layer]
Refusal = Callable[[Step | None, Step | None], ValueError]


def check_precision(*modules: object) -> None:
    """ValueError when a float32 module on CUDA may run its products in TF32 (`verify.core.interop.refuse_tf32`):
    cuBLAS's flag for any module, cuDNN's too for a module with convolutions. Non-modules are skipped."""
    for module in modules:
        if not isinstance(module, nn.Module):
            continue
        parameter = next(module.parameters(), None)
        if parameter is None:
            continue
        convolutions = any(isinstance(m, nn.modules.conv._ConvNd) for m in module.modules())
        refuse_tf32(
            device_of(module), dtype_name(TorchSpec(parameter.device, parameter.dtype)), convolutions=convolutions
        )


def device_of(module: nn.Module) -> torch.device:
    """The device of ``module``'s first parameter (where it runs)."""
    return next(module.parameters()).device


def _refuse(index: int, layer: nn.Module, why: str) -> ValueError:
    return ValueError(f"layer {index} ({type(layer).__name__}) is not supported: {why}")


def _steps(module: nn.Module) -> list[Step]:
    """Every layer the grammar knows, with its kind; the identity layers skipped, any other refused."""
    if not isinstance(module, nn.Sequential):  # a model class whose graph is a chain of layers (docs/design.md §10)
        module = as_chain(module, "module")
    steps = []
    for index, layer in enumerate(module):
        if isinstance(layer, _SKIPPED):
            if layer.training and isinstance(layer, nn.Dropout) and layer.p > 0:
                raise _refuse(index, layer, "Dropout in train mode is random; call module.eval() first")
            if isinstance(layer, nn.Flatten) and (layer.start_dim, layer.end_dim) != (1, -1):
                raise _refuse(
                    index, layer, "only nn.Flatten() (start_dim=1, end_dim=-1) keeps the batch dimension of flat inputs"
                )
            continue
        kind = next((kind for cls, kind in _KINDS if isinstance(layer, cls)), None)
        if kind is None:
            why = next((w for cls, w in _REFUSED if isinstance(layer, cls)), None)
            raise _refuse(
                index, layer, why or "only Linear, BatchNorm1d and ReLU (and eval-mode Dropout) are understood"
            )
        steps.append((kind, (index, layer)))
    return steps


def _frozen_refusal(previous: Step | None, step: Step | None) -> ValueError:
    if previous is not None and previous[0] is LINEAR:
        return _refuse(*previous[1], "every Linear must be followed by a BatchNorm1d (its γ, β are what is tuned)")
    if step is None:
        if previous is None:
            return ValueError(
                "a frozen network is Linear -> BatchNorm1d -> ReLU -> …; the Sequential holds none of these layers"
            )
        return _refuse(
            *previous[1], "a frozen network ends with its last BatchNorm1d (the output); no ReLU may follow it"
        )
    if previous is not None and previous[0] is NORM:
        return _refuse(*step[1], "expected a ReLU after each BatchNorm1d but the last")
    return _refuse(*step[1], "expected a Linear here (the pattern is Linear -> BatchNorm1d -> ReLU)")


def _target_refusal(previous: Step | None, step: Step | None) -> ValueError:
    if step is None:
        return ValueError("a target must end with a Linear layer")
    return _refuse(*step[1], "a target is Linear -> ReLU -> … -> Linear")


def _read(module: nn.Module, grammar: Grammar, refusal: Refusal) -> tuple[dict[str, list[Any]], list[float]]:
    """Walk ``module`` by ``grammar``; collect what each kind reads (its ``reads`` tensors) and each BN's eps."""
    read: dict[str, list[Any]] = {name: [] for kind in (LINEAR, NORM) for name in kind.reads}
    eps: list[float] = []
    for kind, (index, layer) in walk(grammar, _steps(module), refusal):
        if kind is NORM:
            if not layer.track_running_stats or layer.running_mean is None:
                raise _refuse(index, layer, "BatchNorm1d without running statistics normalizes with batch statistics")
            if not layer.affine:
                raise _refuse(index, layer, "BatchNorm1d with affine=False has no weight and bias to tune")
            eps.append(float(layer.eps))
        for name in kind.reads:
            tensor = getattr(layer, name)
            read[name].append(None if tensor is None else tensor.detach())
    return read, eps


def from_module(module: nn.Sequential) -> FrozenNetwork:
    """Read a frozen ``Linear -> BatchNorm1d (-> ReLU)`` stack into a `verify.FrozenNetwork` (docs/design.md §1).

    Frozen Linear biases, BN running statistics and each BatchNorm's own eps are read; BN
    weight/bias are what will be tuned. Every Linear must be followed by a BatchNorm1d with
    running statistics and an affine part, and every BatchNorm1d but the last by a ReLU (grammar
    `verify.nn.grammar.FROZEN`). The result remembers the module's device and dtype, so
    reconstructions give tensors back there.
    """
    read, eps = _read(module, FROZEN, _frozen_refusal)
    return FrozenNetwork(read["weight"], read["bias"], read["running_mean"], read["running_var"], eps=eps)


def frozen_from_layers(
    affines: Sequence[nn.Module],
    norms: Sequence[_BatchNorm],
    convert: Callable[[torch.Tensor], Any] = torch.Tensor.detach,
) -> FrozenNetwork:
    """The `verify.FrozenNetwork` of affine layers each followed by its BatchNorm: weights flattened to
    ``(out, in · kernel)``, biases, running statistics and eps, every tensor through ``convert`` (detached
    tensors by default, so the network keeps their dtype and device)."""
    return FrozenNetwork(
        [convert(m.weight.flatten(1)) for m in affines],
        [None if m.bias is None else convert(m.bias) for m in affines],
        [convert(bn.running_mean) for bn in norms],
        [convert(bn.running_var) for bn in norms],
        eps=[float(bn.eps) for bn in norms],
    )


def target_from_module(module: nn.Sequential) -> TargetNetwork:
    """Read a target ``Linear -> ReLU -> … -> Linear`` stack into a `verify.TargetNetwork` (docs/design.md §1)."""
    read, _ = _read(module, TARGET, _target_refusal)
    return TargetNetwork(read["weight"], read["bias"])


def norm_layers(module: nn.Module) -> list[_BatchNorm]:
    """Every BatchNorm layer of ``module`` in order, selected by type (never by parameter name)."""
    return [m for m in module.modules() if isinstance(m, _BatchNorm)]


def linear_widths(module: nn.Module) -> list[int]:
    """The widths ``n_0 … n_m`` of the Linear layers of a Sequential: the first's inputs, then each one's outputs."""
    linears = [m for m in module if isinstance(m, nn.Linear)]
    return [linears[0].in_features] + [m.out_features for m in linears]
