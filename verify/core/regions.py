"""The regions the dense-chain bound carries through a block (docs/design.md §6.5, `verify.core.error_bound`).

A `_Region` is a box ``[lo, hi]`` (or a ball with its bounding box) that contains the exact block input ``z``,
with ``δ >= |ẑ − z|`` componentwise for what a network computes; it answers the magnitudes, minima and
largest entries over the region enlarged by ``δ`` that the bound needs. The target's own rounding of one layer
and the next block's box (the pre-activation range, rounded outwards) are computed from it here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verify.core.domains import Ball, Box, Domain
from verify.core.float_model import _TINY, _U64, _UNIT, _gamma

__all__ = ["input_region", "preactivation_range", "target_rounding"]


@dataclass(frozen=True)
class _Region:
    """``z ∈ [lo, hi]`` (or the ball) exactly, and ``|ẑ − z| <= delta``."""

    lo: np.ndarray
    hi: np.ndarray
    delta: np.ndarray
    ball: tuple[np.ndarray, float] | None = None
    nonneg: bool = False

    def with_delta(self, delta: np.ndarray) -> _Region:
        return _Region(self.lo, self.hi, delta, self.ball, self.nonneg)

    def outer(self) -> tuple[np.ndarray, np.ndarray]:
        lo = self.lo - self.delta
        return (np.maximum(lo, 0.0) if self.nonneg else lo), self.hi + self.delta

    def largest(self) -> np.ndarray:
        """``max |z_i|`` over the exact region, per entry (a ball: ``|centre_i| + radius``)."""
        if self.ball is not None:
            return np.abs(self.ball[0]) + self.ball[1]
        return np.maximum(np.abs(self.lo), np.abs(self.hi))

    def magnitude(self, absw: np.ndarray, inflate: float) -> np.ndarray:
        """Upper bound of ``|W| |ẑ|`` over the region (``absw = |W|``)."""
        if self.ball is not None:
            centre, radius = self.ball
            value = absw @ np.abs(centre) + radius * np.linalg.norm(absw, axis=1) + absw @ self.delta
        else:
            lo, hi = self.outer()
            value = absw @ np.maximum(np.abs(lo), np.abs(hi))
        return value * inflate

    def minimum(self, a: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """``min over ẑ of a ẑ + offset`` computed in float64 (the caller subtracts the rounding allowance)."""
        if self.ball is not None:
            centre, radius = self.ball
            return a @ centre + offset - radius * np.linalg.norm(a, axis=1) - np.abs(a) @ self.delta
        lo, hi = self.outer()
        return np.sum(np.minimum(a * lo, a * hi), axis=1) + offset


def input_region(domain: Domain, what: str) -> _Region:
    """The exact region of the input: a resolved `verify.Box`, or a `verify.Ball` with its bounding box."""
    if isinstance(domain, Ball):
        lo, hi = domain.bounding_box()
        return _Region(lo, hi, np.zeros_like(lo), ball=(domain.center, domain.radius))
    if isinstance(domain, Box):
        return _Region(domain.lo, domain.hi, np.zeros_like(domain.lo))
    raise ValueError(f"{what} needs a verify.Ball or verify.Box, got {type(domain).__name__}")


def target_rounding(region: _Region, w_abs: np.ndarray, bias: np.ndarray, dtype: str, inflate: float) -> np.ndarray:
    """Item 4 of `verify.core.error_bound`'s module notes: the target's error ``|ẑ^f − z|`` after one layer
    ``W z + b`` evaluated in ``dtype``, from its error ``region.delta`` before it (``w_abs = |W|``)."""
    return (w_abs @ region.delta + _target_fresh(region, w_abs, bias, dtype, inflate)) * inflate


def _target_fresh(region: _Region, w_abs: np.ndarray, bias: np.ndarray, dtype: str, inflate: float) -> np.ndarray:
    """The rounding of one target layer ``W ẑ^f + b`` in ``dtype`` itself: ``γ_{n+2}(|W| |ẑ^f| + |b|) + (n + 2) η``."""
    fan_in = w_abs.shape[1]
    rho = _gamma(fan_in + 2, _UNIT[dtype]) * (region.magnitude(w_abs, inflate) + np.abs(bias))
    return rho + (fan_in + 2) * _TINY[dtype]


def preactivation_range(
    region: _Region, w: np.ndarray, bias: np.ndarray, inflate: float
) -> tuple[np.ndarray, np.ndarray]:
    """Bounds ``lo <= W z + b <= hi`` for every exact ``z`` of ``region``, rounded outwards (the next box)."""
    reach = 2 * _gamma(w.shape[1] + 6, _U64) * (region.magnitude(np.abs(w), inflate) + np.abs(bias))
    return region.minimum(w, bias) - reach, -region.minimum(-w, -bias) + reach
