"""Convex programs for the paper-mode scale equation ``K γ = vec(W)`` (docs/design.md §5), with cvxpy.

* ``l1``: ``min ‖γ‖₁`` — fewest live neurons: an optimal vertex has at most ``d_out·d_in`` non-zeros.
* ``linf``: ``min ‖γ‖_∞`` — the smallest largest scale.
* ``box``: ``|γ| <= C`` (``bound=C``), the smallest ``‖γ‖₂`` inside the box; infeasible when ``C``
  is below the ``linf`` optimum, which is then reported as the smallest ``C`` that works.
* ``min_shift``: ``min Σ_i τ_i`` with the bias shift ``τ_i = max(|γ_i| rad_i − γ_i mid_i + SLACK |γ_i| size_i, 0)``
  of `verify.core.bias_shift`, evaluated on the cvxpy variable (`CVXPY`): convex in ``γ``.

Every program is solved by Clarabel (an interior-point solver shipped as a wheel, silent); its
status must be ``optimal``. Interior-point solutions satisfy ``K γ = w`` only to the solver's
tolerance (~1e-9), so each is *polished* to working precision: ``l1`` and ``min_shift`` (linear
programs whose optimum is a vertex) by re-solving ``K γ = w`` exactly on the ``d_out·d_in``
columns with the largest ``|γ|`` (QR with column pivoting on ``K diag(|γ|)``), ``linf`` and
``box`` by the minimum-norm correction ``γ + K⁺ (w − K γ)``. The solver's status, objective and
the polish are recorded in the diagnostics.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from verify.core.arithmetic import Arithmetic
from verify.core.bias_shift import bias_shift
from verify.core.domains import AffineRange
from verify.core.errors import InfeasibleError
from verify.core.numerics import refine
from verify.core.scale_equation import ScaleEquation, ScaleSolution, rank_error
from verify.core.tolerances import numerical_rank

__all__ = ["BOX_MARGIN", "cvxpy_arithmetic", "solve_convex"]

BOX_MARGIN = 1e-6
"""The box program is solved with ``|γ| <= C·(1 − BOX_MARGIN)`` when that is still feasible, so that
the polishing correction (of the solver's accuracy, ~1e-9 relative) cannot push ``|γ|`` past ``C``."""

_SOLVER_OPTIONS = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12, "max_iter": 500}


def cvxpy_arithmetic() -> Arithmetic:
    """cvxpy expressions as an `Arithmetic` (for the bias shift as a convex function of the variable ``γ``)."""
    import cvxpy as cp

    return Arithmetic("cvxpy", float, cp.abs, cp.multiply, cp.pos)


def _solve(problem: object, variable: object, method: str) -> tuple[np.ndarray, dict]:
    import cvxpy as cp

    try:
        problem.solve(solver=cp.CLARABEL, **_SOLVER_OPTIONS)
    except cp.error.SolverError as error:
        raise ArithmeticError(f"cvxpy/Clarabel failed on the {method} program: {error}") from None
    status = problem.status
    info = {"solver": "cvxpy/CLARABEL", "status": status, "objective": float(problem.value)}
    if status not in ("optimal", "optimal_inaccurate") or variable.value is None:
        raise ArithmeticError(f"cvxpy/Clarabel returned status {status!r} on the {method} program")
    return np.asarray(variable.value, dtype=np.float64), info


def _least_squares(matrix: np.ndarray) -> object:
    return lambda rhs: scipy.linalg.lstsq(matrix, rhs, lapack_driver="gelsd")[0]


