"""The scale equation of one block (docs/design.md §2) and its two solves.

Block ``k`` maps ``z = z_{k-1}`` through frozen layers ``2k-1`` (columns ``B`` of ``M_{2k-1}`` fed by
live neurons, shape ``(n, d_in)``) and ``2k`` (rows ``A`` of ``M_{2k}`` that carry the target, shape
``(d_out, n)``). In the linear regime the block computes ``s' ⊙ (A diag(γ) B) z + const``, and it
equals ``W z + b`` iff

    s' ⊙ (A diag(γ) B) = W                                  (the scale equation)

``A diag(γ) B = Σ_i γ_i a_i b_iᵀ`` is linear in ``γ``: with the Khatri–Rao matrix ``K`` of shape
``(d_out·d_in, n)``, column ``i`` = ``vec(a_i b_iᵀ)`` (row-major ``vec``), it reads ``K γ = vec(W)``.

* ``"paper"`` mode fixes ``s' = 1`` and needs ``rank K = d_out·d_in`` (width ``n >= d_out·d_in``).
* ``"minimal"`` mode solves the homogeneous system ``diag(ρ) W = A diag(γ) B`` for ``(ρ, γ)`` with
  ``ρ_a != 0`` on every non-zero row, then ``s' = 1/ρ``; it needs ``n >= d_out(d_in - 1) + 1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
import scipy.sparse.linalg

from verify.core.errors import InfeasibleError
from verify.core.networks import minimal_width, paper_width
from verify.core.tolerances import VANISHING, numerical_rank

__all__ = ["KhatriRaoOperator", "ScaleSolution", "khatri_rao", "solve_minimal", "solve_paper"]

_REFINEMENT_STEPS = 2
"""Steps of iterative refinement after each SVD solve: one step in working precision makes the
residual componentwise small (Skeel 1980); the second guards against an unlucky first."""


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

    ``K @ γ == (a @ diag(γ) @ b).reshape(-1)`` (row-major).
    """
    return scipy.linalg.khatri_rao(a, b.T)


def check_paper_width(a: np.ndarray, b: np.ndarray, block: int) -> tuple[int, int, int]:
    """``(d_out, d_in, d_out·d_in)``, or `InfeasibleError` if the odd layer has fewer than ``d_out·d_in`` neurons."""
    d_out, n = a.shape
    d_in = b.shape[1]
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
    return d_out, d_in, needed


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


def solve_paper(a: np.ndarray, b: np.ndarray, w: np.ndarray, *, block: int) -> ScaleSolution:
    """Solve ``A diag(γ) B = W`` with ``s' = 1``: the minimum-norm ``γ``, via the SVD of ``K``.

    Raises `InfeasibleError` if ``n < d_out·d_in`` or ``rank K < d_out·d_in``.
    """
    d_out, _, needed = check_paper_width(a, b, block)
    k = khatri_rao(a, b)
    u, s, vt = scipy.linalg.svd(k, full_matrices=False)
    rank = numerical_rank(s, k.shape)
    if rank < needed:
        raise rank_error(block, rank, needed, k.shape[1])
    target = w.reshape(-1)

    def pseudo_solve(rhs: np.ndarray) -> np.ndarray:
        return vt.T @ ((u.T @ rhs) / s)

    gamma = pseudo_solve(target)
    for _ in range(_REFINEMENT_STEPS):  # iterative refinement: componentwise small residual (Skeel)
        gamma = gamma + pseudo_solve(target - k @ gamma)
    return ScaleSolution(gamma, np.ones(d_out), rank, needed, float(s[0] / s[-1]), "lstsq: SVD minimum norm")


