"""Forward linear bounds of every target node of a `verify.core.graph.Graph`: its tighter ranges (docs/design.md §6.10).

Interval ranges box every node and lose the correlation between its entries; at random
initialization they grow looser with depth. Here every node's exact target value ``z(x)`` carries
two linear functions of the input, in forward mode (auto_LiRPA's ``bound_forward``):

    ``L x + l − e_lo <= z(x) <= U x + u + e_hi``  for every ``x`` of the domain,

stored as one matrix per side, ``(d + 1, entries)`` (one tensor of coefficients per input, a batch; the last
row the constant), with the
allowances ``e ≥ 0`` that bound what float64 did to them. Each node maps its inputs' functions with
its own operation, the coefficient tensors treated as a batch:

* **pair** (the target's affine layer ``W ⋆ z + c``): ``W⁺ L + W⁻ U`` below and ``W⁺ U + W⁻ L``
  above, computed as ``(W ⋆ (L + U) ∓ |W| ⋆ (U − L)) / 2`` (two convolutions, not four); the
  allowances go through ``W⁺ e_lo + |W⁻| e_hi`` (and the mirror). With reflect or circular padding an
  input entry read twice by one window only makes ``W⁺``'s matrix larger: the two sides stay bounds.
* **relu** on the range ``[l, h]`` of its input: stable entries pass (``l ≥ 0``) or are 0
  (``h ≤ 0``); an unstable one takes the chord ``λ z + μ`` above (``λ = h/(h − l)``,
  ``μ ≥ max(−λ l, (1 − λ) h)`` computed up, as `verify.core.linear_bounds`) and ``α z`` below with
  ``α = 1`` if ``h ≥ −l`` else ``0`` (CROWN's adaptive choice).
* **add**, **concat**, **flatten**, **reshape**, **avgpool**, **adaptiveavgpool** and **map**: linear
  with coefficients ``≥ 0``, so each side maps through the operation itself.
* **maxpool**: its interval range, as constant functions.

Every node's range is then the functions' minimum and maximum over the domain (a box's
``Σ min(L_i lo_i, L_i hi_i)``, a ball's ``L c − r ‖L‖₂``: `verify.core.linear_bounds`' concretization),
intersected with the interval step from its inputs' (intersected) ranges. A node whose matrix would
exceed `ENTRIES` keeps its interval range and constant functions (it is named in ``fallback``).

**Outward rounding** (Higham's ``γ_n``, unit roundoff ``u = 2^-53``, ``η = 2^-1074`` per operation
for underflow). The stored coefficients are whatever float64 gave; what they differ from the exact
map of the previous floats is charged to ``e`` over the domain, through the magnitudes
``m = |A| |x|max`` (``|x|max`` per input, 1 for the constant column):

* an affine layer of ``k`` terms per output: every coefficient within ``γ_{k+5} |W| ⋆ (|L| + |U|)``
  (the sum and difference, the two convolutions, the halving, the bias): ``γ_{k+5} (|W| ⋆ (m_L + m_U)
  + |c|)`` and ``(k + 5) η (Σ |x|max + 1)``;
* the chord: ``fl(λ U)`` is within ``u λ |U|``, the constant ``fl(λ u + μ)`` within ``γ_2 (λ |u| + μ)``;
* an addition ``u (m_1 + m_2)``; a mean of ``terms`` roundings ``γ_terms f(m)``; selections none.

Every allowance is inflated by ``1 + 4 γ_{k + 8}`` for its own evaluation. A range is the
concretized value less (more) twice the allowances, moved one float outwards (``nextafter``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from verify.core.convolution import AffineLayer, Conv
from verify.core.domains import Ball, Box, Domain
from verify.core.graph import Graph, Node
from verify.core.graph_backward import Backward, relaxation
from verify.core.linear_bounds import _ETA, _U, RangeWidths, _concretize, _gamma

__all__ = ["ENTRIES", "GraphRanges", "graph_ranges"]

ENTRIES = 2**26
"""The most entries (node entries × (inputs + 1)) one side's matrix may hold (512 MiB): beyond, intervals."""
_CHUNK = 256
"""Coefficient tensors mapped by one call of a node's operation."""
_ENTRY_CHUNK = 512
"""Entries concretized at once."""


