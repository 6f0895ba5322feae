"""What a residual reconstruction carries (docs/design.md §8): per-branch figures and a sampled check.

Each branch is a Case-1 block on the stage input, so its figures are a `BlockCertificate` (scale-equation
residual, activity margin, condition of its system), plus the rank and condition of the stream map
``T`` it was solved through. The whole network is checked on sample points of the domain against a
tolerance derived from the same first-order rounding model as Case 1's (`evaluation_tolerance`, module
notes of `verify.core.tolerances`), applied to the unrolled network: every branch is two layers of
fan-in ``D`` and ``n_j``, plus one rounding for its addition to the stream, and its scale-equation
residual enters amplified by ``cond(T)`` (the residual is in the coordinates of ``T``'s row space).

This is a *sampled* check, not the rigorous bound of `verify.core.error_bound` (which covers chain
networks only): the margins prove the linear regime on the whole domain, the residuals prove each
branch's equation, and the samples check their composition.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from verify.core.certificate import BlockCertificate
from verify.core.numerics import json_ready
from verify.core.tolerances import evaluation_tolerance

__all__ = ["BranchCertificate", "ResidualCertificate", "ResidualSampledCheck", "residual_tolerance_of"]


@dataclass(frozen=True)
class BranchCertificate:
    """The figures of one branch.

    Attributes
    ----------
    stage, branch : int
        1-based stage ``k`` and branch ``j``.
    rows : tuple of int
        The stream rows it writes.
    stream_rank : int
        Rank of the stream map ``T`` it was solved through.
    stream_condition : float
        ``σ_1 / σ_r`` of ``T``.
    block : BlockCertificate
        Its Case-1 figures (residual, margin, rank and condition of the branch system, solver); ``block.block``
        is the branch's 1-based position in the network.
    """

    stage: int
    branch: int
    rows: tuple[int, ...]
    stream_rank: int
    stream_condition: float
    block: BlockCertificate

    @property
    def holds(self) -> bool:
        """The block's checks pass and ``T`` is finitely conditioned."""
        return bool(self.block.holds and np.isfinite(self.stream_condition))


@dataclass(frozen=True)
class ResidualSampledCheck:
    """``g(x)`` against ``f(x)`` on sample points of the domain (boundary included).

    Attributes
    ----------
    points : int
    max_abs_error : float
        ``max |g(x) − f(x)|``.
    max_relative_error : float
        ``max |g − f| / max |f|`` with ``|f|`` the absolute-value evaluation of the target.
    error_ratio : float
        ``max |g − f| / (|g| + |f|)`` componentwise (absolute-value evaluations).
    tolerance : float
        `residual_tolerance_of` the network: ``error_ratio`` must not exceed it.
    rtol : float
        The accuracy demanded: ``max_relative_error`` must not exceed it.

    Both must hold. The first is the rounding model's own test, but the absolute-value evaluation ``|g|``
    of a residual network compounds every branch's gain over the stream (measured up to ``1e18`` times
    ``|f|`` at ``d = 8``, ``m = 8``, ``L = 3``), so it is weak; ``rtol`` against the target's own scale is the
    demanding one.
    """

    points: int
    max_abs_error: float
    max_relative_error: float
    error_ratio: float
    tolerance: float
    rtol: float

    @property
    def holds(self) -> bool:
        """``error_ratio <= tolerance`` and ``max_relative_error <= rtol``."""
        return bool(self.error_ratio <= self.tolerance and self.max_relative_error <= self.rtol)


def residual_tolerance_of(
    fan_ins: list[int], target_widths: tuple[int, ...], residual_ratios: list[float], stream_conditions: list[float]
) -> float:
    """The sampled check's tolerance (module notes): `evaluation_tolerance` of the unrolled network, whose layer
    fan-ins are ``fan_ins`` (each branch's ``D``, then ``n_j + 1`` for its addition to the stream), with every
    branch's residual ratio times the condition of its stream map."""
    ratios = [r * max(1.0, c) for r, c in zip(residual_ratios, stream_conditions, strict=True)]
    return evaluation_tolerance([*fan_ins, 0], target_widths, ratios)


