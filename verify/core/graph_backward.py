"""Backward (CROWN) bounds of a graph node's entries, back-substituted to the input (docs/design.md §6.10).

`verify.core.linear_bounds` back-substitutes through a dense chain; a graph's nodes have several
inputs and consumers. Here every linear node (a pair's target layer, an addition, a concatenation, a
pool, a map, a flatten or reshape) is materialized once as one matrix per input, ``z_k = Σ_i M_i z_i
+ c`` (its operation on the unit vectors, in float64), and a bound ``Λ z_j`` of node ``j``'s entries
is substituted in reverse topological order: a node's coefficient ``Λ_k`` is complete once every
consumer has added its share, then

* a linear node adds ``Λ_k M_i`` to each input and ``Λ_k c`` to the constant;
* a ReLU on the range ``[l, h]`` of its input takes, per coefficient sign, the lower line ``α z``
  (``α ∈ {0, 1}`` adaptive) or the chord ``λ z + μ`` (`verify.core.linear_bounds`' relaxation);
* a max pool (or a node too large to materialize, `MATRIX_ENTRIES`) is concretized on its own range;
* the input is concretized over the domain exactly (`verify.core.linear_bounds`' concretization).

Rounding, as in `verify.core.linear_bounds`: a product ``Λ_k M_i`` of inner dimension ``n_k`` is within
``γ_{n_k + t} |Λ_k| |M_i| |z_i|max`` over the domain, where ``t`` also covers the materialized matrix's
own rounding (``M̂`` within ``γ_t |M̂|`` of the exact map: ``t`` is the node's roundings per entry,
``k + 1`` for a layer of fan-in ``k``, a mean's count, 0 for a selection); a sum of two consumers'
shares ``u`` of both; a ReLU's ``S = Λ ⊙ slope`` ``2u |S| |h|max``; the constants one sum bounded with
``γ_{N+1}`` of their magnitudes. The allowances are doubled and the bound moved one float down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from verify.core.graph import Graph, Node
from verify.core.linear_bounds import _ETA, _U, _UP, _concretize, _gamma

__all__ = ["BUDGET", "MATRIX_ENTRIES", "Backward", "relaxation"]

BUDGET = 2e9
"""Largest back-substitution (multiply-adds over both sides) one node's range computes; beyond, forward only."""
MATRIX_ENTRIES = 2**22
"""The most entries a node's materialized matrix may hold (32 MiB); a larger node is a leaf, boxed."""
_ROWS = 2**20
"""Entries of one chunk of query rows (rows × widest node)."""


@dataclass(frozen=True, eq=False)
class _Linear:
    """A materialized linear node: one matrix per input, the constant, the roundings per entry ``t``."""

    matrices: tuple[np.ndarray, ...]
    constant: np.ndarray
    terms: int


