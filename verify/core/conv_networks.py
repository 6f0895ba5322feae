"""Convolutional target and frozen networks (docs/design.md §9), and their blocks.

A `ConvTargetNetwork` is a chain of `verify.core.convolution` layers on inputs of one tensor shape:
affine layers (`Conv`, `Linear`) with a ReLU after every one but the last, and parameter-free
structure (`MaxPool`, `AvgPool`, `AdaptiveAvgPool`, `Flatten`) between them::

    z_0 = x,   z_k = relu(W_k ⋆ S_k(z_{k-1}) + b_k)  (k < L),   f(x) = W_L ⋆ S_L(z_{L-1}) + b_L

``S_k`` being the structure before layer ``k``. A `ConvFrozenNetwork` has ``2L`` affine layers, each
followed by an eval-mode BatchNorm per channel, a ReLU after all but the last, and the target's
structure ``S_k`` before its odd layer ``2k−1``. Block ``k`` pairs target layer ``k`` with frozen
layers ``2k−1`` (a `Conv` of the target's kernel size, stride, padding and dilation, or a
`Linear`) and ``2k`` (a 1×1 `Conv`, or a `Linear`); its scale equation is the dense one on
flattened kernels, ``A diag(γ) B = W_flat`` (`verify.core.conv_blocks`).

The networks evaluate in numpy float64, in batches (`_ConvLayers.batch`) so that memory stays bounded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from verify.core.convolution import (
    BATCH,
    BATCH_ENTRIES,
    AdaptiveAvgPool,
    AffineLayer,
    AvgPool,
    Conv,
    Flatten,
    Layer,
    Linear,
    MaxPool,
)
from verify.core.domains import Ball, Box, Domain
from verify.core.interop import to_host
from verify.core.memory import Pair, check_build
from verify.core.networks import _Layers, draw_weights
from verify.core.normalizations import Normalizations, norm_statistics
from verify.core.validate import as_array, as_seed, as_sequence
from verify.core.widths import layer_widths, minimal_width, paper_width

__all__ = [
    "STRUCTURE",
    "ConvFrozenNetwork",
    "ConvTargetNetwork",
    "conv_pairs",
    "is_convolutional",
    "odd_widths",
    "resolve_domain",
]

STRUCTURE = (MaxPool, AvgPool, AdaptiveAvgPool, Flatten)
"""Parameter-free layers copied unchanged from the target into the frozen network."""


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def _chain(layers: Sequence[object], input_shape: object, what: str) -> tuple[list, list[list], list, tuple]:
    """Split ``layers`` into affine layers and the structure before each; check the shapes chain.

    Returns ``(affine, structure, shapes, input_shape)`` with ``shapes[i]`` the input shape of
    affine layer ``i``. ValueError naming the layer for anything that does not chain.
    """
    items = as_sequence(layers, "layers")
    shape = _shape(input_shape)
    affine: list[AffineLayer] = []
    structure: list[list[Layer]] = [[]]
    shapes = []
    for i, layer in enumerate(items):
        if not isinstance(layer, (Conv, Linear, *STRUCTURE)):
            raise ValueError(
                f"{what} layer {i} is a {type(layer).__name__}; use verify.core.convolution's Conv, Linear, MaxPool, "
                "AvgPool, AdaptiveAvgPool or Flatten"
            )
        try:
            out = layer.output_shape(shape)
        except ValueError as error:
            raise ValueError(f"{what} layer {i} ({layer.name}): {error}") from None
        if isinstance(layer, AffineLayer):
            affine.append(layer)
            shapes.append(shape)
            structure.append([])
        else:
            structure[-1].append(layer)
        shape = out
    if not affine:
        raise ValueError(f"{what} needs at least one Conv or Linear layer")
    if structure[-1]:
        raise ValueError(
            f"{what} ends with {structure[-1][0].name} after its last affine layer; the last layer must be a Conv "
            "or Linear (apply pooling before it)"
        )
    return affine, structure[:-1], shapes, shape


def _shape(value: object) -> tuple[int, ...]:
    items = as_sequence(value, "input_shape")
    if len(items) not in (1, 2, 3) or any(
        isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in items
    ):
        raise ValueError(f"input_shape must be (C,), (C, L) or (C, H, W) with integers >= 1, got {value!r}")
    return tuple(int(s) for s in items)


def _inputs(x: object, shape: tuple[int, ...]) -> tuple[np.ndarray, bool]:
    """``x`` as ``(batch, *shape)``: a batch of tensors, a batch of flat vectors, or one tensor."""
    host = to_host(x)
    size = math.prod(shape)
    ndim = np.ndim(host)
    if np.shape(host) == shape:
        return as_array(x, "x", shape)[None], True
    if ndim == 2 and np.shape(host)[1] == size:
        return as_array(x, "x", (None, size)).reshape(-1, *shape), False
    if ndim == len(shape) + 1 and tuple(np.shape(host)[1:]) == shape:
        return as_array(x, "x", (None, *shape)), False
    raise ValueError(
        f"x must have shape (batch, {', '.join(map(str, shape))}) or (batch, {size}), got {np.shape(host)}"
    )


class _ConvLayers(_Layers):
    """What both networks share: the affine layers (their weights ``(out, in, *kernel)`` or ``(out, in)``), the
    structure between them, the input shape; numpy float64 (``torch`` is None: read torch modules with
    `verify.nn`)."""

    _affine: tuple[AffineLayer, ...]
    _structure: tuple[tuple[Layer, ...], ...]
    _shapes: tuple[tuple[int, ...], ...]
    _input_shape: tuple[int, ...]
    _output_shape: tuple[int, ...]
    _torch = None

    def _set_layers(self, affine: Sequence[AffineLayer]) -> None:
        self._affine = tuple(affine)
        self._weights = tuple(layer.weight for layer in affine)
        self._biases = tuple(layer.bias for layer in affine)

    @property
    def affine(self) -> tuple[AffineLayer, ...]:
        """The `Conv`/`Linear` layers, in order."""
        return self._affine

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input tensor, ``(C, H, W)`` say."""
        return self._input_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Shape of one output."""
        return self._output_shape

    def structure_before(self, index: int) -> tuple[Layer, ...]:
        """The structure layers before block ``index + 1`` (before the target's layer or the frozen odd layer)."""
        return self._structure[index]

    def layer_shapes(self) -> tuple[tuple[int, ...], ...]:
        """Input shape of each affine layer."""
        return self._shapes

    @property
    def batch(self) -> int:
        """Inputs evaluated at once: `BATCH`, fewer if a layer's outputs for that many would exceed `BATCH_ENTRIES`."""
        largest = max(
            math.prod(layer.output_shape(shape)) for layer, shape in zip(self._affine, self._shapes, strict=True)
        )
        return max(1, min(BATCH, BATCH_ENTRIES // max(largest, 1)))


class ConvTargetNetwork(_ConvLayers):
    """A convolutional ReLU target ``f`` (see module notes).

    Parameters
    ----------
    layers : sequence of Conv, Linear, MaxPool, AvgPool, AdaptiveAvgPool, Flatten
        In order; a ReLU follows every `Conv`/`Linear` but the last (before any pooling after it),
        and the last layer is a `Conv` or `Linear`.
    input_shape : tuple of int
        Shape of one input, ``(C, L)`` for Conv1d or ``(C, H, W)`` for Conv2d (``(d_0,)`` for an MLP).
    """

    def __init__(self, layers: Sequence[object], input_shape: Sequence[int]) -> None:
        affine, structure, shapes, out = _chain(layers, input_shape, "target")
        self._set_layers(affine)
        self._structure, self._shapes = tuple(map(tuple, structure)), tuple(shapes)
        self._input_shape, self._output_shape = _shape(input_shape), out

    @property
    def depth(self) -> int:
        """``L``, the number of affine layers."""
        return len(self._affine)

    def __call__(self, x: object) -> np.ndarray:
        """``f`` on ``x`` ``(batch, *input_shape)`` or ``(batch, prod(input_shape))``: ``(batch, *output_shape)``
        (one input tensor gives one output)."""
        return self._evaluate(x, magnitude=False)

    def magnitude(self, x: object) -> np.ndarray:
        """``f`` with every weight, bias and input replaced by its absolute value (a rounding-error scale)."""
        return self._evaluate(x, magnitude=True)

    def _evaluate(self, x: object, *, magnitude: bool) -> np.ndarray:
        z, single = _inputs(x, self._input_shape)
        outputs = []
        step = self.batch
        for start in range(0, z.shape[0], step):
            u = np.abs(z[start : start + step]) if magnitude else z[start : start + step]
            for k, layer in enumerate(self._affine):
                for op in self._structure[k]:
                    u = op(u)
                u = layer.magnitude(u) if magnitude else layer(u)
                if k < self.depth - 1:
                    u = _relu(u)
            outputs.append(u)
        out = np.concatenate(outputs)
        return out[0] if single else out

    def input_regions(self, domain: Domain) -> list[Box]:
        """Boxes (`verify.Box` with ``shape``) containing the input of every target layer on ``domain``:
        interval bounds through the structure (monotone), the affine layers (per position, docs/design.md §9)
        and the ReLU. A `Ball` enters through its bounding box (an outer enclosure)."""
        lo, hi = resolve_domain(domain, self._input_shape).bounding_box()
        lo, hi = lo.reshape(self._input_shape), hi.reshape(self._input_shape)
        regions = []
        for k, layer in enumerate(self._affine):
            for op in self._structure[k]:
                lo, hi = op.bounds(lo, hi)
            regions.append(Box(lo.reshape(-1), hi.reshape(-1), shape=lo.shape))
            if k < self.depth - 1:
                lo, hi = layer.bounds(lo, hi)
                lo, hi = _relu(lo), _relu(hi)
        return regions

    def __repr__(self) -> str:
        return f"ConvTargetNetwork(input_shape={self._input_shape}, widths={list(self.widths)})"


def resolve_domain(domain: Domain, shape: tuple[int, ...]) -> Domain:
    """``domain`` over inputs of ``shape`` (a `Box` gets that shape); ValueError naming the first layer's input."""
    if isinstance(domain, Box):
        return domain.resolve_shape(shape, "the first layer")
    if isinstance(domain, Ball):
        size = math.prod(shape)
        if domain.dim is not None and domain.dim != size:
            raise ValueError(
                f"domain Ball has {domain.dim} coordinates but the first layer takes inputs of shape {shape} "
                f"({size} entries); give a center of {size} entries (flattened C-order) or none"
            )
        return domain.resolve(size)
    raise ValueError(f"domain must be a verify.Ball or a verify.Box, got {type(domain).__name__}")


class ConvFrozenNetwork(_ConvLayers, Normalizations):
    """A frozen convolutional network: ``2L`` affine layers, each followed by an eval-mode BatchNorm per channel
    (see module notes). Only the BatchNorm weight and bias are tuned.

    Parameters
    ----------
    layers : sequence of Conv, Linear, MaxPool, AvgPool, AdaptiveAvgPool, Flatten
        ``2L`` affine layers; structure only before odd layers (between the pairs).
    input_shape : tuple of int
        Shape of one input.
    running_mean, running_var : sequence of arrays or None
        BatchNorm statistics per affine layer, one entry per channel (defaults 0 and 1).
    eps : float or sequence of float
        BatchNorm ``eps`` (one value, or one per affine layer).
    """

    def __init__(
        self,
        layers: Sequence[object],
        input_shape: Sequence[int],
        running_mean: Sequence[object] | None = None,
        running_var: Sequence[object] | None = None,
        eps: float | Sequence[float] = 0.0,
    ) -> None:
        affine, structure, shapes, out = _chain(layers, input_shape, "frozen")
        if len(affine) % 2:
            raise ValueError(
                f"frozen needs an even number 2L of Conv/Linear layers (two per target layer), got {len(affine)}"
            )
        for j, ops in enumerate(structure):
            if j % 2 and ops:
                raise ValueError(
                    f"frozen has {ops[0].name} between affine layers {j} and {j + 1} of one pair; structure layers "
                    "belong between the pairs (before an odd layer)"
                )
        self._set_layers(affine)
        self._shapes = tuple(shapes)
        self._structure = tuple(tuple(ops) for ops in structure[::2])
        self._input_shape, self._output_shape = _shape(input_shape), out
        counts = [layer.out_channels for layer in affine]
        self._mean, self._var, self._layer_eps, self._std = norm_statistics(counts, running_mean, running_var, eps)

    @classmethod
    def for_target(
        cls,
        target: ConvTargetNetwork,
        width: str | int | float | Sequence[int] = "paper",
        *,
        seed: int = 1,
        density: float = 1.0,
    ) -> ConvFrozenNetwork:
        """A random frozen network shaped for ``target`` (docs/design.md §9).

        Every target `Conv` becomes a `Conv` of its kernel size, stride, padding, dilation and padding
        mode with ``n`` channels, then a 1×1 `Conv` with the target's output channels; every
        `Linear` a `Linear` pair; the structure is copied. ``width`` gives ``n`` per block:
        ``"paper"`` (``C_out·C_in·prod(kernel)``), ``"minimal"`` (``C_out(C_in·prod(kernel) − 1) + 1``),
        an int, a float multiple of ``"paper"`` or one int per block. Weights are ``N(0, 1/fan_in)``,
        biases zero; ``density < 1`` keeps each weight with probability ``density`` (scaled by
        ``1/sqrt(density)``, docs/design.md §4).
        """
        if not isinstance(target, ConvTargetNetwork):
            raise ValueError(f"target must be a ConvTargetNetwork, got {type(target).__name__}")
        if isinstance(density, bool) or not isinstance(density, (int, float, np.floating)) or not 0 < density <= 1:
            raise ValueError(f"density must be a number in (0, 1], got {density!r}")
        odd = odd_widths(width, target.affine)
        check_build("ConvFrozenNetwork.for_target", conv_pairs(target.affine, odd))
        rng = np.random.default_rng([2, as_seed(seed)])

        def draw(shape: tuple[int, ...]) -> np.ndarray:
            return draw_weights(rng, shape, math.prod(shape[1:]), density=density)

        layers: list[Layer] = []
        for k, (layer, n) in enumerate(zip(target.affine, odd, strict=True)):
            layers.extend(target.structure_before(k))
            d_in = layer.in_channels
            if isinstance(layer, Conv):
                layers.append(layer.like(draw((n, d_in, *layer.kernel))))
                layers.append(Conv.build(draw((layer.out_channels, n, *([1] * layer.spatial)))))
            else:
                layers.append(Linear(draw((n, d_in)), np.zeros(n)))
                layers.append(Linear(draw((layer.out_channels, n)), np.zeros(layer.out_channels)))
        return cls(layers, target.input_shape)

    @property
    def depth(self) -> int:
        """``L``: the number of target layers it carries."""
        return len(self._affine) // 2

    @property
    def masks(self) -> tuple[np.ndarray, ...]:
        """Boolean patterns ``weight != 0`` of the affine layers."""
        return tuple(layer.weight != 0 for layer in self._affine)

    def forward(self, x: object, gamma: Sequence[object], beta: Sequence[object]) -> np.ndarray:
        """``g`` on ``x`` (``(batch, *input_shape)`` or flat) with BatchNorm ``(gamma, beta)``, eval-mode formula."""
        return self.run(x, gamma, beta)[0]

    def magnitude(self, x: object, gamma: Sequence[object], beta: Sequence[object]) -> np.ndarray:
        """``g`` with every quantity replaced by its absolute value (a rounding-error scale)."""
        return self.run(x, gamma, beta, magnitude=True)[0]

    def run(
        self, x: object, gamma: Sequence[object], beta: Sequence[object], *, magnitude: bool = False
    ) -> tuple[np.ndarray, float]:
        """``(g(x), m)`` with ``m`` the smallest normalized pre-activation of any odd channel with ``γ != 0``,
        evaluated in batches of `batch` inputs so that no layer's output for all of ``x`` is ever held."""
        gs, bs = self._check_params(gamma, beta)
        z, single = _inputs(x, self._input_shape)
        last = len(self._affine) - 1
        outputs, smallest = [], np.inf
        step = self.batch
        for start in range(0, z.shape[0], step):
            u = np.abs(z[start : start + step]) if magnitude else z[start : start + step]
            for j, layer in enumerate(self._affine):
                if j % 2 == 0:
                    for op in self._structure[j // 2]:
                        u = op(u)
                shape = (-1, *([1] * (layer.weight.ndim - 2)))
                g, b = gs[j].reshape(shape), bs[j].reshape(shape)
                mu, std = self._mean[j].reshape(shape), self._std[j].reshape(shape)
                if magnitude:  # |γ| (|h| + |μ|) / σ + |β|, in place on the fresh layer output
                    u = layer.magnitude(u)
                    u += np.abs(mu)
                    u *= np.abs(g)
                    u /= std
                    u += np.abs(b)
                    continue
                u = layer(u)  # BatchNorm's eval formula γ (h − μ) / σ + β, in place, in torch's order
                u -= mu
                u *= g
                u /= std
                u += b
                if j % 2 == 0:
                    live = gs[j] != 0
                    values = u if live.all() else u[:, live]
                    smallest = min(smallest, float(values.min(initial=np.inf)))
                if j < last:
                    np.maximum(u, 0.0, out=u)
            outputs.append(u)
        out = np.concatenate(outputs)
        return (out[0] if single else out), smallest

    def __repr__(self) -> str:
        return f"ConvFrozenNetwork(input_shape={self._input_shape}, widths={list(self.widths)})"


def odd_widths(width: object, affine: Sequence[AffineLayer]) -> list[int]:
    """``width`` of `ConvFrozenNetwork.for_target` resolved to one odd width per target layer."""
    return layer_widths(width, [(layer.out_channels, layer.flat_weight.shape[1]) for layer in affine])


def conv_pairs(affine: Sequence[AffineLayer], odd: Sequence[int]) -> list[Pair]:
    """The frozen pairs (`verify.core.memory.Pair`) of a convolutional chain: ``fan_in = C_in·prod(kernel)``."""
    pairs = []
    for k, (layer, n) in enumerate(zip(affine, odd, strict=True), start=1):
        d_out, d_in = layer.out_channels, layer.flat_weight.shape[1]
        name = f"block {k} ({layer.name})"
        pairs.append(Pair(name, d_in, n, d_out, paper_width(d_out, d_in), minimal_width(d_out, d_in)))
    return pairs


def is_convolutional(network: object) -> bool:
    """Whether ``network`` is a `ConvTargetNetwork` or `ConvFrozenNetwork`."""
    return isinstance(network, (ConvTargetNetwork, ConvFrozenNetwork))
