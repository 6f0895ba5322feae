"""Numerics shared by every layer: the one componentwise ratio with ``0/0`` read as 0."""

from __future__ import annotations

import numpy as np

__all__ = ["residual_ratio"]


def residual_ratio(error: np.ndarray, scale_of_terms: np.ndarray) -> float:
    """``max |error| / scale_of_terms`` componentwise, with ``0/0`` read as 0 (and ``x/0`` as inf)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(error == 0, 0.0, np.abs(error) / scale_of_terms)
    return float(np.max(ratio, initial=0.0))