def relaxation(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ReLU relaxation on ``[low, high]`` per entry (`verify.core.linear_bounds`' module notes): the lower
    slope ``α`` (1 or 0, adaptive; the exact slope on a stable entry), the chord's slope ``λ`` and its
    intercept ``μ >= max(−λ l, (1 − λ) h)`` raised by ``1 + 2^-48`` and ``2^-1070`` (0 on a stable entry)."""
    unstable = (low < 0) & (high > 0)
    with np.errstate(over="ignore", invalid="ignore", under="ignore", divide="ignore"):
        lower_slope = np.where(unstable, (high >= -low).astype(float), (low >= 0).astype(float))
        chord = np.where(unstable, high / np.where(unstable, high - low, 1.0), lower_slope)
        intercept = np.where(unstable, np.maximum(-chord * low, (1.0 - chord) * high) * _UP + 2.0**-1070, 0.0)
    return lower_slope, chord, intercept


class Backward:
    """The graph's materialized nodes and the back-substitution of a node's entries (module notes).

    ``ranges`` holds, per node already bounded, its range ``(lo, hi)`` (flat); `bound` reads those of the
    node's ancestors (the ReLUs' relaxations, the leaves' boxes, the magnitudes ``|z|max``)."""

    def __init__(self, graph: Graph, domain: object, linear_maps: dict) -> None:
        self.graph, self.domain = graph, domain
        self.nodes = {node.name: node for node in graph.nodes}
        self.order = {node.name: i for i, node in enumerate(graph.nodes)}
        self.sizes = {node.name: math.prod(node.shape) for node in graph.nodes}
        self.maps: dict[str, _Linear | None] = {}
        self.linear_maps = linear_maps  # name -> (fn on one row matrix per input, terms), from graph_ranges
        self.ranges: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _materialize(self, node: Node) -> _Linear | None:
        """The node's matrices (None for a leaf: a max pool, or beyond `MATRIX_ENTRIES`)."""
        if node.name in self.maps:
            return self.maps[node.name]
        found = None
        if node.name in self.linear_maps:
            batch, terms, constant = self.linear_maps[node.name]
            n = self.sizes[node.name]
            if all(n * self.sizes[i] <= MATRIX_ENTRIES for i in node.inputs):
                matrices = []
                for position, name in enumerate(node.inputs):  # the images of the unit vectors: the rows of Mᵀ
                    units = [
                        np.eye(self.sizes[i]) if j == position else np.zeros((self.sizes[name], self.sizes[i]))
                        for j, i in enumerate(node.inputs)
                    ]
                    matrices.append(np.ascontiguousarray(batch(*units).T))
                found = _Linear(tuple(matrices), constant, terms)
        self.maps[node.name] = found
        return found

    def cost(self, node: Node) -> float:
        """Multiply-adds of bounding every entry of ``node`` (both sides); ``inf`` if a leaf blocks it entirely."""
        rows = 2 * self.sizes[node.name]
        total, seen, stack = 0.0, set(), [node.name]
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            current = self.nodes[name]
            if current.kind in ("input", "maxpool"):
                continue
            if current.kind == "relu":
                total += rows * self.sizes[name]
            elif current.name in self.linear_maps:
                total += rows * self.sizes[name] * sum(self.sizes[i] for i in current.inputs)
            stack.extend(current.inputs)
        return total + rows * self.sizes[self.graph.input.name]

    def _z_max(self, name: str) -> np.ndarray:
        lo, hi = self.ranges[name]
        return np.maximum(np.abs(lo), np.abs(hi))

    def lower(self, node: Node, coeffs: np.ndarray) -> np.ndarray:
        """A sound lower bound, per row, of ``coeffs @ z_node`` over the domain; ``-inf`` where it overflows."""
        lams: dict[str, np.ndarray] = {node.name: coeffs}
        rows = coeffs.shape[0]
        nu, magnitude, allowance = np.zeros(rows), np.zeros(rows), np.zeros(rows)
        terms = 1
        final = np.zeros((rows, self.sizes[self.graph.input.name]))
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):

            def add(name: str, share: np.ndarray) -> None:
                nonlocal allowance
                if name in lams:
                    allowance = allowance + _U * ((np.abs(lams[name]) + np.abs(share)) @ self._z_max(name))
                    lams[name] = lams[name] + share
                else:
                    lams[name] = share

            for current in sorted((self.nodes[n] for n in self.order), key=lambda n: -self.order[n.name]):
                if current.name not in lams:
                    continue
                lam = lams.pop(current.name)
                name = current.name
                if current.kind == "input":
                    final = lam
                    continue
                linear = None if current.kind in ("relu", "maxpool") else self._materialize(current)
                if current.kind == "relu":
                    low, high = self.ranges[current.inputs[0]]
                    lower_slope, chord, intercept = relaxation(low, high)
                    slope = np.where(lam >= 0, lam * lower_slope, lam * chord)
                    negative = np.minimum(lam, 0.0)
                    h_max = np.maximum(np.abs(low), np.abs(high))
                    allowance = allowance + 2 * _U * (np.abs(slope) @ h_max) + _ETA * (float(np.sum(h_max)) + 1.0)
                    nu = nu + negative @ intercept
                    magnitude = magnitude + np.abs(negative) @ intercept
                    terms += self.sizes[name]
                    add(current.inputs[0], slope)
                elif linear is None:  # a leaf: concretized on its own range
                    low, high = self.ranges[name]
                    value = np.sum(np.minimum(lam * low, lam * high), axis=1)
                    z_max = self._z_max(name)
                    allowance = allowance + _gamma(self.sizes[name] + 2) * (np.abs(lam) @ z_max)
                    allowance = allowance + (self.sizes[name] + 2) * _ETA * (float(np.sum(z_max)) + 1.0)
                    nu = nu + value
                    magnitude = magnitude + np.abs(value)
                    terms += 1
                else:
                    n_k = self.sizes[name]
                    lam_abs = np.abs(lam)
                    for i, matrix in zip(current.inputs, linear.matrices, strict=True):
                        z_max = self._z_max(i)
                        allowance = allowance + _gamma(n_k + linear.terms + 1) * (lam_abs @ (np.abs(matrix) @ z_max))
                        allowance = allowance + (n_k + linear.terms + 1) * _ETA * (float(np.sum(z_max)) + 1.0)
                        add(i, lam @ matrix)
                    nu = nu + lam @ linear.constant
                    magnitude = magnitude + lam_abs @ np.abs(linear.constant)
                    allowance = allowance + _gamma(linear.terms) * (lam_abs @ np.abs(linear.constant))
                    terms += n_k
            value, concretized = _concretize(self.domain, final, nu)
            total = 2.0 * (allowance + concretized + _gamma(terms + 1) * magnitude)
            bound = np.nextafter(value - total, -np.inf)
        return np.where(np.isnan(bound), -np.inf, bound)

    def bound(self, node: Node) -> tuple[np.ndarray, np.ndarray] | None:
        """The range ``(lo, hi)`` (flat) of every entry of ``node``, or None beyond `BUDGET`."""
        if self.cost(node) > BUDGET:
            return None
        n = self.sizes[node.name]
        widest = max(self.sizes.values())
        step = max(1, _ROWS // widest)
        lo, hi = np.empty(n), np.empty(n)
        for first in range(0, n, step):
            rows = slice(first, min(first + step, n))
            eye = np.eye(n)[rows]
            both = self.lower(node, np.concatenate([eye, -eye]))
            count = rows.stop - rows.start
            lo[rows], hi[rows] = both[:count], -both[count:]
        return lo, hi
