"""Claim ``sparse/map``: the full-rank rate over width × density, the heat map (docs/design.md §4).

The full-rank rate on a grid of odd widths ``n = c·d²`` (``c`` in `MAP_FACTORS`, 0.75 to 4) and
densities ``p`` (`MAP_DENSITIES`, log-spaced, 0.02 to 1) for one ``d``, the data of the report's
heat map ``density.png``, with the threshold ``p*(c)`` and its fit ``p* ≈ a·c^b``. The claim
checked: below ``c = 1`` no pattern has full rank (``n < d²`` columns cannot span ``d²``),
``p*(c)`` does not increase with ``c``, and the transition is sharp: the rate is at most 0.1 at
``p <= p*/2`` and at least 0.9 at ``p >= 2·p*`` (`MAP_SHARPNESS`).

Sizes: ``d`` (the block size) and ``seeds`` (masks per cell).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from verify.core.sparsity import fit_threshold_exponent, full_rank_rate, threshold_density
from verify.job.claim import MAX_FAILURES, Claim
from verify.job.config import Config
from verify.job.figures import density_heatmap
from verify.job.progress import Sweep
from verify.job.registry import Figure, register

__all__ = ["MAP_DENSITIES", "MAP_FACTORS", "MAP_SHARPNESS"]

MAP_FACTORS = (0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
"""Odd widths ``n = c·d²``: the factors ``c`` (rows of the heat map)."""
MAP_DENSITIES = tuple(float(p) for p in np.geomspace(0.02, 1.0, 16))
"""Densities ``p`` (columns of the heat map)."""
MAP_SHARPNESS = (2.0, 0.1, 0.9)
"""``(band, low, high)``: the rate is at most ``low`` at ``p <= p*/band`` and at least ``high`` at ``p >= band·p*``."""


def _map_data(claims: Sequence[Any]) -> dict[str, Any] | None:
    return next((c.figures["map"] for c in claims if "map" in c.figures), None)


@register(
    "sparse/map",
    order=63,
    statement="Full-rank rate over width x density with the fitted p*(c) (density.png).",
    summary=(
        "{cells} cells (d = {map[d]}, {map[seeds]} seeds), {violations} violations; "
        "fitted p* = {map[fit][coefficient]:.3f}·c^{map[fit][exponent]:.2f}"
    ),
    sizes={"quick": {"d": 8, "seeds": 40}, "full": {"d": 12, "seeds": 100}},
    figures=(Figure("density", density_heatmap, _map_data),),
)
def run(config: Config, name: str, sweep: Sweep) -> Claim:
    """Check ``sparse/map`` (see the module docstring), cells and thresholds through ``sweep``."""
    start = time.perf_counter()
    sizes = config.sizes_for("sparse/map")
    d, seeds = sizes["d"], tuple(range(sizes["seeds"]))
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
    failures = [{"case": "heat map", "reason": reason} for reason in reasons[:MAX_FAILURES]]
    return Claim.checked(name, statement, not reasons, figures, config.command(name), started=start, failures=failures)
