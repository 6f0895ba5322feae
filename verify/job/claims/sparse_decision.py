"""Claim ``sparse/decision``: reconstruct succeeds exactly when feasibility says so (docs/design.md §4).

On random targets and randomly sparsified frozen networks, `verify.reconstruct` succeeds exactly
when `verify.feasibility` predicts it, in both modes, and both outcomes occur. Sizes: ``cases``,
the number of random instances per mode.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

import verify
from verify.job.claim import Claim, first_failures
from verify.job.config import Config
from verify.job.progress import Sweep
from verify.job.registry import register

__all__ = ["decision_case"]


def decision_case(mode: str, case: int) -> dict[str, Any]:
    """One random sparse instance: what `verify.feasibility` predicts, what `verify.reconstruct` does."""
    rng = np.random.default_rng([505, case])
    widths = [int(v) for v in rng.choice((1, 2, 3, 5, 8), size=int(rng.integers(2, 4)))]
    factor = float(rng.choice((1.0, 1.5, 2.0)))
    density = float(rng.uniform(0.1, 1.0))
    target = verify.TargetNetwork.random(widths, seed=case)
    frozen = verify.FrozenNetwork.for_target(target, width=factor, density=density, seed=case)
    predicted = verify.feasibility(target, frozen, mode).ok
    try:
        verify.reconstruct(target, frozen, verify.Ball(1.0), mode=mode)
        succeeded = True
    except verify.InfeasibleError:
        succeeded = False
    return {
        "case": f"{mode}: widths={widths} width={factor} density={density:.3f} seed={case}",
        "predicted": bool(predicted),
        "succeeded": succeeded,
    }


def _summary(claim: Claim) -> str:
    return "; ".join(
        f"{m}: {c['agree']}/{c['cases']} agree ({c['feasible']} feasible, {c['infeasible']} not)"
        for m, c in claim.figures.items()
    )


@register(
    "sparse/decision",
    order=61,
    statement="reconstruct succeeds exactly when verify.feasibility says so.",
    summary=_summary,
    sizes={"quick": {"cases": 150}, "full": {"cases": 400}},
)
def run(config: Config, name: str, sweep: Sweep) -> Claim:
    """Check ``sparse/decision`` on ``cases`` random instances per mode, cases through ``sweep``."""
    start = time.perf_counter()
    per_mode = config.sizes_for("sparse/decision")["cases"]
    cases = [(mode, case) for mode in verify.MODES for case in range(per_mode)]
    results = sweep.map(decision_case, cases)
    figures: dict[str, Any] = {}
    ok = True
    for mode in verify.MODES:
        mine = [r for (m, _), r in zip(cases, results, strict=True) if m == mode]
        counts = {
            "cases": len(mine),
            "agree": sum(r["predicted"] == r["succeeded"] for r in mine),
            "feasible": sum(r["predicted"] for r in mine),
            "infeasible": sum(not r["predicted"] for r in mine),
        }
        figures[mode] = counts
        ok = ok and counts["agree"] == counts["cases"] and counts["feasible"] > 0 and counts["infeasible"] > 0
    failures = first_failures(
        results,
        lambda r: {
            "case": r["case"],
            "reason": f"feasibility ok={r['predicted']}, reconstruct {'succeeded' if r['succeeded'] else 'refused'}",
        },
        failing=lambda r: r["predicted"] != r["succeeded"],
    )
    statement = (
        "reconstruct succeeds exactly when feasibility says so (both modes, random targets of widths <= 8, "
        "odd widths 1-2x paper, densities 0.1-1; both outcomes must occur)"
    )
    return Claim.checked(name, statement, ok, figures, config.command(name), started=start, failures=failures)
