"""The minimal mode's solver (docs/design.md §2.6): the null space of the homogeneous system.

``diag(ρ) W = A diag(γ) B`` is solved for ``(ρ, γ)`` together, so the even layer's scales
``s' = 1/ρ`` are free and the odd width may be as small as ``r(d_in − 1) + 1`` for
``r`` non-zero rows of ``W`` (``d_out(d_in − 1) + 1`` for a generic ``W``).

**The factorization.** The equilibrated system ``[W-part | −K]`` (unit-norm columns, ``m``
equations, ``N = r + n > m`` unknowns) is factorized once. Up to `SVD_EQUATIONS` equations it is a
full SVD: the rank is `numerical_rank` (singular values above ``σ_max · max(shape) · eps``), the
null basis the trailing right singular vectors, the reported condition ``σ_max/σ_rank``. Larger
systems take one LU with partial pivoting of the transpose, ``Sᵀ = P L U`` (the cost of a square
solve, where the full SVD with its ``m × m`` and ``N × N`` factors cost 10–50 times more): if LAPACK's
1-norm estimate ``κ₁(U)`` is at most ``1/sqrt(eps)`` the system has full row rank ``m`` and the null
space is ``P [−L₁⁻ᵀ L₂ᵀ; I]``, orthonormalized by an economy QR; the reported condition is then that
estimate (diagnostics ``condition_norm``). Otherwise the block falls back to the full SVD, so every
rank decision near the threshold, and every refusal, is the SVD's as before.

**Which null vector.** At exactly the minimal width the null space is one direction and there is
no choice. A wider layer, or two neurons with the same Khatri–Rao column up to sign (a mirrored
pair), leaves a null space of dimension ``q > 1``, and an arbitrary vector of it can be a huge
*cancelling* combination (``γ_i ≈ −γ_j`` of size 1e15 on two equal columns) that is exact in exact
arithmetic and wrong in floating point. Among the null vectors with every ``ρ_a != 0``, the solver
picks one minimizing the **scale ratio** ``max_i |γ̃_i| / min_a |ρ̃_a|`` in the column-equilibrated
units of the SVD (``γ̃_i = γ_i ‖K_i‖``, ``ρ̃_a = ρ_a ‖W_a‖``). The ratio is invariant under the scale
symmetry ``(ρ, γ) ~ (cρ, cγ)`` (docs/design.md §2.7) and dimensionless: it says how much larger the
block's largest term is than its smallest output row, i.e. how many digits cancellation costs. For
a fixed sign pattern ``σ`` of ``ρ`` the minimum is a linear program in the null coordinates ``c``,

    min t   subject to   |γ̃(c)_i| <= t,   σ_a ρ̃(c)_a >= 1,

(ρ bounded away from 0 on every live row, so no row is switched off and ``s'`` stays finite); it is
solved for the sign patterns of the least-squares "ρ closest to all ones" vectors, of a generic
combination and of all-positive ``ρ``, then for single sign flips of the best while they improve;
the closest-to-ones vectors are candidates themselves, so the choice is never worse than the former
one. An exhaustive search over the ``2^(r-1)`` patterns is not attempted: "smallest" is over the
orthants tried. A cancelling pair only raises ``max|γ̃|`` without moving ``ρ``, so the program
never uses it. The scale symmetry is then fixed by balancing ``max|γ| = max|s'|``, so the largest
scale reported is ``sqrt(max|γ| / min|ρ|)``, the smallest any multiple of the chosen vector can
have.

**Which solution.** Given the odd layer's input range (``image``, as `verify.construction.tuning` passes for
a shifted block), the scale-ratio choice is only a candidate: `verify.solvers.min_bound.smallest_minimal_bound`
also solves linear programs for the bound's proxy ``Φ = Σ_a |s'_a| Σ_i |A_ai| m_i(γ_i)`` and keeps the vector of
smallest ``Φ`` whose scale ratio is within `SCALE_RATIO_LIMIT` (the diagnostics give ``Φ`` before and after).

**Refusal.** If even the best ratio exceeds `SCALE_RATIO_LIMIT` ``= 1/sqrt(eps)`` (about 6.7e7) the
block is refused with `InfeasibleError` naming the block and the ratio: the output would rest on
terms more than ``1/sqrt(eps)`` times larger than a row of ``W``, losing more than half of the
digits. This is the same ``sqrt(eps)`` as the vanishing-row test (a row whose ``ρ̃`` reach is below
``sqrt(eps)`` on the orthonormal null basis has a ratio above ``1/sqrt(eps)`` on its own). Generic
blocks at exactly the minimal width reach ratios up to about 1.4e6 in the verification job's grids
(a real feature of the minimal width), a factor ~50 below the limit.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.linalg
import scipy.optimize

from verify.core.domains import AffineRange
from verify.core.errors import InfeasibleError
from verify.core.networks import minimal_width, paper_width
from verify.core.numerics import REFINEMENT_STEPS
from verify.core.scale_equation import ScaleEquation, ScaleSolution
from verify.core.tolerances import VANISHING, numerical_rank
from verify.solvers.min_bound import smallest_minimal_bound

__all__ = ["FLIP_SWEEPS", "SCALE_RATIO_LIMIT", "SVD_EQUATIONS", "solve_minimal"]

FLIP_SWEEPS = 1
"""Sweeps of single sign flips of ``ρ`` tried after the first linear programs (module notes)."""

SCALE_RATIO_LIMIT = 1.0 / VANISHING
"""Largest scale ratio ``max|γ̃| / min|ρ̃|`` (equilibrated units) minimal mode accepts: ``1/sqrt(eps)``
(about 6.7e7). It is the vanishing-row test's ``sqrt(eps)`` applied to the chosen solution as a whole."""

