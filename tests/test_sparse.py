"""Sparse frozen networks (docs/design.md §4): feasibility from the mask alone, and what reconstruct does."""

import numpy as np
import pytest

import verify
from verify.core.feasibility import block_feasibility, incidence


def test_incidence_is_the_pattern_of_the_khatri_rao_matrix():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 9)) * (rng.uniform(size=(3, 9)) < 0.5)
    b = rng.standard_normal((9, 4)) * (rng.uniform(size=(9, 4)) < 0.5)
    np.testing.assert_array_equal(incidence(a != 0, b != 0).toarray().T != 0, verify.khatri_rao(a, b) != 0)


def test_dense_feasibility_is_a_width_check():
    target = verify.TargetNetwork.random([3, 4, 2], seed=0)
    for width, ok in [("paper", True), ([11, 8], False), ([12, 7], False), (2.0, True)]:
        report = verify.feasibility(target, verify.FrozenNetwork.for_target(target, width=width, seed=1))
        assert report.ok is ok
        assert [b.rank for b in report.blocks] == [min(b.width, b.needed) for b in report.blocks]


def test_issue_example():
    target = verify.TargetNetwork.random([4, 5, 3], seed=2)
    frozen = verify.FrozenNetwork.for_target(target, width=2.0, density=0.3, seed=4)
    report = verify.feasibility(target, frozen, mode="paper")
    summary = [(b.rank, b.needed, b.ok) for b in report.blocks]
    assert all(rank <= needed for rank, needed, _ in summary)
    if report.ok:
        result = verify.reconstruct(target, frozen, verify.Ball(1.0))
        assert result.certificate.holds
    else:
        with pytest.raises(verify.InfeasibleError):
            verify.reconstruct(target, frozen, verify.Ball(1.0))


def test_density_masks_are_bernoulli_with_exact_zeros():
    target = verify.TargetNetwork.random([8, 8, 8], seed=0)
    frozen = verify.FrozenNetwork.for_target(target, width=2.0, density=0.25, seed=1)
    total = sum(m.size for m in frozen.weights)
    # Bernoulli(0.25) over `total` weights: mean 0.25, std sqrt(0.25*0.75/total); allow 5 std.
    assert abs(frozen.density - 0.25) <= 5 * np.sqrt(0.25 * 0.75 / total)
    assert all(np.array_equal(m, m * mask) for m, mask in zip(frozen.weights, frozen.masks, strict=True))