def _project(k: np.ndarray, gamma: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The minimum-norm correction ``γ + K⁺ (w − K γ)``, refined."""
    return refine(_least_squares(k), k.__matmul__, w, start=gamma)


def _polish_on_support(k: np.ndarray, gamma: np.ndarray, w: np.ndarray, needed: int) -> tuple[np.ndarray, int]:
    """Exact solve of ``K γ = w`` on the ``needed`` columns QR-pivoting picks from ``K diag(|γ|)``."""
    _, r, pivots = scipy.linalg.qr(k * np.abs(gamma), mode="economic", pivoting=True)
    diagonal = np.abs(np.diag(r))
    rank = numerical_rank(diagonal, k.shape)
    columns = np.sort(pivots[:rank])
    square = k[:, columns]
    sub = refine(_least_squares(square), square.__matmul__, w)
    polished = np.zeros_like(gamma)
    polished[columns] = sub
    return polished, int(columns.size)


def solve_convex(
    method: str,
    equation: ScaleEquation,
    *,
    block: int,
    bound: float | None = None,
    image: AffineRange | None = None,
) -> ScaleSolution:
    """Solve block ``block``'s scale equation by the convex program ``method`` (see module notes)."""
    import cvxpy as cp

    needed = equation.check_paper_width(block)
    d_out, n, k, target = equation.d_out, equation.n, equation.k, equation.target
    gamma = cp.Variable(n)
    constraints = [k @ gamma == target]
    singular = scipy.linalg.svdvals(k)
    rank = numerical_rank(singular, k.shape)
    if rank < needed:
        raise rank_error(block, rank, needed, n)
    condition = float(singular[0] / singular[needed - 1])
    if method == "box":
        polished, info = _solve_box(k, target, gamma, constraints, bound, block=block, n=n)
    else:
        objective = _program_objective(method, gamma, image)
        value, info = _solve(cp.Problem(cp.Minimize(objective), constraints), gamma, method)
        if method == "linf":
            polished = _project(k, value, target)
            info["polish"] = "minimum-norm correction"
        else:  # linear programs: the optimum is a vertex, re-solved exactly on its support
            polished, live = _polish_on_support(k, value, target, needed)
            info["polish"] = f"exact solve on {live} support columns"
    info["objective_after_polish"] = _objective(method, polished, image)
    if method == "box":
        info["bound"] = float(bound)
    return ScaleSolution(
        polished, np.ones(d_out), rank, needed, condition, f"{method}: cvxpy/CLARABEL + polish", diagnostics=info
    )


def _program_objective(method: str, gamma: object, image: AffineRange | None) -> object:
    """The cvxpy objective of ``l1``, ``linf`` or ``min_shift`` in the variable ``gamma``."""
    import cvxpy as cp

    if method == "l1":
        return cp.norm1(gamma)
    if method == "linf":
        return cp.norm_inf(gamma)
    if method == "min_shift":
        if image is None:
            raise ValueError("method 'min_shift' needs the odd layer's input range (image)")
        return cp.sum(bias_shift(gamma, image, cvxpy_arithmetic()))
    raise ValueError(f"unknown convex method {method!r}")


def _objective(method: str, gamma: np.ndarray, image: AffineRange | None) -> float:
    if method == "l1":
        return float(np.abs(gamma).sum())
    if method in ("linf", "box"):
        return float(np.abs(gamma).max(initial=0.0))
    return float(bias_shift(gamma, image).sum())


def _solve_box(
    k: np.ndarray, target: np.ndarray, gamma: object, constraints: list, bound: float | None, *, block: int, n: int
) -> tuple[np.ndarray, dict]:
    import cvxpy as cp

    if bound is None or isinstance(bound, bool) or not np.isfinite(bound) or bound <= 0:
        raise ValueError(f"method 'box' needs bound=C, a positive finite number, got {bound!r}")
    smallest, _ = _solve(cp.Problem(cp.Minimize(_program_objective("linf", gamma, None)), constraints), gamma, "linf")
    least = float(np.abs(_project(k, smallest, target)).max())
    if bound < least:
        raise InfeasibleError(
            f"block {block}: no scales with |γ| <= {bound:.6g} solve the scale equation; the smallest bound that "
            f"works is C = {least:.6g} (the min-‖γ‖_∞ solution)",
            block=block,
            width=n,
        )
    inner = bound * (1 - BOX_MARGIN) if bound * (1 - BOX_MARGIN) >= least else bound
    program = cp.Problem(cp.Minimize(cp.sum_squares(gamma)), [*constraints, cp.abs(gamma) <= inner])
    value, info = _solve(program, gamma, "box")
    polished = _project(k, value, target)
    if np.abs(polished).max() > bound:
        raise InfeasibleError(
            f"block {block}: bound C = {bound:.6g} is within the solver's accuracy of the smallest feasible bound "
            f"{least:.6g}; use C >= {least * (1 + 10 * BOX_MARGIN):.6g}",
            block=block,
            width=n,
        )
    return polished, info | {"polish": "minimum-norm correction", "smallest_bound": least, "inner_bound": inner}
