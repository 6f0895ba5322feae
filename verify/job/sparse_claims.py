"""Claims of the verification job about sparse frozen networks (docs/design.md §4).

``sparse/rank``
    On random masks with Gaussian values, the maximum matching size of the block's bipartite graph
    equals the numerical rank of the masked Khatri–Rao matrix.
``sparse/decision``
    On random targets and randomly sparsified frozen networks, `reconstruct` succeeds exactly when
    `feasibility` says so, in both modes.
``sparse/phase``
    The sparsity phase transition: the probability of full rank against density ``p`` for odd
    widths 1x, 2x and 4x the paper width and ``d`` in {4, 8, 16, 32}; the threshold ``p*(d)`` (rate
    crosses 1/2), its fitted exponent in ``d``, and the frozen non-zeros at the threshold as a
    multiple of the target layer's ``d²`` parameters, beside the paper's claim that sparse frozen
    networks need about ``√d`` times the target's parameters. The claim checked: ``p*`` decreases
    with ``d`` at every width, and at the paper width (1x) the multiple grows like ``d^e`` with
    ``e`` within 0.25 of 1/2. The other widths are reported as measured.
``sparse/map``
    The full-rank rate on a grid of odd widths ``n = c·d²`` (``c`` from 0.75 to 4) and densities
    ``p`` (log-spaced, 0.02 to 1) for one ``d``, the data of the report's heat map ``density.png``,
    with the threshold ``p*(c)`` and its fit ``p* ≈ a·c^b``. The claim checked: below ``c = 1`` no
    pattern has full rank (``n < d²`` columns cannot span ``d²``), ``p*(c)`` does not increase with
    ``c``, and the transition is sharp: the rate is at most 0.1 at ``p <= p*/2`` and at least 0.9 at
    ``p >= 2·p*``.
"""

from __future__ import annotations

import itertools
import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np

import verify
from verify.core.feasibility import block_feasibility
from verify.core.sparsity import fit_threshold_exponent, full_rank_rate, threshold_density

if TYPE_CHECKING:
    from verify.job.progress import Sweep
    from verify.job.report import Claim, Config

__all__ = ["SPARSE_CLAIMS", "sparse_claim"]

