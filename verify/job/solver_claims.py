"""Claims of the verification job about the solvers (docs/design.md §5): the exact certificate and solver speed.

``certificate/exact``
    For small targets (paper mode, ``Ball(1.0)``), ``reconstruct(..., method="exact")`` returns a
    result whose certificate holds, with its exact part (`verify.solvers.exact.ExactCheck`) confirming in
    rational arithmetic a zero scale-equation residual, non-negative activity margins and exact
    agreement ``g(x) = f(x)``. Independently, the same exact check (`verify.solvers.exact.exact_check`) is
    run on the rational solution at fresh rational points, and, as a falsification control, on the
    same solution with one live ``γ`` entry moved by one ulp (`numpy.nextafter`): the control must
    be rejected, which shows the check can fail. Paper mode only: ``method="exact"`` solves the
    paper-mode equation ``K γ = vec(W)``, and ``reconstruct`` refuses it in minimal mode (whose one
    solver is the float SVD null space), so minimal mode has no exact certificate to check.
    Cases: every target of `EXACT_TARGETS` for the grid times every seed of ``config.seeds``.
``solvers/speed``
    One paper-width block ``d_out = d_in = d`` (``d = 32``, or 48 on the full grid), timed in this
    process (best of 3): matrix-free LSMR (``iterative``, width ``2d²``) is at least
    `MIN_ITERATIVE_SPEEDUP` times faster than the dense SVD baseline (``lstsq``) on the same system,
    and ``direct`` (LU at the exact width ``d²``) is timed against ``lstsq`` on its system; every
    solution agrees with ``lstsq``'s to a relative error of at most `MAX_RELATIVE_ERROR`.

Every case is deterministic: target seed ``s``, frozen network ``1000 + s``, fresh points ``2000 + s``;
the speed blocks use seed ``d``.
"""

from __future__ import annotations

import math
import time
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np

import verify
from verify.core.blocks import blocks
from verify.solvers.exact import _q, exact_check, solve_exact
from verify.solvers.registry import solve_with

if TYPE_CHECKING:
    from verify.job.progress import Sweep
    from verify.job.report import Claim, Config

__all__ = [
    "EXACT_POINTS",
    "EXACT_TARGETS",
    "MAX_RELATIVE_ERROR",
    "MIN_ITERATIVE_SPEEDUP",
    "SIZES",
    "SOLVER_CLAIMS",
    "exact_case",
    "solver_claim",
    "speed_rows",
    "speed_verdict",
]

SOLVER_CLAIMS = ("certificate/exact", "solvers/speed")
EXACT_TARGETS = {
    "quick": ((2, 2), (3, 2), (2, 3, 2), (3, 3, 3), (4, 4), (3, 5, 2)),
    "full": ((2, 2), (3, 2), (2, 3, 2), (3, 3, 3), (4, 4), (3, 5, 2), (6, 6), (8, 8, 4)),
}
"""Target widths of ``certificate/exact`` per grid (``custom`` grids use the quick ones)."""
EXACT_POINTS = 32
"""Fresh rational points of the domain at which the claim's own exact check evaluates ``g`` and ``f``."""
SIZES = {"quick": 32, "full": 48, "custom": 32}
"""Block size ``d`` of ``solvers/speed`` per grid."""
MAX_RELATIVE_ERROR = 1e-10
"""Largest accepted ``‖γ − γ_lstsq‖ / ‖γ_lstsq‖`` of ``solvers/speed``."""
MIN_ITERATIVE_SPEEDUP = 3.0
"""Smallest accepted ``lstsq`` time over ``iterative`` time (the benchmark measured 14x at d = 32)."""
_REPEATS = 3


def _rational_float(q: Any) -> float:
    return float(Fraction(int(q.p), int(q.q)))


def _failed_parts(check: Any) -> list[str]:
    parts = [name for name in ("residual_is_zero", "margins_nonnegative", "agree") if not getattr(check, name)]
    return parts or ["nothing"]