def solve_minimal(a: np.ndarray, b: np.ndarray, w: np.ndarray, *, block: int) -> ScaleSolution:
    """Solve ``diag(ρ) W = A diag(γ) B`` for ``(ρ, γ)`` with every needed ``ρ_a != 0``; ``s' = 1/ρ``.

    Zero rows of ``W`` are left out (their row is switched off, ``s'_a = 0``). Among the solutions
    the one whose ``ρ`` is closest to all ones is returned, which normalizes the scale symmetry
    ``(γ, s') ~ (cγ, s'/c)``. Raises `InfeasibleError` when the system has only the trivial solution
    or every solution switches a needed row off.
    """
    d_out, n = a.shape
    d_in = b.shape[1]
    rows = np.flatnonzero(np.any(w != 0, axis=1))
    r = rows.size
    if r == 0:
        return ScaleSolution(np.zeros(n), np.zeros(d_out), 0, 0, 1.0, "minimal: zero layer")
    width_needed = minimal_width(r, d_in)
    if n < width_needed:
        raise InfeasibleError(
            f"block {block}: mode 'minimal' needs an odd-layer width n_{2 * block - 1} >= r*(d_{block - 1}-1)+1 = "
            f"{r}*({d_in}-1)+1 = {width_needed} (r = {r} non-zero rows of W_{block}), got {n}. "
            f"Use width >= {width_needed}",
            block=block,
            rank=None,
            needed=r + n - 1,
            width=n,
            width_needed=width_needed,
        )
    weight_part = np.zeros((r, d_in, r))
    weight_part[np.arange(r), :, np.arange(r)] = w[rows]
    system = np.hstack([weight_part.reshape(r * d_in, r), -khatri_rao(a[rows], b)])
    # Equilibrate: unit-norm columns, so that the SVD's normwise backward error is small relative to
    # every unknown's own terms whatever the scales of W and of the frozen weights.
    column_norms = np.linalg.norm(system, axis=0)
    column_norms[column_norms == 0] = 1.0
    u, s, vt = scipy.linalg.svd(system / column_norms, full_matrices=True)
    rank = numerical_rank(s, system.shape)
    null = vt[rank:].T / column_norms[:, None]

    def project(x: np.ndarray) -> np.ndarray:
        """Refinement toward the null space: ``x - pinv(system) @ (system @ x)``."""
        for _ in range(_REFINEMENT_STEPS):
            correction = vt[:rank].T @ ((u[:, :rank].T @ (system @ x)) / s[:rank])
            x = x - correction / column_norms
        return x

    if null.shape[1] == 0:
        raise InfeasibleError(
            f"block {block}: the homogeneous system diag(ρ) W_{block} = A diag(γ) B has only the trivial solution "
            f"(rank {rank} of {r + n} unknowns; needed rank <= {r + n - 1}) at width {n}; "
            f"use width >= {width_needed}",
            block=block,
            rank=rank,
            needed=r + n - 1,
            width=n,
            width_needed=max(width_needed, n + 1),
        )
    rho_part = null[:r]
    # How far each row scale reaches on the (orthonormal, equilibrated) null basis: ~0 means ρ_a = 0
    # on every solution, i.e. row a cannot be carried.
    reach = np.linalg.norm(vt[rank:, :r], axis=0)
    dead = np.flatnonzero(reach <= VANISHING)
    if dead.size:
        raise InfeasibleError(
            f"block {block}: every solution of diag(ρ) W_{block} = A diag(γ) B switches off target row(s) "
            f"{rows[dead].tolist()} (ρ = 0 there); no minimal-mode solution exists at width {n}. "
            f"Try mode='paper' with width >= {paper_width(d_out, d_in)}",
            block=block,
            rank=rank,
            needed=r + n - 1,
            width=n,
            width_needed=paper_width(d_out, d_in),
        )
    coefficients = np.linalg.lstsq(rho_part, np.ones(r), rcond=None)[0]
    x = null @ coefficients
    rho = x[:r]
    if np.min(np.abs(rho)) <= VANISHING * np.max(np.abs(rho)):
        # The closest-to-ones solution happens to vanish on a row; a generic combination does not.
        x = null @ np.random.default_rng(block).standard_normal(null.shape[1])
        x /= np.mean(x[:r])
        rho = x[:r]
    x = project(x)
    rho = x[:r]
    row_scale = np.zeros(d_out)
    row_scale[rows] = 1.0 / rho
    return ScaleSolution(x[r:], row_scale, rank, r + n - 1, float(s[0] / s[rank - 1]), "minimal: SVD null space")


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
