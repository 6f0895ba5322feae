"""``iterative``: matrix-free LSMR on ``K γ = vec(W)`` with adaptive refinement (docs/design.md §5).

``K`` is never formed: each product is two GEMMs (`verify.core.scale_equation.KhatriRaoOperator`),
``O(d⁴)`` per iteration and memory ``O(d³)``. numpy equations run scipy's LSMR; torch equations
(or a ``device`` given) run the same iteration in torch on the tensors' device
(`verify.solvers.torch_lsmr`). One refinement loop serves both: after the first pass, up to
`REFINEMENT_STEPS` correction passes run while the componentwise residual ratio
``max |r| / (|K||γ| + |w|)`` is above the certificate's tolerance divided by `REFINE_BELOW`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse.linalg

from verify.core.interop import TorchSpec, is_tensor, to_host
from verify.core.numerics import REFINEMENT_STEPS, residual_ratio
from verify.core.scale_equation import ScaleEquation, ScaleSolution, neuron_rank_error
from verify.core.tolerances import residual_tolerance
from verify.solvers import observer
from verify.solvers.condition import BidiagonalRecorder, bidiagonal_condition

__all__ = ["LSMR_TOL", "REFINE_BELOW", "solve_iterative"]

REFINE_BELOW = 16
"""The iterative solver refines (up to `REFINEMENT_STEPS` more LSMR passes) only while the
componentwise residual ratio is above the certificate's tolerance divided by this factor: each pass
costs a full LSMR run, and at large d the first pass is usually already far inside the tolerance."""
LSMR_TOL = 1e-15
"""LSMR stopping tolerances ``atol = btol``: below the float64 unit roundoff, so it stops on
``istop = 4/5`` (machine precision) or on convergence of ``‖Kᵀr‖``; refinement follows."""

LsmrPass = Callable[[Any], tuple[Any, int, int, float]]
"""One LSMR run on a right-hand side: ``(step, istop, iterations, condition estimate)``, the estimate
from its Golub–Kahan bidiagonal (`verify.solvers.condition.bidiagonal_condition`)."""


def solve_iterative(equation: ScaleEquation, *, block: int, device: TorchSpec | None = None) -> ScaleSolution:
    """Matrix-free LSMR on ``K γ = vec(W)`` (never forming ``K``), plus adaptive refinement.

    With ``device`` (or an equation of torch tensors) the iteration runs in torch on that device.
    It always runs in float64, whatever the dtype of the operands or of the caller's tensors.
    Returns ``γ`` as a numpy array. Rank is not computed (that needs the factorization this method
    avoids); ``rank`` reports the needed value when the final residual is at rounding level, and
    the certificate's residual check is what proves the solve. Duplicated, proportional or dead
    odd neurons are found first (`ScaleEquation.rank_bound`): fewer distinct neurons than
    ``d_out·d_in`` is an `InfeasibleError` naming the block, the rank bound and the width.
    """
    equation = _float64(equation, device)
    needed = equation.check_paper_width(block)
    rank_bound = equation.rank_bound()  # LSMR computes no rank: duplicated or dead neurons are found here
    if rank_bound < needed:
        raise neuron_rank_error(block, rank_bound, needed, equation.n)
    equation, unit = equation.normalized()  # exact: LSMR's conlim stop would depend on ‖K‖ otherwise
    stop_ratio = residual_tolerance(equation.n, equation.d_out, equation.d_in) / REFINE_BELOW
    if is_tensor(equation.a):
        import torch

        from verify.solvers.torch_lsmr import khatri_rao_products, lsmr

        matvec, rmatvec = khatri_rao_products(equation.a, equation.b)

        done = [0]  # iterations of the earlier refinement passes, for the progress callback
        norm_w = float(torch.linalg.vector_norm(equation.target))

        def on_iteration(itn: int, normr: float) -> None:  # a pass's residual is the whole solve's: rhs = w − Kγ
            observer.report(done[0] + itn, normr / norm_w)

        def torch_pass(rhs: Any) -> tuple[Any, int, int, float]:
            alphas: list[float] = []
            betas: list[float] = []
            step, istop, itn, _, _ = lsmr(
                matvec,
                rmatvec,
                rhs,
                equation.n,
                atol=LSMR_TOL,
                btol=LSMR_TOL,
                maxiter=20 * needed,
                record=(alphas, betas),
                on_iteration=on_iteration if observer.observed() and norm_w > 0 else None,
            )
            done[0] += itn
            return step, istop, itn, bidiagonal_condition(alphas, betas)

        start = torch.zeros(equation.n, dtype=equation.a.dtype, device=equation.a.device)
        gamma, info = _refined(equation, torch_pass, start, stop_ratio)
        device_name = str(equation.a.device)
        info["device"] = device_name
        return _solution(
            to_host(gamma) * unit, equation, info | {"normalization": unit}, f"iterative: LSMR (torch, {device_name})"
        )

    operator = _counted(equation.operator) if observer.observed() else equation.operator

    def scipy_pass(rhs: np.ndarray) -> tuple[np.ndarray, int, int, float]:
        recorder = BidiagonalRecorder(operator)  # the same products, α and β read off them
        out = scipy.sparse.linalg.lsmr(recorder, rhs, atol=LSMR_TOL, btol=LSMR_TOL, maxiter=20 * needed)
        return out[0], int(out[1]), int(out[2]), recorder.condition()

    gamma, info = _refined(equation, scipy_pass, np.zeros(equation.n), stop_ratio)
    return _solution(gamma * unit, equation, info | {"normalization": unit}, "iterative: LSMR (scipy)")


def _counted(operator: Any) -> scipy.sparse.linalg.LinearOperator:
    """``operator`` with each ``rmatvec`` (one per scipy LSMR iteration) reported to `observer` (no residual:
    scipy's loop keeps it inside; `_refined` reports it after each pass). The products are ``operator``'s own."""
    calls = [-1]  # scipy's LSMR calls rmatvec once before its first iteration

    def rmatvec(r: np.ndarray) -> np.ndarray:
        calls[0] += 1
        if calls[0] > 0:
            observer.report(calls[0], None)
        return operator.rmatvec(r)

    return scipy.sparse.linalg.LinearOperator(
        operator.shape, matvec=operator.matvec, rmatvec=rmatvec, dtype=operator.dtype
    )


def _float64(equation: ScaleEquation, device: TorchSpec | None) -> ScaleEquation:
    """The equation in float64: on ``device`` (or the tensors' own device) for torch, numpy otherwise.

    The solve never runs in the operands' or the caller's lower precision: a float64 target with a
    float32 frozen network keeps every digit of both (rounding ``W`` to float32 costs ~1e-8).
    """
    operands = (equation.a, equation.b, equation.w)
    if device is None and is_tensor(equation.a):
        device = TorchSpec(equation.a.device, equation.a.dtype)
    if device is not None:
        return ScaleEquation(*(device.solve_tensor(m) for m in operands))
    if all(np.asarray(m).dtype == np.float64 for m in operands):
        return equation
    return ScaleEquation(*(np.asarray(m, dtype=np.float64) for m in operands))


def _refined(equation: ScaleEquation, lsmr_pass: LsmrPass, gamma: Any, stop_ratio: float) -> tuple[Any, dict]:
    """The adaptive refinement loop: LSMR on the residual until its componentwise ratio is below ``stop_ratio``."""
    iterations, stops, ratios, conditions = 0, [], [], []
    residual = equation.target
    for _ in range(1 + REFINEMENT_STEPS):
        step, istop, itn, condition = lsmr_pass(residual)
        conditions.append(condition)
        gamma = gamma + step
        iterations += itn
        stops.append(istop)
        error, terms = equation.residual(gamma)
        residual = -error.reshape(-1)
        ratios.append(residual_ratio(to_host(error), to_host(terms)))
        if observer.observed():
            observer.report(iterations, _relative(error, equation.target))
        if ratios[-1] <= stop_ratio:
            break
    known = [c for c in conditions if not np.isnan(c)]  # a refinement pass on a tiny residual has a short bidiagonal
    info = {
        "iterations": iterations,
        "istop": stops,
        "condition_estimate": max(known) if known else float("nan"),
        "condition_norm": "2-norm (Golub–Kahan bidiagonal of LSMR)",
        "residual_ratios": ratios,
    }
    return gamma, info


def _relative(error: Any, target: Any) -> float:
    """``‖error‖ / ‖target‖`` (for the progress callback), on the host."""
    norm = float(np.linalg.norm(to_host(target)))
    return float(np.linalg.norm(to_host(error))) / norm if norm > 0 else 0.0


def _solution(gamma: Any, equation: ScaleEquation, info: dict, method: str) -> ScaleSolution:
    needed = equation.needed
    return ScaleSolution(
        np.asarray(gamma, dtype=np.float64),
        np.ones(equation.d_out),
        needed,
        needed,
        float(info["condition_estimate"]),
        method,
        diagnostics=info,
    )