def test_density_one_is_the_dense_network():
    target = verify.TargetNetwork.random([3, 4, 2], seed=0)
    dense = verify.FrozenNetwork.for_target(target, seed=1)
    same = verify.FrozenNetwork.for_target(target, seed=1, density=1.0)
    for a, b in zip(dense.weights, same.weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_unreachable_entries_are_named_in_the_error():
    """A frozen pair with a whole input column cut off: entries (a, 0) are reached by no neuron."""
    target = verify.TargetNetwork.random([3, 3, 2], seed=0)
    base = verify.FrozenNetwork.for_target(target, width=2.0, seed=1)
    ms = [m.copy() for m in base.weights]
    ms[0][:, 0] = 0.0  # no odd neuron of block 1 sees input 0
    frozen = verify.FrozenNetwork(ms)
    report = verify.feasibility(target, frozen)
    assert not report.ok and report.blocks[0].unreachable == 3 and report.blocks[0].rank == 6
    with pytest.raises(
        verify.InfeasibleError, match=r"rank at most 6 .* needs 9; 3 target entries are reached by no"
    ) as e:
        verify.reconstruct(target, frozen, verify.Ball(1.0))
    assert (e.value.block, e.value.rank, e.value.needed) == (1, 6, 9)


def test_masks_survive_reconstruction():
    target = verify.TargetNetwork.random([4, 4, 3], seed=5)
    frozen = verify.FrozenNetwork.for_target(target, width=3.0, density=0.5, seed=6)
    masks = [m.copy() for m in frozen.masks]
    result = verify.reconstruct(target, frozen, verify.Ball(1.0))
    for before, after, weight in zip(masks, result.frozen.masks, result.frozen.weights, strict=True):
        np.testing.assert_array_equal(before, after)
        assert np.all(weight[~before] == 0)


def test_minimal_mode_forced_row_is_refused_in_both_places():
    """One reachable neuron for a 1x4 target row: ρ W = γ a bᵀ forces ρ = 0 for a generic W."""
    a = np.array([[0.3, 0.0, 0.0, 0.5]])
    b = np.array([[-0.7, 1.1, 1.3, -0.1], [-0.6, -0.4, 0.0, 0.0], [0.0, 0.2, 0.7, 0.0], [0.0, 0.0, 0.0, 0.0]])
    w = np.array([[0.2, -1.0, 0.4, 0.9]])
    decision = block_feasibility(a, b, w, "minimal", block=1)
    assert not decision.ok and decision.forced_rows == (0,)
    target = verify.TargetNetwork([w])
    frozen = verify.FrozenNetwork([b, a])
    assert not verify.feasibility(target, frozen, mode="minimal").ok
    with pytest.raises(verify.InfeasibleError, match=r"switches off target row\(s\) \[0\]"):
        verify.reconstruct(target, frozen, verify.Box([-1] * 4, [1] * 4), mode="minimal")


def test_forced_rows_agree_with_brute_force_rank():
    """ρ_a is forced to 0 iff deleting its column keeps the rank (a coloop), checked numerically."""
    rng = np.random.default_rng(7)
    checked = 0
    for _ in range(60):
        d_out, d_in, n = rng.integers(1, 4), rng.integers(1, 4), rng.integers(1, 10)
        a = rng.standard_normal((d_out, n)) * (rng.uniform(size=(d_out, n)) < 0.5)
        b = rng.standard_normal((n, d_in)) * (rng.uniform(size=(n, d_in)) < 0.6)
        w = rng.standard_normal((d_out, d_in)) * (rng.uniform(size=(d_out, d_in)) < 0.8)
        rows = np.flatnonzero(np.any(w != 0, axis=1))
        if rows.size == 0:
            continue
        r = rows.size
        weight_part = np.zeros((r, d_in, r))
        weight_part[np.arange(r), :, np.arange(r)] = w[rows]
        h = np.hstack([weight_part.reshape(r * d_in, r), -verify.khatri_rao(a[rows], b)])
        rank = np.linalg.matrix_rank(h)
        forced = tuple(int(rows[i]) for i in range(r) if np.linalg.matrix_rank(np.delete(h, i, axis=1)) < rank)
        decision = block_feasibility(a, b, w, "minimal", block=1)
        assert decision.rank == rank and decision.forced_rows == forced
        checked += 1
    assert checked > 40


def test_invalid_density():
    target = verify.TargetNetwork.random([2, 2], seed=0)
    for density in (0.0, -0.5, 1.5, float("nan"), True):
        with pytest.raises(ValueError, match="density must be a number in"):
            verify.FrozenNetwork.for_target(target, density=density)
    with pytest.raises(ValueError, match="mode must be 'paper' or 'minimal'"):
        verify.feasibility(target, verify.FrozenNetwork.for_target(target), mode="exact")


@pytest.mark.parametrize("mode", ["paper", "minimal"])
def test_feasibility_reads_only_the_equations_pattern(mode):
    """`equation_feasibility` decides from the `ScaleEquation`'s incidence; `block_feasibility` is its matrix form."""
    from verify.core.feasibility import equation_feasibility
    from verify.core.scale_equation import ScaleEquation

    rng = np.random.default_rng(11)
    for _ in range(20):
        a = np.where(rng.uniform(size=(3, 8)) < 0.5, rng.standard_normal((3, 8)), 0.0)
        b = np.where(rng.uniform(size=(8, 3)) < 0.5, rng.standard_normal((8, 3)), 0.0)
        w = np.where(rng.uniform(size=(3, 3)) < 0.7, 1.0, 0.0)
        equation = ScaleEquation(a, b, w)
        decision = equation_feasibility(equation, mode, block=2)
        assert decision == block_feasibility(a, b, w, mode, block=2)
        reach = (a != 0).astype(int) @ (b != 0).astype(int)
        counted = reach == 0 if mode == "paper" else (reach == 0) & (w != 0) & np.any(w != 0, axis=1)[:, None]
        assert decision.unreachable == int(np.count_nonzero(counted))
        assert np.array_equal(equation.incidence().toarray(), incidence(a != 0, b != 0).toarray())
