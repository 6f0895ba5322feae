"""The floating-point model of the certified bounds (docs/design.md §6.5): each dtype's unit roundoff ``u``,
smallest subnormal ``η``, largest finite number and smallest normal number, Higham's ``γ_m``, and the rounding
of one frozen layer ``N(M û + c)`` that `verify.core.error_bound` and `verify.core.graph_bound` charge.

A dot product of ``m`` terms errs by at most ``γ_m |x|ᵀ|y|`` with ``γ_m = m u / (1 − m u)`` (Higham,
*Accuracy and Stability of Numerical Algorithms*, §3), and underflow adds at most ``m · η``. A frozen layer adds
``OPS`` roundings beyond its dot product (the bias add and BatchNorm in eval mode; `verify.core.error_bound`'s
module notes, item 2, count them).
"""

from __future__ import annotations

import numpy as np

__all__ = ["FLOAT_DTYPES", "OPS", "layer_rounding", "unit_roundoff"]

FLOAT_DTYPES = ("float64", "float32", "float16", "bfloat16")
_UNIT = {"float64": 2.0**-53, "float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}
_TINY = {"float64": 2.0**-1074, "float32": 2.0**-149, "float16": 2.0**-24, "bfloat16": 2.0**-133}
_HUGE = {
    "float64": float(np.finfo(np.float64).max),
    "float32": float(np.finfo(np.float32).max),
    "float16": 65504.0,
    "bfloat16": 3.3895313892515355e38,
}
_NORMAL = {"float64": 2.0**-1022, "float32": 2.0**-126, "float16": 2.0**-14, "bfloat16": 2.0**-126}
"""Smallest positive normal number of each dtype."""
OPS = 10
"""Roundings of one frozen layer beyond its dot product: bias add 1, BatchNorm 9 (`verify.core.error_bound`,
item 2)."""
_U64 = _UNIT["float64"]


def unit_roundoff(dtype: str) -> float:
    """Unit roundoff ``u`` of a dtype by name: ``2^-53``, ``2^-24``, ``2^-11``, ``2^-8`` (float64 … bfloat16)."""
    if dtype not in _UNIT:
        raise ValueError(f"dtype must be one of {FLOAT_DTYPES}, got {dtype!r}")
    return _UNIT[dtype]


def _gamma(m: float, u: float) -> float:
    """Higham's ``γ_m = m u / (1 − m u)`` (``inf`` once ``m u >= 1/2``)."""
    mu = m * u
    return mu / (1.0 - mu) if mu < 0.5 else float("inf")


def layer_rounding(
    scaled: np.ndarray, beta_abs: np.ndarray, fan_in: int, u: float, tiny: float, inflate: float
) -> np.ndarray:
    """Item 2 of `verify.core.error_bound`'s module notes: the rounding of one frozen layer ``N(M û + c)`` in a
    dtype of unit roundoff ``u``, from ``scaled = |s| (|M| |û| + |c| + |μ|)`` and ``|β|``: ``γ_{fan_in + OPS}
    scaled + γ_2 |β| + (fan_in + OPS) η``."""
    return (_gamma(fan_in + OPS, u) * scaled + _gamma(2, u) * beta_abs) * inflate + (fan_in + OPS) * tiny