def exact_case(widths: tuple[int, ...], seed: int) -> dict[str, Any]:
    """Exact reconstruction of target ``widths`` (seed ``seed``) on ``Ball(1.0)`` with its falsification control.

    The case passes when the certificate of ``reconstruct(..., method="exact")`` holds (with its exact
    part), `verify.solvers.exact.exact_check` confirms the rational solution at `EXACT_POINTS` fresh points,
    and rejects the same solution with its largest live ``γ`` (in block ``1 + seed mod L``) moved by
    one ulp. Returns a JSON-ready dict; never raises (an exception is the case's ``reason``).
    """
    case: dict[str, Any] = {"widths": list(widths), "seed": seed}
    try:
        target = verify.TargetNetwork.random(list(widths), seed=seed)
        frozen = verify.FrozenNetwork.for_target(target, width="paper", seed=1000 + seed)
        start = time.perf_counter()
        result = verify.reconstruct(target, frozen, verify.Ball(1.0), mode="paper", method="exact")
        case["seconds"] = time.perf_counter() - start
        certificate = result.certificate
        exact = certificate.exact
        gammas_q = [solve_exact(b.a, b.b, b.w, block=b.k)[1] for b in blocks(target, frozen)]
        same = all(
            np.array_equal(np.array([_rational_float(g) for g in gamma_q]), result.scales[2 * k])
            for k, gamma_q in enumerate(gammas_q)
        )
        domain = verify.Ball(1.0).resolve(widths[0])
        points = domain.sample(EXACT_POINTS, np.random.default_rng(2000 + seed))
        check = exact_check(target, frozen, domain, gammas_q, points)
        block = seed % len(gammas_q)
        magnitudes = [abs(_rational_float(g)) for g in gammas_q[block]]
        index = int(np.argmax(magnitudes))
        perturbed = [list(gamma_q) for gamma_q in gammas_q]
        value = _rational_float(perturbed[block][index])
        perturbed[block][index] = _q(float(np.nextafter(value, np.inf)))
        control = exact_check(target, frozen, domain, perturbed, points)
        case |= {
            "holds": bool(certificate.holds),
            "exact_holds": bool(exact is not None and exact.holds),
            "residual_is_zero": bool(exact is not None and exact.residual_is_zero),
            "margins_nonnegative": bool(exact is not None and exact.margins_nonnegative),
            "agree": bool(exact is not None and exact.agree),
            "certificate_points": int(exact.points) if exact is not None else 0,
            "min_margin": float(exact.min_margin) if exact is not None else math.nan,
            "same_solution": bool(same),
            "fresh_check_holds": bool(check.holds),
            "fresh_points": int(check.points),
            "max_denominator_bits": max(int(g.q).bit_length() for gamma_q in gammas_q for g in gamma_q),
            "control": {"block": block + 1, "neuron": index, "gamma": value},
            "control_detected": not control.holds,
            "control_failed_parts": _failed_parts(control) if not control.holds else [],
        }
        reasons = []
        if not case["holds"] or not case["exact_holds"]:
            reasons.append(f"certificate does not hold: {'; '.join(certificate.failures()) or 'no exact check'}")
        if not same:
            reasons.append("the rational solution re-solved here is not the one reconstruct used")
        if not check.holds:
            reasons.append(f"exact check at fresh points fails ({', '.join(_failed_parts(check))})")
        if control.holds:
            reasons.append(
                f"control not detected: gamma[{index}] of block {block + 1} moved by one ulp "
                "still passes the exact check"
            )
        case["passed"] = not reasons
        if reasons:
            case["reason"] = "; ".join(reasons)
    except Exception as error:  # recorded as this case's failure, with its reason
        case |= {"passed": False, "control_detected": False, "reason": f"{type(error).__name__}: {error}"}
    return case


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


def _relative(gamma: np.ndarray, reference: np.ndarray) -> float:
    return float(np.linalg.norm(gamma - reference) / np.linalg.norm(reference))


