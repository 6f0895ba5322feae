"""Claim ``certificate/tightness``: every certified bound holds on fresh points, and how tight it is.

For each case of `verify.job.tightness_cases` (dense chains and a small ResNet in float64; the README's
float32 MLP, a float32 CNN class and the small ResNet in float32; ResNet-8 under ``--full``), every
target is certified as a user would certify it and measured on ``points`` fresh points of its domain
(corners of a box included), with torch's own forward of the tuned module in its dtype. The claim
**passes** when, in every case, the observed error ``max |g − f|`` is at most the certified
``error_bound`` (a bound below what is observed would be wrong). The goals of tightness (median
``bound / observed``, ``bound / max |f|``, certified at a given ``rtol``) are *reported*, per row with
the goal, the measured figure and whether it is met: they are what the bound should reach, not what a
sound bound must.

``max |f|`` is measured on the same fresh points; where the certificate carries an ``f_max`` of its own
(a lower bound on ``max |f|`` over the domain) the table shows it too.

Sizes: ``cases`` (keys of `verify.job.tightness_cases.CASES`), ``points`` (fresh points per target).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from verify.job.claim import Claim, first_failures, python_command, sci
from verify.job.config import Config
from verify.job.figures import _figure, _save
from verify.job.progress import Sweep
from verify.job.registry import Figure, Image, Section, Table, register
from verify.job.tightness_cases import CASES, measure_case

__all__ = ["GOALS", "goal_rows", "tightness_figure"]

_POINTS = 2000
_QUICK = ("dense-f64", "resnet-f64", "mlp-f32", "cnn-f32", "resnet-f32")


def _ratios(rows: Sequence[dict[str, Any]], top: str, bottom: str) -> list[float]:
    return [
        r[top] / r[bottom] if r[bottom] > 0 else math.inf for r in rows if top in r and bottom in r and r[bottom] >= 0
    ]


def _certified(rows: Sequence[dict[str, Any]]) -> tuple[int, int]:
    return sum(bool(r.get("certified")) for r in rows), len(rows)


def _at_most(limit: float) -> Callable[[float], bool]:
    return lambda value: value <= limit


# (case, goal, the measured figure of the case's targets, whether it meets the goal, how it is written)
GOALS: tuple[tuple[str, str, Callable[[Sequence[dict]], Any], Callable[[Any], bool]], ...] = (
    ("dense-f64", "median bound/observed <= 30", lambda rows: _med(_ratios(rows, "bound", "observed")), _at_most(30)),
    ("resnet-f64", "bound/observed <= 1e3", lambda rows: _med(_ratios(rows, "bound", "observed")), _at_most(1e3)),
    ("resnet8-f64", "bound/max|f| <= 1e-6", lambda rows: _med(_ratios(rows, "bound", "max_f")), _at_most(1e-6)),
    ("mlp-f32", "10/10 certified at rtol=1e-3", _certified, lambda c: c[0] == c[1] == 10),
    ("mlp-f32", "median bound/max|f| <= 2e-5", lambda rows: _med(_ratios(rows, "bound", "max_f")), _at_most(2e-5)),
    ("cnn-f32", "certified at rtol=1e-3", _certified, lambda c: c[0] == c[1] > 0),
    ("resnet-f32", "certified at rtol=1e-2", _certified, lambda c: c[0] == c[1] > 0),
)
"""The numeric goals of tightness per case: reported with the measured figure, never asserted."""


def _med(values: Sequence[float]) -> float:
    return float(np.median(values)) if values else math.nan


def _written(value: Any) -> str:
    if isinstance(value, tuple):
        return f"{value[0]}/{value[1]} certified"
    return sci(value)


def goal_rows(targets: Sequence[dict[str, Any]], cases: Sequence[str]) -> list[dict[str, Any]]:
    """One row per goal of each case in ``cases``: the case's figures, the goal, the measured value, met or not."""
    rows = []
    for case in cases:
        at = [t for t in targets if t["case"] == case]
        over_observed = _ratios(at, "bound", "observed")
        over_f = _ratios(at, "bound", "max_f")
        f_max = [t["f_max"] for t in at if t.get("f_max") is not None]
        spec = CASES[case]
        base = {
            "case": spec["label"],
            "dtype": spec["dtype"],
            "targets": len(at),
            "points": min((t.get("points", 0) for t in at), default=0),
            "sound": f"{sum(bool(t.get('sound')) for t in at)}/{len(at)}",
            "bound_over_observed": f"{sci(_med(over_observed))} (max {sci(max(over_observed, default=math.nan))})"
            if len(at) > 1
            else sci(_med(over_observed)),
            "bound_over_f": f"{sci(_med(over_f))} (max {sci(max(over_f, default=math.nan))})"
            if len(at) > 1
            else sci(_med(over_f)),
            "certified": f"{_certified(at)[0]}/{len(at)} at {spec['rtol']:g}",
            "f_max": sci(_med(f_max)) if f_max else "–",
        }
        goals = [g for g in GOALS if g[0] == case]
        for _, goal, measured, met in goals:
            value = measured(at)
            rows.append(base | {"goal": goal, "measured": _written(value), "met": "yes" if met(value) else "no"})
    return rows


