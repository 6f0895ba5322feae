"""Interval bound propagation through the *target* (docs/design.md §2).

On a bounded domain every hidden activation ``z_k`` of the target lies in a box. The boxes are
outer enclosures (exact per coordinate for the first layer, since a domain gives the exact range
of an affine map); looser boxes only make the bias shift larger, never wrong. Written once for any
`verify.core.arithmetic.Arithmetic` (float64 by default, rationals for ``method="exact"``).
"""

from __future__ import annotations

from typing import Any

from verify.core.arithmetic import FLOAT, Arithmetic
from verify.core.domains import AffineRange, Domain
from verify.core.networks import TargetNetwork

__all__ = ["block_input_regions", "relu_box"]


def relu_box(image: AffineRange, arithmetic: Arithmetic = FLOAT) -> tuple[Any, Any]:
    """``(lo, hi)`` containing ``relu(h)`` for every ``h`` in ``image``: ``[relu(mid - rad), relu(mid + rad)]``."""
    return arithmetic.positive_part(image.mid - image.rad), arithmetic.positive_part(image.mid + image.rad)


def block_input_regions(target: TargetNetwork, domain: Domain, arithmetic: Arithmetic = FLOAT) -> list:
    """Regions containing the input ``z_{k-1}`` of every block ``k = 1 … L`` on ``domain``.

    The first region is the domain itself; region ``k`` is the box
    ``[relu(mid - rad), relu(mid + rad)]`` of ``relu(W_k z + b_k)`` over region ``k - 1``.
    """
    regions: list = [domain]
    for w, b in zip(target.weights[:-1], target.biases[:-1], strict=True):
        image = arithmetic.affine_range(regions[-1], w, b)
        regions.append(arithmetic.box(*relu_box(image, arithmetic)))
    return regions
