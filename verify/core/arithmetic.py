"""The kinds of number the construction's formulas are written once for (docs/design.md §2).

The bias shift and activity margin (`verify.core.bias_shift`) and the interval bounds through the
target (`verify.core.bounds`) are each one function, evaluated in floating point by `reconstruct`,
in exact rationals by ``method="exact"`` (`verify.solvers.exact`) and, for the shift, as a convex
cvxpy expression by the ``min_shift`` program (`verify.solvers.convex`). An `Arithmetic` supplies
the few elementwise operations they need; `FLOAT` is numpy float64.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from verify.core.domains import AffineRange, Box

__all__ = ["FLOAT", "Arithmetic"]


@dataclass(frozen=True)
class Arithmetic:
    """Elementwise operations on vectors of one kind of number.

    Attributes
    ----------
    name : str
        What the numbers are (``"float64"``, ``"rational"``, ``"cvxpy"``).
    constant : callable
        A float constant (such as the shift's slack) as a number of this kind.
    magnitude, positive_part : callable
        ``|x|`` and ``max(x, 0)``.
    multiply : callable
        The elementwise product of two vectors.
    affine_range : callable or None
        ``(region, weight, bias) -> AffineRange`` of ``weight @ z + bias`` over a region (exact, or an
        outer enclosure); needed by the interval bounds only.
    box : callable or None
        ``(lo, hi) -> region`` for the next block's input box; needed by the interval bounds only.
    """

    name: str
    constant: Callable[[float], Any]
    magnitude: Callable[[Any], Any]
    multiply: Callable[[Any, Any], Any]
    positive_part: Callable[[Any], Any]
    affine_range: Callable[[Any, Any, Any], AffineRange] | None = None
    box: Callable[[Any, Any], Any] | None = None


def _float_range(region: Any, weight: np.ndarray, bias: np.ndarray) -> AffineRange:
    return region.affine_range(weight, bias)


FLOAT = Arithmetic(
    name="float64",
    constant=float,
    magnitude=np.abs,
    multiply=np.multiply,
    positive_part=lambda x: np.maximum(x, 0.0),
    affine_range=_float_range,
    box=Box,
)
"""numpy float64: what `reconstruct` computes in; regions are `verify.Domain` objects."""