def _residual(a: np.ndarray, b: np.ndarray, w: np.ndarray, gamma: np.ndarray) -> float:
    return float(np.linalg.norm((a * gamma) @ b - w) / np.linalg.norm(w))


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
    for method, n, seconds, baseline, gamma, reference, system in (
        ("lstsq", a.shape[1], t_ls, t_ls, g_ls, g_ls, (a, b, w)),
        ("iterative", a.shape[1], t_it, t_ls, g_it, g_ls, (a, b, w)),
        ("direct", a1.shape[1], t_di, t_ls1, g_di, g_ls1, (a1, b1, w1)),
    ):
        rows.append(
            {
                "method": method,
                "d": d,
                "n": int(n),
                "seconds": seconds,
                "baseline_seconds": baseline,
                "ratio_vs_lstsq": baseline / seconds,
                "relative_error": _relative(gamma, reference),
                "residual": _residual(*system, gamma),
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


def _exact_claim(config: Config, name: str, sweep: Sweep) -> Claim:
    from verify.job.report import Claim

    start = time.perf_counter()
    targets = EXACT_TARGETS["full" if config.grid == "full" else "quick"]
    cases = [(widths, seed) for widths in targets for seed in config.seeds]
    results = sweep.map(exact_case, cases)
    failures = [
        {
            "case": f"paper, exact: widths={r['widths']} seed={r['seed']}",
            "reason": r["reason"],
            "reproduce": (
                'python -c "from verify.job.solver_claims import exact_case; '
                f'print(exact_case({tuple(r["widths"])!r}, {r["seed"]}))"'
            ),
        }
        for r in results
        if not r["passed"]
    ][:20]
    done = [r for r in results if "max_denominator_bits" in r]
    figures = {
        "targets": [list(t) for t in targets],
        "modes": ["paper"],
        "cases": len(results),
        "passed": sum(r["passed"] for r in results),
        "controls_detected": sum(bool(r["control_detected"]) for r in results),
        "max_denominator_bits": max((r["max_denominator_bits"] for r in done), default=0),
        "fresh_points": EXACT_POINTS,
        "seconds": sum(r["seconds"] for r in done),
        "max_case_seconds": max((r["seconds"] for r in done), default=math.nan),
    }
    rows = [{k: v for k, v in r.items() if k != "reason"} for r in results]
    statement = (
        "paper mode, method='exact', Ball(1.0), targets "
        f"{', '.join('x'.join(map(str, t)) for t in targets)}: the certificate holds with residual exactly 0, "
        f"exact margins >= 0 and g = f exactly at rational points; the exact check confirms the rational solution "
        f"at {EXACT_POINTS} fresh points and rejects it with one gamma entry moved by one ulp (control). Paper mode "
        "only: method='exact' solves the paper-mode equation and reconstruct refuses it in minimal mode"
    )
    return Claim(
        name,
        statement,
        "passed" if results and figures["passed"] == len(results) else "failed",
        figures,
        config.command(name),
        rows=rows,
        failures=failures,
        seconds=time.perf_counter() - start,
    )


def _speed_claim(config: Config, name: str) -> Claim:
    from verify.job.report import Claim

    start = time.perf_counter()
    d = SIZES.get(config.grid, SIZES["quick"])
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
            "reproduce": f'python -c "from verify.job.solver_claims import speed_rows; print(speed_rows({d}))"',
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
    return Claim(
        name,
        statement,
        "passed" if passed else "failed",
        figures,
        config.command(name),
        rows=rows,
        failures=failures,
        seconds=time.perf_counter() - start,
    )


def solver_claim(config: Config, name: str, sweep: Sweep) -> Claim:
    """Run ``certificate/exact`` (cases through ``sweep``) or ``solvers/speed`` (in this process).

    See the module docstring for what each claims; an unknown ``name`` raises `ValueError`.
    """
    if name == "certificate/exact":
        return _exact_claim(config, name, sweep)
    if name == "solvers/speed":
        return _speed_claim(config, name)
    raise ValueError(f"claim name must be one of {SOLVER_CLAIMS}, got {name!r}")
