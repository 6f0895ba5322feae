"""Memory planning of `verify.nn.fit_norm_layers`: every pair's solve is estimated from the modules' shapes
before they are copied into numpy and before the first pair is solved (`verify.construction.memory_plan`)."""

from __future__ import annotations

import math

from torch import nn

from verify.construction.memory_plan import SolveSize, plan_solves
from verify.nn.residual import FrozenResidualMLP, ResidualBranch

__all__ = ["plan_fit", "solve_sizes"]

_AFFINE = (nn.Linear, nn.Conv1d, nn.Conv2d)


def _fan(module: nn.Module) -> tuple[int, int]:
    """``(outputs, inputs per output)`` of a Linear or a convolution (``C_in·prod(kernel)``)."""
    if isinstance(module, nn.Linear):
        return module.out_features, module.in_features
    return module.out_channels, module.in_channels * math.prod(module.kernel_size)  # type: ignore[arg-type]


def solve_sizes(frozen: nn.Module, target: nn.Module) -> list[SolveSize]:
    """Each pair's scale-equation size read from the modules (empty when they are not pairs of affine layers:
    the graph route and any module this cannot read are planned by `verify.reconstruct` itself)."""
    if isinstance(frozen, FrozenResidualMLP):
        branches = [m for m in frozen.modules() if isinstance(m, ResidualBranch)]
        return [
            SolveSize(f"branch {j}", b.odd.out_features, b.odd.in_features, b.odd.in_features)
            for j, b in enumerate(branches, start=1)
        ]
    if not (isinstance(frozen, nn.Sequential) and isinstance(target, nn.Sequential)):
        return []
    odd = [m for m in frozen.modules() if isinstance(m, _AFFINE)][0::2]
    layers = [m for m in target.modules() if isinstance(m, _AFFINE)]
    if len(odd) != len(layers):
        return []
    return [
        SolveSize(f"layer {k} ({type(t).__name__})", _fan(o)[0], *_fan(t))
        for k, (o, t) in enumerate(zip(odd, layers, strict=True), start=1)
    ]


def plan_fit(frozen: nn.Module, target: nn.Module, options: dict) -> None:
    """Refuse a fit whose pairs do not fit, with the float64 copies of both modules that reading them makes."""
    entries = sum(t.numel() for m in (frozen, target) for t in (*m.parameters(), *m.buffers()))
    method, mode = options.get("method", "auto"), options.get("mode", "paper")
    if isinstance(method, str) and mode in ("paper", "minimal"):  # anything else is refused by reconstruct
        plan_solves(solve_sizes(frozen, target), method, str(mode), frozen=8 * entries)
