"""The layers of a convolutional network as numpy maps, with their interval bounds (docs/design.md §9).

A convolutional target or frozen network (`verify.core.conv_networks`) is a chain of these layers,
each acting on a batch of tensors ``(batch, *shape)``:

* `Conv`: ``Conv1d``/``Conv2d`` with torch's semantics (weight ``(out, in, *kernel)``, stride,
  padding as numbers, ``"same"`` or ``"valid"``, every padding mode, dilation; ``groups = 1``);
* `Linear`: weight ``(out, in)`` on flat inputs;
* `MaxPool`, `AvgPool`, `AdaptiveAvgPool`, `Flatten`: parameter-free structure.

Every layer maps a per-position box ``[lo, hi]`` of its input to a box of its output
(`Layer.bounds`): pooling and flatten are monotone, so they map ``lo`` and ``hi``; an affine layer
gives each output position the range of its dot product over the box of its receptive field,
``mid = W ⋆ mid_in + b`` and ``rad = |W| ⋆ rad_in`` (`AffineLayer.range`): exact with zero padding,
an outer enclosure with reflect/replicate/circular padding (an input entry and its padded copy in
one window are counted as two entries, so ``rad`` can only grow). Padding is a selection of input
entries (zeros, reflections, copies), so it maps boxes to boxes and commutes with any combination
of kernels: ``Σ_i a_i (B_i ⋆ pad(z)) = (Σ_i a_i B_i) ⋆ pad(z)``.

The convolution is numpy: the padded input viewed as sliding windows
(``numpy.lib.stride_tricks.sliding_window_view``), contracted with the kernel by ``tensordot``.
Callers evaluate in batches (at most `BATCH` inputs, fewer when a layer is large: `BATCH_ENTRIES`) so
that memory stays bounded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from verify.core.domains import AffineRange
from verify.core.interop import to_host
from verify.core.validate import as_array

__all__ = [
    "BATCH",
    "BATCH_ENTRIES",
    "PADDING_MODES",
    "AdaptiveAvgPool",
    "AffineLayer",
    "AvgPool",
    "Conv",
    "Flatten",
    "Layer",
    "Linear",
    "MaxPool",
    "resolve_padding",
]

BATCH = 16
"""At most this many inputs are evaluated at once by the networks' forward passes."""

BATCH_ENTRIES = 2**25
"""Fewer inputs at once when a layer is large: a batch's largest layer output stays below this many floats
(256 MiB), whatever the network (one input at a time if a single one is larger)."""

PADDING_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}
"""torch's padding modes and the ``numpy.pad`` mode that does the same."""


def _tuple(value: object, spatial: int, name: str, *, minimum: int) -> tuple[int, ...]:
    """An int or a sequence of ``spatial`` ints (each ``>= minimum``) as a tuple; ValueError otherwise."""
    items = [value] * spatial if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    if (
        not isinstance(items, (tuple, list))
        or len(items) != spatial
        or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum for v in items)
    ):
        raise ValueError(f"{name} must be an integer >= {minimum} or {spatial} of them, got {value!r}")
    return tuple(int(v) for v in items)


