"""Interval bound propagation through the *target* (docs/design.md §2).

On a bounded domain every hidden activation ``z_k`` of the target lies in a box. The boxes are
outer enclosures (exact per coordinate for the first layer, since a domain gives the exact range
of an affine map); looser boxes only make the bias shift larger, never wrong.
"""

from __future__ import annotations

import numpy as np

from verify.core.domains import Box, Domain
from verify.core.networks import TargetNetwork

__all__ = ["block_input_regions"]


def block_input_regions(target: TargetNetwork, domain: Domain) -> list[Domain]:
    """Regions containing the input ``z_{k-1}`` of every block ``k = 1 … L`` on ``domain``.

    The first region is the domain itself; region ``k`` is the box
    ``[relu(mid - rad), relu(mid + rad)]`` of ``relu(W_k z + b_k)`` over region ``k - 1``.
    """
    regions: list[Domain] = [domain]
    for w, b in zip(target.weights[:-1], target.biases[:-1], strict=True):
        image = regions[-1].affine_range(w, b)
        regions.append(Box(np.maximum(image.mid - image.rad, 0.0), np.maximum(image.mid + image.rad, 0.0)))
    return regions
