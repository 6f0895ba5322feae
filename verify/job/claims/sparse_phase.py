"""Claim ``sparse/phase``: the density threshold of full rank against d (docs/design.md §4).

The probability of full rank against density ``p`` for odd widths 1x, 2x and 4x the paper width
and ``d`` in ``ds``; the threshold ``p*(d)`` (rate crosses 1/2), its fitted exponent in ``d``, and
the frozen non-zeros at the threshold as a multiple of the target layer's ``d²`` parameters,
beside the paper's claim that sparse frozen networks need about ``√d`` times the target's
parameters. The claim checked: ``p*`` decreases with ``d`` at every width, and at the paper width
(1x) the multiple grows like ``d^e`` with ``e`` within `SQRT_EXPONENT_BAND` of 1/2. The other
widths are reported as measured.

Sizes: ``ds`` (block sizes), ``seeds_small`` (seeds for ``d <= 16``) and ``seeds_large`` (beyond).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from typing import Any

from verify.core.sparsity import fit_threshold_exponent, full_rank_rate, threshold_density
from verify.job.claim import Claim
from verify.job.config import Config
from verify.job.progress import Sweep
from verify.job.registry import Image, Section, Table, register

__all__ = ["PHASE_FACTORS", "SQRT_EXPONENT_BAND"]

PHASE_FACTORS = (1.0, 2.0, 4.0)
"""Odd widths as multiples ``c`` of the paper width ``d²``."""
SQRT_EXPONENT_BAND = 0.25
"""Half-width of the band around 1/2 that the fitted exponent of the non-zeros multiple must fall in."""


def _summary(claim: Claim) -> str:
    f = claim.figures
    return f"p* decreasing in d: {f['decreasing']}; " + "; ".join(
        f"{k}: p* ~ d^{v['p_star_exponent']:.2f}, non-zeros/target ~ d^{v['multiple_exponent']:.2f}"
        for k, v in f["fits"].items()
    )


def _table(claims: Sequence[Claim]) -> Table:
    rows = [
        [
            f"{r['factor']:g}x",
            str(r["d"]),
            str(r["seeds"]),
            f"{r['p_star']:.4f}",
            f"{r['rate_at_0.8p']:.2f}",
            f"{r['rate_at_1.25p']:.2f}",
            f"{r['p_star_sqrt_d']:.3f}",
            f"{r['nonzeros_multiple']:.2f}",
            f"{r['multiple_over_sqrt_d']:.2f}",
        ]
        for claim in claims
        for r in claim.rows
    ]
    header = [
        "odd width",
        "d",
        "seeds",
        "p*",
        "P(full) at 0.8p*",
        "P(full) at 1.25p*",
        "p*·√d",
        "non-zeros / target",
        "(non-zeros / target) / √d",
    ]
    title = "Sparsity phase transition: full generic rank of one d x d block, odd width c·d², Bernoulli(p) masks"
    return Table(header, rows, title=title, labels=0)


_INTRO = """\
One square block (d_out = d_in = d), odd width n = c·d², independent Bernoulli(p) masks on A and B
(nested across p for each seed). `p*` is where the fraction of seeds with full generic rank d² (maximum
matching, docs/design.md §4) crosses 1/2, found by bisection in log p. Frozen non-zeros at p* are
p*·2·c·d³, shown as a multiple of the target layer's d² weights; the paper's claim is about √d times the
target's parameters, so the last column would be flat under that claim."""


@register(
    "sparse/phase",
    order=62,
    statement="The density threshold p*(d) at 1x, 2x, 4x the paper width, and its fit.",
    summary=_summary,
    sizes={
        "quick": {"ds": (4, 8, 16, 32), "seeds_small": 40, "seeds_large": 20},
        "full": {"ds": (4, 8, 16, 32, 48), "seeds_small": 100, "seeds_large": 50},
    },
    table=_table,
    section=Section(
        "Sparse frozen networks",
        30,
        image=Image("density", "Full-rank rate against density and width, with the fitted threshold"),
        intro=(_INTRO,),
    ),
)
def run(config: Config, name: str, sweep: Sweep) -> Claim:
    """Check ``sparse/phase`` (see the module docstring), thresholds and probes through ``sweep``."""
    start = time.perf_counter()
    sizes = config.sizes_for("sparse/phase")
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
    return Claim.checked(
        name, statement, decreasing and sqrt_like, figures, config.command(name), started=start, rows=rows
    )