@dataclass(frozen=True)
class ResidualCertificate:
    """The proof-carrying part of a residual reconstruction (module notes).

    Attributes
    ----------
    mode, method : str
    domain : dict
    branches : tuple of BranchCertificate
        One per branch, in network order.
    sampled : ResidualSampledCheck
    """

    mode: str
    domain: dict
    method: str
    branches: tuple[BranchCertificate, ...]
    sampled: ResidualSampledCheck

    kind = "sampled"
    """How the composition is checked: on samples (no rigorous whole-network bound for residual networks)."""

    @property
    def holds(self) -> bool:
        """Every branch holds and the sampled check passes."""
        return all(b.holds for b in self.branches) and self.sampled.holds

    @property
    def max_residual(self) -> float:
        """Largest scale-equation residual of any branch."""
        return max(b.block.residual for b in self.branches)

    @property
    def min_margin(self) -> float:
        """Smallest activity margin of any branch (>= 0 proves the linear regime on the domain)."""
        return min(b.block.min_margin for b in self.branches)

    @property
    def max_condition(self) -> float:
        """Largest condition number of any branch's system (branches whose solver computed none skipped)."""
        return max((b.block.condition for b in self.branches if not np.isnan(b.block.condition)), default=float("nan"))

    @property
    def max_stream_condition(self) -> float:
        """Largest ``cond(T)`` over the branches."""
        return max(b.stream_condition for b in self.branches)

    def failures(self) -> list[str]:
        """Human-readable reasons the certificate fails (empty when it holds)."""
        reasons = []
        for b in self.branches:
            where = f"stage {b.stage}, branch {b.branch}"
            if not b.block.residual_ratio <= b.block.residual_tolerance:
                reasons.append(
                    f"{where}: scale-equation residual ratio {b.block.residual_ratio:.3g} exceeds tolerance "
                    f"{b.block.residual_tolerance:.3g} (condition {b.block.condition:.3g})"
                )
            if not b.block.min_margin >= 0:
                reasons.append(
                    f"{where}: activity margin {b.block.min_margin:.3g} < 0, the linear regime is not proved"
                )
            if not np.isfinite(b.stream_condition):
                reasons.append(f"{where}: the stream map T is singular")
        if not self.sampled.error_ratio <= self.sampled.tolerance:
            reasons.append(
                f"sampled check: |g − f| / (|g| + |f|) = {self.sampled.error_ratio:.3g} exceeds the tolerance "
                f"{self.sampled.tolerance:.3g} (max |g − f| = {self.sampled.max_abs_error:.3g})"
            )
        if not self.sampled.max_relative_error <= self.sampled.rtol:
            reasons.append(
                f"sampled check: max |g − f| / max |f| = {self.sampled.max_relative_error:.3g} exceeds rtol = "
                f"{self.sampled.rtol:.3g} (largest cond(T) {self.max_stream_condition:.3g}, largest branch condition "
                f"{self.max_condition:.3g}); use a larger rtol or more branch width"
            )
        return reasons

    def to_dict(self) -> dict:
        """A JSON-ready dictionary of every figure, with ``holds`` at each level."""
        return json_ready(
            {
                "holds": self.holds,
                "kind": self.kind,
                "mode": self.mode,
                "method": self.method,
                "domain": self.domain,
                "max_residual": self.max_residual,
                "min_margin": self.min_margin,
                "max_stream_condition": self.max_stream_condition,
                "branches": [
                    {k: v for k, v in asdict(b).items() if k != "block"}
                    | {"block": asdict(b.block) | {"holds": b.block.holds}, "holds": b.holds}
                    for b in self.branches
                ],
                "sampled": asdict(self.sampled) | {"holds": self.sampled.holds},
            }
        )
