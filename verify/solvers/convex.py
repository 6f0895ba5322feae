"""Convex programs for the paper-mode scale equation ``K γ = vec(W)`` (docs/design.md §5), with cvxpy.

* ``l1``: ``min ‖γ‖₁`` — fewest live neurons: an optimal vertex has at most ``d_out·d_in`` non-zeros.
* ``linf``: ``min ‖γ‖_∞`` — the smallest largest scale.
* ``box``: ``|γ| <= C`` (``bound=C``), the smallest ``‖γ‖₂`` inside the box; infeasible when ``C``
  is below the ``linf`` optimum, which is then reported as the smallest ``C`` that works.
* ``min_shift``: ``min Σ_i τ_i`` with the bias shift ``τ_i = max(|γ_i| rad_i − γ_i mid_i + SLACK |γ_i| size_i, 0)``
  of `verify.core.bias_shift`, evaluated on the cvxpy variable (`CVXPY`): convex in ``γ``.
* ``min_bound``: ``min Σ_i v_i (|γ_i| (size_i + 2|μ_i|) + τ_i)``, the proxy of the certified bound of
  `verify.solvers.min_bound` (``min_shift`` weighted, plus the scales' own magnitudes): convex in ``γ``.

Every program is solved on normalized magnitudes (``K`` and ``w`` divided by powers of two near
their largest entries, exact; ``γ`` scales back by their ratio), first by Clarabel (an
interior-point solver shipped as a wheel, silent); a failure or a status other than ``optimal``
(or ``optimal_inaccurate``) is retried with the next of `CONVEX_SOLVERS` that cvxpy has installed
(SciPy's HiGHS, then SCS), and a failure of all of them is a `ConvexSolverError` (a `ValueError`) naming
each solver's status: with ``K`` of full rank every program here has a solution, so that is a
numerical failure, never an infeasible instance (``box`` below its smallest bound is an
`InfeasibleError`, decided from the ``linf`` optimum). A zero ``W`` is solved by ``γ = 0``, optimal
for every program. Interior-point solutions satisfy ``K γ = w`` only to the solver's
tolerance (~1e-9), so each is *polished* to working precision: ``l1`` and ``min_shift`` (linear
programs whose optimum is a vertex) by re-solving ``K γ = w`` exactly on the ``d_out·d_in``
columns with the largest ``|γ|`` (QR with column pivoting on ``K diag(|γ|)``; ``min_bound`` too), ``linf`` and
``box`` by the minimum-norm correction ``γ + K⁺ (w − K γ)``. The solver that succeeded (and any
that failed before it), its status, objective and the polish are recorded in the diagnostics.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg

from verify.core.arithmetic import Arithmetic
from verify.core.bias_shift import bias_shift
from verify.core.domains import AffineRange
from verify.core.errors import InfeasibleError
from verify.core.numerics import refine
from verify.core.scale_equation import ScaleEquation, ScaleSolution, rank_error
from verify.core.tolerances import numerical_rank
from verify.solvers.min_bound import bound_objective, neuron_costs, neuron_weights

__all__ = ["BOX_MARGIN", "CONVEX_SOLVERS", "ConvexSolverError", "cvxpy_arithmetic", "solve_convex"]

BOX_MARGIN = 1e-6
"""The box program is solved with ``|γ| <= C·(1 − BOX_MARGIN)`` when that is still feasible, so that
the polishing correction (of the solver's accuracy, ~1e-9 relative) cannot push ``|γ|`` past ``C``."""

CONVEX_SOLVERS = ("CLARABEL", "SCIPY", "SCS")
"""The solvers tried in turn on a program, those of them that cvxpy has installed: Clarabel
(interior point, accurate), then SciPy's ``linprog`` (HiGHS, for the linear programs ``l1``,
``linf``, ``min_shift``; it declines the quadratic ``box``; cvxpy's own ``HIGHS`` interface prints
a banner), then SCS (first order, less accurate, but it takes every program). The first status
``optimal`` or ``optimal_inaccurate`` wins; the polish and the certificate then judge the result."""

_SOLVER_OPTIONS = {
    "CLARABEL": {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12, "max_iter": 500},
    "SCS": {"eps_abs": 1e-10, "eps_rel": 1e-10, "max_iters": 100_000},
}


class ConvexSolverError(ValueError):
    """Every installed convex solver failed on a program that has a solution (the block's ``K`` has full
    rank, so ``K γ = w`` is solvable and the objective is bounded below): a numerical failure, not an
    infeasible instance. The message lists each solver's status and what to try instead."""


def cvxpy_arithmetic() -> Arithmetic:
    """cvxpy expressions as an `Arithmetic` (for the bias shift as a convex function of the variable ``γ``)."""
    import cvxpy as cp

    return Arithmetic("cvxpy", float, cp.abs, cp.multiply, cp.pos)


def _solve(problem: object, variable: object, method: str, *, block: int) -> tuple[np.ndarray, dict]:
    """Solve ``problem`` with the first of `CONVEX_SOLVERS` (those installed) that reaches an optimum."""
    import cvxpy as cp

    installed = set(cp.installed_solvers())
    attempts: list[str] = []
    for name in (solver for solver in CONVEX_SOLVERS if solver in installed):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "solution may be inaccurate": the polish judges
                problem.solve(solver=name, **_SOLVER_OPTIONS.get(name, {}))
        except cp.error.SolverError as error:
            attempts.append(f"{name}: {str(error).splitlines()[0]}")
            continue
        status = problem.status
        if status in ("optimal", "optimal_inaccurate") and variable.value is not None:
            info = {"solver": f"cvxpy/{name}", "status": status, "objective": float(problem.value)}
            if attempts:
                info["failed_solvers"] = attempts
            return np.asarray(variable.value, dtype=np.float64), info
        attempts.append(f"{name}: status {status!r}")
    raise ConvexSolverError(
        f"block {block}: the {method} program failed with every installed convex solver "
        f"({'; '.join(attempts) or 'none of ' + ', '.join(CONVEX_SOLVERS) + ' is installed'}), although the scale "
        f"equation is solvable (its Khatri–Rao system has full rank); this is a numerical failure of the solvers, "
        f"not an infeasible instance. Try method 'lstsq' or 'direct', or another convex method"
    )


def _power_of_two(value: float) -> float:
    """The power of two nearest ``value > 0``: dividing by it is exact and normalizes magnitudes."""
    return float(2.0 ** np.round(np.log2(value)))


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
    mean: np.ndarray | None = None,
) -> ScaleSolution:
    """Solve block ``block``'s scale equation by the convex program ``method`` (see module notes).

    ``image`` is the odd layer's input range (``min_shift``, ``min_bound``), ``mean`` its running mean
    (``min_bound``; default 0).

    The program is solved on normalized magnitudes: ``K`` and ``w`` are divided by the powers of two
    nearest their largest entries (``γ = x · 2^{e_w − e_K}``, exact), and so is ``min_shift``'s range;
    this changes neither feasibility nor the optimal ``γ``, and keeps the solvers' absolute
    tolerances meaningful for targets of scale 1e4 or frozen weights of scale 2⁶⁰. A zero ``W`` is
    solved by ``γ = 0``, optimal for every program. A failure of every installed solver (`_solve`)
    is a `ConvexSolverError`.
    """
    import cvxpy as cp

    needed = equation.check_paper_width(block)
    if method == "box":
        _check_bound(bound)
    d_out, n, k, target = equation.d_out, equation.n, equation.k, equation.target
    singular = scipy.linalg.svdvals(k)
    rank = numerical_rank(singular, k.shape)
    if rank < needed:
        raise rank_error(block, rank, needed, n)
    condition = float(singular[0] / singular[needed - 1])
    if not np.any(target):
        # W = 0: γ = 0 solves K γ = 0, and every objective (a norm, or a sum of shifts >= 0) is 0 there.
        polished = np.zeros(n)
        info = {"solver": "none", "status": "optimal", "objective": 0.0, "polish": "none: W = 0, so γ = 0"}
    else:
        factor = _power_of_two(np.abs(target).max()) / _power_of_two(np.abs(k).max())  # γ = factor · x
        k_x, w_x = k / _power_of_two(np.abs(k).max()), target / _power_of_two(np.abs(target).max())
        x = cp.Variable(n)
        constraints = [k_x @ x == w_x]
        if method == "box":
            value, info = _solve_box(k_x, w_x, x, constraints, bound, factor, block=block, n=n)
        else:
            shifted = method in ("min_shift", "min_bound")
            objective = _program_objective(method, x, _normalized(image) if shifted else None, equation, mean, image)
            value, info = _solve(cp.Problem(cp.Minimize(objective), constraints), x, method, block=block)
            if method == "linf":
                value = _project(k_x, value, w_x)
                info["polish"] = "minimum-norm correction"
            else:  # linear programs: the optimum is a vertex, re-solved exactly on its support
                value, live = _polish_on_support(k_x, value, w_x, needed)
                info["polish"] = f"exact solve on {live} support columns"
        info["objective"] *= factor
        info["normalization"] = factor
        polished = value * factor
    info["objective_after_polish"] = _objective(method, polished, image, equation, mean)
    if method == "box":
        info["bound"] = float(bound)
    return ScaleSolution(
        polished, np.ones(d_out), rank, needed, condition, f"{method}: {info['solver']} + polish", diagnostics=info
    )


