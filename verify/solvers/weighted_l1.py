"""The best γ of a block too narrow to be exact (docs/design.md §11): the weighted ℓ1 objective.

In paper mode (``s' = 1``) a block computes ``Ŵ(γ) = A diag(γ) B`` with ``vec Ŵ = K γ``. On an input
box of centre ``c`` and radii ``r`` (the even shift centring the residual at ``c``) its row ``i``
errs by at most ``Σ_j |(W − Ŵ)_ij| r_j``; the sum over rows is

    min_γ  ‖diag(vec(1 rᵀ)) (K γ − vec W)‖₁

a linear program in ``γ`` (``"l1"``, solved with cvxpy by `verify.solvers.convex`'s solvers). The fast
path (``"lstsq"``) minimizes the same weighted residual in ℓ2 (one SVD least-squares solve); its ℓ1
objective is never below the ℓ1 optimum, and both are reported in the diagnostics. A coordinate
whose radius is 0 weighs nothing: the centring absorbs its whole column exactly.

The unknowns are the scales the frozen block can use: a neuron whose weighted column of ``K`` is 0
(a sparse mask cut its column of ``A`` or its row of ``B``, docs/design.md §4, or it feeds only rows
and inputs that weigh nothing) cannot change ``Ŵ`` and gets ``γ_i = 0`` (switched off) instead of
whatever value the program would leave it; the others are the program's variables.

On a ball of radius ``R`` (the first block of a ball domain) row ``i``'s worst case is ``R ‖(W − Ŵ)_i‖₂``
exactly, and the objective is ``R Σ_i ‖(W − Ŵ)_i‖₂`` instead (``ball=True``): a second-order cone program
for ``"l1"``, and plain least squares, which minimizes ``Σ_i ‖(W − Ŵ)_i‖₂²``, for ``"lstsq"``.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from verify.core.scale_equation import ScaleEquation, ScaleSolution

__all__ = ["APPROXIMATE_METHODS", "solve_weighted", "weighted_objective"]

APPROXIMATE_METHODS = ("l1", "lstsq")
"""``"l1"``: the weighted ℓ1 program (cvxpy); ``"lstsq"``: weighted least squares, the fast path."""


def weighted_objective(equation: ScaleEquation, gamma: np.ndarray, radii: np.ndarray, ball: bool = False) -> np.ndarray:
    """Per output row ``i``: ``Σ_j |(W − A diag(γ) B)_ij| r_j``, the row's worst-case error on the centred box
    (``ball=True``: ``r ‖(W − Ŵ)_i‖₂``, on the ball of radius ``r = radii[0]``)."""
    error, _ = equation.residual(gamma)
    if ball:
        return float(np.max(radii, initial=0.0)) * np.linalg.norm(error, axis=1)
    return np.abs(error) @ np.asarray(radii, dtype=np.float64)


def solve_weighted(
    equation: ScaleEquation,
    radii: np.ndarray,
    method: str,
    *,
    block: int,
    ball: bool = False,
    rows: np.ndarray | None = None,
) -> ScaleSolution:
    """The ``γ`` (with ``s' = 1``) minimizing the block's weighted objective by ``method`` (`APPROXIMATE_METHODS`);
    ``ball=True``: the block's input region is a ball of radius ``radii[0]`` (module notes). ``rows`` (default 1)
    weighs each output row's worst case in the sum (how much the later layers amplify it)."""
    if method not in APPROXIMATE_METHODS:
        raise ValueError(f"the approximate objective is solved by one of {APPROXIMATE_METHODS}, got {method!r}")
    radii = np.asarray(radii, dtype=np.float64)
    rows = np.ones(equation.d_out) if rows is None else np.asarray(rows, dtype=np.float64)
    weights = np.outer(rows, radii).reshape(-1)  # row-major vec: entry (i, j) sits at i·d_in + j
    k, w = np.asarray(equation.k), np.asarray(equation.target).reshape(-1)
    live = weights > 0
    kw, ww = k[live] * weights[live, None], w[live] * weights[live]
    allowed = np.flatnonzero(np.any(kw != 0, axis=0))  # the neurons that can change Ŵ (module notes)
    kw = kw[:, allowed]
    singular = scipy.linalg.svdvals(kw) if kw.size else np.zeros(0)
    rank = int(np.count_nonzero(singular > singular.max(initial=0.0) * max(kw.shape, default=1) * 2.0**-52))
    condition = float(singular[0] / singular[rank - 1]) if rank else float("inf")

    def full(values: np.ndarray) -> np.ndarray:  # every neuron's γ, 0 where the block cannot use it
        gamma = np.zeros(equation.n)
        gamma[allowed] = values
        return gamma

    least = full(scipy.linalg.lstsq(kw, ww, lapack_driver="gelsd")[0] if kw.size else np.zeros(allowed.size))

    def objective(gamma: np.ndarray) -> float:
        return float(rows @ weighted_objective(equation, gamma, radii, ball))

    diagnostics = {"lstsq_objective": objective(least), "allowed_neurons": int(allowed.size)}
    gamma = least
    if method == "l1" and kw.size:
        import cvxpy as cp

        from verify.solvers.convex import _solve

        scale = float(np.max(np.abs(ww), initial=0.0)) or 1.0  # the program on magnitudes near 1
        variable = cp.Variable(allowed.size)
        residual = kw @ variable - ww / scale
        if ball:  # rows of W are consecutive blocks of d_in entries of vec W (all radii equal and > 0)
            matrix = cp.reshape(residual, (int(np.count_nonzero(rows)), equation.d_in), order="C")
            objective_expression = cp.sum(cp.norm(matrix, 2, axis=1))
        else:
            objective_expression = cp.norm1(residual)
        problem = cp.Problem(cp.Minimize(objective_expression))
        solved, info = _solve(problem, variable, "weighted l1", block=block)
        solved = full(solved * scale)
        diagnostics |= info | {"l1_objective": objective(solved)}
        if (
            diagnostics["l1_objective"] <= diagnostics["lstsq_objective"]
        ):  # the LP's optimum, unless the solver was inaccurate
            gamma = solved
    diagnostics["objective"] = objective(gamma)
    return ScaleSolution(
        scale=gamma,
        row_scale=np.ones(equation.d_out),
        rank=rank,
        needed=equation.needed,
        condition=condition,
        method=f"approximate {method} ({'ball: row 2-norms' if ball else 'weighted by the input radii'})",
        diagnostics=diagnostics,
    )
