"""Case 2: a frozen residual network computes the target on the domain (docs/design.md §8)."""

import itertools

import numpy as np
import pytest
from hypothesis import assume, given, note
from hypothesis import strategies as st

import verify
from properties.strategies import seeds, targets
from verify.core.residual_certificate import residual_tolerance_of

FRESH_POINTS = 64


def _tolerance(result: verify.ResidualReconstruction) -> float:
    """The rounding model of docs/design.md §8 with every branch's residual at the largest a certificate accepts
    (not the residual the code reports), and cond(T) as reported (it is a figure of the target alone)."""
    frozen, branches = result.frozen, result.certificate.blocks
    fan_ins = [w for stage in frozen.odd_widths for n in stage for w in (frozen.stream_width, n + 1)]
    return residual_tolerance_of(
        fan_ins,
        result.target.widths,
        [b.residual_tolerance for b in branches],
        [b.extras["stream_condition"] for b in branches],
    )


@pytest.mark.parametrize("mode", verify.MODES)
@given(data=st.data(), seed=seeds())
def test_residual_reconstruction_equals_target_on_fresh_points(mode, data, seed):
    """docs/design.md §8 (each branch is a §2 block on the stage input, so every stage maps [z; 0] to
    [W z + b; 0]): for any target, any branch count m and the mode's widths, ``g = f`` at fresh points of the
    domain, ``|g − f| <= tol · (|g| + |f|)`` componentwise with the rounding model's tolerance."""
    target = data.draw(targets(max_width=6, max_scale=10.0, min_scale=0.1), label="target")
    widths = target.widths
    most = min(max(a, b) for a, b in itertools.pairwise(widths))
    branches = data.draw(st.integers(1, most), label="branches")
    domain = data.draw(st.sampled_from([verify.Ball(1.0), verify.Box(-1.0, 1.0)]), label="domain")
    frozen = verify.ResidualFrozenNetwork.for_target(target, branches=branches, width=mode, seed=seed)
    try:
        result = verify.reconstruct(target, frozen, domain, mode=mode, samples=4)
    except verify.CertificateError as error:  # only an accuracy refusal (rtol) is discarded, never a broken proof
        certificate = error.certificate
        assert all(b.holds for b in certificate.blocks), certificate.failures()
        assert certificate.sampled.error_ratio <= certificate.sampled.tolerance, certificate.failures()
        note(f"refused for accuracy: {certificate.failures()}")
        assume(False)
    except verify.InfeasibleError as error:  # a degenerate target (e.g. a singular leading block of W)
        note(str(error))
        assume(False)
    x = result.domain.sample(FRESH_POINTS, np.random.default_rng([seed, 1]))
    g, f = result.network(x), target(x)
    scale = frozen.magnitude(x, result.gamma, result.beta) + target.magnitude(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(g == f, 0.0, np.abs(g - f) / scale)
    assert ratio.max() <= _tolerance(result)
