"""What a residual reconstruction carries (docs/design.md §8, §6.6): per-branch figures, a rigorous bound, a sample.

Each branch is a Case-1 block on the stage input, so its figures are a `BlockCertificate` (scale-equation
residual, activity margin, condition of its system), plus the rank and condition of the stream map
``T`` it was solved through. The whole network carries the rigorous bound of
`verify.core.residual_bound` on ``|ĝ(x) − f̂(x)|`` over the whole domain; the certificate requires
``error_bound <= rtol · f_max``, ``f_max`` the target's largest output on the sample points (a lower
bound of its largest output on the domain, `verify.core.f_max`; the interval ``scale`` is a figure).
The samples are a sanity check of that bound (``max |g − f|`` on them must not exceed it); their
figures against the first-order rounding model (`residual_tolerance_of`: the unrolled network's
`evaluation_tolerance`, every branch's residual amplified by ``cond(T)``) are kept for comparison.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from verify.core.certificate import BlockCertificate
from verify.core.error_bound import ErrorBound
from verify.core.f_max import accuracy_reference, bound_over_f_max, holds_against_f_max
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
        `residual_tolerance_of` the network (the first-order rounding model): a figure, not a test.
    rtol : float
        The accuracy the result was solved for.
    bound_ratio : float
        ``max |g − f|`` on the samples over the certified ``error_bound``: the check (``<= 1``).
    f_max : float
        The target's largest output on the samples, less the rounding of its float64 evaluation
        (`verify.core.f_max.sampled_f_max`): a lower bound of ``max_D ‖f‖_∞``.
    """

    points: int
    max_abs_error: float
    max_relative_error: float
    error_ratio: float
    tolerance: float
    rtol: float
    bound_ratio: float = float("inf")
    f_max: float = float("nan")

    @property
    def holds(self) -> bool:
        """The samples stay within the certified bound: ``bound_ratio <= 1``."""
        return bool(self.bound_ratio <= 1.0)


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
    bound : ErrorBound
        The rigorous bound on ``|ĝ(x) − f̂(x)|`` over the whole domain (`verify.core.residual_bound`).
    rtol : float
        The accuracy demanded: ``error_bound <= rtol · f_max`` (`verify.core.f_max.holds_against_f_max`).
    """

    mode: str
    domain: dict
    method: str
    branches: tuple[BranchCertificate, ...]
    sampled: ResidualSampledCheck
    bound: ErrorBound
    rtol: float = 1e-6

    kind = "bounded"
    """How the composition is proved: a rigorous bound over the whole domain (the samples check it)."""

    @property
    def error_bound(self) -> float:
        """Certified ``max |ĝ(x) − f̂(x)|`` over the domain, in ``dtype``."""
        return self.bound.error_bound

    @property
    def scale(self) -> float:
        """Upper bound over the domain of the target's terms ``|f|`` (absolute-value evaluation)."""
        return self.bound.scale

    @property
    def dtype(self) -> str:
        """The dtype the result is certified in."""
        return self.bound.dtype

    @property
    def f_max(self) -> float:
        """The target's largest output on the sample points (a lower bound of ``max_D ‖f‖_∞``)."""
        return self.sampled.f_max

    @property
    def relative_error_bound(self) -> float:
        """``error_bound / f_max`` (``0/0`` read as 0): the figure ``holds`` compares with ``rtol``."""
        return bound_over_f_max(self.bound.error_bound, self.f_max)

    @property
    def bound_over_scale(self) -> float:
        """``error_bound / scale`` against the interval figure (``scale = 0``: ``frozen_scale``; ``0/0`` read as 0)."""
        b = self.bound
        reference = b.scale if b.scale > 0 else b.frozen_scale
        if b.error_bound == 0:
            return 0.0
        return b.error_bound / reference if reference > 0 else float("inf")

    @property
    def holds(self) -> bool:
        """Every branch holds, ``error_bound <= rtol · f_max``, and the samples stay within the bound."""
        bounded = holds_against_f_max(self.bound.error_bound, self.f_max, self.rtol)
        return all(b.holds for b in self.branches) and bounded and self.sampled.holds

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
        if not holds_against_f_max(self.bound.error_bound, self.f_max, self.rtol):
            why = f" ({self.bound.reason})" if self.bound.reason else ""
            reasons.append(
                f"certified bound {self.error_bound:.3g} on |ĝ − f̂| over the domain in {self.dtype}{why} is "
                f"{self.relative_error_bound:.3g} {accuracy_reference(self.f_max)}, above rtol = {self.rtol:g} "
                f"(interval scale {self.scale:.3g}; largest cond(T) {self.max_stream_condition:.3g}, "
                f"largest branch condition {self.max_condition:.3g}); "
                "use a larger rtol, fewer branches or more branch width"
                + ("" if self.dtype == "float64" else ", or float64 networks")
            )
        if not self.sampled.holds:
            reasons.append(
                f"sampled check: |g − f| = {self.sampled.max_abs_error:.3g} at a sample point exceeds the certified "
                f"bound ({self.sampled.bound_ratio:.3g} times it): the bound is wrong"
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
                "dtype": self.dtype,
                "rtol": self.rtol,
                "error_bound": self.error_bound,
                "scale": self.scale,
                "f_max": self.f_max,
                "relative_error_bound": self.relative_error_bound,
                "bound_over_scale": self.bound_over_scale,
                "bound": asdict(self.bound),
                "branches": [
                    {k: v for k, v in asdict(b).items() if k != "block"}
                    | {"block": asdict(b.block) | {"holds": b.block.holds}, "holds": b.holds}
                    for b in self.branches
                ],
                "sampled": asdict(self.sampled) | {"holds": self.sampled.holds},
            }
        )