def resolve_padding(
    padding: object, kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...]
) -> tuple[tuple[int, int], ...]:
    """Padding ``(before, after)`` per spatial axis, as torch applies it.

    ``"valid"`` is no padding; ``"same"`` (stride 1 only, as in torch) pads ``d (k − 1)`` in total,
    ``⌊total / 2⌋`` before and the rest after; numbers pad both sides equally.
    """
    spatial = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * spatial
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"padding='same' needs stride 1 (as in torch), got stride {stride}")
            totals = [d * (k - 1) for k, d in zip(kernel, dilation, strict=True)]
            return tuple((t // 2, t - t // 2) for t in totals)
        raise ValueError(f"padding must be 'same', 'valid', an integer >= 0 or {spatial} of them, got {padding!r}")
    return tuple((p, p) for p in _tuple(padding, spatial, "padding", minimum=0))


class Layer:
    """One layer of a convolutional network: a map of batches ``(batch, *shape_in) -> (batch, *shape_out)``."""

    name = "layer"

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of one output for one input of ``shape``; ValueError if the layer cannot take it."""
        raise NotImplementedError

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The layer on a batch ``x`` of shape ``(batch, *shape)``."""
        raise NotImplementedError

    def bounds(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A box of the outputs for inputs in the box ``[lo, hi]`` (one tensor each, no batch axis)."""
        return self(lo[None])[0], self(hi[None])[0]

    def magnitude(self, x: np.ndarray) -> np.ndarray:
        """The layer with absolute values everywhere on ``|x|`` (a rounding-error scale); monotone layers: itself."""
        return self(np.abs(x))

    def terms(self, shape: tuple[int, ...]) -> int:
        """Terms summed per output for inputs of ``shape`` (a rounding-error count, `verify.core.tolerances`)."""
        return 1


@dataclass(frozen=True, eq=False)
class AffineLayer(Layer):
    """A layer ``W ⋆ z + b`` whose output channels a BatchNorm scales: `Conv` or `Linear`."""

    weight: np.ndarray
    bias: np.ndarray

    @property
    def out_channels(self) -> int:
        """Output channels (features of a `Linear`)."""
        return int(self.weight.shape[0])

    @property
    def in_channels(self) -> int:
        """Input channels (features of a `Linear`)."""
        return int(self.weight.shape[1])

    @property
    def flat_weight(self) -> np.ndarray:
        """``W`` as ``(out, in · kernel)``: a kernel flattened in torch's order (in, *kernel)."""
        return self.weight.reshape(self.weight.shape[0], -1)

    def terms(self, shape: tuple[int, ...]) -> int:
        """Fan-in plus the bias: ``in · prod(kernel) + 1``."""
        return int(self.flat_weight.shape[1]) + 1

    def linear(self, x: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """``weight ⋆ x`` without bias (``weight`` shaped like `weight`, any number of output channels)."""
        raise NotImplementedError

    def fields(self, x: np.ndarray) -> np.ndarray:
        """The inputs each output position reads, for one tensor ``x`` (no batch axis): ``(positions, in · kernel)``
        in the order of `flat_weight`'s columns, so that ``(weight ⋆ x)[:, q] = flat_weight @ fields(x)[q]``."""
        raise NotImplementedError

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = self.linear(x, self.weight)
        out += self._broadcast(self.bias)  # in place: the output is a fresh array
        return out

    def magnitude(self, x: np.ndarray) -> np.ndarray:
        out = self.linear(np.abs(x), np.abs(self.weight))
        out += self._broadcast(np.abs(self.bias))
        return out

    def _broadcast(self, per_channel: np.ndarray) -> np.ndarray:
        return per_channel.reshape(-1, *([1] * (self.weight.ndim - 2)))

    def range(self, lo: np.ndarray, hi: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> AffineRange:
        """Per-position ranges of ``weight ⋆ z + bias`` over the box ``[lo, hi]``, shape ``(out, positions)`` (exact
        with zero padding, an outer enclosure with other padding modes, see module notes):
        ``mid = weight ⋆ c + bias``, ``rad = |weight| ⋆ r`` (centre ``c``, half-widths ``r``),
        ``size = |weight| ⋆ |c| + rad + |bias|``."""
        centre, half = (lo + hi) / 2, (hi - lo) / 2
        absw = np.abs(weight)
        mid = self.linear(centre[None], weight)[0]
        rad = self.linear(half[None], absw)[0]
        size = self.linear(np.abs(centre)[None], absw)[0] + rad
        shape = (weight.shape[0], -1)
        return AffineRange(
            mid.reshape(shape) + bias[:, None],
            rad.reshape(shape),
            size.reshape(shape) + np.abs(bias)[:, None],
        )

    def bounds(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        image = self.range(lo, hi, self.weight, self.bias)
        shape = self.output_shape(lo.shape)
        return (image.mid - image.rad).reshape(shape), (image.mid + image.rad).reshape(shape)


@dataclass(frozen=True, eq=False)
class Linear(AffineLayer):
    """``x -> W x + b`` on flat inputs ``(batch, in)``; ``W`` of shape ``(out, in)`` (torch's convention)."""

    name = "Linear"

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if shape != (self.in_channels,):
            raise ValueError(
                f"Linear({self.in_channels}, {self.out_channels}) needs flat inputs of {self.in_channels} features, "
                f"got shape {shape}; put a Flatten before it or match in_features"
            )
        return (self.out_channels,)

    def linear(self, x: np.ndarray, weight: np.ndarray) -> np.ndarray:
        return x @ weight.T

    def fields(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x).reshape(1, -1)


@dataclass(frozen=True, eq=False)
class Conv(AffineLayer):
    """``Conv1d``/``Conv2d`` with torch's semantics (``groups = 1``): weight ``(out, in, *kernel)``.

    ``padding`` is ``(before, after)`` per spatial axis (`resolve_padding`), ``padding_mode`` one of
    `PADDING_MODES`.
    """

    stride: tuple[int, ...] = (1,)
    padding: tuple[tuple[int, int], ...] = ((0, 0),)
    dilation: tuple[int, ...] = (1,)
    padding_mode: str = "zeros"

    name = "Conv"

    @classmethod
    def build(
        cls,
        weight: object,
        bias: object = None,
        *,
        stride: object = 1,
        padding: object = 0,
        dilation: object = 1,
        padding_mode: str = "zeros",
    ) -> Conv:
        """A convolution from torch-style arguments (numbers, tuples, ``"same"``/``"valid"``); arrays are copied."""
        w = as_array(weight, "weight", (None,) * np.ndim(to_host(weight)))
        if w.ndim not in (3, 4):
            raise ValueError(
                f"a convolution weight must have shape (out, in, k) or (out, in, k_h, k_w), got {w.shape}; "
                "Conv1d and Conv2d are supported"
            )
        spatial = w.ndim - 2
        b = np.zeros(w.shape[0]) if bias is None else as_array(bias, "bias", (w.shape[0],))
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {tuple(PADDING_MODES)}, got {padding_mode!r}")
        stride_t = _tuple(stride, spatial, "stride", minimum=1)
        dilation_t = _tuple(dilation, spatial, "dilation", minimum=1)
        pads = resolve_padding(padding, tuple(w.shape[2:]), stride_t, dilation_t)
        return cls(w, b, stride_t, pads, dilation_t, padding_mode)

    @property
    def kernel(self) -> tuple[int, ...]:
        """Kernel size per spatial axis."""
        return tuple(int(k) for k in self.weight.shape[2:])

    @property
    def spatial(self) -> int:
        """1 for Conv1d, 2 for Conv2d."""
        return self.weight.ndim - 2

    def like(self, weight: np.ndarray, bias: np.ndarray | None = None) -> Conv:
        """A convolution with this geometry (stride, padding, dilation, mode) and another weight and bias."""
        b = np.zeros(weight.shape[0]) if bias is None else bias
        return Conv(weight, b, self.stride, self.padding, self.dilation, self.padding_mode)

    def describe(self) -> str:
        """The geometry in torch's words, for messages."""
        return (
            f"Conv{self.spatial}d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
            f"padding_mode={self.padding_mode!r})"
        )

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(shape) != self.spatial + 1 or shape[0] != self.in_channels:
            raise ValueError(
                f"{self.describe()} needs inputs of shape ({self.in_channels}, {', '.join(['size'] * self.spatial)}), "
                f"got {shape}"
            )
        out = []
        for size, k, s, (p0, p1), d in zip(
            shape[1:], self.kernel, self.stride, self.padding, self.dilation, strict=True
        ):
            length = (size + p0 + p1 - d * (k - 1) - 1) // s + 1
            if length < 1:
                raise ValueError(f"{self.describe()} gets inputs of shape {shape}: the kernel does not fit; pad more")
            if self.padding_mode in ("reflect", "circular") and max(p0, p1) > size - (self.padding_mode == "reflect"):
                raise ValueError(f"{self.describe()}: padding {max(p0, p1)} is too large for an input of size {size}")
            out.append(length)
        return (self.out_channels, *out)

    def windows(self, x: np.ndarray) -> np.ndarray:
        """The receptive fields of ``x`` ``(batch, in, *S)``: a view ``(batch, in, *out, *kernel)``."""
        axes = tuple(range(2, 2 + self.spatial))
        pad = ((0, 0), (0, 0), *self.padding)
        padded = np.pad(x, pad, mode=PADDING_MODES[self.padding_mode]) if any(map(any, self.padding)) else x
        span = tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation, strict=True))
        view = sliding_window_view(padded, span, axis=axes)
        index = (
            slice(None),
            slice(None),
            *(slice(None, None, s) for s in self.stride),
            *(slice(None, None, d) for d in self.dilation),
        )
        return view[index]

    def fields(self, x: np.ndarray) -> np.ndarray:
        windows = self.windows(x[None])[0]  # (in, *out, *kernel)
        spatial = self.spatial
        order = (*range(1, 1 + spatial), 0, *range(1 + spatial, 1 + 2 * spatial))
        return np.ascontiguousarray(windows.transpose(order)).reshape(-1, self.flat_weight.shape[1])

    def linear(self, x: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """One GEMM: ``weight`` flattened ``(out, in·k)`` times the receptive fields of the whole batch
        ``(in·k, batch·positions)``; the output comes back contiguous as ``(batch, out, *positions)``."""
        windows = self.windows(x)
        spatial = self.spatial
        batch = windows.shape[0]
        out_shape = windows.shape[2 : 2 + spatial]
        order = (1, *range(2 + spatial, 2 + 2 * spatial), 0, *range(2, 2 + spatial))
        fields = np.ascontiguousarray(windows.transpose(order)).reshape(-1, batch * math.prod(out_shape))
        out = weight.reshape(weight.shape[0], -1) @ fields
        return np.ascontiguousarray(out.reshape(weight.shape[0], batch, *out_shape).swapaxes(0, 1))


@dataclass(frozen=True)
class MaxPool(Layer):
    """``MaxPool1d``/``MaxPool2d`` (``ceil_mode=False``): padding counts as ``-inf``, as in torch."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]

    name = "MaxPool"

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return _pool_shape(self, shape, self.dilation)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        windows = _pool_windows(x, self.kernel, self.stride, self.padding, self.dilation, -np.inf)
        axes = tuple(range(-len(self.kernel), 0))
        return windows.max(axis=axes)


@dataclass(frozen=True)
class AvgPool(Layer):
    """``AvgPool1d``/``AvgPool2d`` (``ceil_mode=False``, no divisor override); zero padding, divided by the
    whole window (``count_include_pad=True``) or by its entries inside the input."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    count_include_pad: bool = True

    name = "AvgPool"

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return _pool_shape(self, shape, (1,) * len(self.kernel))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        ones = (1,) * len(self.kernel)
        axes = tuple(range(-len(self.kernel), 0))
        total = _pool_windows(x, self.kernel, self.stride, self.padding, ones, 0.0).sum(axis=axes)
        if self.count_include_pad:
            return total / math.prod(self.kernel)
        inside = np.ones((1, 1, *x.shape[2:]))
        count = _pool_windows(inside, self.kernel, self.stride, self.padding, ones, 0.0).sum(axis=axes)
        return total / count

    def terms(self, shape: tuple[int, ...]) -> int:
        return math.prod(self.kernel) + 1


@dataclass(frozen=True)
class AdaptiveAvgPool(Layer):
    """``AdaptiveAvgPool1d``/``2d``: output bin ``i`` of an axis of length ``L`` averages
    ``[⌊i L / o⌋, ⌈(i + 1) L / o⌉)``, as torch does."""

    output_size: tuple[int, ...]

    name = "AdaptiveAvgPool"

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(shape) != len(self.output_size) + 1:
            raise ValueError(f"AdaptiveAvgPool{len(self.output_size)}d needs (channels, *spatial) inputs, got {shape}")
        return (shape[0], *self.output_size)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for axis, out in enumerate(self.output_size, start=2):
            length = x.shape[axis]
            bins = [
                np.take(x, range((i * length) // out, -((-(i + 1) * length) // out)), axis=axis).mean(axis=axis)
                for i in range(out)
            ]
            x = np.stack(bins, axis=axis)
        return x

    def terms(self, shape: tuple[int, ...]) -> int:
        bins = [-(-size // out) + 1 for size, out in zip(shape[1:], self.output_size, strict=True)]
        return math.prod(bins) + 1


@dataclass(frozen=True)
class Flatten(Layer):
    """``nn.Flatten()``: ``(batch, *shape) -> (batch, prod(shape))``."""

    name = "Flatten"

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (math.prod(shape),)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(x.shape[0], -1)


def _pool_shape(pool: MaxPool | AvgPool, shape: tuple[int, ...], dilation: Sequence[int]) -> tuple[int, ...]:
    if len(shape) != len(pool.kernel) + 1:
        raise ValueError(f"{pool.name}{len(pool.kernel)}d needs (channels, *spatial) inputs, got {shape}")
    out = [
        (size + 2 * p - d * (k - 1) - 1) // s + 1
        for size, k, s, p, d in zip(shape[1:], pool.kernel, pool.stride, pool.padding, dilation, strict=True)
    ]
    if min(out) < 1:
        raise ValueError(
            f"{pool.name}{len(pool.kernel)}d with kernel {pool.kernel} does not fit inputs of shape {shape}"
        )
    return (shape[0], *out)


def _pool_windows(
    x: np.ndarray,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    fill: float,
) -> np.ndarray:
    """Pooling windows of ``x`` ``(batch, C, *S)`` padded with ``fill``: ``(batch, C, *out, *kernel)``."""
    spatial = len(kernel)
    if any(padding):
        x = np.pad(x, ((0, 0), (0, 0), *((p, p) for p in padding)), constant_values=fill)
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True))
    view = sliding_window_view(x, span, axis=tuple(range(2, 2 + spatial)))
    return view[
        (slice(None), slice(None), *(slice(None, None, s) for s in stride), *(slice(None, None, d) for d in dilation))
    ]