def tightness_figure(targets: Sequence[dict[str, Any]], path: Path) -> Path:
    """Certified bound against observed error (log axes), one point per target, a marker per case, the diagonal
    ``bound = observed`` drawn: a point below it would be a wrong bound, the distance above it is the slack."""
    figure = _figure()
    axis = figure.subplots()
    shown = [t for t in targets if t.get("observed", 0) > 0 and math.isfinite(t.get("bound", math.inf))]
    for i, case in enumerate(dict.fromkeys(t["case"] for t in shown)):
        at = [t for t in shown if t["case"] == case]
        axis.plot(
            [t["observed"] for t in at],
            [t["bound"] for t in at],
            linestyle="none",
            marker="osD^vPX"[i % 7],
            markerfacecolor="none",
            label=f"{CASES[case]['label']}, {CASES[case]['dtype']}",
        )
    if shown:
        low = min(min(t["observed"], t["bound"]) for t in shown) / 3
        high = max(max(t["observed"], t["bound"]) for t in shown) * 3
        axis.plot([low, high], [low, high], color="black", linewidth=0.8, label="bound = observed")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("observed max |g − f| on fresh points", fontsize=9)
    axis.set_ylabel("certified error_bound", fontsize=9)
    axis.grid(alpha=0.25, linewidth=0.6, which="both")
    axis.tick_params(labelsize=8)
    axis.legend(fontsize=7)
    figure.suptitle("Certified bound against observed error, one point per target", fontsize=10.5)
    return _save(figure, path)


def _figure_data(claims: Sequence[Claim]) -> list[dict[str, Any]] | None:
    return [t for claim in claims for t in claim.figures.get("measured", [])] or None


_COLUMNS = {
    "case": "case",
    "dtype": "dtype",
    "points": "points",
    "sound": "sound",
    "bound / observed": "bound_over_observed",
    "bound / max |f|": "bound_over_f",
    "certified": "certified",
    "f_max (cert.)": "f_max",
    "goal": "goal",
    "measured": "measured",
    "met?": "met",
}


def _table(claims: Sequence[Claim]) -> Table:
    rows = [[str(r[key]) for key in _COLUMNS.values()] for claim in claims for r in claim.rows]
    return Table(
        list(_COLUMNS), rows, title="How tight the certified bounds are (goals reported, not asserted)", labels=2
    )


_STATEMENT = """\
Dense chains and a small ResNet (float64), the README MLP, a CNN class and the
small ResNet (float32), ResNet-8 under --full: torch's own forward of every
tuned module stays within its certified error_bound on fresh points (corners
included). The goals of tightness (bound / observed, bound / max |f|,
certified at a given rtol) are reported per row, goal / measured / met."""


@register(
    "certificate/tightness",
    order=43,
    statement=_STATEMENT,
    summary=(
        "{sound}/{targets} targets within their bound on {points} fresh points; tightness goals met {met}/{goals} "
        "(reported, not asserted)"
    ),
    sizes={
        "quick": {"cases": _QUICK, "points": _POINTS},
        "full": {"cases": (*_QUICK, "resnet8-f64"), "points": _POINTS},
    },
    table=_table,
    figures=(Figure("tightness", tightness_figure, _figure_data),),
    section=Section(
        "How tight the certificates are",
        63,
        image=Image("tightness", "Certified bound against observed error, one point per target, the diagonal drawn"),
        intro=(
            "Per case, every target certified as a user certifies it and measured on fresh points (corners of a "
            "box included) with torch's own forward in its dtype. The claim passes when no target is outside its "
            "bound; the goals are reported, goal / measured / met.",
        ),
    ),
)
def run(config: Config, name: str, sweep: Sweep) -> Claim:
    """Check ``certificate/tightness`` (see the module docstring), targets through ``sweep``."""
    start = time.perf_counter()
    sizes = config.sizes_for("certificate/tightness")
    cases, points = tuple(sizes["cases"]), int(sizes["points"])
    targets = sweep.map(
        measure_case, [(case, index, points) for case in cases for index in range(CASES[case]["targets"])]
    )
    rows = goal_rows(targets, cases)
    unmet = [f"{r['case']} {r['dtype']}: {r['goal']}" for r in rows if r["met"] == "no"]
    figures = {
        "targets": len(targets),
        "sound": sum(bool(t.get("sound")) for t in targets),
        "points": points,
        "goals": len(rows),
        "met": sum(r["met"] == "yes" for r in rows),
        "unmet_goals": "; ".join(unmet) or "none unmet",
        "seconds": time.perf_counter() - start,
        "measured": [
            {"case": t["case"], "bound": t["bound"], "observed": t["observed"]}
            for t in targets
            if "bound" in t and math.isfinite(t["bound"])
        ],
    }
    failures = first_failures(
        targets,
        lambda t: {
            "case": f"{t['case']} target {t['index']}",
            "reason": t.get("reason", ""),
            "reproduce": python_command(
                "from verify.job.tightness_cases import measure_case",
                f"print(measure_case({t['case']!r}, {t['index']}, {points}))",
            ),
        },
        failing=lambda t: not t.get("sound"),
    )
    statement = (
        f"{', '.join(cases)}: torch's own forward of every tuned module (numpy network for the dense chains) stays "
        f"within its certified error_bound on {points} fresh points of the domain, corners included"
    )
    passed = bool(targets) and figures["sound"] == len(targets)
    return Claim.checked(
        name, statement, passed, figures, config.command(name), started=start, rows=rows, failures=failures
    )