SPARSE_CLAIMS = ("sparse/rank", "sparse/decision", "sparse/phase", "sparse/map")
MAP_FACTORS = (0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
MAP_DENSITIES = tuple(float(p) for p in np.geomspace(0.02, 1.0, 16))
MAP_SHARPNESS = (2.0, 0.1, 0.9)
"""``(band, low, high)``: the rate is at most ``low`` at ``p <= p*/band`` and at least ``high`` at ``p >= band·p*``."""
PHASE_FACTORS = (1.0, 2.0, 4.0)
SIZES = {
    "quick": {
        "rank_cases": 300,
        "decision_cases": 150,
        "ds": (4, 8, 16, 32),
        "seeds_small": 40,
        "seeds_large": 20,
        "map_d": 8,
        "map_seeds": 40,
    },
    "full": {
        "rank_cases": 1000,
        "decision_cases": 400,
        "ds": (4, 8, 16, 32, 48),
        "seeds_small": 100,
        "seeds_large": 50,
        "map_d": 12,
        "map_seeds": 100,
    },
}
"""Sizes per grid (``custom`` grids use the quick sizes); seeds_small is for d <= 16."""
SQRT_EXPONENT_BAND = 0.25
"""Half-width of the band around 1/2 that the fitted exponent of the non-zeros multiple must fall in."""


def sparse_claim(config: Config, name: str, sweep: Sweep | None = None) -> Claim:
    """Run one of `SPARSE_CLAIMS` with the sizes of ``config.grid`` (quick or full), cases through ``sweep``."""
    from verify.job.progress import Sweep

    sizes = SIZES["full" if config.grid == "full" else "quick"]
    runners = {
        "sparse/rank": _rank_claim,
        "sparse/decision": _decision_claim,
        "sparse/phase": _phase_claim,
        "sparse/map": _map_claim,
    }
    return runners[name](config, sizes, sweep if sweep is not None else Sweep())


def _claim(config: Config, name: str, statement: str, ok: bool, figures: dict, start: float, **extra: Any) -> Claim:
    from verify.job.report import Claim

    return Claim(
        name=name,
        statement=statement,
        status="passed" if ok else "failed",
        figures=figures,
        command=config.command(name),
        seconds=time.perf_counter() - start,
        **extra,
    )


def rank_case(case: int) -> dict[str, Any]:
    """One random mask of ``sparse/rank`` (seeded by ``case``): matching size and numerical rank."""
    rng = np.random.default_rng([404, case])
    d_out, d_in = (int(v) for v in rng.integers(1, 9, 2))
    n = int(rng.integers(1, 2 * d_out * d_in + 1))
    density = float(rng.uniform(0.1, 1.0))
    a = rng.standard_normal((d_out, n)) * (rng.uniform(size=(d_out, n)) < density)
    b = rng.standard_normal((n, d_in)) * (rng.uniform(size=(n, d_in)) < density)
    matching = block_feasibility(a, b, np.ones((d_out, d_in)), "paper", block=1).rank
    rank = int(np.linalg.matrix_rank(verify.khatri_rao(a, b)))
    return {
        "case": f"case {case}: d_out={d_out} d_in={d_in} n={n} p={density:.3f}",
        "matching": matching,
        "rank": rank,
        "deficient": matching < min(n, d_out * d_in),
    }


def _rank_claim(config: Config, sizes: dict[str, Any], sweep: Sweep) -> Claim:
    start = time.perf_counter()
    cases = sizes["rank_cases"]
    results = sweep.map(rank_case, [(case,) for case in range(cases)])
    agree = sum(r["matching"] == r["rank"] for r in results)
    failures = [
        {"case": r["case"], "reason": f"matching {r['matching']} != rank {r['rank']}"}
        for r in results
        if r["matching"] != r["rank"]
    ][:20]
    figures = {"cases": cases, "agree": agree, "structurally_deficient": sum(r["deficient"] for r in results)}
    statement = (
        "maximum matching size equals the numerical rank of the masked Khatri–Rao matrix (Gaussian values) "
        f"on {cases} random masks (d_out, d_in <= 8, n <= 2 d_out d_in, density 0.1-1)"
    )
    return _claim(config, "sparse/rank", statement, agree == cases, figures, start, failures=failures)


def decision_case(mode: str, case: int) -> dict[str, Any]:
    """One random sparse instance of ``sparse/decision``: what `feasibility` predicts, what `reconstruct` does."""
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


def _decision_claim(config: Config, sizes: dict[str, Any], sweep: Sweep) -> Claim:
    start = time.perf_counter()
    per_mode = sizes["decision_cases"]
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
    failures = [
        {
            "case": r["case"],
            "reason": f"feasibility ok={r['predicted']}, reconstruct {'succeeded' if r['succeeded'] else 'refused'}",
        }
        for r in results
        if r["predicted"] != r["succeeded"]
    ][:20]
    statement = (
        "reconstruct succeeds exactly when feasibility says so (both modes, random targets of widths <= 8, "
        "odd widths 1-2x paper, densities 0.1-1; both outcomes must occur)"
    )
    return _claim(config, "sparse/decision", statement, ok, figures, start, failures=failures)


def _phase_claim(config: Config, sizes: dict[str, Any], sweep: Sweep) -> Claim:
    start = time.perf_counter()
    ds = sizes["ds"]
    grid = [
        (d, factor, tuple(range(sizes["seeds_small"] if d <= 16 else sizes["seeds_large"])))
        for factor in PHASE_FACTORS
        for d in ds
    ]
    p_stars = sweep.map(threshold_density, grid)
    probes = [
        (d, factor, p, seeds)
        for (d, factor, seeds), p_star in zip(grid, p_stars, strict=True)
        for p in (0.8 * p_star, min(1.0, 1.25 * p_star))
    ]
    rates = iter(sweep.map(full_rank_rate, probes))
    rows = []
    for (d, factor, seeds), p_star in zip(grid, p_stars, strict=True):
        multiple = p_star * 2 * factor * d  # frozen non-zeros p*(n d + d n), n = c d², over d² target weights
        rows.append(
            {
                "factor": factor,
                "d": d,
                "seeds": len(seeds),
                "p_star": p_star,
                "rate_at_0.8p": next(rates),
                "rate_at_1.25p": next(rates),
                "p_star_sqrt_d": p_star * math.sqrt(d),
                "nonzeros_multiple": multiple,
                "multiple_over_sqrt_d": multiple / math.sqrt(d),
            }
        )
    fits: dict[str, Any] = {}
    decreasing = True
    for factor in PHASE_FACTORS:
        thresholds = [r["p_star"] for r in rows if r["factor"] == factor]
        decreasing = decreasing and all(b < a for a, b in itertools.pairwise(thresholds))
        p_fit = fit_threshold_exponent(ds, thresholds)
        m_fit = fit_threshold_exponent(ds, [p * 2 * factor * d for p, d in zip(thresholds, ds, strict=True)])
        fits[f"{factor:g}x"] = {
            "p_star_exponent": p_fit.exponent,
            "p_star_coefficient": p_fit.coefficient,
            "multiple_exponent": m_fit.exponent,
        }
    paper_exponent = fits["1x"]["multiple_exponent"]
    sqrt_like = abs(paper_exponent - 0.5) <= SQRT_EXPONENT_BAND
    figures = {"fits": fits, "decreasing": decreasing, "paper_width_multiple_exponent": paper_exponent}
    statement = (
        "phase transition of full rank in the density p (one square block, Bernoulli masks on A and B): p*(d) "
        "decreases with d at 1x, 2x and 4x the paper width, and at 1x the frozen non-zeros at p* grow like "
        f"d^e times the target's d² parameters with |e - 1/2| <= {SQRT_EXPONENT_BAND} (the paper's √d)"
    )
    return _claim(config, "sparse/phase", statement, decreasing and sqrt_like, figures, start, rows=rows)


def _map_claim(config: Config, sizes: dict[str, Any], sweep: Sweep) -> Claim:
    start = time.perf_counter()
    d, seeds = sizes["map_d"], tuple(range(sizes["map_seeds"]))
    band, low, high = MAP_SHARPNESS
    cells = [(d, c, p, seeds) for c in MAP_FACTORS for p in MAP_DENSITIES]
    flat = sweep.map(full_rank_rate, cells)
    rate = [flat[i * len(MAP_DENSITIES) : (i + 1) * len(MAP_DENSITIES)] for i in range(len(MAP_FACTORS))]
    p_stars = sweep.map(threshold_density, [(d, c, seeds) for c in MAP_FACTORS])
    fitted = [(c, p) for c, p in zip(MAP_FACTORS, p_stars, strict=True) if c >= 1 and math.isfinite(p)]
    fit = fit_threshold_exponent([c for c, _ in fitted], [p for _, p in fitted])
    reasons = []
    for c, p_star, row in zip(MAP_FACTORS, p_stars, rate, strict=True):
        if c < 1 and any(row):
            reasons.append(f"c = {c:g} < 1 (n < d²) has a full-rank pattern: impossible")
        if c >= 1 and not math.isfinite(p_star):
            reasons.append(f"c = {c:g}: the rate never reaches 1/2, even at p = 1")
            continue
        for p, r in zip(MAP_DENSITIES, row, strict=True):
            if math.isfinite(p_star) and p <= p_star / band and r > low:
                reasons.append(f"c = {c:g}, p = {p:.3f} <= p*/{band:g}: rate {r:.2f} > {low}")
            if math.isfinite(p_star) and p >= band * p_star and r < high:
                reasons.append(f"c = {c:g}, p = {p:.3f} >= {band:g}·p*: rate {r:.2f} < {high}")
    finite = [p for _, p in fitted]
    if any(b > a for a, b in itertools.pairwise(finite)):
        reasons.append(f"p*(c) increases with c: {[round(p, 4) for p in finite]}")
    data = {
        "d": d,
        "factors": list(MAP_FACTORS),
        "densities": list(MAP_DENSITIES),
        "rate": rate,
        "p_star": list(p_stars),
        "fit": {"coefficient": fit.coefficient, "exponent": fit.exponent},
        "seeds": len(seeds),
    }
    figures = {"map": data, "cells": len(cells), "violations": len(reasons)}
    statement = (
        f"on one {d}x{d} block, odd width n = c·d² for c in {list(MAP_FACTORS)} and {len(MAP_DENSITIES)} densities: "
        f"no full rank below c = 1, p*(c) non-increasing in c, and a sharp transition (rate <= {low} at "
        f"p <= p*/{band:g}, >= {high} at p >= {band:g}·p*); fitted p* = {fit.coefficient:.3f}·c^{fit.exponent:.2f}"
    )
    failures = [{"case": "heat map", "reason": reason} for reason in reasons[:20]]
    return _claim(config, "sparse/map", statement, not reasons, figures, start, failures=failures)
