"""The blocks of a convolutional pair (docs/design.md §9) and the check that a frozen network can carry a target.

Block ``k`` pairs target layer ``k`` of a `verify.core.conv_networks.ConvTargetNetwork` with frozen layers
``2k−1`` (a `Conv` of the target's kernel size, stride, padding and dilation, or a `Linear`) and ``2k`` (a
1×1 `Conv`, or a `Linear`) of a `ConvFrozenNetwork`; its scale equation is the dense one on flattened kernels,
``A diag(γ) B = W_flat`` (`conv_blocks`), as `verify.core.blocks` gives it for dense chains.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from verify.core.blocks import Block
from verify.core.channels import Channels, ConvChannels, DenseChannels
from verify.core.conv_networks import ConvFrozenNetwork, ConvTargetNetwork
from verify.core.convolution import AffineLayer, Conv
from verify.core.domains import AffineRange, Box, Domain
from verify.core.errors import InfeasibleError

__all__ = ["ConvBlock", "check_conv_architecture", "conv_blocks", "live_inputs"]


@dataclass(frozen=True)
class ConvBlock(Block):
    """A block whose odd layer is a convolution: ``b`` is its kernel restricted to the live input channels and
    flattened to ``(n, C_in·prod(kernel))``; ``odd_layer`` the same kernel as a `Conv` (for the ranges)."""

    odd_layer: Conv | None = None

    def odd_range(self, region: Domain, arithmetic: object = None) -> AffineRange:
        """Per-channel range of the odd convolution over ``region`` (a `Box` with ``shape``): per position
        (`verify.core.convolution.AffineLayer.range`), then the hull over positions (`ConvChannels`)."""
        if arithmetic is not None or not isinstance(region, Box) or region.shape is None:
            raise ValueError("a convolutional block's range needs a float64 verify.Box over its input tensor")
        lo, hi = region.lo.reshape(region.shape), region.hi.reshape(region.shape)
        layer = self.odd_layer
        return self.channels.reduce_range(layer.range(lo, hi, layer.weight, self.c_odd))


def conv_blocks(target: ConvTargetNetwork, frozen: ConvFrozenNetwork) -> Iterator[Block]:
    """The blocks ``k = 1 … L`` of a convolutional pair (call `check_conv_architecture` first)."""
    d = target.widths
    for k, layer in enumerate(target.affine, start=1):
        odd, even = frozen.affine[2 * k - 2], frozen.affine[2 * k - 1]
        live = live_inputs(frozen, k, d[k - 1])
        a = even.flat_weight[: d[k]]
        common = {
            "k": k,
            "a": a,
            "c_odd": odd.bias,
            "c_even": even.bias[: d[k]],
            "w": layer.flat_weight,
            "bias": layer.bias,
        }
        if isinstance(odd, Conv):
            kernel = odd.weight[:, : d[k - 1]]
            positions = math.prod(odd.output_shape(target.layer_shapes()[k - 1])[1:])
            channels: Channels = ConvChannels(odd.out_channels, positions)
            yield ConvBlock(
                **common, b=kernel.reshape(kernel.shape[0], -1), channels=channels, odd_layer=odd.like(kernel, odd.bias)
            )
        else:
            yield Block(**common, b=odd.weight[:, live], channels=DenseChannels(odd.out_channels))


def live_inputs(frozen: ConvFrozenNetwork, k: int, carried: int) -> np.ndarray:
    """Indices of the odd layer ``2k−1``'s input features fed by the ``carried`` live channels of layer ``2k−2``
    (channel order, then position; all inputs for ``k = 1``)."""
    shape = frozen.layer_shapes()[2 * k - 2]
    if k == 1:
        return np.arange(math.prod(shape))
    previous = frozen.layer_shapes()[2 * k - 3]
    out = frozen.affine[2 * k - 3].output_shape(previous)
    indicator = np.zeros((1, *out))
    indicator[:, :carried] = 1.0
    for op in frozen.structure_before(k - 1):
        indicator = op(indicator)
    return np.flatnonzero(indicator.reshape(-1) > 0)


def _geometry(layer: AffineLayer) -> tuple:
    if isinstance(layer, Conv):
        return ("Conv", layer.kernel, layer.stride, layer.padding, layer.dilation, layer.padding_mode)
    return ("Linear",)


def check_conv_architecture(target: object, frozen: object) -> None:
    """Raise ValueError (InfeasibleError for a too-narrow even layer) unless ``frozen`` can carry ``target``:
    same input shape, one pair per target layer with the target's geometry, a 1×1 (or Linear) even layer,
    and the same structure between the pairs. Each message names the layer and what would work."""
    if not isinstance(target, ConvTargetNetwork):
        raise ValueError(
            f"target must be a ConvTargetNetwork to go with a {type(frozen).__name__}, got {type(target).__name__}"
        )
    if not isinstance(frozen, ConvFrozenNetwork):
        raise ValueError(
            f"frozen must be a ConvFrozenNetwork to go with a ConvTargetNetwork, got {type(frozen).__name__}"
        )
    if frozen.input_shape != target.input_shape:
        raise ValueError(f"frozen takes inputs of shape {frozen.input_shape} but the target {target.input_shape}")
    if frozen.depth != target.depth:
        raise ValueError(
            f"frozen has {2 * frozen.depth} affine layers but a target of depth {target.depth} needs {2 * target.depth}"
        )
    d = target.widths
    for k, layer in enumerate(target.affine, start=1):
        odd, even = frozen.affine[2 * k - 2], frozen.affine[2 * k - 1]
        if _geometry(odd) != _geometry(layer):
            want = layer.describe() if isinstance(layer, Conv) else "a Linear"
            raise ValueError(
                f"block {k}: frozen layer {2 * k - 1} is {odd.describe() if isinstance(odd, Conv) else 'a Linear'} but "
                f"target layer {k} needs {want} with n output channels (same kernel size, stride, padding, dilation "
                f"and padding mode)"
            )
        if isinstance(even, Conv) and (
            any(s != 1 for s in even.kernel + even.stride + even.dilation) or any(map(any, even.padding))
        ):
            raise ValueError(
                f"block {k}: frozen layer {2 * k} is {even.describe()}; it must be a 1x1 convolution (stride 1, no "
                "padding, dilation 1)"
            )
        if isinstance(even, Conv) != isinstance(layer, Conv):
            raise ValueError(
                f"block {k}: frozen layer {2 * k} must be a {'1x1 Conv' if isinstance(layer, Conv) else 'Linear'}"
            )
        if tuple(frozen.structure_before(k - 1)) != tuple(target.structure_before(k - 1)):
            raise ValueError(
                f"block {k}: the structure before frozen layer {2 * k - 1} ({list(frozen.structure_before(k - 1))}) "
                f"differs from the target's before its layer {k} ({list(target.structure_before(k - 1))}); copy it"
            )
        n_even = even.out_channels
        if (k == target.depth and n_even != d[k]) or n_even < d[k]:
            if k == target.depth:
                raise ValueError(f"frozen output layer {2 * k} has {n_even} channels but the target's has {d[k]}")
            raise InfeasibleError(
                f"block {k}: even frozen layer {2 * k} has {n_even} channels but must carry the target's {d[k]}; use "
                f">= {d[k]}",
                block=k,
                width=n_even,
                width_needed=d[k],
            )
    if frozen.output_shape != target.output_shape:
        raise ValueError(f"frozen outputs have shape {frozen.output_shape} but the target's {target.output_shape}")
