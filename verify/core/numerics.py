"""Numerics shared by every layer: the one componentwise ratio with ``0/0`` read as 0, and iterative refinement."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["REFINEMENT_STEPS", "refine", "residual_ratio"]


def residual_ratio(error: np.ndarray, scale_of_terms: np.ndarray) -> float:
    """``max |error| / scale_of_terms`` componentwise, with ``0/0`` read as 0 (and ``x/0`` as inf)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(error == 0, 0.0, np.abs(error) / scale_of_terms)
    return float(np.max(ratio, initial=0.0))


REFINEMENT_STEPS = 2
"""Steps of iterative refinement after a direct solve: one step in working precision makes the
residual componentwise small (Skeel 1980); the second guards against an unlucky first."""


def refine(
    solve: Callable[[np.ndarray], np.ndarray],
    apply: Callable[[np.ndarray], np.ndarray],
    rhs: np.ndarray,
    start: np.ndarray | None = None,
    steps: int = REFINEMENT_STEPS,
) -> np.ndarray:
    """Iterative refinement of ``apply(x) = rhs``: ``x ← x + solve(rhs − apply(x))``, ``steps`` times,
    starting from ``start`` (default ``solve(rhs)``); ``solve`` is an approximate inverse of ``apply``."""
    x = solve(rhs) if start is None else start
    for _ in range(steps):
        x = x + solve(rhs - apply(x))
    return x
