"""The scale equation of one block (docs/design.md §2) as the value every solver consumes.

Block ``k`` maps ``z = z_{k-1}`` through frozen layers ``2k-1`` (columns ``B`` of ``M_{2k-1}`` fed by
live neurons, shape ``(n, d_in)``) and ``2k`` (rows ``A`` of ``M_{2k}`` that carry the target, shape
``(d_out, n)``). In the linear regime the block computes ``s' ⊙ (A diag(γ) B) z + const``, and it
equals ``W z + b`` iff

    s' ⊙ (A diag(γ) B) = W                                  (the scale equation)

``A diag(γ) B = Σ_i γ_i a_i b_iᵀ`` is linear in ``γ``: with the Khatri–Rao matrix ``K`` of shape
``(d_out·d_in, n)``, column ``i`` = ``vec(a_i b_iᵀ)`` (row-major ``vec``), it reads ``K γ = vec(W)``.

* ``"paper"`` mode fixes ``s' = 1`` and needs ``rank K = d_out·d_in`` (width ``n >= d_out·d_in``).
* ``"minimal"`` mode solves the homogeneous system ``diag(ρ) W = A diag(γ) B`` for ``(ρ, γ)`` with
  ``ρ_a != 0`` on every non-zero row, then ``s' = 1/ρ``; it needs ``n >= r(d_in - 1) + 1`` for ``r`` non-zero rows
  of ``W`` (``d_out(d_in - 1) + 1`` for a generic ``W``).

`ScaleEquation` holds one block's system; the solvers (`verify.solvers`, docs/design.md §5) and the
pattern-only feasibility decision (`verify.core.feasibility`, §4) read it only through ``k``,
``operator``, ``columns``, ``incidence``, ``rows`` and ``residual``, never through where its columns
came from (a dense layer's neuron here; a convolution's channel would sum the columns of its
positions, see `verify.core.channels`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg

from verify.core.errors import InfeasibleError
from verify.core.interop import to_host
from verify.core.networks import minimal_width, paper_width
from verify.core.tolerances import EPS, numerical_rank
from verify.core.validate import as_array

__all__ = [
    "KhatriRaoOperator",
    "ScaleEquation",
    "ScaleSolution",
    "as_equation",
    "distinct_neurons",
    "incidence",
    "khatri_rao",
    "neuron_rank_error",
    "rank_error",
    "square_columns",
]


@dataclass(frozen=True)
class ScaleSolution:
    """A solution of one block's scale equation ``s' ⊙ (A diag(γ) B) = W``.

    Attributes
    ----------
    scale : ndarray, shape (n,)
        ``γ``: per-neuron scales of the odd layer.
    row_scale : ndarray, shape (d_out,)
        ``s'``: per-neuron scales of the live rows of the even layer (0 switches a row off).
    rank, needed : int
        Numerical rank of the solved system and the rank the mode needs.
    condition : float
        Ratio of the largest to the smallest retained singular value of the system.
    method : str
        How it was solved.
    diagnostics : dict
        The solver's own figures (iterations, stop reason, status, …), JSON-ready.
    """

    scale: np.ndarray
    row_scale: np.ndarray
    rank: int
    needed: int
    condition: float
    method: str
    diagnostics: dict = field(default_factory=dict)


def khatri_rao(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The block's Khatri–Rao matrix ``K``, column ``i`` = ``vec(a[:, i] ⊗ b[i, :])``, shape ``(d_out·d_in, n)``.

    ``K @ γ == (a @ diag(γ) @ b).reshape(-1)`` (row-major). ``a`` (``d_out × n``) and ``b``
    (``n × d_in``) must be real, finite 2-D arrays with matching ``n``; anything else is a
    ValueError naming the argument. Object arrays (exact rationals, ``method="exact"``) are
    multiplied as they are.
    """
    if np.asarray(a).dtype != object and np.asarray(b).dtype != object:
        a = as_array(a, "a", (None, None))
        b = as_array(b, "b", (a.shape[1], None))
    return scipy.linalg.khatri_rao(a, b.T)