SVD_EQUATIONS = 256
"""Systems with at most this many equations take the full SVD; larger ones one LU (module notes)."""


def solve_minimal(
    equation: ScaleEquation, *, block: int, image: AffineRange | None = None, mean: np.ndarray | None = None
) -> ScaleSolution:
    """Solve ``diag(ρ) W = A diag(γ) B`` for ``(ρ, γ)`` with every needed ``ρ_a != 0``; ``s' = 1/ρ``.

    Zero rows of ``W`` are left out (their row is switched off, ``s'_a = 0``). Among the solutions
    the one with the smallest scale ratio ``max|γ̃| / min|ρ̃|`` is returned (module notes), rescaled so
    that ``max|γ| = max|s'|`` (the scale symmetry ``(γ, s') ~ (cγ, s'/c)``). Raises `InfeasibleError`
    when the system has only the trivial solution, every solution switches a needed row off, or the
    best ratio exceeds `SCALE_RATIO_LIMIT`. With ``image`` (the odd layer's input range; ``mean`` its running
    mean) and a null space of more than one direction, the vector of smallest bound proxy is taken among that
    one and the optima of `verify.solvers.min_bound.smallest_minimal_bound` (module notes, *Which solution*).
    """
    d_out, d_in, n, w = equation.d_out, equation.d_in, equation.n, equation.w
    rows = np.flatnonzero(np.any(w != 0, axis=1))
    r = rows.size
    if r == 0:
        return ScaleSolution(np.zeros(n), np.zeros(d_out), 0, 0, 1.0, "minimal: zero layer")
    width_needed = minimal_width(r, d_in)

    def refusal(message: str, rank: int | None, width: int) -> InfeasibleError:
        """The block's `InfeasibleError`: ``needed = r + n - 1`` (one null direction), ``width`` would work."""
        return InfeasibleError(
            f"block {block}: {message}", block=block, rank=rank, needed=r + n - 1, width=n, width_needed=width
        )

    if n < width_needed:
        raise refusal(
            f"mode 'minimal' needs an odd-layer width n_{2 * block - 1} >= r*(d_{block - 1}-1)+1 = "
            f"{r}*({d_in}-1)+1 = {width_needed} (r = {r} non-zero rows of W_{block}), got {n}. "
            f"Use width >= {width_needed}",
            None,
            width_needed,
        )
    weight_part = np.zeros((r, d_in, r))
    weight_part[np.arange(r), :, np.arange(r)] = w[rows]
    system = np.hstack([weight_part.reshape(r * d_in, r), -equation.rows(rows).k])
    # Equilibrate: unit-norm columns, so that the factorization's normwise backward error is small
    # relative to every unknown's own terms whatever the scales of W and of the frozen weights.
    column_norms = np.linalg.norm(system, axis=0)
    column_norms[column_norms == 0] = 1.0
    scaled = system / column_norms
    factored = _lu_null_space(scaled) if system.shape[0] > SVD_EQUATIONS else None
    if factored is None:
        basis, rank, condition, correct, how = _svd_null_space(scaled)
    else:
        basis, rank, condition, correct, how = factored

    def project(x: np.ndarray) -> np.ndarray:
        """Refinement toward the null space: ``x`` minus a solution of ``system @ c = system @ x``."""
        for _ in range(REFINEMENT_STEPS):
            x = x - correct(system @ x) / column_norms
        return x

    if rank == r + n:
        raise refusal(
            f"the homogeneous system diag(ρ) W_{block} = A diag(γ) B has only the trivial solution "
            f"(rank {rank} of {r + n} unknowns; needed rank <= {r + n - 1}) at width {n}; "
            f"use width >= {width_needed}",
            rank,
            max(width_needed, n + 1),
        )
    # How far each row scale reaches on the (orthonormal, equilibrated) null basis: ~0 means ρ_a = 0
    # on every solution, i.e. row a cannot be carried.
    reach = np.linalg.norm(basis[:r], axis=1)
    dead = np.flatnonzero(reach <= VANISHING)
    if dead.size:
        raise refusal(
            f"every solution of diag(ρ) W_{block} = A diag(γ) B switches off target row(s) "
            f"{rows[dead].tolist()} (ρ = 0 there); no minimal-mode solution exists at width {n}. "
            f"Try mode='paper' with width >= {paper_width(d_out, d_in)}",
            rank,
            paper_width(d_out, d_in),
        )
    # basis: orthonormal null basis in equilibrated units, x = (basis @ c) / column_norms
    coefficients, ratio = _smallest_scales(basis[:r], basis[r:], column_norms[:r])
    if not ratio <= SCALE_RATIO_LIMIT:
        raise refusal(
            f"the best solution of diag(ρ) W_{block} = A diag(γ) B needs scales whose ratio "
            f"max|γ̃|/min|ρ̃| = {ratio:.3g} (equilibrated units, docs/design.md §2.6) exceeds "
            f"1/sqrt(eps) = {SCALE_RATIO_LIMIT:.3g}: g would rest on cancelling scales and lose more than "
            f"half its digits at width {n}. Use a wider odd layer or mode='paper' with width >= "
            f"{paper_width(d_out, d_in)}",
            rank,
            paper_width(d_out, d_in),
        )
    chosen = {}
    if image is not None and basis.shape[1] > 1:  # the smaller bound among the null vectors (module notes)

        def accept(c: np.ndarray) -> bool:
            return _scale_ratio(basis[:r] @ c, basis[r:] @ c) <= SCALE_RATIO_LIMIT

        rho_of_c, gamma_of_c = basis[:r] / column_norms[:r, None], basis[r:] / column_norms[r:, None]
        coefficients, chosen = smallest_minimal_bound(
            rho_of_c, gamma_of_c, equation.a[rows], image, coefficients, mean=mean, accept=accept
        )
        ratio = _scale_ratio(basis[:r] @ coefficients, basis[r:] @ coefficients)
    x = project((basis @ coefficients) / column_norms)
    x = _balanced(x, r)
    rho = x[:r]
    row_scale = np.zeros(d_out)
    row_scale[rows] = 1.0 / rho
    diagnostics = {"null_dimension": int(basis.shape[1]), "scale_ratio": ratio} | chosen
    if how != "SVD":
        diagnostics["condition_norm"] = "1-norm estimate of the LU's U"
    return ScaleSolution(x[r:], row_scale, rank, r + n - 1, condition, f"minimal: {how} null space", diagnostics)