def _range_unit(image: AffineRange) -> float:
    """The power of two near the largest entry of ``image`` (1 for a zero or non-finite range)."""
    largest = max(float(np.max(np.abs(v), initial=0.0)) for v in (image.mid, image.rad, image.size))
    return 1.0 if not np.isfinite(largest) or largest == 0 else _power_of_two(largest)


def _normalized(image: AffineRange | None) -> AffineRange | None:
    """``min_shift``'s range divided by a power of two near its largest entry (the objective scales with it)."""
    if image is None:
        return None
    scale = _range_unit(image)
    return AffineRange(image.mid / scale, image.rad / scale, image.size / scale)


def _check_bound(bound: object) -> None:
    if bound is None or isinstance(bound, bool) or not np.isfinite(bound) or bound <= 0:
        raise ValueError(f"method 'box' needs bound=C, a positive finite number, got {bound!r}")


def _program_objective(
    method: str,
    gamma: object,
    image: AffineRange | None,
    equation: ScaleEquation | None = None,
    mean: np.ndarray | None = None,
    original: AffineRange | None = None,
) -> object:
    """The cvxpy objective of ``l1``, ``linf``, ``min_shift`` or ``min_bound`` in the variable ``gamma``
    (``image``: the normalized range of ``original``; ``min_bound`` scales ``mean`` the same way)."""
    import cvxpy as cp

    if method == "min_bound":
        if image is None or original is None or equation is None:
            raise ValueError("method 'min_bound' needs the odd layer's input range (image)")
        mean = None if mean is None else np.asarray(mean, dtype=np.float64) / _range_unit(original)
        weights = neuron_weights(equation)
        weights = weights / _power_of_two(float(weights.max())) if weights.max() > 0 else weights
        magnitude = cp.multiply(neuron_costs(image, mean), cp.abs(gamma)) + bias_shift(gamma, image, cvxpy_arithmetic())
        return weights @ magnitude
    if method == "l1":
        return cp.norm1(gamma)
    if method == "linf":
        return cp.norm_inf(gamma)
    if method == "min_shift":
        if image is None:
            raise ValueError("method 'min_shift' needs the odd layer's input range (image)")
        return cp.sum(bias_shift(gamma, image, cvxpy_arithmetic()))
    raise ValueError(f"unknown convex method {method!r}")