def incidence(a_pattern: np.ndarray, b_pattern: np.ndarray) -> scipy.sparse.csr_array:
    """Sparse incidence of odd neurons ``i`` (row) and target entries ``(a, b)`` (column ``a*d_in + b``).

    Entry ``[i, (a, b)]`` is 1 iff ``a_pattern[a, i]`` and ``b_pattern[i, b]``: the transposed
    sparsity pattern of the Khatri–Rao matrix, built row by row (each neuron's entries are the
    product of its column of ``A`` and its row of ``B``) in memory proportional to its non-zeros.
    """
    d_out, n = a_pattern.shape
    d_in = b_pattern.shape[1]
    a_csc = scipy.sparse.csc_array(a_pattern.astype(bool))
    b_csr = scipy.sparse.csr_array(b_pattern.astype(bool))
    na, nb = np.diff(a_csc.indptr).astype(np.int64), np.diff(b_csr.indptr).astype(np.int64)
    counts = na * nb
    indptr = np.concatenate([[0], np.cumsum(counts)])
    total = int(indptr[-1])
    index = np.int32 if max(total, d_out * d_in, n) < 2**31 - 1 else np.int64
    neuron = np.repeat(np.arange(n, dtype=index), counts)
    local = np.arange(total, dtype=index) - np.repeat(indptr[:-1].astype(index), counts)
    width = np.maximum(nb, 1).astype(index)[neuron]
    a = a_csc.indices.astype(index)[a_csc.indptr.astype(index)[neuron] + local // width]
    b = b_csr.indices.astype(index)[b_csr.indptr.astype(index)[neuron] + local % width]
    del neuron, local, width
    columns = a * index(d_in) + b
    data = np.ones(total, dtype=np.int8)
    return scipy.sparse.csr_array((data, columns, indptr.astype(index)), shape=(n, d_out * d_in))


@dataclass(frozen=True, eq=False)
class ScaleEquation:
    """One block's scale equation ``s' ⊙ (A diag(γ) B) = W``, i.e. ``K γ = vec(W)`` (docs/design.md §2).

    Parameters
    ----------
    a : array (d_out, n)
        ``A``: the rows of the even frozen layer that carry the target.
    b : array (n, d_in)
        ``B``: the columns of the odd frozen layer fed by live inputs.
    w : array (d_out, d_in)
        ``W``: the target layer.

    numpy arrays, or torch tensors for the matrix-free solver on the tensors' device (then only the
    shapes, `target` and `residual` are used). ``K`` (`k`) and the matrix-free operators are built
    once, on first use.
    """

    a: Any
    b: Any
    w: Any

    def __post_init__(self) -> None:
        a_shape, b_shape, w_shape = tuple(self.a.shape), tuple(self.b.shape), tuple(self.w.shape)
        if len(a_shape) != 2 or len(b_shape) != 2 or a_shape[1] != b_shape[0] or w_shape != (a_shape[0], b_shape[1]):
            raise ValueError(
                f"A (d_out, n), B (n, d_in) and W (d_out, d_in) must agree, got shapes {a_shape}, {b_shape}, {w_shape}"
            )

    @property
    def d_out(self) -> int:
        """Rows of ``W`` (target layer outputs)."""
        return int(self.a.shape[0])

    @property
    def d_in(self) -> int:
        """Columns of ``W`` (target layer inputs)."""
        return int(self.b.shape[1])

    @property
    def n(self) -> int:
        """Unknowns ``γ``: the odd layer's width."""
        return int(self.a.shape[1])

    @property
    def needed(self) -> int:
        """Equations ``d_out·d_in``: the rank paper mode needs."""
        return paper_width(self.d_out, self.d_in)

    @property
    def target(self) -> Any:
        """``vec(W)``, the right-hand side."""
        return self.w.reshape(-1)

    @cached_property
    def k(self) -> np.ndarray:
        """The explicit Khatri–Rao matrix ``K`` (`khatri_rao`), built once."""
        return khatri_rao(self.a, self.b)

    @cached_property
    def operator(self) -> KhatriRaoOperator:
        """``K`` matrix-free (`KhatriRaoOperator`)."""
        return KhatriRaoOperator(self.a, self.b)

    @cached_property
    def magnitude(self) -> KhatriRaoOperator:
        """``|K|`` matrix-free: ``γ -> vec(|A| diag(γ) |B|)``."""
        return KhatriRaoOperator(np.abs(self.a), np.abs(self.b))

    @property
    def full_pattern(self) -> bool:
        """Every neuron reaches every entry: no structural zero in ``A`` or ``B``."""
        return bool(np.all(self.a != 0) and np.all(self.b != 0))

    def columns(self, index: np.ndarray, convert: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
        """The columns ``index`` of ``K``, its factors' entries first mapped by ``convert`` (e.g. to rationals)."""
        a, b = self.a[:, index], self.b[index]
        if convert is not None:
            a, b = convert(a), convert(b)
        return khatri_rao(a, b)

    def rows(self, rows: Sequence[int] | np.ndarray) -> ScaleEquation:
        """The equation of the target rows ``rows`` alone (minimal mode leaves zero rows out)."""
        return ScaleEquation(self.a[rows], self.b, self.w[rows])

    def incidence(self) -> scipy.sparse.csr_array:
        """The zero pattern of ``Kᵀ``: neuron ``i`` (row) reaches entry ``(a, b)`` (column), see `incidence`."""
        return incidence(self.a != 0, self.b != 0)

    def residual(self, gamma: Any, row_scale: Any = None) -> tuple[Any, Any]:
        """``(E, T)`` componentwise, shape ``(d_out, d_in)``: the residual ``E = s' ⊙ (A diag(γ) B) − W`` and its
        terms' size ``T = |s'| |A| |γ| |B| + |W|`` (``s' = 1`` if ``row_scale`` is None); numpy or torch."""
        product = (self.a * gamma) @ self.b
        terms = (abs(self.a) * abs(gamma)) @ abs(self.b)
        if row_scale is not None:
            product = row_scale[:, None] * product
            terms = abs(row_scale)[:, None] * terms
        return product - self.w, terms + abs(self.w)

    def normalized(self) -> tuple[ScaleEquation, float]:
        """The equation with ``A``, ``B`` and ``W`` divided by the powers of two nearest their largest
        entries, and the factor ``u`` with ``γ = u · γ'`` for a solution ``(γ', s')`` of the normalized
        equation (``s'`` is unchanged). Exact (no rounding, barring underflow), so a solver run on it
        gives the same verdict whatever power of two the frozen weights or the target are scaled by,
        and ``K``'s entries and norms stay far from overflow (``A, B ~ 1e78`` would overflow ``‖K_i‖²``)."""
        pa, pb, pw = (_power_of_two(m) for m in (self.a, self.b, self.w))
        if pa == pb == pw == 1.0:
            return self, 1.0
        return ScaleEquation(self.a / pa, self.b / pb, self.w / pw), pw / (pa * pb)

    def rank_bound(self) -> int:
        """An upper bound on ``rank K`` from the neurons alone, without forming ``K``: the number of
        odd neurons whose column ``a_i ⊗ b_i`` is non-zero and not proportional to another's
        (`distinct_neurons`). Below ``d_out·d_in`` the block is rank-deficient for certain."""
        return distinct_neurons(self.a, self.b)

    def check_paper_width(self, block: int) -> int:
        """``d_out·d_in``, or `InfeasibleError` if the odd layer has fewer neurons than that (paper mode)."""
        d_out, d_in, n = self.d_out, self.d_in, self.n
        needed = paper_width(d_out, d_in)
        if n < needed:
            raise InfeasibleError(
                f"block {block}: mode 'paper' needs an odd-layer width n_{2 * block - 1} >= d_{block}*d_{block - 1} = "
                f"{d_out}*{d_in} = {needed}, got {n}; the Khatri–Rao system has rank at most {n} of {needed} needed. "
                f"Use width >= {needed}, or mode='minimal' (width >= {minimal_width(d_out, d_in)})",
                block=block,
                rank=None,
                needed=needed,
                width=n,
                width_needed=needed,
            )
        return needed

    def square_subset(self, block: int) -> np.ndarray:
        """``d_out·d_in`` well-conditioned columns of ``K`` for a square paper-mode solve (`square_columns`);
        `InfeasibleError` if the layer is too narrow or ``K`` rank-deficient."""
        return square_columns(self.k, self.check_paper_width(block), block)


def _power_of_two(matrix: Any) -> float:
    """The power of two nearest ``max |matrix|`` (1 for an empty, zero or non-finite matrix); numpy or torch."""
    largest = float(abs(matrix).max()) if matrix.shape[0] * matrix.shape[1] else 0.0
    if largest == 0 or not math.isfinite(largest):
        return 1.0
    return math.ldexp(1.0, round(math.log2(largest)))


def as_equation(operands: tuple) -> ScaleEquation:
    """``(equation,)`` or the three matrices ``(a, b, w)`` as a `ScaleEquation` (the solvers' two call forms)."""
    if len(operands) == 1 and isinstance(operands[0], ScaleEquation):
        return operands[0]
    if len(operands) == 3:
        return ScaleEquation(*operands)
    raise TypeError(f"expected one ScaleEquation or the three matrices a, b, w; got {len(operands)} arguments")


def _unit_columns(matrix: np.ndarray, axis: int, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """``matrix``'s vectors along ``axis`` scaled to unit length with a canonical sign (a random
    projection made positive), and which of them are zero to ``tolerance`` relative to the largest."""
    vectors = np.moveaxis(np.asarray(matrix, dtype=np.float64), axis, 0)
    norms = np.linalg.norm(vectors, axis=1)
    zero = norms <= tolerance * np.max(norms, initial=0.0)
    unit = vectors / np.where(zero, 1.0, norms)[:, None]
    direction = np.random.default_rng(0).standard_normal(unit.shape[1])
    unit *= np.where(unit @ direction < 0, -1.0, 1.0)[:, None]
    return unit, zero


def distinct_neurons(a: Any, b: Any) -> int:
    """How many odd neurons ``i`` have a non-zero column ``vec(a_i b_iᵀ)`` of ``K`` not proportional to the
    column of another neuron: an upper bound on ``rank K`` that needs memory ``O(n (d_out + d_in))`` only.

    Columns ``i`` and ``j`` are proportional iff ``a_i ∥ a_j`` and ``b_i ∥ b_j``. Each ``a_i`` and ``b_i``
    is normalized (unit length, canonical sign); neurons are sorted by a random projection of the
    pair, and neighbours whose normalized vectors agree to ``max(shape)·eps`` (the numerical-rank
    tolerance, `verify.core.tolerances`) count once. A neuron with ``a_i`` or ``b_i`` zero (to the same
    tolerance) contributes nothing. Duplicated or proportional frozen neurons, and dead ones, are
    found; a general linear dependence among more than two columns is not (only an SVD finds that).
    """
    a, b = np.asarray(to_host(a), dtype=np.float64), np.asarray(to_host(b), dtype=np.float64)
    n = a.shape[1]
    tolerance = max(a.shape[0] * b.shape[1], n) * EPS
    unit_a, zero_a = _unit_columns(a, 1, tolerance)
    unit_b, zero_b = _unit_columns(b, 0, tolerance)
    live = np.flatnonzero(~(zero_a | zero_b))
    if live.size < 2:
        return int(live.size)
    pairs = np.hstack([unit_a[live], unit_b[live]])
    keys = pairs @ np.random.default_rng(1).standard_normal(pairs.shape[1])
    order = np.argsort(keys, kind="stable")
    gap = 4 * tolerance * np.sqrt(pairs.shape[1])  # proportional pairs have equal keys to rounding: neighbours
    duplicate = np.zeros(live.size, dtype=bool)
    for position in np.flatnonzero(np.diff(keys[order]) <= gap) + 1:
        i = order[position]
        for back in range(position - 1, -1, -1):
            j = order[back]
            if keys[i] - keys[j] > gap:
                break
            if not duplicate[j] and np.max(np.abs(pairs[i] - pairs[j])) <= 4 * tolerance:
                duplicate[i] = True
                break
    return int(live.size - np.count_nonzero(duplicate))


def rank_error(block: int, rank: int, needed: int, n: int) -> InfeasibleError:
    """The `InfeasibleError` for a paper-mode block whose Khatri–Rao system has rank below ``needed``."""
    return InfeasibleError(
        f"block {block}: the Khatri–Rao system of frozen layers {2 * block - 1}-{2 * block} has rank {rank}, "
        f"but mode 'paper' needs full rank {needed} = d_{block}*d_{block - 1}; the frozen weights are not "
        f"generic (width {n}). A generic frozen layer of width >= {needed} would work",
        block=block,
        rank=rank,
        needed=needed,
        width=n,
        width_needed=needed,
    )


def neuron_rank_error(block: int, rank: int, needed: int, n: int) -> InfeasibleError:
    """The `InfeasibleError` for a paper-mode block with fewer distinct live odd neurons than ``needed``
    (`distinct_neurons`): ``rank K`` is at most ``rank``."""
    return InfeasibleError(
        f"block {block}: only {rank} of the {n} neurons of frozen layer {2 * block - 1} have a non-zero Khatri–Rao "
        f"column not proportional to another's (duplicated, proportional or dead neurons: (a_i, b_i) ∥ (a_j, b_j)), "
        f"so the system has rank at most {rank}, but mode 'paper' needs full rank {needed} = d_{block}*d_{block - 1} "
        f"(width {n}). A generic frozen layer of width >= {needed} would work",
        block=block,
        rank=rank,
        needed=needed,
        width=n,
        width_needed=needed,
    )


def square_columns(k: np.ndarray, needed: int, block: int) -> np.ndarray:
    """``needed`` well-conditioned columns of ``K`` (all of them at the exact width), chosen by QR
    with column pivoting; `InfeasibleError` if ``K`` has rank below ``needed``."""
    n = k.shape[1]
    if n == needed:
        return np.arange(n)
    _, r, pivots = scipy.linalg.qr(k, mode="economic", pivoting=True)
    rank = numerical_rank(np.abs(np.diag(r)), k.shape)
    if rank < needed:
        raise rank_error(block, rank, needed, n)
    return np.sort(pivots[:needed])


class KhatriRaoOperator(scipy.sparse.linalg.LinearOperator):
    """``K`` as a matrix-free operator: two GEMMs per product, memory ``O(n·(d_out + d_in))``.

    ``matvec``:  ``γ -> vec(A diag(γ) B)  = ((A * γ) @ B).reshape(-1)``
    ``rmatvec``: ``R -> diag(Aᵀ R Bᵀ)     = rowsum((Aᵀ R) ⊙ B)`` with ``R = reshape(r, (d_out, d_in))``
    """

    def __init__(self, a: np.ndarray, b: np.ndarray) -> None:
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
            raise ValueError(f"A (d_out, n) and B (n, d_in) must agree in n, got shapes {a.shape} and {b.shape}")
        self.a, self.b = a, b
        super().__init__(dtype=np.result_type(a, b), shape=(a.shape[0] * b.shape[1], a.shape[1]))

    def _matvec(self, gamma: np.ndarray) -> np.ndarray:
        return ((self.a * np.ravel(gamma)) @ self.b).reshape(-1)

    def _rmatvec(self, residual: np.ndarray) -> np.ndarray:
        r = np.reshape(residual, (self.a.shape[0], self.b.shape[1]))
        return np.einsum("ij,ij->i", self.a.T @ r, self.b)
