"""Below the threshold on a residual network (docs/design.md §11, §8): every branch tuned for what it receives.

`tune_residual_approximate` runs the branches of a `verify.ResidualFrozenNetwork` in network order, as
`verify.construction.residual` does, with the stream bookkeeping ``x = T z + c`` of
`verify.core.residual.branch_systems` (each branch's plan assumes the branches before it wrote their rows
exactly). A branch wide enough for its rows' equations is solved exactly by
`verify.construction.tuning.tune_block`; a narrower one gets the weighted ℓ1 ``γ`` of
`verify.solvers.weighted_l1` on its equation in the coordinates of the stage input ``z``,
``A_R diag(γ) (B_j T) = W_R − T_R``, weighted by the radii of ``z``'s region, and its even shift centres
the residual ``E`` on the region's centre (`verify.construction.approximate.approximate_block`).

The errors are planned in exact arithmetic on the stream. At the start of stage ``k`` its region is the
target's box for ``z_{k−1}`` enlarged by the error ``δ_{k−1}`` carried in (clipped at 0 after the ReLU;
stage 1: the domain), so the stage input's own error is absorbed by the region, and the stream error
``ε`` starts at 0 on the input rows (rows beyond them keep what the previous stage left there). A
branch owning rows ``R`` maps the stream as ``x_R ← x_R + M x + o`` (``M = A_R diag(γ) B_j``), so on
``x̂ = T ẑ + c + e`` it writes ``W_R ẑ + b_R + (S_R + M) e + E (ẑ − z_c)``:

    ε_R ← |S_R + M| ε + |E| r.

Its odd layer reads ``B_j x̂ + c_j``, whose range is the planned one over the region widened by
``|B_j| ε``, and its shift covers that widened range: every branch, exact or not, is in its linear
regime on all it can receive, so a later wide branch is exact on what it receives. After the stage,
``δ_k = |W_k| δ_{k−1} + ε`` on its output rows. The certified figure is not this plan but the
rigorous zonotope bound of `verify.core.residual_bound` (``centred=True``) computed from the stored
parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from verify.construction.approximate import amplification, approximate_block
from verify.construction.tuning import TunedBlock, tune_block
from verify.core.arithmetic import FLOAT, Arithmetic
from verify.core.bounds import block_input_regions
from verify.core.domains import AffineRange, Box, Domain
from verify.core.errors import InfeasibleError
from verify.core.networks import TargetNetwork, paper_width
from verify.core.residual import BranchBlock, BranchSystem, ResidualFrozenNetwork, branch_systems
from verify.core.scale_equation import ScaleEquation

__all__ = ["tune_residual_approximate"]


@dataclass(frozen=True)
class _Widened(BranchBlock):
    """A branch block whose odd layer's input range is widened by ``widen`` per neuron (``|B_j| ε``: the stream
    error planned for what it reads)."""

    widen: np.ndarray = None  # type: ignore[assignment]

    def odd_range(self, region: Domain, arithmetic: Arithmetic = FLOAT) -> AffineRange:
        """The range of ``B_j x̂ + c_j`` for ``x̂ = T z + c + e``, ``z`` in ``region``, ``|e| <= ε``."""
        image = arithmetic.affine_range(region, self.stream_weight, self.c_odd)
        return self.channels.reduce_range(AffineRange(image.mid, image.rad + self.widen, image.size + self.widen))


def _widened(block: BranchBlock, widen: np.ndarray) -> _Widened:
    return _Widened(**{f.name: getattr(block, f.name) for f in fields(block)}, widen=widen)


def tune_residual_approximate(
    target: TargetNetwork, frozen: ResidualFrozenNetwork, domain: Domain, method: str
) -> tuple[list[tuple[BranchSystem, TunedBlock]], tuple[int, ...]]:
    """Every branch's system and tuned ``(s, t)``, and the 1-based positions of the branches solved approximately
    (module notes). ``domain`` is resolved; ``method`` is ``"auto"``, ``"l1"`` or ``"lstsq"``."""
    boxes = block_input_regions(target, domain)
    weights = amplification(target)
    d, stream = target.widths, frozen.stream_width
    carried_in = np.zeros(d[0])  # δ_{k−1}: the error of the stage input z
    eps = np.zeros(stream)  # the planned error of the stream
    tuned: list[tuple[BranchSystem, TunedBlock]] = []
    approximate: list[int] = []
    stage = 0
    for system in branch_systems(target, frozen):
        k = system.stage
        if k != stage:  # a new stage: its region, the stream error beyond its input rows carried over
            if stage:
                carried_in = np.abs(target.weights[stage - 1]) @ carried_in + eps[: d[stage]]
                eps = np.where(np.arange(stream) < d[stage], 0.0, eps)
            stage = k
            if k == 1:
                region, (lo, hi) = domain, domain.bounding_box()
            else:
                lo_t, hi_t = boxes[k - 1].bounding_box()
                lo, hi = np.maximum(lo_t - carried_in, 0.0), hi_t + carried_in
                region = Box(lo, hi)
            centre, radii = (lo + hi) / 2, (hi - lo) / 2
            rows_weight = np.ones(stream)
            rows_weight[: d[k]] = weights[k - 1]
        block, net, rows = system.block, system.network, system.rows
        b_j, a_j = net.weights
        widened = _widened(block, np.abs(b_j) @ eps)
        equation = block.equation
        mismatch = np.zeros((len(rows), d[k - 1]))
        try:
            if equation.n < paper_width(equation.d_out, equation.d_in):
                raise InfeasibleError("narrower than its rows' equations")
            result = tune_block(widened, net, region, "paper", method, None, None)
        except InfeasibleError:
            in_z = ScaleEquation(block.a, block.stream_weight, block.stream_change)
            result, mismatch = approximate_block(
                widened,
                net,
                region,
                centre,
                radii,
                rows_weight[rows],
                method,
                None,
                equation=in_z,
                image=widened.odd_range(region),
            )
            approximate.append(system.index + 1)
        gamma = result.odd[0]
        carried = (a_j[rows] * gamma) @ b_j
        carried[np.arange(len(rows)), rows] += 1.0  # S_R + M
        eps = eps.copy()
        eps[rows] = np.abs(carried) @ eps + np.abs(mismatch) @ radii
        tuned.append((system, result))
    return tuned, tuple(approximate)