def _svd_null_space(scaled: np.ndarray) -> tuple[np.ndarray, int, float, Callable[[np.ndarray], np.ndarray], str]:
    """Full SVD of the equilibrated system: orthonormal null basis, `numerical_rank`, ``σ_max/σ_rank``, refinement."""
    u, s, vt = scipy.linalg.svd(scaled, full_matrices=True)
    rank = numerical_rank(s, scaled.shape)

    def correct(residual: np.ndarray) -> np.ndarray:
        """``pinv(scaled) @ residual`` on the numerical range (equilibrated units)."""
        return vt[:rank].T @ ((u[:, :rank].T @ residual) / s[:rank])

    condition = float(s[0] / s[rank - 1]) if rank else np.inf
    return vt[rank:].T, rank, condition, correct, "SVD"


def _lu_null_space(
    scaled: np.ndarray,
) -> tuple[np.ndarray, int, float, Callable[[np.ndarray], np.ndarray], str] | None:
    """One LU (partial pivoting) of the transposed equilibrated ``m × N`` system; None if not clearly full rank.

    ``scaledᵀ = P L U`` with ``L = [L₁; L₂]`` (``L₁`` unit lower triangular ``m × m``) and ``U``
    upper triangular ``m × m``. If ``U`` is well conditioned (LAPACK's 1-norm estimate
    ``κ₁(U) <= 1/sqrt(eps)``) the system has full row rank ``m`` and its null space is
    ``P [−L₁⁻ᵀ L₂ᵀ; I]``, orthonormalized by an economy QR (``N × (N − m)``). Otherwise None: the
    caller falls back to the SVD, so every rank decision near the threshold is the SVD's.
    """
    m, columns = scaled.shape
    if m >= columns:
        return None
    p, lower, upper = scipy.linalg.lu(scaled.T)
    if not np.all(np.isfinite(upper)):
        return None
    rcond, info = scipy.linalg.lapack.dtrcon(upper, norm="1", uplo="U", diag="N")
    if info != 0 or not rcond >= VANISHING:  # κ₁(U) <= 1/sqrt(eps)
        return None
    top, bottom = lower[:m], lower[m:]
    free = np.vstack(
        [-scipy.linalg.solve_triangular(top, bottom.T, trans="T", lower=True, unit_diagonal=True), np.eye(columns - m)]
    )
    basis = scipy.linalg.qr(p @ free, mode="economic")[0]

    def correct(residual: np.ndarray) -> np.ndarray:
        """A solution ``c = P [L₁⁻ᵀ U⁻ᵀ residual; 0]`` of ``scaled @ c = residual`` (equilibrated units)."""
        head = scipy.linalg.solve_triangular(upper, residual, trans="T")
        head = scipy.linalg.solve_triangular(top, head, trans="T", lower=True, unit_diagonal=True)
        return p @ np.concatenate([head, np.zeros(columns - m)])

    return basis, m, float(1.0 / rcond), correct, "LU"