def _inflate(terms: int) -> float:
    """The factor that covers the evaluation of a nonnegative sum of ``terms`` float64 terms (and more)."""
    return 1.0 + 4.0 * _gamma(terms + 8)


@dataclass(eq=False)
class _Side:
    """One node's linear bounds: ``lo`` / ``hi`` matrices ``(d + 1, entries)`` and their allowances."""

    lo: np.ndarray
    hi: np.ndarray
    e_lo: np.ndarray
    e_hi: np.ndarray


def _rows(fn: Callable[[np.ndarray], np.ndarray], a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``fn`` (a batch of tensors of ``shape`` in, a batch out) on every row of ``a`` (one flat tensor each), in
    chunks; one flat output per row."""
    out = None
    for i in range(0, a.shape[0], _CHUNK):
        part = fn(a[i : i + _CHUNK].reshape(-1, *shape))
        if out is None:
            out = np.empty((a.shape[0], part[0].size))
        out[i : i + _CHUNK] = part.reshape(part.shape[0], -1)
    return out if out is not None else np.zeros((0, 0))


@dataclass(eq=False)
class GraphRanges:
    """Sound ranges of every node's exact target value over a domain (module notes).

    Attributes
    ----------
    lo, hi : dict of ndarray
        Per node name, shaped like the node's output: linear bounds ∩ interval bounds.
    interval_lo, interval_hi : dict of ndarray
        The interval bounds alone (every node boxed from its inputs' boxes), for comparison.
    seconds : float
        Wall time of the computation.
    fallback : tuple of str
        Nodes whose linear bounds were beyond `ENTRIES` (or a max pool's): their interval step only.
    """

    lo: dict = field(default_factory=dict)
    hi: dict = field(default_factory=dict)
    interval_lo: dict = field(default_factory=dict)
    interval_hi: dict = field(default_factory=dict)
    seconds: float = 0.0
    fallback: tuple = ()
    _signature: tuple = ()
    _domain: tuple = ()

    def check(self, graph: Graph, domain: Domain) -> None:
        """ValueError unless these ranges were computed for this graph's target (same nodes, kinds, shapes and
        target layers) over this domain: a bound may only use ranges proved for what it bounds."""
        if _signature(graph) != self._signature or not _same_domain(_domain_key(graph, domain), self._domain):
            raise ValueError(
                "these graph ranges were computed for another graph or domain; compute them with "
                "graph_ranges(graph, domain) for the graph being bounded"
            )

    def widths(self) -> tuple[RangeWidths, ...]:
        """Per node (input excluded): the widest interval width, the widest width once intersected with the
        linear bounds, and the median ratio of the two over the node's entries."""
        report = []
        for name in list(self.lo)[1:]:
            interval = (self.interval_hi[name] - self.interval_lo[name]).ravel()
            linear = (self.hi[name] - self.lo[name]).ravel()
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                ratio = np.where(linear > 0, interval / np.where(linear > 0, linear, 1.0), 1.0)
            report.append(RangeWidths(name, float(np.max(interval)), float(np.max(linear)), float(np.median(ratio))))
        return tuple(report)


def _signature(graph: Graph) -> tuple:
    """What the ranges depend on: every node's name, kind, inputs and shape, a pair's target layer (its arrays'
    bytes and geometry), a map's name and rounding count."""
    items = []
    for node in graph.nodes:
        extra: tuple = ()
        if node.kind == "pair":
            layer = node.op.target
            geometry = (
                (layer.stride, layer.padding, layer.dilation, layer.padding_mode) if isinstance(layer, Conv) else ()
            )
            extra = (type(layer).__name__, layer.weight.shape, layer.weight.tobytes(), layer.bias.tobytes(), geometry)
        elif node.kind == "map":
            extra = (node.op.name, node.op.terms)
        elif node.kind in ("avgpool", "adaptiveavgpool", "maxpool"):
            extra = (type(node.op).__name__, repr(node.op) if node.kind != "maxpool" else "")
        items.append((node.name, node.kind, node.inputs, node.shape, extra))
    return tuple(items)


def _domain_key(graph: Graph, domain: Domain) -> tuple:
    resolved = domain.resolve(math.prod(graph.input.shape))
    if isinstance(resolved, Ball):
        return ("ball", np.asarray(resolved.center, dtype=np.float64), float(resolved.radius))
    return ("box", *(np.asarray(v, dtype=np.float64) for v in resolved.bounding_box()))


def _same_domain(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and a[0] == b[0] and all(np.array_equal(x, y) for x, y in zip(a[1:], b[1:], strict=True))


class _Ranges:
    """The forward pass: functions, allowances and ranges per node."""

    def __init__(self, graph: Graph, domain: Domain) -> None:
        self.graph, self.domain = graph, domain.resolve(math.prod(graph.input.shape))
        lo, hi = self.domain.bounding_box()
        self.box = (np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64))
        self.d = self.box[0].size
        x_max = np.maximum(np.abs(self.box[0]), np.abs(self.box[1]))
        if isinstance(self.domain, Ball):
            x_max = np.abs(np.asarray(self.domain.center, dtype=np.float64)) + self.domain.radius
        self.x_ext = np.append(x_max, 1.0)  # |x|max per input, 1 for the constant column
        self.x_sum = float(np.sum(x_max)) + 1.0
        self.result = GraphRanges(_signature=_signature(graph), _domain=_domain_key(graph, domain))
        self.sides: dict[str, _Side | None] = {}
        self.fallback: list[str] = []

    def magnitude(self, a: np.ndarray) -> np.ndarray:
        """``[|x|max; 1] |A|`` per entry, rounded up."""
        out = np.empty(a.shape[1])
        for i in range(0, a.shape[1], _ENTRY_CHUNK):  # in chunks: |A| is as large as A
            out[i : i + _ENTRY_CHUNK] = self.x_ext @ np.abs(a[:, i : i + _ENTRY_CHUNK])
        return out * _inflate(self.d + 1)

    def fits(self, node: Node) -> bool:
        return math.prod(node.shape) * (self.d + 1) <= ENTRIES

    def concretize(self, side: _Side, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """The side's range over the domain, rounded outwards (module notes)."""
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            parts = [
                (
                    _concretize(self.domain, side.lo[:-1, c].T, side.lo[-1, c]),
                    _concretize(self.domain, -side.hi[:-1, c].T, -side.hi[-1, c]),
                )
                for c in (slice(i, i + _ENTRY_CHUNK) for i in range(0, side.lo.shape[1], _ENTRY_CHUNK))
            ]  # in chunks of entries: the concretization's temporaries are as large as the matrix
            value_lo, reach_lo = (np.concatenate([low[j] for low, _ in parts]) for j in (0, 1))
            value_hi, reach_hi = (np.concatenate([high[j] for _, high in parts]) for j in (0, 1))
            lo = np.nextafter(value_lo - 2.0 * (reach_lo + side.e_lo), -np.inf)
            hi = -np.nextafter(value_hi - 2.0 * (reach_hi + side.e_hi), -np.inf)
        return np.where(np.isnan(lo), -np.inf, lo).reshape(shape), np.where(np.isnan(hi), np.inf, hi).reshape(shape)


def _interval_affine(layer: AffineLayer, lo: np.ndarray, hi: np.ndarray, shape: tuple) -> tuple:
    """Sound box of ``W ⋆ z + c`` over ``[lo, hi]``: the exact range (`AffineLayer.range`) less / more
    ``2 γ_{k+6}`` of its magnitude."""
    image = layer.range(lo, hi, layer.weight, layer.bias)
    reach = 2 * _gamma(layer.flat_weight.shape[1] + 6) * image.size * _inflate(layer.flat_weight.shape[1])
    return (image.mid - image.rad - reach).reshape(shape), (image.mid + image.rad + reach).reshape(shape)


def _interval_linear(fn: Callable, los: list, his: list, terms: int) -> tuple:
    """Sound box of a linear map with coefficients ``>= 0`` (``fn`` on one tensor per input) of boxes."""
    lo, hi = fn(*los), fn(*his)
    if terms == 0:
        return lo, hi
    size = fn(*(np.maximum(np.abs(a), np.abs(b)) for a, b in zip(los, his, strict=True)))
    reach = 2 * _gamma(terms + 2) * size * _inflate(terms)
    return lo - reach, hi + reach


def _node_fn(node: Node) -> tuple[Callable, int]:
    """A parameter-free linear node as ``fn`` on one tensor per input, and its roundings per entry."""
    if node.kind in ("avgpool", "adaptiveavgpool"):
        return (lambda x, op=node.op: op(x[None])[0]), 0  # terms set by the caller (they need the input shape)
    if node.kind == "map":
        return (lambda *xs, op=node.op: op(*xs)), node.op.terms
    if node.kind == "add":
        return (lambda a, b: a + b), 1
    if node.kind == "concat":
        return (lambda *xs: np.concatenate(xs)), 0
    return (lambda x, shape=node.shape: x.reshape(shape)), 0  # flatten, reshape


def _pair_side(walk: _Ranges, layer: AffineLayer, side: _Side, in_shape: tuple, out_shape: tuple) -> _Side:
    """The affine layer's map of both sides (module notes)."""
    k = layer.flat_weight.shape[1]
    w, w_abs = layer.weight, np.abs(layer.weight)
    n_out = math.prod(out_shape)
    lo, hi = np.empty((walk.d + 1, n_out)), np.empty((walk.d + 1, n_out))
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        for i in range(0, walk.d + 1, _CHUNK):
            rows = slice(i, min(i + _CHUNK, walk.d + 1))
            total, spread = side.lo[rows] + side.hi[rows], side.hi[rows] - side.lo[rows]
            p = layer.linear(total.reshape(-1, *in_shape), w).reshape(total.shape[0], -1)
            q = layer.linear(spread.reshape(-1, *in_shape), w_abs).reshape(total.shape[0], -1)
            lo[rows], hi[rows] = (p - q) / 2, (p + q) / 2
        bias = np.repeat(layer.bias, n_out // layer.out_channels)
        lo[-1] += bias
        hi[-1] += bias

        def through(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
            return layer.linear(x.reshape(1, *in_shape), weight).ravel()

        w_pos, w_neg = np.maximum(w, 0.0), np.maximum(-w, 0.0)
        rounding = _gamma(k + 5) * (through(walk.magnitude(side.lo) + walk.magnitude(side.hi), w_abs) + np.abs(bias))
        rounding = rounding + (k + 5) * _ETA * walk.x_sum
        inflate = _inflate(k)
        e_lo = (through(side.e_lo, w_pos) + through(side.e_hi, w_neg) + rounding) * inflate
        e_hi = (through(side.e_hi, w_pos) + through(side.e_lo, w_neg) + rounding) * inflate
    return _Side(lo, hi, e_lo, e_hi)


def _relu_side(walk: _Ranges, side: _Side, low: np.ndarray, high: np.ndarray) -> _Side:
    """The ReLU's relaxation on the input range ``[low, high]`` (module notes)."""
    low, high = low.ravel(), high.ravel()
    unstable = (low < 0) & (high > 0)
    lower_slope, chord, intercept = relaxation(low, high)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        lo = side.lo * lower_slope  # a slope of 0 or 1: exact
        hi = side.hi * chord
        hi[-1] += intercept
        m_hi = walk.magnitude(side.hi)
        rounding = np.where(
            unstable,
            _U * chord * m_hi + _gamma(2) * (chord * np.abs(side.hi[-1]) + intercept) + 3 * _ETA * walk.x_sum,
            0.0,
        )
        e_lo = side.e_lo * lower_slope
        e_hi = (side.e_hi * chord + rounding) * _inflate(4)
    return _Side(lo, hi, e_lo, e_hi)


def _linear_side(walk: _Ranges, batch: Callable, sides: list[_Side], terms: int) -> _Side:
    """A linear node with coefficients ``>= 0``: ``batch`` maps one matrix per input (a batch of flat tensors) to
    the output's; both sides map through it, the allowances too, a mean's roundings on the magnitudes."""
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        lo, hi = batch(*(s.lo for s in sides)), batch(*(s.hi for s in sides))
        allowances = []
        for name, part in (("e_lo", "lo"), ("e_hi", "hi")):
            carried = batch(*(getattr(s, name)[None] for s in sides))[0]
            if terms:
                magnitudes = batch(*(walk.magnitude(getattr(s, part))[None] for s in sides))[0]
                carried = carried + _gamma(terms) * magnitudes + terms * _ETA * walk.x_sum
            allowances.append(carried * _inflate(terms))
    return _Side(lo, hi, *allowances)


def _batch_fn(node: Node, shapes: dict) -> Callable:
    """The node's map of matrices ``(batch, entries)`` (one flat tensor per row), one per input (module notes)."""
    if node.kind == "pair":
        layer, shape = node.op.target, shapes[node.inputs[0]]
        return lambda x: _rows(lambda batch: layer.linear(batch, layer.weight), x, shape)
    if node.kind == "add":
        return lambda a, b: a + b
    if node.kind == "concat":
        return lambda *xs: np.hstack(xs)
    if node.kind in ("flatten", "reshape"):
        return lambda x: x
    in_shapes = [shapes[name] for name in node.inputs]
    if node.kind in ("avgpool", "adaptiveavgpool"):
        return lambda x, op=node.op, shape=in_shapes[0]: _rows(op, x, shape)

    def rows(*xs: np.ndarray) -> np.ndarray:  # a map runs on one tensor per input: row by row
        out = [
            np.ravel(node.op(*(x[i].reshape(shape) for x, shape in zip(xs, in_shapes, strict=True))))
            for i in range(xs[0].shape[0])
        ]
        return np.stack(out)

    return rows


def graph_ranges(graph: Graph, domain: Domain) -> GraphRanges:
    """The ranges of every node of ``graph``'s target over ``domain`` (a `verify.Box` or `verify.Ball` over the
    graph's input): forward linear bounds intersected with interval bounds (module notes).

    ValueError for another domain, or a graph with a ``stage`` node (a Case-2 stage has its own transfer)."""
    if not isinstance(graph, Graph):
        raise ValueError(f"graph must be a verify.core.graph.Graph, got {type(graph).__name__}")
    if not isinstance(domain, (Ball, Box)):
        raise ValueError(f"graph ranges need a verify.Ball or verify.Box domain, got {type(domain).__name__}")
    if any(node.kind == "stage" for node in graph.nodes):
        raise ValueError("graph ranges do not cover stage nodes (a Case-2 residual stage); bound that graph without")
    start = time.perf_counter()
    walk = _Ranges(graph, domain)
    result = walk.result
    shapes = {node.name: node.shape for node in graph.nodes}
    backward = Backward(graph, walk.domain, _linear_maps(graph, shapes))
    for node in graph.nodes:
        ins = list(node.inputs)
        los, his = [result.lo[n] for n in ins], [result.hi[n] for n in ins]
        ilos, ihis = [result.interval_lo[n] for n in ins], [result.interval_hi[n] for n in ins]
        sides = [walk.sides.get(n) for n in ins]
        linear = all(s is not None for s in sides) and walk.fits(node)
        side: _Side | None = None
        if node.kind == "input":
            lo, hi = (v.reshape(node.shape) for v in walk.box)
            ilo, ihi = lo, hi
            if walk.fits(node):
                eye = np.vstack([np.eye(walk.d), np.zeros((1, walk.d))])
                zero = np.zeros(walk.d)
                side = _Side(eye, eye.copy(), zero, zero.copy())
        elif node.kind == "pair":
            layer = node.op.target
            lo, hi = _interval_affine(layer, los[0], his[0], node.shape)
            ilo, ihi = _interval_affine(layer, ilos[0], ihis[0], node.shape)
            if linear:
                side = _pair_side(walk, layer, sides[0], shapes[ins[0]], node.shape)
        elif node.kind == "relu":
            lo, hi = np.maximum(los[0], 0.0), np.maximum(his[0], 0.0)
            ilo, ihi = np.maximum(ilos[0], 0.0), np.maximum(ihis[0], 0.0)
            if linear:
                side = _relu_side(walk, sides[0], los[0], his[0])
        elif node.kind == "maxpool":  # max is monotone and exact: the interval range, constant functions
            lo, hi = node.op(los[0][None])[0], node.op(his[0][None])[0]
            ilo, ihi = node.op(ilos[0][None])[0], node.op(ihis[0][None])[0]
        else:
            fn, terms = _node_fn(node)
            if node.kind in ("avgpool", "adaptiveavgpool"):
                terms = node.op.terms(shapes[ins[0]])
            lo, hi = _interval_linear(fn, los, his, terms)
            ilo, ihi = _interval_linear(fn, ilos, ihis, terms)
            if linear:
                side = _linear_side(walk, _batch_fn(node, shapes), sides, terms)
        if side is not None:
            lin_lo, lin_hi = walk.concretize(side, node.shape)
            lo, hi = np.maximum(lo, lin_lo), np.minimum(hi, lin_hi)
        back = backward.bound(node) if node.kind in _BACKWARD else None
        if back is not None:
            lo, hi = np.maximum(lo, back[0].reshape(node.shape)), np.minimum(hi, back[1].reshape(node.shape))
        lo, hi = np.maximum(lo, ilo), np.minimum(hi, ihi)  # the steps from narrower boxes can differ by an ulp
        if side is None and back is None and node.kind != "input":
            walk.fallback.append(node.name)
        backward.ranges[node.name] = (lo.ravel(), hi.ravel())
        result.lo[node.name], result.hi[node.name] = lo, hi
        result.interval_lo[node.name], result.interval_hi[node.name] = ilo, ihi
        walk.sides[node.name] = side
        _release(graph, node, walk.sides)
    result.fallback = tuple(walk.fallback)
    result.seconds = time.perf_counter() - start
    return result


_BACKWARD = ("pair", "add", "concat", "map", "avgpool", "adaptiveavgpool")
"""The node kinds bounded by back-substitution too (a ReLU, flatten or reshape has its input's range mapped)."""


def _linear_maps(graph: Graph, shapes: dict) -> dict:
    """Per linear node: its map of row matrices, its roundings per entry ``t`` and its constant (flat)."""
    maps = {}
    for node in graph.nodes:
        if node.kind in ("input", "relu", "maxpool", "stage"):
            continue
        terms = 0
        constant = np.zeros(math.prod(node.shape))
        if node.kind == "pair":
            layer = node.op.target
            terms = layer.flat_weight.shape[1] + 1
            constant = np.repeat(layer.bias, constant.size // layer.out_channels)
        elif node.kind in ("avgpool", "adaptiveavgpool"):
            terms = node.op.terms(shapes[node.inputs[0]])
        elif node.kind == "map":
            terms = node.op.terms
        maps[node.name] = (_batch_fn(node, shapes), terms, constant)
    return maps


def _release(graph: Graph, node: Node, sides: dict) -> None:
    """Drop the functions of nodes no later node reads (memory)."""
    position = graph.nodes.index(node)
    later = {name for n in graph.nodes[position + 1 :] for name in n.inputs}
    for name in list(sides):
        if name not in later and sides[name] is not None:
            sides[name] = None