def _objective(
    method: str,
    gamma: np.ndarray,
    image: AffineRange | None,
    equation: ScaleEquation | None = None,
    mean: np.ndarray | None = None,
) -> float:
    if method == "min_bound":
        return bound_objective(equation, gamma, image, mean)
    if method == "l1":
        return float(np.abs(gamma).sum())
    if method in ("linf", "box"):
        return float(np.abs(gamma).max(initial=0.0))
    return float(bias_shift(gamma, image).sum())


def _solve_box(
    k: np.ndarray,
    target: np.ndarray,
    gamma: object,
    constraints: list,
    bound: float,
    factor: float,
    *,
    block: int,
    n: int,
) -> tuple[np.ndarray, dict]:
    """``box`` on the normalized system (``γ = factor · x``): the bound is compared in ``γ``'s units."""
    import cvxpy as cp

    smallest, _ = _solve(
        cp.Problem(cp.Minimize(_program_objective("linf", gamma, None)), constraints), gamma, "linf", block=block
    )
    least_x = float(np.abs(_project(k, smallest, target)).max())
    least, bound_x = least_x * factor, bound / factor
    if bound < least:
        raise InfeasibleError(
            f"block {block}: no scales with |γ| <= {bound:.6g} solve the scale equation; the smallest bound that "
            f"works is C = {least:.6g} (the min-‖γ‖_∞ solution)",
            block=block,
            width=n,
        )
    inner = bound_x * (1 - BOX_MARGIN) if bound_x * (1 - BOX_MARGIN) >= least_x else bound_x
    program = cp.Problem(cp.Minimize(cp.sum_squares(gamma)), [*constraints, cp.abs(gamma) <= inner])
    value, info = _solve(program, gamma, "box", block=block)
    polished = _project(k, value, target)
    if np.abs(polished).max() > bound_x:
        raise InfeasibleError(
            f"block {block}: bound C = {bound:.6g} is within the solver's accuracy of the smallest feasible bound "
            f"{least:.6g}; use C >= {least * (1 + 10 * BOX_MARGIN):.6g}",
            block=block,
            width=n,
        )
    return polished, info | {
        "polish": "minimum-norm correction",
        "smallest_bound": least,
        "inner_bound": inner * factor,
    }
