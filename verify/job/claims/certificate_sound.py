"""Claim ``certificate/sound``: the certified error bound holds on fresh points (docs/design.md §6.5).

For every case of the ``exact/*`` grids (both modes, every domain kind, every target and seed of the
config), ``reconstruct`` returns a result whose ``certificate.error_bound`` is a proved bound on
``|ĝ(x) − f̂(x)|`` over the whole domain. The claim evaluates ``g`` and ``f`` on ``points`` fresh
points of the domain (half on its boundary; box corners and faces included), drawn independently of
the certificate's own, and checks ``max |g − f| <= error_bound``. It reports how tight the bound is:
the median and smallest ratio ``error_bound / max |g − f|`` over the cases whose observed error is
not zero (an exact agreement, error 0, needs no ratio). A ratio below 1 would mean the bound is wrong.

Target seed ``s``, frozen network ``1000 + s``, fresh points ``3000 + s`` (not the ``2000 + s`` of
``exact/*``).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

import verify
from verify.construction.reconstruct import MODES
from verify.core.networks import FrozenNetwork, TargetNetwork
from verify.job.claim import Claim, by_depth, first_failures, python_command, sci, worst
from verify.job.config import DOMAIN_KINDS, Config, make_domain
from verify.job.progress import Sweep
from verify.job.registry import Section, Table, register

__all__ = ["sound_case"]

_POINTS = 2000


def sound_case(mode: str, widths: tuple[int, ...], seed: int, kind: str, points: int = _POINTS) -> dict[str, Any]:
    """One case: reconstruct, then ``max |g − f|`` on ``points`` fresh points against ``error_bound``.

    Returns a JSON-ready dict; never raises (an exception is the case's ``reason``).
    """
    start = time.perf_counter()
    case: dict[str, Any] = {"mode": mode, "widths": list(widths), "seed": seed, "domain": kind}
    try:
        domain = make_domain(kind, widths[0])
        target = TargetNetwork.random(widths, seed=seed)
        frozen = FrozenNetwork.for_target(target, width=mode, seed=1000 + seed)
        result = verify.reconstruct(target, frozen, domain, mode=mode)
        certificate = result.certificate
        x = domain.resolve(widths[0]).sample(points, np.random.default_rng(3000 + seed))
        observed = float(np.max(np.abs(result.network(x) - target(x))))
        bound = certificate.error_bound
        case |= {
            "holds": bool(certificate.holds),
            "observed": observed,
            "error_bound": bound,
            "bound_over_f_max": certificate.relative_error_bound,
            "bound_over_scale": certificate.bound_over_scale,
            "ratio": bound / observed if observed > 0 else math.inf,
            "passed": bool(certificate.holds and observed <= bound),
        }
        if not case["passed"]:
            case["reason"] = (
                f"max |g - f| = {observed:.3g} on {points} fresh points exceeds the certified bound {bound:.3g}"
                if certificate.holds
                else "; ".join(certificate.failures())
            )
    except Exception as error:  # any error (InfeasibleError, CertificateError, a bug) fails this case only
        case |= {"passed": False, "holds": False, "reason": f"{type(error).__name__}: {error}"}
    case["seconds"] = time.perf_counter() - start
    return case


def _figures(cases: list[dict[str, Any]]) -> dict[str, Any]:
    ratios = [c["ratio"] for c in cases if "ratio" in c and math.isfinite(c["ratio"])]
    return {
        "cases": len(cases),
        "passed": sum(c["passed"] for c in cases),
        "compared": len(ratios),
        "exact_agreement": sum(1 for c in cases if c.get("observed") == 0.0),
        "median_ratio": float(np.median(ratios)) if ratios else math.nan,
        "min_ratio": min(ratios, default=math.nan),
        "max_bound_over_f_max": worst(cases, "bound_over_f_max"),
        "max_bound_over_scale": worst(cases, "bound_over_scale"),
        "seconds": sum(c["seconds"] for c in cases),
    }


def _table(claims: list[Claim]) -> Table:
    header = [
        "depth",
        "cases",
        "pass",
        "median bound/observed",
        "min bound/observed",
        "max bound/f_max",
        "max bound/scale",
        "time (s)",
    ]
    rows = [
        [
            str(r["depth"]),
            str(r["cases"]),
            f"{r['passed']}/{r['cases']}",
            sci(r["median_ratio"]),
            sci(r["min_ratio"]),
            sci(r["max_bound_over_f_max"]),
            sci(r["max_bound_over_scale"]),
            f"{r['seconds']:.2f}",
        ]
        for claim in claims
        for r in claim.rows
    ]
    return Table(header, rows, title="The certified error bound against fresh points (exact/* grids)")


_STATEMENT = """\
For every case of the exact/* grids (modes, domains, targets, seeds), the
certificate's error_bound, a proved bound on |g - f| over the whole domain
in the evaluation dtype, is at least max |g - f| on fresh points of the
domain (boundary included); the median ratio bound / observed says how
tight it is."""

_INTRO = """\
Per case of the exact/* grids: `reconstruct(target, frozen, domain, mode)`, then `max |g-f|` on the
claim's own 2000 fresh points `domain.sample(n, default_rng(3000+s))` (half on the boundary). A case
passes iff the certificate holds and the observed error is at most `certificate.error_bound`
(docs/design.md §6.5). `bound/observed` is how loose the proved bound is; below 1 it would be
wrong. `bound/f_max` is the figure the certificate compares with `rtol`: the bound against the
target's largest output on the certificate's sample points (a lower bound of its largest output on
the domain, docs/design.md §6.8); `bound/scale` is against the interval upper bound."""


@register(
    "certificate/sound",
    order=41,
    statement=_STATEMENT,
    summary=(
        "{passed}/{cases} cases: max |g-f| on {points} fresh points within the certified bound; "
        "bound / observed: median {median_ratio:sci}, min {min_ratio:sci} ({compared} cases with a non-zero error); "
        "max bound/f_max {max_bound_over_f_max:sci} (bound/scale {max_bound_over_scale:sci})"
    ),
    sizes={"quick": {"points": _POINTS}, "full": {"points": _POINTS}},
    table=_table,
    section=Section("Sound certificate", 61, intro=(_INTRO,)),
)
def run(config: Config, name: str, sweep: Sweep) -> Claim:
    """Check ``certificate/sound`` on every case of the ``exact/*`` grids, cases through ``sweep``."""
    start = time.perf_counter()
    points = config.sizes_for("certificate/sound")["points"]
    cases = sweep.map(
        sound_case,
        [
            (mode, widths, seed, kind, points)
            for mode in MODES
            for kind in DOMAIN_KINDS
            for widths in config.architectures
            for seed in config.seeds
        ],
    )
    rows = by_depth(cases, _figures)
    failures = first_failures(
        cases,
        lambda c: {
            "case": f"mode={c['mode']} domain={c['domain']} widths={c['widths']} seed={c['seed']}",
            "reason": c.get("reason", ""),
            "reproduce": python_command(
                f"from {__name__} import sound_case",
                f"print(sound_case({c['mode']!r}, {tuple(c['widths'])!r}, {c['seed']}, {c['domain']!r}, {points}))",
            ),
        },
    )
    figures = _figures(cases) | {"points": points}
    statement = (
        f"every case of the exact/* grids ({len(cases)}): max |g - f| on {points} fresh points of the domain "
        "(boundary included) is at most the certificate's error_bound"
    )
    passed = figures["passed"] == figures["cases"] > 0
    return Claim.checked(
        name, statement, passed, figures, config.command(name), started=start, rows=rows, failures=failures
    )
