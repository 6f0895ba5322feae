"""The frozen module read as it runs, matched layer by layer against what the construction assumes.

The Sequential readers (`verify.nn.modules`, `verify.nn.frozen_like.conv_networks`) take the frozen
module's Linear/Conv weights and BatchNorm statistics; the construction then assumes the frozen
module runs, for every target layer, ``affine → BatchNorm → ReLU → affine → BatchNorm``, then the
target's ReLU (not after the last layer) and the target's pooling and Flatten exactly where the
target has them (a target MaxPool between a layer and its ReLU comes after the frozen ReLU: they
commute). `match_chain` compares the frozen chain, as torch.fx traces its forward
(`verify.nn.graph.chain_nodes`), with that expected chain node by node, and refuses the first
difference (a missing, extra or moved ReLU, a pool in another place, another kernel, stride,
padding, padding mode or dilation, anything else) with a ``ValueError`` naming the node, its source
module and what was expected. `check_frozen_norms` refuses a frozen BatchNorm that ``.eval()``
would leave in train mode. Both run before any solve. Widths are not compared here: the network
readers check them.
"""

from __future__ import annotations

import numpy as np
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from verify.core.convolution import AffineLayer, Conv, Flatten, Layer
from verify.nn.frozen_like import _CONV, _STRUCTURE, _conv, _structure, read_target_layers
from verify.nn.graph import chain_nodes

__all__ = ["check_frozen_norms", "expected_chain", "match_chain"]


def _affine(layer: AffineLayer | nn.Module, second: bool) -> str:
    """What must agree for the first (the target's geometry) or second (``1×1``) affine layer of a pair."""
    if isinstance(layer, _CONV):
        layer = _conv(layer, 0)
    if not isinstance(layer, Conv):
        return "Linear"
    kernel = tuple(layer.weight.shape[2:])
    return (
        f"Conv{len(kernel)}d{' 1×1' if second else ''} (kernel {kernel}, stride {layer.stride}, padding "
        f"{layer.padding}, dilation {layer.dilation}, padding_mode {layer.padding_mode!r})"
    )


def _one_by_one(layer: Conv) -> Conv:
    """The second convolution of a pair: ``1×1``, stride 1, no padding (its channels are not compared)."""
    return Conv.build(np.zeros((1, 1) + (1,) * (layer.weight.ndim - 2)))


def _norm(layer: Layer) -> str:
    return "BatchNorm2d" if isinstance(layer, Conv) and layer.weight.ndim == 4 else "BatchNorm1d"


def expected_chain(target: nn.Sequential, flat: bool = False) -> list[str]:
    """The frozen chain the construction assumes for ``target``: one description per frozen node (``flat``: the
    MLP route, where ``Flatten`` is the identity on flat inputs and is left out)."""
    layers = [layer for layer in read_target_layers(target) if not (flat and isinstance(layer, Flatten))]
    affine = [layer for layer in layers if isinstance(layer, AffineLayer)]
    expected: list[str] = []
    for layer in layers:
        if not isinstance(layer, AffineLayer):
            expected.append(repr(layer))
            continue
        second = _one_by_one(layer) if isinstance(layer, Conv) else layer
        expected += [_affine(layer, False), _norm(layer), "ReLU", _affine(second, True), _norm(layer)]
        if layer is not affine[-1]:
            expected.append("ReLU")
    return expected


def _found(module: nn.Module, wanted: str) -> str:
    """The description of a frozen node in the terms of ``wanted`` (the second affine layer of a pair is 1×1)."""
    if isinstance(module, (nn.Linear, *_CONV)):
        return _affine(module, "1×1" in wanted)
    if isinstance(module, _BatchNorm):
        return next((n for n in ("BatchNorm1d", "BatchNorm2d") if isinstance(module, getattr(nn, n))), "BatchNorm")
    if isinstance(module, nn.ReLU):
        return "ReLU"
    if isinstance(module, _STRUCTURE):
        return repr(_structure(module, 0))
    return f"{type(module).__name__} (not a layer of a frozen network)"


def match_chain(target: nn.Sequential, frozen: nn.Module, *, flat: bool = False) -> None:
    """Refuse ``frozen`` unless its forward, as traced, is the chain the construction assumes for ``target``.

    Raises ValueError naming the first frozen node that differs (its fx name and source module), what
    was found and what the construction expects there; eval-mode Dropout and Identity are skipped (and
    ``Flatten`` with ``flat``, the MLP route's reading).
    """
    expected = expected_chain(target, flat)
    skipped = (nn.Dropout, nn.Identity, nn.Flatten) if flat else (nn.Dropout, nn.Identity)
    found = [
        (name, source, module)
        for name, source, module in chain_nodes(frozen, "frozen")
        if not isinstance(module, skipped)
    ]
    for position, (name, source, module) in enumerate(found):
        wanted = expected[position] if position < len(expected) else None
        what = _found(module, wanted or "")
        if what != wanted:
            before = f"after {expected[position - 1]} " if position else ""
            raise ValueError(
                f"frozen node '{name}' (from {source}) is {what}, but the construction for this target expects "
                + (f"{wanted} here ({before}at frozen node {position})" if wanted else "the output to end before it")
                + "; the frozen module must run the target's layers as pairs affine -> BatchNorm -> ReLU -> affine "
                "-> BatchNorm, with the target's ReLUs, pooling and Flatten in the target's places: build it with "
                "verify.nn.frozen_like(target)"
            )
    if len(found) < len(expected):
        raise ValueError(
            f"the frozen module ends after {len(found)} nodes, where the construction for this target expects "
            f"{expected[len(found)]} next (and {len(expected)} nodes in all); build it with "
            "verify.nn.frozen_like(target)"
        )


def check_frozen_norms(frozen: nn.Module) -> None:
    """Refuse a frozen BatchNorm that normalizes with batch statistics after ``frozen.eval()``.

    ``frozen.eval()`` is run and every module's ``training`` flag is then put back as it was; a BatchNorm
    still in train mode (its class overrides ``eval``/``train``) or without running statistics
    (``track_running_stats=False``) raises ValueError naming it.
    """
    flags = [(module, module.training) for module in frozen.modules()]
    try:
        frozen.eval()
        for name, module in frozen.named_modules():
            if not isinstance(module, _BatchNorm):
                continue
            if not module.track_running_stats or module.running_mean is None:
                raise ValueError(
                    f"frozen BatchNorm '{name}' ({type(module).__name__}) has track_running_stats=False: it always "
                    "normalizes with batch statistics, which the construction does not model; build it with "
                    "track_running_stats=True (verify.nn.frozen_like does)"
                )
            if module.training:
                raise ValueError(
                    f"frozen BatchNorm '{name}' ({type(module).__name__}) stays in train mode after frozen.eval() "
                    "(its class overrides eval()/train()), so it would normalize with batch statistics; use a "
                    "BatchNorm whose eval() sets training=False"
                )
    finally:
        for module, training in flags:
            module.training = training
