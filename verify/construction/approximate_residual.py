"""Below the threshold on a residual network (docs/design.md §11, §8): every branch tuned for what it receives.

`tune_residual_approximate` runs the branches of a `verify.ResidualFrozenNetwork` in network order with
the stream bookkeeping ``x = T z + c`` of `verify.core.residual.branch_systems`. A branch wide enough
for its rows' equations is solved exactly by `verify.construction.tuning.tune_block`; a narrower one
gets the weighted ℓ1 ``γ`` of `verify.solvers.weighted_l1` on its equation in the coordinates of the
stage input ``z``, ``A_R diag(γ) (B_j T) = W_R − T_R``, weighted by the radii of ``z``'s region, and
its even shift centres the residual ``E`` on the region's centre
(`verify.construction.approximate.approximate_block`). It then writes ``W_R z + b_R + E (z − z_c)``,
an affine map of ``z`` like any other, and that map is what the bookkeeping records (it is sent back
into `branch_systems`): later branches are solved on the stream as it really is, so a wide later
branch is exact on what it receives instead of passing the earlier error on through its own
``A_R diag(γ) B_j``.

The errors are planned in exact arithmetic. Stage ``k``'s region is the target's box for ``z_{k−1}``
enlarged by the error ``δ_{k−1}`` carried in (stage 1: the domain). It is not clipped at 0 after the
ReLU, as a dense chain's is: the certifying bound carries the stream's errors as a zonotope that does
not use ``ẑ ≥ 0``, so the shifts cover the symmetric enlargement it checks. Within the stage the only
error beyond the affine map is what earlier stages left on rows beyond their outputs, ``ε``, which a
branch maps by ``S_R + M`` (``M = A_R diag(γ) B_j``), and its odd layer's shift covers the range
widened by ``|B_j| ε``. After the stage, ``δ_k = |W_k| δ_{k−1} + ε + max |(T − W) z + (c − b)|`` over the
region, on its output rows. The certified figure is not this plan but the rigorous zonotope bound of
the one graph engine (`verify.core.graph_stage`, ``centred=True``) computed from the stored parameters.
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


def deviation(lo: np.ndarray, hi: np.ndarray, t: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``max |t z + c|`` per row over the box ``[lo, hi]`` (exact in exact arithmetic: ``|t z_c + c| + |t| r``)."""
    centre, radii = (lo + hi) / 2, (hi - lo) / 2
    return np.abs(t @ centre + c) + np.abs(t) @ radii


def tune_residual_approximate(
    target: TargetNetwork, frozen: ResidualFrozenNetwork, domain: Domain, method: str
) -> tuple[list[tuple[BranchSystem, TunedBlock]], tuple[int, ...]]:
    """Every branch's system and tuned ``(s, t)``, and the 1-based positions of the branches solved approximately
    (module notes). ``domain`` is resolved; ``method`` is ``"auto"``, ``"l1"`` or ``"lstsq"``."""
    boxes = block_input_regions(target, domain)
    weights = amplification(target)
    d, stream = target.widths, frozen.stream_width
    carried_in = np.zeros(d[0])  # δ_{k−1}: the error of the stage input z
    eps = np.zeros(stream)  # the planned error of the stream beyond its affine map (left by earlier stages)
    tuned: list[tuple[BranchSystem, TunedBlock]] = []
    approximate: list[int] = []
    stage = 0
    lo = hi = np.zeros(d[0])  # the stage's region and the stream's map, set when each stage starts
    t_map, c_map = np.eye(stream, d[0]), np.zeros(stream)
    systems = branch_systems(target, frozen)
    system = next(systems, None)
    while system is not None:
        k = system.stage
        if k != stage:  # a new stage: its region, and what the stage before left beyond its affine map
            if stage:
                wanted = np.zeros((stream, d[stage - 1]))
                wanted[: d[stage]] = target.weights[stage - 1]
                offset = np.zeros(stream)
                offset[: d[stage]] = target.biases[stage - 1]
                eps = eps + deviation(lo, hi, t_map - wanted, c_map - offset)
                carried_in = np.abs(target.weights[stage - 1]) @ carried_in + eps[: d[stage]]
                eps = np.where(np.arange(stream) < d[stage], 0.0, eps)
            stage = k
            if k == 1:
                region, (lo, hi) = domain, domain.bounding_box()
            else:
                lo_t, hi_t = boxes[k - 1].bounding_box()
                lo, hi = lo_t - carried_in, hi_t + carried_in  # not clipped at 0 (module notes)
                region = Box(lo, hi)
            centre, radii = (lo + hi) / 2, (hi - lo) / 2
            rows_weight = np.ones(stream)
            rows_weight[: d[k]] = weights[k - 1]
            t_map, c_map = np.eye(stream, d[k - 1]), np.zeros(stream)  # the stream x = T z + c as written
        block, net, rows = system.block, system.network, system.rows
        b_j, a_j = net.weights
        widened = _widened(block, np.abs(b_j) @ eps)
        equation = block.equation
        written = None
        try:
            if equation.n < paper_width(equation.d_out, equation.d_in):
                raise InfeasibleError("narrower than its rows' equations")
            result = tune_block(widened, net, region, "paper", method, None, None)
            t_map[rows], c_map[rows] = t_map[rows] + block.stream_change, c_map[rows] + block.bias
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
            # The rows it writes: W_R z + b_R + E (z − z_c); the next branches are solved on that stream.
            t_map[rows] = t_map[rows] + block.stream_change + mismatch
            c_map[rows] = c_map[rows] + block.bias - mismatch @ centre
            written = (t_map[rows].copy(), c_map[rows].copy())
        carried = (a_j[rows] * result.odd[0]) @ b_j
        carried[np.arange(len(rows)), rows] += 1.0  # S_R + M: how the error beyond the affine map moves
        eps = eps.copy()
        eps[rows] = np.abs(carried) @ eps
        tuned.append((system, result))
        try:
            system = systems.send(written)
        except StopIteration:
            system = None
    return tuned, tuple(approximate)
