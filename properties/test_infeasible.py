"""The width thresholds of the construction are tight (docs/design.md §2) and reported as `verify.InfeasibleError`."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

import verify
from properties._support import solve
from properties.strategies import DISTRIBUTIONS, Instance, domains, seeds, targets

WIDTH_RULE = {"paper": verify.paper_width, "minimal": verify.minimal_width}


def frozen_for(target: verify.TargetNetwork, widths: list[int], data: st.DataObject, seed: int) -> verify.FrozenNetwork:
    """``FrozenNetwork.for_target`` with the given odd widths and a drawn distribution and bias choice."""
    distribution = data.draw(st.sampled_from(DISTRIBUTIONS), label="distribution")
    biases = data.draw(st.booleans(), label="frozen biases")
    return verify.FrozenNetwork.for_target(target, width=widths, seed=seed, distribution=distribution, biases=biases)


@pytest.mark.parametrize("mode", verify.MODES)
@given(data=st.data(), seed=seeds())
def test_one_neuron_below_the_mode_width_is_infeasible_and_the_width_itself_is_not(mode, data, seed):
    """docs/design.md §2: paper mode needs ``n >= d_k d_{k-1}``.

    Minimal mode needs ``n >= d_k (d_{k-1} − 1) + 1`` (generic ``W_k``).

    A generic target (no zero rows or columns, every width >= 2 so that one neuron less is still
    a width) and a frozen network from ``FrozenNetwork.for_target`` with ``verify.paper_width`` /
    ``verify.minimal_width`` in every block but one, which gets one neuron less: `verify.reconstruct`
    raises `verify.InfeasibleError` (a ValueError) naming that block, its width and the width that
    would work. With that neuron back, the same target and seed reconstruct (the bound is tight).
    """
    target = data.draw(targets(min_width=2, degenerate=False), label="target")
    d = target.widths
    needed = [WIDTH_RULE[mode](d[k], d[k - 1]) for k in range(1, target.depth + 1)]
    block = data.draw(st.integers(1, target.depth), label="block")
    narrow = [n - (k == block) for k, n in enumerate(needed, start=1)]
    domain = data.draw(domains(d[0]), label="domain")
    with pytest.raises(verify.InfeasibleError) as info:
        verify.reconstruct(target, frozen_for(target, narrow, data, seed), domain, mode)
    assert isinstance(info.value, ValueError)
    assert info.value.block == block
    assert info.value.width == needed[block - 1] - 1
    assert info.value.width_needed == needed[block - 1]
    result = solve(Instance(target, frozen_for(target, needed, data, seed), domain, mode))
    assert result.certificate.holds


@given(data=st.data(), seed=seeds())
def test_minimal_mode_with_zero_rows_needs_only_r_times_d_in_minus_1_plus_1(data, seed):
    """docs/design.md §2, minimal mode: zero rows of ``W_k`` are switched off, so only its ``r`` non-zero rows count.

    Block ``k`` of a target gets ``d_k − r`` zero rows (``1 <= r < d_k``). Width
    ``r (d_{k-1} − 1) + 1`` (below ``verify.minimal_width(d_k, d_{k-1})``) reconstructs, and one
    neuron less raises `verify.InfeasibleError` with ``width_needed = r (d_{k-1} − 1) + 1``.
    """
    generic = data.draw(targets(min_width=2, degenerate=False), label="target")
    d = generic.widths
    block = data.draw(st.integers(1, generic.depth), label="block")
    d_out, d_in = d[block], d[block - 1]
    zero_rows = data.draw(st.sets(st.integers(0, d_out - 1), min_size=1, max_size=d_out - 1), label="zero rows")
    weights = [w.copy() for w in generic.weights]
    weights[block - 1][sorted(zero_rows)] = 0.0
    target = verify.TargetNetwork(weights, generic.biases)
    r = d_out - len(zero_rows)
    needed = [verify.minimal_width(d[k], d[k - 1]) for k in range(1, target.depth + 1)]
    needed[block - 1] = r * (d_in - 1) + 1
    assert needed[block - 1] < verify.minimal_width(d_out, d_in)
    domain = data.draw(domains(d[0]), label="domain")
    result = solve(Instance(target, frozen_for(target, needed, data, seed), domain, "minimal"))
    assert result.certificate.holds
    narrow = [n - (k == block) for k, n in enumerate(needed, start=1)]
    with pytest.raises(verify.InfeasibleError) as info:
        verify.reconstruct(target, frozen_for(target, narrow, data, seed), domain, "minimal")
    assert info.value.block == block
    assert info.value.width_needed == needed[block - 1]


@pytest.mark.parametrize("mode", verify.MODES)
@given(data=st.data(), seed=seeds())
def test_an_even_layer_narrower_than_its_target_layer_is_infeasible(mode, data, seed):
    """docs/design.md §2: even layer ``2k`` carries the ``d_k`` target neurons, so ``n_{2k} >= d_k`` (``k < L``).

    A frozen network whose even layer ``2k`` lost one neuron (and the next odd layer the matching
    column) raises `verify.InfeasibleError` with ``block = k`` and ``width_needed = d_k``.
    """
    target = data.draw(targets(min_depth=2, min_width=2), label="target")
    d = target.widths
    block = data.draw(st.integers(1, target.depth - 1), label="block")
    full = verify.FrozenNetwork.for_target(target, width="paper", seed=seed)
    weights = list(full.weights)
    weights[2 * block - 1] = weights[2 * block - 1][: d[block] - 1]
    weights[2 * block] = weights[2 * block][:, : d[block] - 1]
    frozen = verify.FrozenNetwork(weights)
    domain = data.draw(domains(d[0]), label="domain")
    with pytest.raises(verify.InfeasibleError) as info:
        verify.reconstruct(target, frozen, domain, mode)
    assert info.value.block == block
    assert info.value.width == d[block] - 1
    assert info.value.width_needed == d[block]
