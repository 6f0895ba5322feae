"""Claim ``certificate/exact``: the exact rational certificate, with a control that bites (docs/design.md §5, §6).

For small targets (paper mode, ``Ball(1.0)``), ``reconstruct(..., method="exact")`` returns a
result whose certificate holds, with its exact part (`verify.solvers.exact.ExactCheck`) confirming
in rational arithmetic a zero scale-equation residual, non-negative activity margins and exact
agreement ``g(x) = f(x)``. Independently, the same exact check (`verify.solvers.exact.exact_check`)
is run on the rational solution at fresh rational points, and, as a falsification control, on the
same solution with one live ``γ`` entry moved by one ulp (`numpy.nextafter`): the control must be
rejected, which shows the check can fail. Paper mode only: ``method="exact"`` solves the paper-mode
equation ``K γ = vec(W)``, and ``reconstruct`` refuses it in minimal mode (whose one solver is the
float SVD null space), so minimal mode has no exact certificate to check.

Sizes: ``targets`` (their widths) and ``points`` (fresh rational points of the claim's own check);
cases are every target times every seed of ``config.seeds``: target seed ``s``, frozen network
``1000 + s``, fresh points ``2000 + s``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

import verify
from verify.core.blocks import blocks
from verify.job.claim import Claim, first_failures, python_command
from verify.job.config import Config
from verify.job.progress import Sweep
from verify.job.registry import Section, register, statement_and_rows
from verify.solvers.exact import _float, _q, exact_check, solve_exact

__all__ = ["exact_case"]

_POINTS = 32
"""Fresh rational points of the domain at which the claim's own exact check evaluates ``g`` and ``f``."""


def _failed_parts(check: Any) -> list[str]:
    parts = [name for name in ("residual_is_zero", "margins_nonnegative", "agree") if not getattr(check, name)]
    return parts or ["nothing"]


def exact_case(widths: tuple[int, ...], seed: int, points: int = _POINTS) -> dict[str, Any]:
    """Exact reconstruction of target ``widths`` (seed ``seed``) on ``Ball(1.0)`` with its falsification control.

    The case passes when the certificate of ``reconstruct(..., method="exact")`` holds (with its exact
    part), `verify.solvers.exact.exact_check` confirms the rational solution at ``points`` fresh points,
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
            np.array_equal(np.array([_float(g) for g in gamma_q]), result.scales[2 * k])
            for k, gamma_q in enumerate(gammas_q)
        )
        domain = verify.Ball(1.0).resolve(widths[0])
        fresh = domain.sample(points, np.random.default_rng(2000 + seed))
        check = exact_check(target, frozen, domain, gammas_q, fresh)
        block = seed % len(gammas_q)
        magnitudes = [abs(_float(g)) for g in gammas_q[block]]
        index = int(np.argmax(magnitudes))
        perturbed = [list(gamma_q) for gamma_q in gammas_q]
        value = _float(perturbed[block][index])
        perturbed[block][index] = _q(float(np.nextafter(value, np.inf)))
        control = exact_check(target, frozen, domain, perturbed, fresh)
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


_COLUMNS = {
    "target": "widths",
    "seed": "seed",
    "certificate": "exact_holds",
    "denominator bits": "max_denominator_bits",
    "one-ulp control rejected by": "control_failed_parts",
    "seconds": "seconds",
}


_STATEMENT = """\
reconstruct(method="exact") on small targets: the rational certificate
(python-flint) proves residual exactly 0 and g = f exactly on rational
points, and rejects a solution perturbed by one ulp (a control)."""


@register(
    "certificate/exact",
    order=40,
    statement=_STATEMENT,
    summary=(
        "{passed}/{cases} exact certificates (residual exactly 0, g = f exactly on {fresh_points} rational points); "
        "perturbed controls rejected {controls_detected}/{cases}; denominators up to {max_denominator_bits} bits"
    ),
    sizes={
        "quick": {"targets": ((2, 2), (3, 2), (2, 3, 2), (3, 3, 3), (4, 4), (3, 5, 2)), "points": _POINTS},
        "full": {
            "targets": ((2, 2), (3, 2), (2, 3, 2), (3, 3, 3), (4, 4), (3, 5, 2), (6, 6), (8, 8, 4)),
            "points": _POINTS,
        },
    },
    section=Section("Exact rational certificate", 60, statement_and_rows(_COLUMNS)),
)
def run(config: Config, name: str, sweep: Sweep) -> Claim:
    """Check ``certificate/exact`` (see the module docstring), cases through ``sweep``."""
    start = time.perf_counter()
    sizes = config.sizes_for("certificate/exact")
    targets, points = sizes["targets"], sizes["points"]
    results = sweep.map(exact_case, [(widths, seed, points) for widths in targets for seed in config.seeds])
    failures = first_failures(
        results,
        lambda r: {
            "case": f"paper, exact: widths={r['widths']} seed={r['seed']}",
            "reason": r["reason"],
            "reproduce": python_command(
                f"from {__name__} import exact_case",
                f"print(exact_case({tuple(r['widths'])!r}, {r['seed']}, {points}))",
            ),
        },
    )
    done = [r for r in results if "max_denominator_bits" in r]
    figures = {
        "targets": [list(t) for t in targets],
        "modes": ["paper"],
        "cases": len(results),
        "passed": sum(r["passed"] for r in results),
        "controls_detected": sum(bool(r["control_detected"]) for r in results),
        "max_denominator_bits": max((r["max_denominator_bits"] for r in done), default=0),
        "fresh_points": points,
        "seconds": sum(r["seconds"] for r in done),
        "max_case_seconds": max((r["seconds"] for r in done), default=math.nan),
    }
    rows = [{k: v for k, v in r.items() if k != "reason"} for r in results]
    statement = (
        "paper mode, method='exact', Ball(1.0), targets "
        f"{', '.join('x'.join(map(str, t)) for t in targets)}: the certificate holds with residual exactly 0, "
        f"exact margins >= 0 and g = f exactly at rational points; the exact check confirms the rational solution "
        f"at {points} fresh points and rejects it with one gamma entry moved by one ulp (control). Paper mode "
        "only: method='exact' solves the paper-mode equation and reconstruct refuses it in minimal mode"
    )
    passed = bool(results) and figures["passed"] == len(results)
    return Claim.checked(
        name, statement, passed, figures, config.command(name), started=start, rows=rows, failures=failures
    )
