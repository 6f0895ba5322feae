"""Claim ``solvers/speed``: the solver speed ratios, measured in this run (docs/design.md §5).

One paper-width block ``d_out = d_in = d`` (size ``d``: 32, or 48 on the full grid), timed in this
process (best of 3): matrix-free LSMR (``iterative``, width ``2d²``) is at least
`MIN_ITERATIVE_SPEEDUP` times faster than the dense SVD baseline (``lstsq``) on the same system,
and ``direct`` (LU at the exact width ``d²``) is timed against ``lstsq`` on its system; every
solution agrees with ``lstsq``'s to a relative error of at most `MAX_RELATIVE_ERROR`. The blocks
use seed ``d``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from verify.job.claim import Claim, python_command
from verify.job.config import Config
from verify.job.progress import Sweep
from verify.job.registry import Section, register, statement_and_rows
from verify.solvers.registry import solve_with

__all__ = ["MAX_RELATIVE_ERROR", "MIN_ITERATIVE_SPEEDUP", "speed_rows", "speed_verdict"]

MAX_RELATIVE_ERROR = 1e-10
"""Largest accepted ``‖γ − γ_lstsq‖ / ‖γ_lstsq‖``."""
MIN_ITERATIVE_SPEEDUP = 3.0
"""Smallest accepted ``lstsq`` time over ``iterative`` time (the benchmark measured 14x at d = 32)."""
_REPEATS = 3


def _dense_block(d: int, factor: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The benchmark's dense block: ``A`` (d × n), ``B`` (n × d), ``W`` (d × d), ``n = ceil(factor·d²)``."""
    rng = np.random.default_rng(seed)
    n = int(np.ceil(factor * d * d))
    # The benchmark draws a density mask (all ones here); drawing it keeps the same random numbers.
    a = rng.standard_normal((d, n)) * (rng.uniform(size=(d, n)) < 1.0)
    b = rng.standard_normal((n, d)) * (rng.uniform(size=(n, d)) < 1.0)
    return a, b, rng.standard_normal((d, d))


def _best(method: str, a: np.ndarray, b: np.ndarray, w: np.ndarray) -> tuple[float, np.ndarray]:
    best, gamma = math.inf, np.zeros(0)
    for _ in range(_REPEATS):
        start = time.perf_counter()
        gamma = solve_with(method, a, b, w, block=1).scale
        best = min(best, time.perf_counter() - start)
    return best, gamma


def speed_rows(d: int) -> list[dict[str, Any]]:
    """Time ``lstsq``, ``iterative`` (width ``2d²``) and ``direct`` (width ``d²``) on one block, best of 3.

    One row per method: ``method``, ``d``, ``n`` (odd-layer width), ``seconds``,
    ``baseline_seconds`` (``lstsq`` on the same system), ``ratio_vs_lstsq`` (baseline over
    ``seconds``: above 1 is faster), ``relative_error`` (``‖γ − γ_lstsq‖ / ‖γ_lstsq‖``; both
    widths' systems have a unique minimum-norm solution) and ``residual`` (``‖A diag(γ) B − W‖ / ‖W‖``).
    """
    rows = []
    a, b, w = _dense_block(d, 2.0, seed=d)
    t_ls, g_ls = _best("lstsq", a, b, w)
    t_it, g_it = _best("iterative", a, b, w)
    a1, b1, w1 = _dense_block(d, 1.0, seed=d)
    t_ls1, g_ls1 = _best("lstsq", a1, b1, w1)
    t_di, g_di = _best("direct", a1, b1, w1)
    for method, seconds, baseline, gamma, reference, (sa, sb, sw) in (
        ("lstsq", t_ls, t_ls, g_ls, g_ls, (a, b, w)),
        ("iterative", t_it, t_ls, g_it, g_ls, (a, b, w)),
        ("direct", t_di, t_ls1, g_di, g_ls1, (a1, b1, w1)),
    ):
        rows.append(
            {
                "method": method,
                "d": d,
                "n": int(sa.shape[1]),
                "seconds": seconds,
                "baseline_seconds": baseline,
                "ratio_vs_lstsq": baseline / seconds,
                "relative_error": float(np.linalg.norm(gamma - reference) / np.linalg.norm(reference)),
                "residual": float(np.linalg.norm((sa * gamma) @ sb - sw) / np.linalg.norm(sw)),
            }
        )
    return rows


