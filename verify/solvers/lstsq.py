"""``lstsq``: the minimum-norm solution of the paper-mode scale equation via the SVD of ``K`` (docs/design.md §5).

``O(d⁶)`` on the explicit Khatri–Rao matrix; the baseline the other solvers are measured against.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from verify.core.numerics import refine
from verify.core.scale_equation import ScaleEquation, ScaleSolution, rank_error
from verify.core.tolerances import numerical_rank

__all__ = ["solve_lstsq"]


def solve_lstsq(equation: ScaleEquation, *, block: int) -> ScaleSolution:
    """Solve ``A diag(γ) B = W`` with ``s' = 1``: the minimum-norm ``γ``, via the SVD of ``K``, refined.

    Raises `InfeasibleError` if ``n < d_out·d_in`` or ``rank K < d_out·d_in``.
    """
    needed = equation.check_paper_width(block)
    k = equation.k
    u, s, vt = scipy.linalg.svd(k, full_matrices=False)
    rank = numerical_rank(s, k.shape)
    if rank < needed:
        raise rank_error(block, rank, needed, k.shape[1])

    def pseudo_solve(rhs: np.ndarray) -> np.ndarray:
        return vt.T @ ((u.T @ rhs) / s)

    gamma = refine(pseudo_solve, k.__matmul__, equation.target)  # componentwise small residual (Skeel)
    return ScaleSolution(gamma, np.ones(equation.d_out), rank, needed, float(s[0] / s[-1]), "lstsq: SVD minimum norm")
