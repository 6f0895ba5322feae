"""Below the threshold on a convolutional network (docs/design.md §11, §9): every pair tuned for what it receives.

`tune_conv_approximate` runs the pairs of a `verify.ConvTargetNetwork` / `verify.ConvFrozenNetwork` in order.
A pair whose scale equation on flattened kernels, ``A diag(γ) B = W_flat``, is solvable is tuned
exactly by `verify.construction.tuning.tune_block`; a narrower one gets the weighted ℓ1 ``γ`` of
`verify.solvers.weighted_l1` (`verify.construction.approximate.approximate_block`).

**The objective per output channel.** Output channel ``i`` at position ``p`` errs by
``E_i · (ẑ_p − z̄) + (E_i z̄ − κ_i)``, with ``ẑ_p`` the input patch (receptive field, flattened in the
kernel's order) at ``p`` and ``κ_i`` the part of the even shift that centres it, one number per
channel (a BatchNorm2d shift is the same at every position). Every patch of the pair's input region
lies in the *hull* box of the patches, per patch entry ``j`` the interval
``[min_p lo_pj, max_p hi_pj]`` (zero padding contributes 0), of centre ``z̄`` and radii ``R``; with
``κ_i = E_i z̄`` the error of channel ``i`` is at most ``Σ_j |E_ij| R_j`` at every position. That is the
dense objective on the hull: the per-position radii enter through it, and a position whose patch is
narrower than the hull errs less. (A fully connected layer is one position: its hull is its box.)

**Later pairs.** The error carried out of pair ``k`` is planned as one number,
``δ_k = max_i Σ_j |W_ij| δ_{k−1} + max_i Σ_j |E_ij| R_j`` (pooling, flattening and the ReLU do not
increase a uniform bound), and pair ``k + 1``'s region is the target's per-position box for its input
enlarged by ``δ_k`` (not clipped at 0): its odd channels are shifted over that enlarged box, so a
wide later pair is exact on what it receives. The certified figure is not this plan but the graph
bound of `verify.core.graph_bound` with ``centred=True``, computed from the stored parameters.
"""

from __future__ import annotations

import numpy as np

from verify.construction.approximate import approximate_block
from verify.construction.tuning import TunedBlock, tune_block
from verify.core.blocks import Block
from verify.core.conv_blocks import ConvBlock, conv_blocks
from verify.core.conv_networks import ConvFrozenNetwork, ConvTargetNetwork
from verify.core.domains import Box, Domain
from verify.core.errors import InfeasibleError

__all__ = ["patch_hull", "tune_conv_approximate"]


def patch_hull(block: Block, region: Box) -> tuple[np.ndarray, np.ndarray]:
    """Centre and radii of the hull box of the pair's input patches over ``region`` (module notes), one entry
    per column of the block's ``B`` (a convolution's kernel entries ``(in, *kernel)``, a linear layer's inputs)."""
    lo, hi = region.lo, region.hi
    if isinstance(block, ConvBlock):
        layer = block.odd_layer
        lo, hi = lo.reshape(region.shape)[None], hi.reshape(region.shape)[None]
        spatial = layer.spatial

        def fields(x: np.ndarray) -> np.ndarray:  # (in·kernel, positions), the order of flat_weight
            windows = layer.windows(x)[0]  # (in, *out, *kernel)
            order = (0, *range(1 + spatial, 1 + 2 * spatial), *range(1, 1 + spatial))
            return windows.transpose(order).reshape(block.b.shape[1], -1)

        lo, hi = np.min(fields(lo), axis=1), np.max(fields(hi), axis=1)
    return (lo + hi) / 2, (hi - lo) / 2


def tune_conv_approximate(
    target: ConvTargetNetwork, frozen: ConvFrozenNetwork, domain: Domain, method: str
) -> tuple[list[TunedBlock], tuple[int, ...]]:
    """Every pair's ``(s, t)`` and certificate, and the pairs solved approximately (module notes); ``domain`` is
    resolved, ``method`` ``"auto"``, ``"l1"`` or ``"lstsq"``."""
    regions = target.input_regions(domain)
    carried = 0.0
    tuned, approximate = [], []
    for block in conv_blocks(target, frozen):
        region = regions[block.k - 1]
        if block.k > 1:
            region = Box(region.lo - carried, region.hi + carried, shape=region.shape)
        try:
            result = tune_block(block, frozen, region, "paper", method, None, None)
            spread = 0.0
        except InfeasibleError:
            centre, radii = patch_hull(block, region)
            rows = np.ones(block.w.shape[0])
            result, mismatch = approximate_block(block, frozen, region, centre, radii, rows, method, None)
            spread = float(np.max(np.abs(mismatch) @ radii))
            approximate.append(block.k)
        tuned.append(result)
        carried = float(np.max(np.abs(block.w).sum(axis=1))) * carried + spread
    return tuned, tuple(approximate)
