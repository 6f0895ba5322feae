"""The paper-width probe block ``[100, 30]``: how LSMR, its preconditioners, ``direct`` and ``auto`` fare on
the square Khatri–Rao system (``n = d_out·d_in = 3000``), and LSMR at twice that width.

Run with ``python benchmarks/bench.py solver_probe`` (part of ``nox -s bench``) or ``python
benchmarks/solver_probe.py``. Every ratio is against plain LSMR measured in the same run. The LSMR
variants are single scipy LSMR passes on the normalized equation with the library's tolerances
(`verify.solvers.iterative.LSMR_TOL`); ``iterative``, ``direct`` and ``auto`` are the library's solvers
(refinement included). The preconditioners are right preconditioners ``K M⁻¹``, ``γ = M⁻¹ y``:

* column scaling: ``M = diag(‖a_i‖ ‖b_i‖)``, the column norms of ``K``;
* block Jacobi: ``M = R``, the Cholesky factors of the diagonal blocks (``BLOCK`` neurons each) of the
  Gram matrix ``KᵀK = (AᵀA) ∘ (BBᵀ)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse.linalg
from rich.console import Console
from rich.table import Table

import verify
from verify.core.blocks import blocks
from verify.core.scale_equation import ScaleEquation
from verify.solvers.condition import BidiagonalRecorder
from verify.solvers.iterative import LSMR_TOL
from verify.solvers.registry import solve

WIDTHS = [100, 30]
BLOCK = 100
"""Neurons per diagonal block of the block-Jacobi preconditioner (30 blocks at the probe's width)."""


def probe_equation(width: object) -> ScaleEquation:
    """The scale equation of the probe block ``[100, 30]`` (target seed 0) in a frozen network of ``width`` (seed 1)."""
    target = verify.TargetNetwork.random(WIDTHS, seed=0)
    return next(blocks(target, verify.FrozenNetwork.for_target(target, width, seed=1))).equation


def _column_scaling(equation: ScaleEquation) -> tuple[Callable, Callable]:
    scale = 1 / (np.linalg.norm(equation.a, axis=0) * np.linalg.norm(equation.b, axis=1))
    return (lambda y: scale * y), (lambda g: scale * g)


def _block_jacobi(equation: ScaleEquation) -> tuple[Callable, Callable]:
    factors = []
    for start in range(0, equation.n, BLOCK):
        part = slice(start, min(start + BLOCK, equation.n))
        a, b = equation.a[:, part], equation.b[part]
        factors.append((part, scipy.linalg.cholesky((a.T @ a) * (b @ b.T))))

    def apply(y: np.ndarray) -> np.ndarray:  # M⁻¹ y, M = blockdiag(R)
        return np.concatenate([scipy.linalg.solve_triangular(r, y[part]) for part, r in factors])

    def apply_t(g: np.ndarray) -> np.ndarray:  # M⁻ᵀ g
        return np.concatenate([scipy.linalg.solve_triangular(r, g[part], trans="T") for part, r in factors])

    return apply, apply_t


def _lsmr(equation: ScaleEquation, preconditioner: Callable | None) -> dict[str, Any]:
    start = time.perf_counter()
    equation = equation.normalized()[0]
    operator = equation.operator
    apply, apply_t = preconditioner(equation) if preconditioner else ((lambda y: y), (lambda g: g))
    shape = operator.shape
    right = scipy.sparse.linalg.LinearOperator(
        shape, matvec=lambda y: operator.matvec(apply(y)), rmatvec=lambda r: apply_t(operator.rmatvec(r)), dtype=float
    )
    recorder = BidiagonalRecorder(right)
    out = scipy.sparse.linalg.lsmr(recorder, equation.target, atol=LSMR_TOL, btol=LSMR_TOL, maxiter=20 * shape[0])
    gamma = apply(out[0])
    seconds = time.perf_counter() - start
    error = np.linalg.norm(operator.matvec(gamma) - equation.target) / np.linalg.norm(equation.target)
    return {"seconds": seconds, "iterations": int(out[2]), "condition": recorder.condition(), "error": error}


def _library(method: str, equation: ScaleEquation) -> dict[str, Any]:
    start = time.perf_counter()
    solution = solve(method, equation, block=1)
    seconds = time.perf_counter() - start
    residual = equation.operator.matvec(solution.scale) - equation.target
    return {
        "seconds": seconds,
        "iterations": solution.diagnostics.get("iterations"),
        "condition": solution.condition,
        "error": float(np.linalg.norm(residual) / np.linalg.norm(equation.target)),
        "method": solution.method,
    }


def bench_solver_probe(table: Table) -> None:
    """Rows of the probe: iterations, time and condition estimate, ratios against plain LSMR of this run."""
    square, wide = probe_equation("paper"), probe_equation(2.0)
    runs = [
        ("LSMR plain (baseline)", _lsmr(square, None)),
        ("LSMR, column scaling", _lsmr(square, _column_scaling)),
        (f"LSMR, block Jacobi ({BLOCK}-neuron blocks of (AᵀA)∘(BBᵀ))", _lsmr(square, _block_jacobi)),
        ("iterative (library, with refinement)", _library("iterative", square)),
        ("direct (library)", _library("direct", square)),
        ("auto (library)", _library("auto", square)),
        ("LSMR plain at 2× width", _lsmr(wide, None)),
    ]
    base = runs[0][1]
    for name, run in runs:
        iterations = run["iterations"]
        ratio = f"{base['seconds'] / run['seconds']:.2f}x faster"
        if iterations:
            ratio += f", {base['iterations'] / iterations:.2f}x fewer iterations"
        table.add_row(
            f"probe [100, 30], n = {square.n if '2×' not in name else wide.n}: {name}",
            f"{run['seconds']:.2f} s",
            "",
            ratio,
            f"{iterations if iterations else '-'} iterations, condition {run['condition']:.3g}, "
            f"rel residual {run['error']:.1e}" + (f", ran {run['method']}" if "method" in run else ""),
        )


if __name__ == "__main__":
    table = Table(title="verify benchmarks: solver_probe")
    for column in ("benchmark", "time", "peak memory", "ratio vs baseline (same run)", "result"):
        table.add_column(column)
    bench_solver_probe(table)
    Console(width=200).print(table)
