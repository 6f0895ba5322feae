"""The sparsity phase transition (docs/design.md §4.3): where a random mask starts to give full rank.

For one square block (``d_out = d_in = d``) with odd width ``n = c·d²`` and independent
Bernoulli(p) masks on ``A`` and ``B``, the probability that a generic frozen block has full rank is
estimated from masks alone (maximum matchings, `verify.core.feasibility`), and the threshold density
``p*(d)`` is where that probability crosses 1/2. Frozen non-zeros at the threshold,
``p*·(n·d + d·n)``, are compared with the target layer's ``d²`` parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from verify.core.feasibility import block_feasibility

__all__ = ["ThresholdFit", "fit_threshold_exponent", "full_rank_rate", "threshold_density"]


def full_rank_rate(d: int, width_factor: float, density: float, seeds: Sequence[int]) -> float:
    """Fraction of seeds whose random Bernoulli(``density``) block pattern has full generic rank ``d²``."""
    n = int(np.ceil(width_factor * d * d))
    hits = 0
    w = np.ones((d, d))
    for seed in seeds:
        rng = np.random.default_rng([3, d, n, seed])
        a = rng.uniform(size=(d, n)) < density
        b = rng.uniform(size=(n, d)) < density
        hits += block_feasibility(a, b, w, "paper", block=1).ok
    return hits / len(seeds)


def threshold_density(d: int, width_factor: float, seeds: Sequence[int], *, steps: int = 12) -> float:
    """Density where the full-rank rate crosses 1/2, by bisection on ``log p`` over ``[1/(c d²), 1]``.

    The rate is monotone in ``p`` in expectation (denser masks contain sparser ones); each probe uses
    the same seeds, so the estimate is deterministic.
    """
    lo, hi = np.log(1.0 / (width_factor * d * d)), 0.0
    if full_rank_rate(d, width_factor, 1.0, seeds) < 0.5:
        return float("nan")
    for _ in range(steps):
        mid = (lo + hi) / 2
        if full_rank_rate(d, width_factor, float(np.exp(mid)), seeds) >= 0.5:
            hi = mid
        else:
            lo = mid
    return float(np.exp(hi))


@dataclass(frozen=True)
class ThresholdFit:
    """``p*(d) ≈ coefficient · d**exponent`` fitted in log-log by least squares."""

    exponent: float
    coefficient: float


def fit_threshold_exponent(ds: Sequence[int], thresholds: Sequence[float]) -> ThresholdFit:
    """Least-squares fit of ``log p* = exponent · log d + log coefficient``."""
    slope, intercept = np.polyfit(np.log(np.asarray(ds, float)), np.log(np.asarray(thresholds, float)), 1)
    return ThresholdFit(float(slope), float(np.exp(intercept)))