def speed_verdict(rows: list[dict[str, Any]]) -> tuple[bool, list[str]]:
    """Decide ``solvers/speed`` from its rows: ``(passed, reasons it failed)``.

    Passes iff rows for ``lstsq``, ``iterative`` and ``direct`` are present, every
    ``relative_error`` is at most `MAX_RELATIVE_ERROR`, and ``iterative``'s ``ratio_vs_lstsq`` is at
    least `MIN_ITERATIVE_SPEEDUP`. NaN figures fail.
    """
    reasons = []
    by_method = {row["method"]: row for row in rows}
    for method in ("lstsq", "iterative", "direct"):
        if method not in by_method:
            reasons.append(f"no row for {method}")
    for row in rows:
        if not row["relative_error"] <= MAX_RELATIVE_ERROR:
            reasons.append(
                f"{row['method']}: relative error {row['relative_error']:.3g} against lstsq "
                f"exceeds {MAX_RELATIVE_ERROR:g}"
            )
    iterative = by_method.get("iterative")
    if iterative is not None and not iterative["ratio_vs_lstsq"] >= MIN_ITERATIVE_SPEEDUP:
        reasons.append(
            f"iterative: {iterative['ratio_vs_lstsq']:.3g}x faster than lstsq, below the required "
            f"{MIN_ITERATIVE_SPEEDUP:g}x"
        )
    return not reasons, reasons


_COLUMNS = {
    "method": "method",
    "d": "d",
    "n": "n",
    "seconds": "seconds",
    "lstsq on the same system (s)": "baseline_seconds",
    "speed-up vs lstsq": "ratio_vs_lstsq",
    "relative difference to lstsq": "relative_error",
}


_STATEMENT = """\
Solver speed ratios measured in this run: iterative (LSMR) and direct
against dense lstsq, each solution within 1e-10 of lstsq's."""


@register(
    "solvers/speed",
    order=80,
    statement=_STATEMENT,
    summary=(
        "d = {d}: iterative {iterative_ratio_vs_lstsq:.1f}x and direct {direct_ratio_vs_lstsq:.1f}x faster than lstsq; "
        "max relative difference {max_relative_error:sci}"
    ),
    sizes={"quick": {"d": 32}, "full": {"d": 48}},
    section=Section("Solver speed", 70, statement_and_rows(_COLUMNS)),
)
def run(config: Config, name: str, sweep: Sweep) -> Claim:
    """Check ``solvers/speed`` in this process (timings are not sent to the sweep's workers)."""
    start = time.perf_counter()
    d = config.sizes_for("solvers/speed")["d"]
    try:
        rows = speed_rows(d)
        passed, reasons = speed_verdict(rows)
    except Exception as error:  # recorded as the claim's failure, with its reason
        rows, passed, reasons = [], False, [f"{type(error).__name__}: {error}"]
    by_method = {row["method"]: row for row in rows}
    figures: dict[str, Any] = {"d": d, "repeats": _REPEATS}
    for method in ("lstsq", "iterative", "direct"):
        row = by_method.get(method, {})
        figures[f"{method}_seconds"] = row.get("seconds", math.nan)
        if method != "lstsq":
            figures[f"{method}_ratio_vs_lstsq"] = row.get("ratio_vs_lstsq", math.nan)
    figures["max_relative_error"] = max((row["relative_error"] for row in rows), default=math.nan)
    failures = [
        {
            "case": f"one block d={d}",
            "reason": reason,
            "reproduce": python_command(f"from {__name__} import speed_rows", f"print(speed_rows({d}))"),
        }
        for reason in reasons
    ]
    statement = (
        f"one paper-width block d_out = d_in = {d}, best of {_REPEATS} in this run: iterative (LSMR on the "
        f"Khatri-Rao operator, n = 2d²) is at least {MIN_ITERATIVE_SPEEDUP:g}x faster than lstsq (dense SVD) on the "
        f"same system, direct (LU, n = d²) is timed against lstsq on its system, and every solution is within "
        f"relative error {MAX_RELATIVE_ERROR:g} of lstsq's. The speed threshold is deliberately far below the 14x "
        f"the benchmark measured at d = 32 on this 2-core machine, because machines are shared and noisy"
    )
    return Claim.checked(
        name, statement, passed, figures, config.command(name), started=start, rows=rows, failures=failures
    )
