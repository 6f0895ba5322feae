"""Errors as affine forms (zonotopes): ``ẑ − z = G ξ + ρ``, ``ξ ∈ [−1, 1]^m``, ``|ρ| <= R 1`` (docs/design.md §6.5).

An error that a linear map carries keeps its sign: after ``ẑ ↦ M ẑ`` it is ``(M G) ξ + M ρ``, so its
bound is ``|M G| 1 + |M| R 1``, where the magnitude vector of the older analysis has ``|M| |G| 1``:
the sums of signed terms see their cancellation. Every error whose sign is not known (a rounding of
this operation, a residual bounded by its size) is a fresh generator ``ξ_j`` of its own: one
column, zero except on its row (or a column of the map that carries it, e.g. the odd layer's
rounding of neuron ``i`` through the even layer's column ``A[:, i]``).

Each generator and each remainder column carries a *source* (`SOURCES`: the input's cast, the odd
and even layers' roundings, the residual, the margins, the target's rounding, the bound's own float64
arithmetic), so ``terms(row)`` splits a bound into what it is made of.

Soundness of the operations (each holds for every ``ξ`` and every remainder within its bound):

* ``transform(M)``: ``G ← fl(M G)``, ``R ← |M| R`` plus the product's float64 rounding,
  ``γ^{64}_n |M| |G| 1`` with ``n`` the inner dimension (Higham: each entry of ``fl(M G)`` errs by at
  most ``γ_n (|M| |G|)_{ik}``), into the remainder.
* ``relu(active, dead)``: the difference of a ReLU at the computed and at the exact value is
  ``λ e`` for some ``λ ∈ [0, 1]`` (ReLU is monotone and 1-Lipschitz). An *active* row (both values
  ``>= 0`` on the whole domain) has ``λ = 1``: it passes. A *dead* row (both ``<= 0``) is 0. Any other
  row is ``e/2 + (λ − 1/2) e`` with ``|(λ − 1/2) e| <= |e|/2``: half its generators are kept and half its
  bound joins the remainder (the zonotope relaxation of ``λ``).
* ``capped(n)``: ``|Σ_{j ∈ S} G_ij ξ_j| <= Σ_{j ∈ S} |G_ij|``, so the columns of any set ``S`` can be
  merged into the remainder; the smallest by ``ℓ1`` norm are, until at most ``n`` are left.
* With ``signs=False`` every map is taken in absolute value (``|M| |G|``): the older magnitude
  analysis, kept where a bound must stay a sum of non-negative terms (on ``R^d``, where it is read as
  ``a + b R``).

``bound()`` is ``(|G| 1 + R 1)`` rounded up by ``inflate`` (the caller's allowance for float64 sums of
non-negative terms).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

__all__ = ["SOURCES", "AffineErrors"]

SOURCES = (
    "input cast",
    "odd rounding",
    "even rounding",
    "residual",
    "margins",
    "target rounding",
    "float64",
    "graph node",
)
"""What a generator or remainder stands for (`AffineErrors.terms`)."""
_F64 = SOURCES.index("float64")
_U64 = 2.0**-53
_NEXT = [0]
_LOCK = threading.Lock()
"""Generator identities: two forms that share a generator (the same ``ξ_j``) add it by identity (`plus`)."""


def _new_ids(count: int) -> np.ndarray:
    with _LOCK:
        start = _NEXT[0]
        _NEXT[0] += count
    return np.arange(start, start + count, dtype=np.int64)


def _gamma64(m: int) -> float:
    return m * _U64 / (1.0 - m * _U64)


class AffineErrors:
    """``ẑ − z = G ξ + ρ`` per row: generators ``g`` (rows × m), their sources ``labels`` (m), and the
    remainder ``rest`` (rows × len(SOURCES), non-negative: ``|ρ| <= rest 1``) (module notes)."""

    def __init__(
        self,
        generators: np.ndarray,
        inflate: float,
        labels: np.ndarray | None = None,
        rest: np.ndarray | None = None,
        signs: bool = True,
        ids: np.ndarray | None = None,
    ) -> None:
        self.g, self.inflate, self.signs = generators, inflate, signs
        rows, width = generators.shape
        self.labels = np.zeros(width, dtype=int) if labels is None else labels
        self.rest = np.zeros((rows, len(SOURCES))) if rest is None else rest
        self.ids = _new_ids(width) if ids is None else ids

    @classmethod
    def cast(
        cls, cast_g: np.ndarray, cast_f: np.ndarray, shared: bool, inflate: float, signs: bool, keep: int | None = None
    ) -> AffineErrors:
        """The input's errors, rows ``[ĝ; f̂]``: the casts into each dtype, one generator per entry, the same
        generators for both networks when they cast into the same dtype (the same rounded ``x``); at most
        ``keep`` generators (the largest), the others' sizes in the remainder."""
        if not shared:
            return cls.diagonal(np.concatenate([cast_g, cast_f]), "input cast", inflate, signs, keep)
        dim = len(cast_g)
        size = cast_g + cast_f
        chosen = np.flatnonzero(size)
        if keep is not None and len(chosen) > keep:
            chosen = np.sort(chosen[np.argsort(-size[chosen], kind="stable")[:keep]])
        g = np.zeros((2 * dim, len(chosen)))
        g[chosen, np.arange(len(chosen))] = cast_g[chosen]
        g[dim + chosen, np.arange(len(chosen))] = cast_f[chosen]
        labels = np.full(len(chosen), SOURCES.index("input cast"))
        merged = np.ones(dim, dtype=bool)
        merged[chosen] = False
        form = cls(g, inflate, labels, signs=signs)
        return form.with_remainder(np.concatenate([cast_g * merged, cast_f * merged]), "input cast")

    @classmethod
    def diagonal(
        cls, sizes: np.ndarray, source: str, inflate: float, signs: bool = True, keep: int | None = None
    ) -> AffineErrors:
        """One generator per non-zero entry of ``sizes`` (``|e_i| <= sizes_i``, signs unknown), at most ``keep``."""
        empty = cls(np.zeros((len(sizes), 0)), inflate, signs=signs)
        return empty.fresh(sizes, source, keep)

    def _like(self, g: np.ndarray, labels: np.ndarray, rest: np.ndarray, ids: np.ndarray | None = None) -> AffineErrors:
        return AffineErrors(g, self.inflate, labels, rest, self.signs, self.ids if ids is None else ids)

    def bound(self) -> np.ndarray:
        """``|G| 1 + R 1`` per row (inflated for its float64 sums)."""
        return (np.abs(self.g).sum(axis=1) + self.rest.sum(axis=1)) * self.inflate

    def _by_source(self, g: np.ndarray) -> np.ndarray:
        """``Σ_j |g_ij|`` per row and source (rows × len(SOURCES))."""
        sizes = np.zeros((g.shape[0], len(SOURCES)))
        for source in np.unique(self.labels):
            sizes[:, source] = np.abs(g[:, self.labels == source]).sum(axis=1)
        return sizes

    def terms(self, row: int) -> dict[str, float]:
        """Row ``row``'s bound split by source (the generators' ``|G_ij|`` and the remainder, inflated)."""
        sizes = np.bincount(self.labels, weights=np.abs(self.g[row]), minlength=len(SOURCES))
        return {name: float(v) * self.inflate for name, v in zip(SOURCES, sizes + self.rest[row], strict=True)}

    def reach(self, a: np.ndarray) -> np.ndarray:
        """``max |a (ẑ − z)|`` per row of ``a``: ``|a G| 1 + |a| R 1`` (the product's rounding is the caller's)."""
        return (np.abs(a @ self.g).sum(axis=1) + np.abs(a) @ self.rest.sum(axis=1)) * self.inflate

    def transform(self, m: np.ndarray) -> AffineErrors:
        """The errors of ``M ẑ`` against ``M z`` for an exactly known ``M`` (rows × this one's rows), the
        float64 rounding of ``M G`` included in the remainder (module notes)."""
        abs_m = np.abs(m)
        return self.apply(lambda x: m @ x, lambda x: abs_m @ x, m.shape[1])

    def apply(self, op: Callable[[np.ndarray], np.ndarray], abs_op: Callable[[np.ndarray], np.ndarray], terms: int):
        """`transform` for a linear map given as functions on columns: ``op(X)`` maps every column of ``X``
        (rows × k) by ``M``, ``abs_op`` by ``|M|``; ``terms`` bounds the products summed per entry of ``M X``."""
        if self.signs:
            g = op(self.g)
            rounding = _gamma64(terms) * abs_op(np.abs(self.g).sum(axis=1)[:, None])[:, 0] * self.inflate
        else:
            g = abs_op(np.abs(self.g))
            rounding = np.zeros(g.shape[0])
        rest = abs_op(self.rest) * self.inflate
        rest[:, _F64] += rounding
        return self._like(g, self.labels, rest)

    def plus(self, other: AffineErrors, sizes: np.ndarray, keep: int | None = None) -> AffineErrors:
        """The errors of a sum ``ẑ₁ + ẑ₂`` (same rows), generators matched by identity, and ``sizes`` per row for
        the addition's rounding (fresh, "graph node"); the float64 sums of matched entries go to the remainder."""
        ids = np.union1d(self.ids, other.ids)
        g = np.zeros((self.g.shape[0], len(ids)))
        labels = np.zeros(len(ids), dtype=int)
        for form in (self, other):
            where = np.searchsorted(ids, form.ids)
            g[:, where] += form.g
            labels[where] = form.labels
        rest = (self.rest + other.rest) * self.inflate
        shared = np.isin(self.ids, other.ids)
        if np.any(shared):
            both = np.abs(self.g[:, shared]).sum(axis=1) + np.abs(other.g[:, np.isin(other.ids, self.ids)]).sum(axis=1)
            rest[:, _F64] += _U64 * both * self.inflate
        return self._like(g, labels, rest, ids).fresh(sizes, "graph node", keep)

    def difference(self) -> AffineErrors:
        """Rows ``[a; b]`` (two halves) to ``a − b``: the errors of ``ĝ − f̂`` from those of ``ĝ`` and ``f̂``."""
        half = self.g.shape[0] // 2
        eye = np.eye(half)
        return self.transform(np.hstack([eye, -eye]))

    def fresh(self, sizes: np.ndarray, source: str, keep: int | None = None) -> AffineErrors:
        """Add an error of size ``sizes`` per row, of unknown sign: one new generator per non-zero row, at most
        ``keep`` of them (the largest; the other rows' sizes join the remainder, as `capped` would merge them)."""
        rows = np.flatnonzero(sizes)
        form = self
        if keep is not None and len(rows) > keep:
            order = np.argsort(-sizes[rows], kind="stable")
            merged = np.zeros_like(sizes)
            merged[rows[order[keep:]]] = sizes[rows[order[keep:]]]
            form, rows = self.with_remainder(merged, source), np.sort(rows[order[:keep]])
        extra = np.zeros((self.g.shape[0], len(rows)))
        extra[rows, np.arange(len(rows))] = sizes[rows]
        return form.with_columns(extra, source)

    def with_columns(self, columns: np.ndarray, source: str, exact: bool = True) -> AffineErrors:
        """Add generators (one per column of ``columns``, rows × j). ``exact=False``: each entry is a float64
        product of up to 3 factors, so ``γ^{64}_3`` of its size joins the remainder (the ``ξ`` are shared
        across rows, so the entries' own roundings cannot be folded into the generators)."""
        columns = columns if self.signs else np.abs(columns)
        labels = np.concatenate([self.labels, np.full(columns.shape[1], SOURCES.index(source))])
        rest = self.rest.copy()
        if not exact:
            rest[:, _F64] += _gamma64(3) * np.abs(columns).sum(axis=1) * self.inflate
        ids = np.concatenate([self.ids, _new_ids(columns.shape[1])])
        return self._like(np.hstack([self.g, columns]), labels, rest, ids)

    def with_remainder(self, sizes: np.ndarray, source: str) -> AffineErrors:
        """Add an error of size ``sizes`` per row to the remainder (no new generator)."""
        rest = self.rest.copy()
        rest[:, SOURCES.index(source)] += sizes
        return self._like(self.g, self.labels, rest)

    def relu(self, active: np.ndarray, dead: np.ndarray) -> AffineErrors:
        """The errors after a ReLU (module notes): ``active`` rows pass, ``dead`` rows are 0, every other row
        keeps half its generators and puts half its bound, by source, into the remainder."""
        other = ~(active | dead)
        factor = np.where(active, 1.0, np.where(dead, 0.0, 0.5))
        half = np.zeros_like(self.rest)
        if np.any(other):
            sizes = self._by_source(self.g[other])
            half[other] = 0.5 * (sizes + self.rest[other]) * self.inflate
        return self._like(self.g * factor[:, None], self.labels, self.rest * factor[:, None] + half)

    def capped(self, count: int) -> AffineErrors:
        """At most ``count`` generators: the others, smallest ``ℓ1`` norm first, merged into the remainder."""
        if self.g.shape[1] <= count:
            return self
        size = np.abs(self.g).sum(axis=0)
        order = np.argsort(-size, kind="stable")
        keep, merge = np.sort(order[:count]), order[count:]
        rest = self.rest.copy()
        for source in np.unique(self.labels[merge]):
            chosen = merge[self.labels[merge] == source]
            rest[:, source] += np.abs(self.g[:, chosen]).sum(axis=1) * self.inflate
        return self._like(self.g[:, keep], self.labels[keep], rest, self.ids[keep])

    def rows(self, index: np.ndarray | slice) -> AffineErrors:
        """The errors of some rows only (same generators)."""
        return self._like(self.g[index], self.labels, self.rest[index])

    def mapped(
        self, rows: np.ndarray, carried: np.ndarray, fresh: np.ndarray, source: str = "residual"
    ) -> AffineErrors:
        """Rows ``rows`` become ``carried · (ẑ − z)`` plus an error of size ``fresh``; the other rows stay (the
        product's rounding is the caller's, in ``fresh``)."""
        g = self.g.copy()
        g[rows] = carried @ self.g
        rest = self.rest.copy()
        rest[rows] = np.abs(carried) @ self.rest
        extra = np.zeros((g.shape[0], len(rows)))
        extra[rows, np.arange(len(rows))] = fresh
        labels = np.concatenate([self.labels, np.full(len(rows), SOURCES.index(source))])
        return self._like(np.hstack([g, extra]), labels, rest, np.concatenate([self.ids, _new_ids(len(rows))]))

    def with_remainder_as_generators(self) -> AffineErrors:
        """The same errors with the remainder turned into generators, one per row and source (``|ρ_i| <= r_i`` is
        ``ρ_i = r_i ξ`` for some ``ξ ∈ [−1, 1]``): a linear map then carries them with cancellation, where a
        remainder is carried in absolute value (``|M| R``)."""
        rows, sources = np.nonzero(self.rest)
        extra = np.zeros((self.g.shape[0], len(rows)))
        extra[rows, np.arange(len(rows))] = self.rest[rows, sources]
        labels = np.concatenate([self.labels, sources])
        ids = np.concatenate([self.ids, _new_ids(len(rows))])
        return self._like(np.hstack([self.g, extra]), labels, np.zeros_like(self.rest), ids)

    def through_relu(self, active: np.ndarray, dead: np.ndarray) -> AffineErrors:
        """The errors after a ReLU with no relaxation: kept on ``active`` rows, 0 on ``dead`` ones, one fresh
        generator of the row's size on every other row (``|ReLU(a) − ReLU(b)| <= |a − b|``)."""
        size = self.bound()
        other = ~(active | dead)
        g = np.where(active[:, None], self.g, 0.0)
        rest = np.where(active[:, None], self.rest, 0.0)
        extra = np.diag(np.where(other, size, 0.0))[:, other]
        labels = np.concatenate([self.labels, np.full(int(np.sum(other)), SOURCES.index("residual"))])
        ids = np.concatenate([self.ids, _new_ids(int(np.sum(other)))])
        return self._like(np.hstack([g, extra]), labels, rest, ids)