def _scale_ratio(rho: np.ndarray, gamma: np.ndarray) -> float:
    """``max|γ| / min|ρ|``: invariant under the scale symmetry ``(ρ, γ) ~ (cρ, cγ)``; inf if a ``ρ_a`` is 0."""
    smallest = float(np.min(np.abs(rho)))
    return float(np.max(np.abs(gamma), initial=0.0)) / smallest if smallest > 0 else np.inf


def _smallest_scales(rho_basis: np.ndarray, gamma_basis: np.ndarray, row_norms: np.ndarray) -> tuple[np.ndarray, float]:
    """Coefficients ``c`` of the null basis with the smallest scale ratio ``max|γ̃| / min|ρ̃|``, and that ratio.

    ``ρ̃ = rho_basis @ c``, ``γ̃ = gamma_basis @ c`` (equilibrated units). With one null direction
    there is no choice. Otherwise, for a sign pattern ``σ`` of ``ρ``, the smallest ratio is the
    linear program ``min t  s.t.  |γ̃_i| <= t,  σ_a ρ̃_a >= 1`` (`_orthant_program`). It is solved
    for the sign patterns of the closest-to-ones solutions (``ρ̃`` truncated at ``sqrt(eps)``, and
    the physical ``ρ = ρ̃ / row_norms`` as the former choice did), of a generic combination (no
    ``ρ_a = 0``) and of all-positive ``ρ``; from the best, single sign flips are tried while they
    improve (at most `FLIP_SWEEPS` sweeps of ``r − 1`` programs). The least-squares vectors are
    candidates themselves, so the result is never worse than the former "closest to ones" choice.
    """
    r, q = rho_basis.shape
    starts = [
        np.linalg.lstsq(rho_basis, np.ones(r), rcond=VANISHING)[0],  # ρ̃ closest to ones
        np.linalg.lstsq(rho_basis / row_norms[:, None], np.ones(r), rcond=None)[0],  # ρ = ρ̃/‖W_a‖ (the former choice)
    ]
    best = min(((c, _scale_ratio(rho_basis @ c, gamma_basis @ c)) for c in starts), key=lambda item: item[1])
    if q == 1:
        return best
    generic = rho_basis @ np.random.default_rng(0).standard_normal(q)  # no ρ_a = 0, with probability 1

    def canonical(rho: np.ndarray) -> tuple[float, ...]:
        """The sign pattern of ``rho`` up to the global sign (``σ`` and ``−σ`` give the same program)."""
        sign = np.where(rho < 0, -1.0, 1.0)
        return tuple(sign * sign[0])

    tried: dict[tuple[float, ...], tuple[np.ndarray, float] | None] = {}

    def solve(pattern: tuple[float, ...]) -> tuple[np.ndarray, float] | None:
        if pattern not in tried:
            tried[pattern] = _orthant_program(rho_basis, gamma_basis, np.asarray(pattern))
        return tried[pattern]

    patterns = {canonical(rho_basis @ c) for c in starts} | {canonical(generic), (1.0,) * r}
    for pattern in patterns:
        found = solve(pattern)
        if found is not None and found[1] < best[1]:
            best = found
    for _ in range(FLIP_SWEEPS):
        centre = canonical(rho_basis @ best[0])
        improved = False
        for a in range(1, r):
            flipped = (*centre[:a], -centre[a], *centre[a + 1 :])
            found = solve(flipped)
            if found is not None and found[1] < best[1] * (1 - 1e-9):
                best, improved = found, True
        if not improved:
            break
    return best


