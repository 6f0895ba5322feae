"""The bias shift that puts every odd-layer neuron in its linear regime (docs/design.md §2).

For an odd layer with per-neuron scale ``s`` and pre-normalization ``h = B z + c`` ranging over
``[mid - rad, mid + rad]`` on the domain, the shift

    tau = max(|s| * rad - s * mid + SLACK * |s| * size, 0)

makes ``s * h + tau >= SLACK * |s| * size >= 0`` on the whole domain, so the ReLU after it is the
identity there and ``u = s * h + tau`` exactly. A neuron already active on the whole region with
room to spare gets no shift (``tau = 0``, never a negative one): a shift only ever raises.

The slack is a fixed fraction of the magnitude ``size`` of ``h``: far above the
``(fan_in + 2) * eps`` relative rounding error of ``h``, so the computed pre-activations stay
non-negative too, except where ``size = 0`` (a neuron whose input is identically zero on the
domain): there the margin is 0 and BatchNorm's rounding of ``h − mu`` can leave ``-1e-17``, which
the ReLU zeroes at no cost to exactness. The slack costs nothing (the next layer's shift absorbs ``tau`` exactly).

The formula is written once, for any `verify.core.arithmetic.Arithmetic`: float64 here, exact
rationals for ``method="exact"``, a convex cvxpy expression in ``γ`` for ``method="min_shift"``.
"""

from __future__ import annotations

from typing import Any

from verify.core.arithmetic import FLOAT, Arithmetic
from verify.core.domains import AffineRange

__all__ = ["SLACK", "activity_margin", "bias_shift"]

SLACK = 2.0**-8
"""Relative safety margin of the bias shift (a fraction of each neuron's pre-activation magnitude)."""


def bias_shift(scale: Any, image: AffineRange, arithmetic: Arithmetic = FLOAT) -> Any:
    """Shift ``tau >= 0`` with ``scale * h + tau >= SLACK·|scale|·size`` for every ``h`` in ``image``."""
    times, magnitude = arithmetic.multiply, arithmetic.magnitude(scale)
    return arithmetic.positive_part(
        times(magnitude, image.rad)
        - times(scale, image.mid)
        + times(arithmetic.constant(SLACK) * magnitude, image.size)
    )


def activity_margin(scale: Any, shift: Any, image: AffineRange, arithmetic: Arithmetic = FLOAT) -> Any:
    """``min over the region of scale * h + shift`` per neuron: the certificate's margin (>= 0 proves activity)."""
    times = arithmetic.multiply
    return times(scale, image.mid) + shift - times(arithmetic.magnitude(scale), image.rad)
