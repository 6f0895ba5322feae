"""Claims of the verification job about sparse frozen networks (DESIGN §4).

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
"""

from __future__ import annotations

import itertools
import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np

import verify
from verify._feasibility import block_feasibility
from verify._sparsity import fit_threshold_exponent, full_rank_rate, threshold_density

if TYPE_CHECKING:
    from verify._report import Claim, Config

__all__ = ["SPARSE_CLAIMS", "sparse_claim"]

SPARSE_CLAIMS = ("sparse/rank", "sparse/decision", "sparse/phase")
PHASE_FACTORS = (1.0, 2.0, 4.0)
SIZES = {
    "quick": {"rank_cases": 300, "decision_cases": 150, "ds": (4, 8, 16, 32), "seeds_small": 40, "seeds_large": 20},
    "full": {
        "rank_cases": 1000,
        "decision_cases": 400,
        "ds": (4, 8, 16, 32, 48),
        "seeds_small": 100,
        "seeds_large": 50,
    },
}
"""Sizes per grid (``custom`` grids use the quick sizes); seeds_small is for d <= 16."""
SQRT_EXPONENT_BAND = 0.25
"""Half-width of the band around 1/2 that the fitted exponent of the non-zeros multiple must fall in."""


def sparse_claim(config: Config, name: str) -> Claim:
    """Run one of `SPARSE_CLAIMS` with the sizes of ``config.grid`` (quick or full)."""
    sizes = SIZES["full" if config.grid == "full" else "quick"]
    runners = {"sparse/rank": _rank_claim, "sparse/decision": _decision_claim, "sparse/phase": _phase_claim}
    return runners[name](config, sizes)


def _claim(config: Config, name: str, statement: str, ok: bool, figures: dict, start: float, **extra: Any) -> Claim:
    from verify._report import Claim

    return Claim(
        name=name,
        statement=statement,
        status="passed" if ok else "failed",
        figures=figures,
        command=config.command(name),
        seconds=time.perf_counter() - start,
        **extra,
    )


def _rank_claim(config: Config, sizes: dict[str, Any]) -> Claim:
    start = time.perf_counter()
    rng = np.random.default_rng(404)
    cases = sizes["rank_cases"]
    agree, failures, deficient = 0, [], 0
    for case in range(cases):
        d_out, d_in = (int(v) for v in rng.integers(1, 9, 2))
        n = int(rng.integers(1, 2 * d_out * d_in + 1))
        density = float(rng.uniform(0.1, 1.0))
        a = rng.standard_normal((d_out, n)) * (rng.uniform(size=(d_out, n)) < density)
        b = rng.standard_normal((n, d_in)) * (rng.uniform(size=(n, d_in)) < density)
        matching = block_feasibility(a, b, np.ones((d_out, d_in)), "paper", block=1).rank
        rank = int(np.linalg.matrix_rank(verify.khatri_rao(a, b)))
        deficient += matching < min(n, d_out * d_in)
        if matching == rank:
            agree += 1
        elif len(failures) < 20:
            failures.append(
                {
                    "case": f"case {case}: d_out={d_out} d_in={d_in} n={n} p={density:.3f}",
                    "reason": f"matching {matching} != rank {rank}",
                }
            )
    figures = {"cases": cases, "agree": agree, "structurally_deficient": deficient}
    statement = (
        "maximum matching size equals the numerical rank of the masked Khatri–Rao matrix (Gaussian values) "
        f"on {cases} random masks (d_out, d_in <= 8, n <= 2 d_out d_in, density 0.1-1)"
    )
    return _claim(config, "sparse/rank", statement, agree == cases, figures, start, failures=failures)


def _decision_claim(config: Config, sizes: dict[str, Any]) -> Claim:
    start = time.perf_counter()
    rng = np.random.default_rng(505)
    per_mode = sizes["decision_cases"]
    figures: dict[str, Any] = {}
    failures = []
    ok = True
    for mode in verify.MODES:
        counts = {"cases": 0, "agree": 0, "feasible": 0, "infeasible": 0}
        for case in range(per_mode):
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
            counts["cases"] += 1
            counts["agree"] += predicted == succeeded
            counts["feasible" if predicted else "infeasible"] += 1
            if predicted != succeeded and len(failures) < 20:
                failures.append(
                    {
                        "case": f"{mode}: widths={widths} width={factor} density={density:.3f} seed={case}",
                        "reason": f"feasibility ok={predicted}, reconstruct {'succeeded' if succeeded else 'refused'}",
                    }
                )
        figures[mode] = counts
        ok = ok and counts["agree"] == counts["cases"] and counts["feasible"] > 0 and counts["infeasible"] > 0
    statement = (
        "reconstruct succeeds exactly when feasibility says so (both modes, random targets of widths <= 8, "
        "odd widths 1-2x paper, densities 0.1-1; both outcomes must occur)"
    )
    return _claim(config, "sparse/decision", statement, ok, figures, start, failures=failures)


def _phase_claim(config: Config, sizes: dict[str, Any]) -> Claim:
    start = time.perf_counter()
    ds = sizes["ds"]
    rows = []
    fits: dict[str, Any] = {}
    decreasing = True
    for factor in PHASE_FACTORS:
        thresholds = []
        for d in ds:
            seeds = range(sizes["seeds_small"] if d <= 16 else sizes["seeds_large"])
            p_star = threshold_density(d, factor, seeds)
            multiple = p_star * 2 * factor * d  # frozen non-zeros p*(n d + d n), n = c d², over d² target weights
            rows.append(
                {
                    "factor": factor,
                    "d": d,
                    "seeds": len(seeds),
                    "p_star": p_star,
                    "rate_at_0.8p": full_rank_rate(d, factor, 0.8 * p_star, seeds),
                    "rate_at_1.25p": full_rank_rate(d, factor, min(1.0, 1.25 * p_star), seeds),
                    "p_star_sqrt_d": p_star * math.sqrt(d),
                    "nonzeros_multiple": multiple,
                    "multiple_over_sqrt_d": multiple / math.sqrt(d),
                }
            )
            thresholds.append(p_star)
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
