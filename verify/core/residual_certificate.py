"""What a residual reconstruction carries (docs/design.md §8, §6.6): the one `verify.Certificate`.

Each branch is a Case-1 block on the stage input, so its figures are a `BlockCertificate` (scale-equation
residual, activity margin, condition of its system) whose ``extras`` hold its ``stage``, ``branch``, the
stream ``rows`` it writes and the rank and condition of the stream map ``T`` it was solved through. The
whole network carries the rigorous bound of the one graph engine (`verify.core.graph_stage`) on
``|ĝ(x) − f̂(x)|`` over the whole domain, judged against ``rtol · f_max`` as every certificate is. The
samples' figures against the first-order rounding model (`residual_tolerance_of`: the unrolled
network's `evaluation_tolerance`, every branch's residual amplified by ``cond(T)``) are kept for comparison.

``ResidualCertificate``, ``BranchCertificate`` and ``ResidualSampledCheck`` stay importable for one release:
they are `Certificate`, `BlockCertificate` and `SampledCheck`.
"""

from __future__ import annotations

from verify.core.certificate import BlockCertificate, Certificate, SampledCheck
from verify.core.tolerances import evaluation_tolerance

__all__ = ["BranchCertificate", "ResidualCertificate", "ResidualSampledCheck", "residual_tolerance_of"]

ResidualCertificate = Certificate
"""A residual network's certificate is a `verify.Certificate` (one block per branch); the name stays for one
release."""
BranchCertificate = BlockCertificate
"""A branch's figures are a `verify.BlockCertificate` with the branch's ``extras``; the name stays for one
release."""
ResidualSampledCheck = SampledCheck
"""A residual network's sampled check is a `verify.SampledCheck`; the name stays for one release."""


def residual_tolerance_of(
    fan_ins: list[int], target_widths: tuple[int, ...], residual_ratios: list[float], stream_conditions: list[float]
) -> float:
    """The sampled check's tolerance (module notes): `evaluation_tolerance` of the unrolled network, whose layer
    fan-ins are ``fan_ins`` (each branch's ``D``, then ``n_j + 1`` for its addition to the stream), with every
    branch's residual ratio times the condition of its stream map."""
    ratios = [r * max(1.0, c) for r, c in zip(residual_ratios, stream_conditions, strict=True)]
    return evaluation_tolerance([*fan_ins, 0], target_widths, ratios)
