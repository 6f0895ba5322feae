"""The minimal mode's solver (docs/design.md §2, minimal mode): the SVD null space of the homogeneous system.

``diag(ρ) W = A diag(γ) B`` is solved for ``(ρ, γ)`` together, so the even layer's scales
``s' = 1/ρ`` are free and the odd width may be as small as ``r(d_in − 1) + 1`` for
``r`` non-zero rows of ``W`` (``d_out(d_in − 1) + 1`` for a generic ``W``).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from verify.core.errors import InfeasibleError
from verify.core.networks import minimal_width, paper_width
from verify.core.numerics import REFINEMENT_STEPS
from verify.core.scale_equation import ScaleEquation, ScaleSolution
from verify.core.tolerances import VANISHING, numerical_rank

__all__ = ["solve_minimal"]


def solve_minimal(equation: ScaleEquation, *, block: int) -> ScaleSolution:
    """Solve ``diag(ρ) W = A diag(γ) B`` for ``(ρ, γ)`` with every needed ``ρ_a != 0``; ``s' = 1/ρ``.

    Zero rows of ``W`` are left out (their row is switched off, ``s'_a = 0``). Among the solutions
    the one whose ``ρ`` is closest to all ones is returned, which normalizes the scale symmetry
    ``(γ, s') ~ (cγ, s'/c)``. Raises `InfeasibleError` when the system has only the trivial solution
    or every solution switches a needed row off.
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
    # Equilibrate: unit-norm columns, so that the SVD's normwise backward error is small relative to
    # every unknown's own terms whatever the scales of W and of the frozen weights.
    column_norms = np.linalg.norm(system, axis=0)
    column_norms[column_norms == 0] = 1.0
    u, s, vt = scipy.linalg.svd(system / column_norms, full_matrices=True)
    rank = numerical_rank(s, system.shape)
    null = vt[rank:].T / column_norms[:, None]

    def project(x: np.ndarray) -> np.ndarray:
        """Refinement toward the null space: ``x - pinv(system) @ (system @ x)``."""
        for _ in range(REFINEMENT_STEPS):
            correction = vt[:rank].T @ ((u[:, :rank].T @ (system @ x)) / s[:rank])
            x = x - correction / column_norms
        return x

    if null.shape[1] == 0:
        raise refusal(
            f"the homogeneous system diag(ρ) W_{block} = A diag(γ) B has only the trivial solution "
            f"(rank {rank} of {r + n} unknowns; needed rank <= {r + n - 1}) at width {n}; "
            f"use width >= {width_needed}",
            rank,
            max(width_needed, n + 1),
        )
    rho_part = null[:r]
    # How far each row scale reaches on the (orthonormal, equilibrated) null basis: ~0 means ρ_a = 0
    # on every solution, i.e. row a cannot be carried.
    reach = np.linalg.norm(vt[rank:, :r], axis=0)
    dead = np.flatnonzero(reach <= VANISHING)
    if dead.size:
        raise refusal(
            f"every solution of diag(ρ) W_{block} = A diag(γ) B switches off target row(s) "
            f"{rows[dead].tolist()} (ρ = 0 there); no minimal-mode solution exists at width {n}. "
            f"Try mode='paper' with width >= {paper_width(d_out, d_in)}",
            rank,
            paper_width(d_out, d_in),
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
