"""Memory planning of a reconstruction: every pair's solve is estimated before the first one runs.

`verify.solvers.registry.memory_estimate` gives what each solver allocates on one block (the explicit
Khatri–Rao operator and its factorization for ``direct``/``lstsq``/the convex programs, the workspace of
the matrix-free ``iterative``); `plan_solves` takes every pair's sizes, the method each will run (``auto``
picks ``iterative`` where the explicit method would not fit, `verify.solvers.registry.choose`), and refuses
the whole reconstruction with a `ValueError` naming the first pair that does not fit in
`verify.core.memory.available_memory`, so that no block is solved, and nothing large allocated, first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from verify.core import memory
from verify.core.conv_networks import ConvFrozenNetwork, ConvTargetNetwork
from verify.core.memory import PairEstimate, format_bytes
from verify.core.networks import FrozenNetwork, TargetNetwork, minimal_width, paper_width
from verify.core.residual import ResidualFrozenNetwork
from verify.solvers.registry import choose, memory_estimate

__all__ = ["SolveSize", "conv_sizes", "dense_sizes", "plan_solves", "residual_sizes", "solve_estimate"]


@dataclass(frozen=True)
class SolveSize:
    """One pair's scale equation: ``n`` odd neurons, ``d_out × d_in`` target weights (``d_out·d_in`` equations)."""

    name: str
    n: int
    d_out: int
    d_in: int


def dense_sizes(target: TargetNetwork, frozen: FrozenNetwork) -> list[SolveSize]:
    """The pairs of a dense chain (an upper bound for a paired block, which solves on one half)."""
    d, n = target.widths, frozen.widths
    return [SolveSize(f"block {k} (layer {2 * k - 1})", n[2 * k - 1], d[k], d[k - 1]) for k in range(1, len(d))]


def conv_sizes(target: ConvTargetNetwork, frozen: ConvFrozenNetwork) -> list[SolveSize]:
    """The pairs of a convolutional chain: flattened kernels, ``d_in = C_in·prod(kernel)``."""
    return [
        SolveSize(f"block {k} ({layer.name})", odd.out_channels, layer.out_channels, layer.flat_weight.shape[1])
        for k, (layer, odd) in enumerate(zip(target.affine, frozen.affine[0::2], strict=True), start=1)
    ]


def residual_sizes(frozen: ResidualFrozenNetwork) -> list[SolveSize]:
    """The branches of a residual network, each bounded by a full ``D × D`` stream system (a branch solves for
    its own rows of it, at the stream map's rank)."""
    stream = frozen.stream_width
    return [
        SolveSize(f"stage {k} branch {j}", net.widths[1], stream, stream)
        for k, stage in enumerate(frozen.stages, start=1)
        for j, net in enumerate(stage, start=1)
    ]


def solve_estimate(size: SolveSize, method: str, mode: str, *, frozen: int = 0) -> tuple[str, PairEstimate]:
    """The method ``size``'s pair will run and its `PairEstimate` (``frozen`` bytes already counted elsewhere)."""
    if mode == "minimal":
        chosen = "minimal"
    elif method == "auto":
        available = memory.available_memory()
        chosen = choose(size.n, size.d_out * size.d_in, d_out=size.d_out, d_in=size.d_in, available=available)
    else:
        chosen = method
    needed = memory_estimate(chosen, size.n, size.d_out, size.d_in)
    part = {"workspace": needed} if chosen == "iterative" else {"operator": needed}
    return chosen, PairEstimate(size.name, frozen, **part)


def plan_solves(sizes: Sequence[SolveSize], method: str, mode: str, *, frozen: int = 0) -> list[PairEstimate]:
    """Estimate every pair's solve and refuse, before any is run, a pair that does not fit with ``frozen``
    bytes (the network's own copy, when it is still to be made) alongside.

    The `ValueError` names the pair, the method, the estimate by part, the available memory and what would fit:
    ``method='iterative'`` (matrix-free) when that fits, else a narrower frozen network.
    """
    estimates = []
    for size in sizes:
        if method == "exact":  # refused earlier with its own size limit (`verify.solvers.exact`)
            continue
        chosen, estimate = solve_estimate(size, method, mode, frozen=frozen)
        lean = memory_estimate("iterative", size.n, size.d_out, size.d_in) + frozen
        if chosen != "iterative" and mode == "paper" and lean < estimate.total:
            suggestion = f"method='iterative' (matrix-free LSMR, never forms K), which needs about {format_bytes(lean)}"
        elif size.n > paper_width(size.d_out, size.d_in):
            suggestion = (
                f"a narrower frozen network: the pair has {size.n} odd neurons where the paper width "
                f"{paper_width(size.d_out, size.d_in)} is enough"
            )
        else:
            suggestion = (
                "a smaller target or a machine with more memory: exact reconstruction needs at least the minimal "
                f"width {minimal_width(size.d_out, size.d_in)} for this pair"
            )
        parts = ", ".join(
            f"{name} {format_bytes(value)}"
            for name, value in (
                ("frozen weights", estimate.frozen),
                ("operator", estimate.operator),
                ("workspace", estimate.workspace),
            )
            if value
        )
        memory.require_memory(
            estimate.total,
            f"{size.name}: solving {size.d_out}x{size.d_in} weights with {size.n} neurons by method {chosen!r} "
            f"({parts})",
            f"use {suggestion}",
        )
        estimates.append(estimate)
    return estimates
