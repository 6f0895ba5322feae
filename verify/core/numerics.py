"""Numerics shared by every layer: the ``0/0``-as-0 ratio, iterative refinement and JSON-ready figures."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["REFINEMENT_STEPS", "json_ready", "refine", "residual_ratio"]


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


def json_ready(value: Any) -> Any:
    """``value`` with NumPy scalars as Python numbers, tuples as lists and non-finite floats as strings."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else str(value)
    return value
