"""A network as one graph of numpy nodes (docs/design.md §6.7), the representation the graph bound walks.

A `Graph` is a tuple of `Node`s in topological order, each naming its inputs. The node kinds
(`KINDS`):

* ``input``: the network's input, of ``shape``;
* ``pair``: a target affine layer (a `verify.core.convolution.Conv` or `Linear`) and the frozen
  layers that carry it, ``affine → norm → ReLU → affine → norm`` with the tuned ``(γ, β)``
  (`Pair`);
* ``relu``, ``add``, ``concat`` (along channels), ``maxpool``, ``avgpool``, ``adaptiveavgpool``,
  ``flatten`` and ``reshape``: the parameter-free nodes, their `verify.core.convolution` layer in
  ``op`` (``reshape``: the target shape in ``op``; a ``maxpool``'s op may be any callable on
  batches that takes maxima over windows of its input);
* ``map``: a parameter-free linear map with nonnegative coefficients of one or more inputs
  (selection, slicing, zero padding, reshape, stack/concatenation, mean or average), a `LinearMap`;
* ``stage``: the branches of one stage of a Case-2 residual network added to its stream in place, a
  `verify.core.graph_stage.Stage` (its own transfer, ``op.bound``; `verify.core.graph_stage.residual_graph`
  lowers a tuned `ResidualFrozenNetwork`).

The graph is data only: `verify.core.graph_bound` evaluates it. `conv_graph` lowers a tuned
`ConvTargetNetwork` / `ConvFrozenNetwork` pair into it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from verify.core.conv_blocks import check_conv_architecture, live_inputs
from verify.core.conv_networks import ConvFrozenNetwork, ConvTargetNetwork
from verify.core.convolution import AdaptiveAvgPool, AffineLayer, AvgPool, Conv, Flatten, Layer, MaxPool

__all__ = ["KINDS", "Graph", "LinearMap", "Node", "Norm", "Pair", "conv_graph"]

KINDS = (
    "input",
    "pair",
    "relu",
    "add",
    "concat",
    "maxpool",
    "avgpool",
    "adaptiveavgpool",
    "flatten",
    "reshape",
    "map",
    "stage",
)
"""The node kinds of a `Graph`."""

_STRUCTURE_KIND = {MaxPool: "maxpool", AvgPool: "avgpool", AdaptiveAvgPool: "adaptiveavgpool", Flatten: "flatten"}


@dataclass(frozen=True, eq=False)
class Norm:
    """An eval-mode BatchNorm per channel with stored ``γ``, ``β``, running mean ``μ`` and ``σ = √(v + ε)``
    (and ``v``, ``ε`` themselves when known: the residuals are then enclosed in a wider precision)."""

    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    var: np.ndarray | None = None
    eps: float | None = None

    @property
    def scale(self) -> np.ndarray:
        """``s = γ / σ``."""
        return self.gamma / self.std

    @property
    def shift(self) -> np.ndarray:
        """``t = β − s μ``."""
        return self.beta - self.scale * self.mean


@dataclass(frozen=True, eq=False)
class Pair:
    """A target affine layer and the frozen ``odd → odd_norm → ReLU → even → even_norm`` that carries it.

    ``odd`` acts on the target's input of this layer (the frozen kernel restricted to the channels
    that carry it: the others are switched off, exactly 0); ``even`` keeps the target's output
    channels. ``odd_terms`` / ``even_terms`` are the frozen layers' full fan-ins (terms summed per
    output, the rounding counts); ``switched_off`` the frozen even rows beyond the target's (their
    layer and norm), whose ``γ = β = 0`` make them exactly 0 as long as their pre-normalization
    values stay finite.

    ``mirrored``: the frozen odd rows come in exact mirrored halves (row ``i + n/2`` is row ``i``
    negated in ``B`` and its bias, with the same scale ``s`` and the opposite shift ``t``, and the
    even columns ``i`` and ``i + n/2`` are opposite): then ``ReLU(q) − ReLU(−q) = q`` makes the pair
    linear for every input (docs/design.md §3), with the halves' composition as its map.
    ``target_norm``: the target's eval BatchNorm folded into ``target``, given per output channel as
    ``|s|(|b| + |μ|) + |β|`` (its input's bias and mean, its shift): the target computes the layer
    and then that norm, whose roundings (and those of the fold in float64) are counted in its error.
    """

    target: AffineLayer
    odd: AffineLayer
    odd_norm: Norm
    even: AffineLayer
    even_norm: Norm
    odd_terms: int
    even_terms: int
    switched_off: tuple[AffineLayer, Norm] | None = None
    mirrored: bool = False
    target_norm: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class LinearMap:
    """A parameter-free linear map ``y = f(x_1, …, x_m)`` whose coefficients are all ``≥ 0``.

    ``fn`` takes one tensor per input (no batch axis) and returns one output tensor; it must be linear
    with nonnegative coefficients (selection, slicing, zero padding, reshaping, stacking or
    concatenating, averaging), so that it is monotone: ``[f(lo), f(hi)]`` encloses ``f`` over a box.
    ``terms`` counts the roundings of one output entry in floating point: 0 for a map that only
    selects, copies, pads with zeros or reshapes (exact), ``k + 1`` for a mean of at most ``k``
    entries (``k − 1`` additions and a division, one more for a product by a rounded ``1/k``).
    ``name`` says what it is, for messages.
    """

    fn: Callable[[Sequence[np.ndarray]], np.ndarray]
    terms: int = 0
    name: str = "map"

    def __call__(self, *inputs: np.ndarray) -> np.ndarray:
        """``f`` on one tensor per input."""
        return np.asarray(self.fn(inputs), dtype=np.float64)


@dataclass(frozen=True, eq=False)
class Node:
    """One node: ``name``, ``kind`` (one of `KINDS`), the names of its ``inputs``, its ``op`` (a `Pair`, a
    `verify.core.convolution` layer, a reshape's shape, or None) and the ``shape`` of one output."""

    name: str
    kind: str
    inputs: tuple[str, ...]
    op: object
    shape: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class Graph:
    """Nodes in topological order (every input named before it is used); the last one is the output."""

    nodes: tuple[Node, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for node in self.nodes:
            if node.kind not in KINDS:
                raise ValueError(f"graph node {node.name!r} has kind {node.kind!r}; use one of {KINDS}")
            missing = [name for name in node.inputs if name not in seen]
            if missing:
                raise ValueError(
                    f"graph node {node.name!r} reads {missing}, which no earlier node defines; list nodes in "
                    "topological order"
                )
            if node.name in seen:
                raise ValueError(f"graph has two nodes named {node.name!r}; give each node its own name")
            seen.add(node.name)
        if not self.nodes or self.nodes[0].kind != "input":
            raise ValueError("a graph starts with its input node")

    @property
    def input(self) -> Node:
        """The input node."""
        return self.nodes[0]

    @property
    def output(self) -> Node:
        """The output node (the last)."""
        return self.nodes[-1]

    @property
    def pairs(self) -> tuple[Pair, ...]:
        """The pairs, in order."""
        return tuple(node.op for node in self.nodes if node.kind == "pair")


def conv_graph(
    target: ConvTargetNetwork,
    frozen: ConvFrozenNetwork,
    gamma: Sequence[np.ndarray],
    beta: Sequence[np.ndarray],
) -> Graph:
    """The graph of a convolutional pair with the stored ``(gamma, beta)`` (one array per frozen affine layer).

    ValueError if the architectures do not match (`check_conv_architecture`) or an even layer's channels
    beyond the target's are not switched off (``γ = β = 0``): only then are they exactly 0.
    """
    check_conv_architecture(target, frozen)
    gamma = [np.asarray(g, dtype=np.float64) for g in gamma]
    beta = [np.asarray(b, dtype=np.float64) for b in beta]
    if len(gamma) != len(frozen.affine) or len(beta) != len(frozen.affine):
        raise ValueError(f"gamma and beta need one array per frozen affine layer ({len(frozen.affine)})")
    shape = target.input_shape
    nodes = [Node("input", "input", (), None, shape)]
    d = target.widths

    def norm(j: int, rows: slice) -> Norm:
        return Norm(
            gamma[j][rows],
            beta[j][rows],
            frozen.running_mean[j][rows],
            frozen.norm_std[j][rows],
            frozen.running_var[j][rows],
            frozen.layer_eps[j],
        )

    for k, layer in enumerate(target.affine, start=1):
        for op in target.structure_before(k - 1):
            shape = op.output_shape(shape)
            nodes.append(Node(f"{op.name.lower()}{len(nodes)}", _kind(op), (nodes[-1].name,), op, shape))
        odd, even = frozen.affine[2 * k - 2], frozen.affine[2 * k - 1]
        odd_shape = frozen.layer_shapes()[2 * k - 2]
        if isinstance(odd, Conv):
            restricted: AffineLayer = odd.like(odd.weight[:, : d[k - 1]], odd.bias)
        else:
            restricted = type(odd)(odd.weight[:, live_inputs(frozen, k, d[k - 1])], odd.bias)
        keep = slice(0, d[k])
        extra = None
        if even.out_channels > d[k]:
            off = slice(d[k], None)
            if np.any(gamma[2 * k - 1][off] != 0) or np.any(beta[2 * k - 1][off] != 0):
                raise ValueError(
                    f"block {k}: frozen layer {2 * k} has channels beyond the target's {d[k]} that are not switched "
                    "off (gamma = beta = 0); switch them off"
                )
            extra = (type(even)(even.weight[off], even.bias[off]), norm(2 * k - 1, off))
        pair = Pair(
            target=layer,
            odd=restricted,
            odd_norm=norm(2 * k - 2, slice(None)),
            even=type(even)(even.weight[keep], even.bias[keep])
            if not isinstance(even, Conv)
            else even.like(even.weight[keep], even.bias[keep]),
            even_norm=norm(2 * k - 1, keep),
            odd_terms=odd.terms(odd_shape),
            even_terms=even.terms(odd.output_shape(odd_shape)),
            switched_off=extra,
        )
        shape = layer.output_shape(shape)
        nodes.append(Node(f"pair{k}", "pair", (nodes[-1].name,), pair, shape))
        if k < target.depth:
            nodes.append(Node(f"relu{k}", "relu", (nodes[-1].name,), None, shape))
    return Graph(tuple(nodes))


def _kind(op: Layer) -> str:
    return _STRUCTURE_KIND[type(op)]