def _orthant_program(
    rho_basis: np.ndarray, gamma_basis: np.ndarray, sign: np.ndarray
) -> tuple[np.ndarray, float] | None:
    """``min t  s.t.  |gamma_basis @ c| <= t,  sign * (rho_basis @ c) >= 1`` (HiGHS): ``(c, ratio)`` or None."""
    (r, q), n = rho_basis.shape, gamma_basis.shape[0]
    bound = np.vstack(
        [
            np.hstack([gamma_basis, -np.ones((n, 1))]),
            np.hstack([-gamma_basis, -np.ones((n, 1))]),
            np.hstack([-sign[:, None] * rho_basis, np.zeros((r, 1))]),
        ]
    )
    limits = np.concatenate([np.zeros(2 * n), -np.ones(r)])
    objective = np.zeros(q + 1)
    objective[-1] = 1.0
    program = scipy.optimize.linprog(
        objective, A_ub=bound, b_ub=limits, bounds=[(None, None)] * q + [(0, None)], method="highs"
    )
    if program.status != 0:
        return None
    c = program.x[:q]
    return c, _scale_ratio(rho_basis @ c, gamma_basis @ c)


def _balanced(x: np.ndarray, r: int) -> np.ndarray:
    """``x = (ρ, γ)`` rescaled by the scale symmetry so that ``max|γ| = max|s'|`` (``s' = 1/ρ``), most ``ρ_a > 0``."""
    rho, gamma = x[:r], x[r:]
    largest_gamma = float(np.max(np.abs(gamma), initial=0.0))
    largest_row_scale = float(np.max(1.0 / np.abs(rho)))
    factor = np.sqrt(largest_row_scale / largest_gamma) if largest_gamma > 0 else largest_row_scale
    if np.count_nonzero(rho < 0) * 2 > r:
        factor = -factor
    return factor * x
