"""Claim ``exact/<mode>/<domain>``: the construction is exact on the domain (docs/design.md §2, §6).

For every target of the grid and every seed, ``reconstruct`` returns a result whose certificate
holds, and on fresh points of the domain (boundary included, drawn independently of the
certificate's own) the tuned frozen network ``g`` agrees with the target ``f`` to the same derived
tolerance the certificate uses (`verify.evaluation_tolerance`)::

    max |g(x) - f(x)| / (|g|(x) + |f|(x))  <=  evaluation_tolerance(n, d, residual ratios)
    max |g(x) - f(x)| / max |f(x)|           <=  certificate.sampled.rtol

``max |g - f| / max |f|`` is the human figure of the report. Target seed ``s``, frozen network
``1000 + s``, fresh points ``2000 + s``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

import verify
from verify.core.domains import Domain
from verify.core.networks import FrozenNetwork, TargetNetwork
from verify.core.tolerances import evaluation_tolerance
from verify.job.agreement import fresh_errors
from verify.job.claim import Claim, by_depth, first_failures, python_command, sci, worst
from verify.job.config import DOMAIN_KINDS, Config, describe_domain, make_domain
from verify.job.progress import Sweep
from verify.job.registry import Section, Table, register

__all__ = ["exact_case"]


def _domain_code(domain: Domain) -> str:
    spec = domain.to_dict()
    if spec["kind"] == "ball":
        return f"verify.Ball({spec['radius']!r}, center={spec['center']!r})"
    return f"verify.Box({spec['lo']!r}, {spec['hi']!r})"


def _reproducer(mode: str, widths: Sequence[int], seed: int, domain: Domain, points: int) -> str:
    return python_command(
        "import numpy as np, verify",
        f"t = verify.TargetNetwork.random({list(widths)!r}, seed={seed})",
        f"fr = verify.FrozenNetwork.for_target(t, width={mode!r}, seed={1000 + seed})",
        f"dom = {_domain_code(domain)}",
        f"r = verify.reconstruct(t, fr, dom, mode={mode!r})",
        f"x = dom.sample({points}, np.random.default_rng({2000 + seed}))",
        "print(r.certificate.holds, np.abs(r.network(x) - t(x)).max() / np.abs(t(x)).max())",
    )


def exact_case(mode: str, widths: tuple[int, ...], seed: int, kind: str, points: int) -> dict[str, Any]:
    """Build, reconstruct and check one case on fresh points; a failing case is recorded, never raised."""
    start = time.perf_counter()
    case: dict[str, Any] = {"mode": mode, "widths": list(widths), "seed": seed, "domain": kind}
    try:
        case |= _check(mode, widths, seed, kind, points)
    except Exception as error:  # any error (InfeasibleError, CertificateError, a bug) fails this case only
        case |= {"passed": False, "holds": False, "reason": f"{type(error).__name__}: {error}"}
    case["seconds"] = time.perf_counter() - start
    return case


def _check(mode: str, widths: tuple[int, ...], seed: int, kind: str, points: int) -> dict[str, Any]:
    domain = make_domain(kind, widths[0])
    target = TargetNetwork.random(widths, seed=seed)
    frozen = FrozenNetwork.for_target(target, width=mode, seed=1000 + seed)
    result = verify.reconstruct(target, frozen, domain, mode=mode)
    certificate = result.certificate
    error_ratio, relative_error = fresh_errors(
        result, target, domain.sample(points, np.random.default_rng(2000 + seed))
    )
    tolerance = evaluation_tolerance(frozen.widths, target.widths, [b.residual_ratio for b in certificate.blocks])
    rtol = certificate.sampled.rtol
    holds = bool(certificate.holds)
    within = bool(error_ratio <= tolerance and relative_error <= rtol)
    figures: dict[str, Any] = {
        "passed": holds and within,
        "holds": holds,
        "max_relative_error": relative_error,
        "rtol": rtol,
        "certificate_relative_error": certificate.sampled.max_relative_error,
        "error_ratio": error_ratio,
        "tolerance": tolerance,
        "error_over_tolerance": error_ratio / tolerance if tolerance > 0 else math.inf,
        "max_condition": float(certificate.max_condition),
        "max_scale": float(max(np.abs(scale).max(initial=0.0) for scale in result.scales)),
        "min_margin": float(certificate.min_margin),
    }
    if not figures["passed"]:
        reasons = [] if holds else list(certificate.failures())
        if not error_ratio <= tolerance:
            reasons.append(
                f"fresh points: error ratio {error_ratio:.3g} exceeds the rounding tolerance {tolerance:.3g}"
            )
        if not relative_error <= rtol:
            reasons.append(f"fresh points: max |g-f|/max|f| = {relative_error:.3g} exceeds rtol = {rtol:.3g}")
        figures["reason"] = "; ".join(reasons)
    return figures


def _figures(cases: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "cases": len(cases),
        "architectures": len({tuple(c["widths"]) for c in cases}),
        "max_width": max(max(c["widths"]) for c in cases),
        "certificates_hold": sum(c["holds"] for c in cases),
        "passed": sum(c["passed"] for c in cases),
        "max_relative_error": worst(cases, "max_relative_error"),
        "rtol": worst(cases, "rtol", min),
        "max_certificate_relative_error": worst(cases, "certificate_relative_error"),
        "max_error_over_tolerance": worst(cases, "error_over_tolerance"),
        "max_condition": worst(cases, "max_condition"),
        "max_scale": worst(cases, "max_scale"),
        "min_margin": worst(cases, "min_margin", min),
        "seconds": sum(c["seconds"] for c in cases),
    }


_HEADER = [
    "mode",
    "domain",
    "depth",
    "targets",
    "cases",
    "cert holds",
    "pass",
    "max rel err",
    "worst err/tol",
    "max cond",
    "max |s|",
    "time (s)",
]


def _table(claims: Sequence[Claim]) -> Table:
    rows = []
    for claim in claims:
        _, mode, kind = claim.name.split("/")
        for r in claim.rows:
            rows.append(
                [
                    mode,
                    kind,
                    str(r["depth"]),
                    str(r["architectures"]),
                    str(r["cases"]),
                    f"{r['certificates_hold']}/{r['cases']}",
                    f"{r['passed']}/{r['cases']}",
                    sci(r["max_relative_error"]),
                    sci(r["max_error_over_tolerance"]),
                    sci(r["max_condition"]),
                    sci(r["max_scale"]),
                    f"{r['seconds']:.2f}",
                ]
            )
    title = "Exactness on the domain (fresh points, boundary included; rel err = max|g-f| / max|f|)"
    return Table(_HEADER, rows, title=title, labels=2)


_INTRO = """\
Per case: `TargetNetwork.random(widths, seed=s)`,
`FrozenNetwork.for_target(target, width=mode, seed=1000+s)`,
`reconstruct(target, frozen, domain, mode=mode)`; then {config.points} fresh points
`domain.sample(n, default_rng(2000+s))` (half on the boundary). A case passes iff the certificate holds
and, on the fresh points, `max |g-f| / (|g|+|f|)` is within `evaluation_tolerance(...)` (the rounding
bound; `worst err/tol` is that ratio over the tolerance, ≤ 1 passes) and `max |g-f| / max |f|` is within
the certificate's `rtol`. `max rel err` is `max |g-f| / max |f|` over the fresh points. `max cond` is
the largest condition number a block's solver reports; `max |s|` is the largest per-neuron scale `|γ|`
or `|s'|` of any normalization: huge even-layer scales `s' = 1/ρ` (minimal mode, where the null space
fixes ρ up to one factor) cancel against huge shifts and cost digits that the condition number does not
show."""


_STATEMENT = f"""\
For each target (widths from 1 to 12, depths 1-4), seed s and domain
({", ".join(DOMAIN_KINDS)}), reconstruct() returns a result whose
certificate holds, and g = f on fresh points of the domain (about half on
its boundary) within the certificate's own tolerances: the derived rounding
bound (verify.evaluation_tolerance) and max|g-f|/max|f| <= rtol.
Modes: paper (odd width d_k*d_(k-1)) and minimal (d_k*(d_(k-1)-1)+1)."""


@register(
    "exact/{mode}/{domain}",
    order=10,
    statement=_STATEMENT,
    summary=(
        "{passed}/{cases} cases pass ({architectures} targets, widths ≤ {max_width}); "
        "max |g-f|/max|f| {max_relative_error:sci} (rtol {rtol:sci0}); "
        "worst error/tolerance {max_error_over_tolerance:sci}; max condition {max_condition:sci}; "
        "max |scale| {max_scale:sci}"
    ),
    table=_table,
    section=Section("Exactness", 10, intro=(_INTRO,)),
)
def run(config: Config, name: str, sweep: Sweep) -> Claim:
    """Check ``exact/<mode>/<domain>`` on every target and seed of ``config``, cases through ``sweep``."""
    _, mode, kind = name.split("/")
    start = time.perf_counter()
    cases = sweep.map(
        exact_case,
        [(mode, widths, seed, kind, config.points) for widths in config.architectures for seed in config.seeds],
    )
    rows = by_depth(cases, _figures)
    failures = first_failures(
        cases,
        lambda c: {
            "case": f"widths={c['widths']} seed={c['seed']}",
            "reason": c.get("reason", ""),
            "reproduce": _reproducer(mode, c["widths"], c["seed"], make_domain(kind, c["widths"][0]), config.points),
        },
    )
    figures = _figures(cases)
    statement = (
        f"mode {mode!r} on {describe_domain(kind)}: the certificate holds and g = f on {config.points} fresh points "
        "(boundary included) within the certificate's own tolerances (rounding bound and rtol)"
    )
    passed = figures["passed"] == figures["cases"] > 0
    return Claim.checked(
        name, statement, passed, figures, config.command(name), started=start, rows=rows, failures=failures
    )
