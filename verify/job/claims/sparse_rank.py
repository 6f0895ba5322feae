"""Claim ``sparse/rank``: maximum matching size equals the numerical rank (docs/design.md §4).

On random masks with Gaussian values, the maximum matching size of the block's bipartite graph
(`verify.core.feasibility.block_feasibility`) equals the numerical rank of the masked Khatri–Rao
matrix `verify.khatri_rao`. Sizes: ``cases``, the number of random masks.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

import verify
from verify.core.feasibility import block_feasibility
from verify.job.claim import Claim, first_failures
from verify.job.config import Config
from verify.job.progress import Sweep
from verify.job.registry import register

__all__ = ["matching_and_rank", "rank_agreement", "rank_case"]


def matching_and_rank(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """Maximum matching size (`block_feasibility`, from the zero patterns alone) and numerical rank of ``A ⊙ B``."""
    matching = block_feasibility(a, b, np.ones((a.shape[0], b.shape[1])), "paper", block=1).rank
    return matching, int(np.linalg.matrix_rank(verify.khatri_rao(a, b)))


def rank_agreement(results: list[dict[str, Any]]) -> tuple[int, list[dict[str, str]]]:
    """How many cases have matching size = rank, and the first cases that do not (for the report)."""
    agree = sum(r["matching"] == r["rank"] for r in results)
    failures = first_failures(
        results,
        lambda r: {"case": r["case"], "reason": f"matching {r['matching']} != rank {r['rank']}"},
        failing=lambda r: r["matching"] != r["rank"],
    )
    return agree, failures


def rank_case(case: int) -> dict[str, Any]:
    """One random mask (seeded by ``case``): matching size and numerical rank."""
    rng = np.random.default_rng([404, case])
    d_out, d_in = (int(v) for v in rng.integers(1, 9, 2))
    n = int(rng.integers(1, 2 * d_out * d_in + 1))
    density = float(rng.uniform(0.1, 1.0))
    a = rng.standard_normal((d_out, n)) * (rng.uniform(size=(d_out, n)) < density)
    b = rng.standard_normal((n, d_in)) * (rng.uniform(size=(n, d_in)) < density)
    matching, rank = matching_and_rank(a, b)
    return {
        "case": f"case {case}: d_out={d_out} d_in={d_in} n={n} p={density:.3f}",
        "matching": matching,
        "rank": rank,
        "deficient": matching < min(n, d_out * d_in),
    }


@register(
    "sparse/rank",
    order=60,
    statement="Maximum matching size = numerical rank of masked Khatri-Rao matrices.",
    summary="{agree}/{cases} masks: matching size = numerical rank ({structurally_deficient} rank-deficient)",
    sizes={"quick": {"cases": 300}, "full": {"cases": 1000}},
)
def run(config: Config, name: str, sweep: Sweep) -> Claim:
    """Check ``sparse/rank`` on ``cases`` random masks, cases through ``sweep``."""
    start = time.perf_counter()
    cases = config.sizes_for("sparse/rank")["cases"]
    results = sweep.map(rank_case, [(case,) for case in range(cases)])
    agree, failures = rank_agreement(results)
    figures = {"cases": cases, "agree": agree, "structurally_deficient": sum(r["deficient"] for r in results)}
    statement = (
        "maximum matching size equals the numerical rank of the masked Khatri–Rao matrix (Gaussian values) "
        f"on {cases} random masks (d_out, d_in <= 8, n <= 2 d_out d_in, density 0.1-1)"
    )
    return Claim.checked(
        name, statement, agree == cases, figures, config.command(name), started=start, failures=failures
    )
