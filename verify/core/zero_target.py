"""A target whose output is identically 0: the frozen network's last BatchNorm is switched off exactly.

When the target's last layer has weight 0 and bias 0, ``f(x) = W_L h + b_L`` is exactly ``0`` in any
dtype for every finite ``h``. Setting the frozen network's last normalization to ``γ = β = 0`` makes
``g(x) = 0·(h − μ)/√(v + ε) + 0`` exactly ``0`` as well, so ``|g − f| = 0`` wherever the intermediate
values stay finite (which the certified bound's overflow check, or its ``valid_radius`` on ``R^d``,
already guarantees). The relative accuracy ``rtol · f_max`` of a target with ``f_max = 0`` is then met by an
exact bound of 0, not refused as "inf of the target's largest output 0". Every route that builds a chain of
normalizations (dense, paired, minimal, residual) calls these functions; nothing else changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from verify.core.error_bound import ErrorBound

__all__ = ["exact_zero_bound", "is_zero_output", "silence_last"]


def is_zero_output(weights: Sequence[np.ndarray], biases: Sequence[np.ndarray | None]) -> bool:
    """Whether the last layer (``weights[-1]``, ``biases[-1]``) has only zeros: the output is identically 0."""
    last_bias = biases[-1] if len(biases) else None
    return not np.any(weights[-1]) and (last_bias is None or not np.any(last_bias))


def silence_last(values: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``values`` (per-layer BatchNorm weights, biases, scales or shifts) with the last layer's set to 0."""
    return [*values[:-1], np.zeros_like(values[-1])]


def exact_zero_bound(bound: ErrorBound) -> ErrorBound:
    """``bound`` with ``|g − f| <= 0`` on the whole domain (its scales, peak and valid radius kept)."""
    return dataclasses.replace(
        bound, error_bound=0.0, error_slope=0.0, reason="", blocks=tuple(0.0 for _ in bound.blocks)
    )
