"""Solvers of the paper-mode scale equation ``K γ = vec(W)`` behind one interface (docs/design.md §5).

Every method returns a `ScaleSolution` whose ``method`` names what ran and whose ``diagnostics``
hold the solver's own figures (iterations, stop reason, status, chosen columns), so that the
certificate can report them. The convex methods live in `verify.solvers.convex`, the exact one in
`verify.solvers.exact`; this module holds the direct, least-squares and iterative solves and the
dispatch.

* ``direct``: LU on a square ``K``; for ``n > d_out·d_in`` a well-conditioned square column
  subset chosen by QR with column pivoting, the other neurons switched off. ``O(d⁶)``.
* ``lstsq``: minimum-norm least squares on the explicit ``K`` (SVD). ``O(d⁶)``; the baseline.
* ``iterative``: matrix-free LSMR with the two-GEMM `KhatriRaoOperator`: scipy's LSMR for numpy,
  the same iteration in torch on the tensors' device. ``O(d⁴)`` per iteration, memory ``O(d³)``.
* ``auto``: ``direct`` at the exact width, ``lstsq`` up to ``d_out·d_in = 1024``, else ``iterative``.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse.linalg

from verify.core.networks import paper_width
from verify.core.scale_equation import (
    KhatriRaoOperator,
    ScaleSolution,
    check_paper_width,
    khatri_rao,
    rank_error,
    solve_paper,
    square_columns,
)
from verify.core.tolerances import numerical_rank, residual_tolerance

__all__ = ["AUTO_LSTSQ_LIMIT", "METHODS", "choose", "solve_direct", "solve_iterative", "solve_with"]

METHODS = ("auto", "direct", "lstsq", "iterative", "l1", "linf", "box", "min_shift", "exact")
AUTO_LSTSQ_LIMIT = 1024
"""``auto`` uses the explicit ``K`` up to this many equations (``d = 32``), the iterative solver beyond."""

_REFINEMENT_STEPS = 2
_REFINE_BELOW = 16
"""The iterative solver refines (up to `_REFINEMENT_STEPS` more LSMR passes) only while the
componentwise residual ratio is above the certificate's tolerance divided by this factor: each pass
costs a full LSMR run, and at large d the first pass is usually already far inside the tolerance."""
_LSMR_TOL = 1e-15
"""LSMR stopping tolerances ``atol = btol``: below the float64 unit roundoff, so it stops on
``istop = 4/5`` (machine precision) or on convergence of ``‖Kᵀr‖``; refinement follows."""


def solve_direct(a: np.ndarray, b: np.ndarray, w: np.ndarray, *, block: int) -> ScaleSolution:
    """Square solve: LU on ``K`` restricted to ``d_out·d_in`` columns chosen by QR with column pivoting."""
    d_out, _, needed = check_paper_width(a, b, block)
    k = khatri_rao(a, b)
    n = k.shape[1]
    columns = square_columns(k, needed, block)
    square = k[:, columns]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)  # singularity is checked below
        lu, piv = scipy.linalg.lu_factor(square, check_finite=False)
    diagonal = np.sort(np.abs(np.diag(lu)))[::-1]
    if numerical_rank(diagonal, square.shape) < needed:  # LU is not rank-revealing: the SVD says how bad
        rank = numerical_rank(scipy.linalg.svdvals(square), square.shape)
        if rank < needed:
            raise rank_error(block, rank, needed, n)
    rank = needed
    target = w.reshape(-1)
    sub = scipy.linalg.lu_solve((lu, piv), target)
    for _ in range(_REFINEMENT_STEPS):
        sub = sub + scipy.linalg.lu_solve((lu, piv), target - square @ sub)
    gamma = np.zeros(n)
    gamma[columns] = sub
    condition = float(np.linalg.cond(square, 1)) if needed <= 4096 else float("nan")
    return ScaleSolution(
        gamma,
        np.ones(d_out),
        rank,
        needed,
        condition,
        "direct: LU" + (" on QR-pivoted columns" if n > needed else ""),
        diagnostics={"columns": int(columns.size), "switched_off": int(n - columns.size), "condition_norm": "1-norm"},
    )


def solve_iterative(a: Any, b: Any, w: Any, *, block: int) -> ScaleSolution:
    """Matrix-free LSMR on ``K γ = vec(W)`` (never forming ``K``), plus iterative refinement.

    ``a``, ``b``, ``w`` may be numpy arrays (scipy's LSMR with a `KhatriRaoOperator`) or torch
    tensors (the same iteration in torch, on their device; see `verify.solvers.torch_lsmr`). Returns
    ``γ`` as a numpy array. Rank is not computed (that needs the factorization this method
    avoids); ``rank`` reports the needed value when the final residual is at rounding level, and
    the certificate's residual check is what proves the solve.
    """
    if _is_torch(a):
        from verify.solvers.torch_lsmr import lsmr_torch

        d_out, _, needed = check_paper_width(_shape_only(a), _shape_only(b), block)
        tolerance = residual_tolerance(a.shape[1], d_out, needed // d_out) / _REFINE_BELOW
        gamma, info = lsmr_torch(
            a, b, w, atol=_LSMR_TOL, btol=_LSMR_TOL, refinement=_REFINEMENT_STEPS, stop_ratio=tolerance
        )
        return _iterative_solution(gamma, d_out, needed, info, "iterative: LSMR (torch, " + str(a.device) + ")")
    d_out, d_in, needed = check_paper_width(a, b, block)
    operator = KhatriRaoOperator(a, b)
    magnitude = KhatriRaoOperator(np.abs(a), np.abs(b))
    target = w.reshape(-1)
    tolerance = residual_tolerance(a.shape[1], d_out, d_in) / _REFINE_BELOW
    gamma = np.zeros(a.shape[1])
    iterations, stops, ratios = 0, [], []
    residual = target
    for _ in range(1 + _REFINEMENT_STEPS):
        out = scipy.sparse.linalg.lsmr(operator, residual, atol=_LSMR_TOL, btol=_LSMR_TOL, maxiter=20 * needed)
        gamma = gamma + out[0]
        iterations += int(out[2])
        stops.append(int(out[1]))
        condition = float(out[6])
        residual = target - operator.matvec(gamma)
        ratios.append(_ratio(residual, magnitude.matvec(np.abs(gamma)) + np.abs(target)))
        if ratios[-1] <= tolerance:
            break
    info = {"iterations": iterations, "istop": stops, "condition_estimate": condition, "residual_ratios": ratios}
    return _iterative_solution(gamma, d_out, needed, info, "iterative: LSMR (scipy)")


def _ratio(residual: np.ndarray, terms: np.ndarray) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.max(np.where(residual == 0, 0.0, np.abs(residual) / terms), initial=0.0))


def _shape_only(t: Any) -> np.ndarray:
    return np.empty(tuple(t.shape), dtype=np.float64)


def _iterative_solution(gamma: np.ndarray, d_out: int, needed: int, info: dict, method: str) -> ScaleSolution:
    return ScaleSolution(
        np.asarray(gamma, dtype=np.float64),
        np.ones(d_out),
        needed,
        needed,
        float(info["condition_estimate"]),
        method,
        diagnostics=info,
    )


def _is_torch(value: object) -> bool:
    return type(value).__module__.startswith("torch")


def choose(n: int, needed: int) -> str:
    """The method ``auto`` picks for a block with ``n`` neurons and ``needed`` equations."""
    if n == needed:
        return "direct"
    return "lstsq" if needed <= AUTO_LSTSQ_LIMIT else "iterative"


def solve_with(
    method: str, a: np.ndarray, b: np.ndarray, w: np.ndarray, *, block: int, **options: Any
) -> ScaleSolution:
    """Solve block ``block``'s paper-mode scale equation with ``method`` (one of `METHODS` but ``exact``).

    ``options``: ``bound`` (for ``box``), ``image`` (the odd layer's `AffineRange`, for
    ``min_shift``), ``torch_operands`` (tensors on the caller's device, for ``iterative``).
    """
    if method == "auto":
        chosen = choose(a.shape[1], paper_width(a.shape[0], b.shape[1]))
        solution = solve_with(chosen, a, b, w, block=block, **options)
        return replace(solution, method=f"auto -> {solution.method}")
    if method == "lstsq":
        return solve_paper(a, b, w, block=block)
    if method == "direct":
        return solve_direct(a, b, w, block=block)
    if method == "iterative":
        operands = options.get("torch_operands")
        return solve_iterative(*(operands or (a, b, w)), block=block)
    if method in ("l1", "linf", "box", "min_shift"):
        from verify.solvers.convex import solve_convex

        check_paper_width(a, b, block)
        return solve_convex(method, a, b, w, block=block, bound=options.get("bound"), image=options.get("image"))
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")
