"""``direct``: LU on a square ``K`` (docs/design.md §5).

At the exact width ``n = d_out·d_in`` ``K`` is square; wider, a well-conditioned square subset of
``d_out·d_in`` columns is chosen by QR with column pivoting and the other neurons are switched off.
``O(d⁶)``, the fastest explicit solve.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg

from verify.core.numerics import refine
from verify.core.scale_equation import ScaleEquation, ScaleSolution, rank_error
from verify.core.tolerances import EPS, numerical_rank
from verify.solvers.condition import lu_condition

__all__ = ["SVD_RANK_LIMIT", "solve_direct"]

SVD_RANK_LIMIT = 4096
"""Largest square system whose rank a suspect 1-norm condition estimate sends to the SVD (about 10 s here).

Beyond it the SVD would cost about twenty LUs (the ``16384²`` system of ``d = 128`` ran for over ten
minutes in it); the LU's own diagonal still decides rank there, and a system it cannot solve fails the
scale-equation residual check of the certificate instead (a refusal either way).
"""


def solve_direct(equation: ScaleEquation, *, block: int) -> ScaleSolution:
    """Square solve: LU on ``K`` restricted to ``d_out·d_in`` columns chosen by QR with column pivoting."""
    columns = equation.square_subset(block)
    needed, n = columns.size, equation.n
    square = equation.k[:, columns]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)  # singularity is checked below
        lu, piv = scipy.linalg.lu_factor(square, check_finite=False)
    diagonal = np.sort(np.abs(np.diag(lu)))[::-1]
    # LU is not rank-revealing: its diagonal can look full rank while σ_min <= σ_max·max(shape)·eps.
    # LAPACK's 1-norm estimate rcond_1 <= needed·σ_min/σ_max catches every such case (with a margin
    # of 10 for the estimate); then the SVD decides, up to SVD_RANK_LIMIT equations.
    condition = lu_condition(lu, float(np.linalg.norm(square, 1)))
    suspect = condition >= 1 / (10 * needed * max(square.shape) * EPS)
    by_svd = numerical_rank(diagonal, square.shape) < needed or (suspect and needed <= SVD_RANK_LIMIT)
    if by_svd:
        rank = numerical_rank(scipy.linalg.svdvals(square), square.shape)
        if rank < needed:
            raise rank_error(block, rank, needed, n)
    sub = refine(lambda rhs: scipy.linalg.lu_solve((lu, piv), rhs), square.__matmul__, equation.target)
    gamma = np.zeros(n)
    gamma[columns] = sub
    return ScaleSolution(
        gamma,
        np.ones(equation.d_out),
        needed,
        needed,
        condition,
        "direct: LU" + (" on QR-pivoted columns" if n > needed else ""),
        diagnostics={
            "columns": int(columns.size),
            "switched_off": int(n - columns.size),
            "condition_norm": "1-norm (LAPACK gecon estimate)",
            "rank_by": "svd" if by_svd else "lu diagonal",
        },
    )
