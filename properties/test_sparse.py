"""Sparse frozen networks (docs/design.md §4): the mask decides, exactly."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import verify
from properties.strategies import seeds, targets
from verify.core.feasibility import block_feasibility

DENSITIES = st.floats(0.05, 1.0)


@given(d_out=st.integers(1, 6), d_in=st.integers(1, 6), factor=st.floats(0.3, 2.5), density=DENSITIES, seed=seeds())
def test_matching_size_equals_numerical_rank(d_out, d_in, factor, density, seed):
    """docs/design.md §4: for Gaussian values on a Bernoulli mask, rank K = maximum matching size (w.p. 1).

    The numerical rank uses NumPy's default threshold (``σ_max · max(shape) · eps``); K here is at
    most 36 x 90 with O(1) entries, so a generic K is far from that threshold."""
    rng = np.random.default_rng(seed)
    n = max(1, int(factor * d_out * d_in))
    a = rng.standard_normal((d_out, n)) * (rng.uniform(size=(d_out, n)) < density)
    b = rng.standard_normal((n, d_in)) * (rng.uniform(size=(n, d_in)) < density)
    decision = block_feasibility(a, b, np.ones((d_out, d_in)), "paper", block=1)
    assert decision.rank == np.linalg.matrix_rank(verify.khatri_rao(a, b))
    assert decision.ok == (decision.rank == d_out * d_in)


@pytest.mark.parametrize("mode", verify.MODES)
@given(
    target=targets(max_depth=2, max_width=4, min_scale=0.1, max_scale=10.0),
    factor=st.sampled_from([1.0, 1.5, 2.0, 3.0]),
    density=DENSITIES,
    seed=seeds(),
)
def test_feasibility_decides_reconstruction(mode, target, factor, density, seed):
    """docs/design.md §4: `reconstruct` succeeds exactly when `feasibility` says so; zeros stay zeros."""
    frozen = verify.FrozenNetwork.for_target(target, width=factor, density=density, seed=seed)
    masks = [m.copy() for m in frozen.masks]
    report = verify.feasibility(target, frozen, mode)
    try:
        result = verify.reconstruct(target, frozen, verify.Ball(1.0), mode=mode)
    except verify.InfeasibleError:
        assert not report.ok
        return
    assert report.ok
    for before, weight in zip(masks, result.frozen.weights, strict=True):
        assert np.all(weight[~before] == 0) and np.array_equal(before, weight != 0)


@given(target=targets(max_depth=3, max_width=5), factor=st.sampled_from([1.0, 2.0]), seed=seeds())
def test_density_one_is_dense(target, factor, seed):
    """Density 1 draws exactly the dense network, whose feasibility is a width check."""
    dense = verify.FrozenNetwork.for_target(target, width=factor, seed=seed)
    same = verify.FrozenNetwork.for_target(target, width=factor, seed=seed, density=1.0)
    assert all(np.array_equal(a, b) for a, b in zip(dense.weights, same.weights, strict=True))
    report = verify.feasibility(target, same)
    assert report.ok and all(b.rank == b.needed for b in report.blocks)
