"""The certificate of ``mode="approximate"`` (docs/design.md §11): a proved error, not a proved equality.

Below the threshold ``g`` is not ``f``; what is proved is the rigorous bound of
`verify.core.error_bound` on ``|ĝ − f̂|`` over the whole domain, approximation and rounding together,
computed from the stored parameters. ``approximation_error`` is the same engine with the evaluation
roundings left out (the parameters' own error, in exact arithmetic), in total and as the error
carried out of each block. At or above the threshold the result is the exact one, ``exact`` is True
and the figures are those of the exact `Certificate`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from verify.core.certificate import BlockCertificate, Certificate, SampledCheck
from verify.core.error_bound import ErrorBound
from verify.core.numerics import json_ready

__all__ = ["ApproximateCertificate"]


@dataclass(frozen=True)
class ApproximateCertificate:
    """What an approximate reconstruction proves.

    Attributes
    ----------
    exact : bool
        True when every block solved its scale equation exactly (at or above the threshold): the result is
        then `reconstruct`'s exact one and ``figures`` its certificate.
    figures : Certificate or ResidualCertificate
        The block (or branch) figures, the sampled check and the rigorous ``bound``; an approximate block's
        ``residual`` is its weight mismatch ``max |Ŵ − W|``, by design not small.
    approximation_error : float
        The bound of the same engine without evaluation roundings (exact arithmetic): the error due
        to the blocks' weight mismatch alone (0 when ``exact``).
    block_errors : tuple of float
        Per block ``k``, the largest error carried out of block ``k`` in that exact-arithmetic bound.
    approximate_blocks : tuple of int
        The blocks solved approximately (empty when ``exact``).
    """

    exact: bool
    figures: Certificate
    approximation_error: float
    block_errors: tuple[float, ...]
    approximate_blocks: tuple[int, ...] = ()

    @property
    def error_bound(self) -> float:
        """Proved ``max |ĝ(x) − f̂(x)|`` over the domain, approximation and rounding together."""
        return self.figures.error_bound

    @property
    def dtype(self) -> str:
        """The dtype the result is certified in (its parameters are stored in it)."""
        return self.figures.dtype

    @property
    def bound(self) -> ErrorBound | None:
        """The rigorous bound of `verify.core.error_bound` (the carried error per block in ``bound.blocks``)."""
        return self.figures.bound

    @property
    def blocks(self) -> tuple[BlockCertificate, ...]:
        """One `BlockCertificate` per target layer (a residual network: per branch, in network order)."""
        branches = getattr(self.figures, "branches", None)
        if branches is not None:
            return tuple(branch.block for branch in branches)
        return self.figures.blocks

    @property
    def sampled(self) -> SampledCheck:
        """``g`` against ``f`` on sample points: every sampled error must lie inside the bound."""
        return self.figures.sampled

    @property
    def f_max(self) -> float:
        """The target's largest output on the sample points, a lower bound of ``max_D ‖f‖_∞`` (`verify.core.f_max`)."""
        return self.figures.f_max

    @property
    def relative_error_bound(self) -> float:
        """``error_bound / f_max``: the proved error against the target's largest output (a figure here: below
        the threshold no ``rtol`` is demanded, the bound itself is the result)."""
        return self.figures.relative_error_bound

    @property
    def scale(self) -> float:
        """The target's absolute-value evaluation over the domain (largest entry), the interval figure."""
        return self.figures.scale

    @property
    def bound_over_scale(self) -> float:
        """``error_bound / scale``, against the interval figure."""
        return self.figures.bound_over_scale

    @property
    def mode(self) -> str:
        """``"approximate"``."""
        return "approximate"

    @property
    def holds(self) -> bool:
        """Exact: the exact certificate holds. Approximate: the bound is finite, every exactly solved block
        passes its checks, every approximate block's margins are ``>= 0`` and no sample lies outside the bound."""
        if self.exact:
            return self.figures.holds
        exact_blocks = [b for b in self.blocks if b.block not in self.approximate_blocks]
        margins = all(b.min_margin >= 0 for b in self.blocks)
        finite = self.bound is not None and not self.bound.reason and self.error_bound < float("inf")
        return bool(finite and margins and all(b.holds for b in exact_blocks) and self.sampled.holds)

    def failures(self) -> list[str]:
        """Human-readable reasons the certificate fails (empty when it holds)."""
        if self.exact:
            return self.figures.failures()
        reasons = [
            f"block {b.block}: activity margin {b.min_margin:.3g} < 0" for b in self.blocks if not b.min_margin >= 0
        ]
        if self.bound is None or self.bound.reason or not self.error_bound < float("inf"):
            reasons.append(f"no finite error bound ({'' if self.bound is None else self.bound.reason})")
        if not self.sampled.holds:
            reasons.append(f"a sampled |g − f| is {self.sampled.bound_ratio:.3g} times the bound: the bound is wrong")
        return reasons

    def to_dict(self) -> dict:
        """A JSON-ready dictionary: the exact certificate's figures plus the approximation's."""
        return json_ready(
            self.figures.to_dict()
            | {
                "holds": self.holds,
                "mode": self.mode,
                "exact": self.exact,
                "approximation_error": self.approximation_error,
                "block_errors": list(self.block_errors),
                "approximate_blocks": list(self.approximate_blocks),
                "blocks": [asdict(b) | {"holds": b.holds} for b in self.blocks],
            }
        )
