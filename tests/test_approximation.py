"""``mode="approximate"`` and `verify.frontier` (docs/design.md §11): the issue's example, refusals, figures."""

from __future__ import annotations

import numpy as np
import pytest

import verify
from verify.construction.frontier import fresh_points


def _example() -> tuple:
    target = verify.TargetNetwork.random([8, 8, 4], seed=0)
    frozen = verify.FrozenNetwork.for_target(target, width=0.5, seed=1)  # half the paper width
    return target, frozen, verify.reconstruct(target, frozen, verify.Ball(1.0), mode="approximate")


def test_issue_example_runs_and_bounds_fresh_points():
    target, _frozen, result = _example()
    certificate = result.certificate
    assert not certificate.exact
    assert certificate.approximate_blocks == (1, 2)
    assert len(certificate.block_errors) == 2
    assert 0 < certificate.approximation_error <= certificate.error_bound < np.inf
    x = fresh_points(verify.Ball(1.0).resolve(8), 4096, np.random.default_rng(3))
    observed = np.max(np.abs(result.network(x) - target(x)))
    assert 0 < observed <= certificate.error_bound
    assert certificate.to_dict()["exact"] is False


def test_auto_keeps_the_smaller_of_both_objectives():
    target, frozen, result = _example()
    bounds = [
        verify.reconstruct(target, frozen, verify.Ball(1.0), mode="approximate", method=m).certificate.error_bound
        for m in ("l1", "lstsq")
    ]
    assert result.certificate.error_bound == min(bounds)


def test_nothing_passed_in_is_modified():
    target = verify.TargetNetwork.random([3, 4, 2], seed=2)
    frozen = verify.FrozenNetwork.for_target(target, width=0.3, seed=4)
    before = [w.copy() for w in (*target.weights, *frozen.weights, *frozen.running_mean)]
    verify.reconstruct(target, frozen, verify.Box(-np.ones(3), np.ones(3)), mode="approximate")
    after = (*target.weights, *frozen.weights, *frozen.running_mean)
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))


def test_deterministic():
    target, frozen, first = _example()
    second = verify.reconstruct(target, frozen, verify.Ball(1.0), mode="approximate")
    assert all(np.array_equal(a, b) for a, b in zip(first.gamma + first.beta, second.gamma + second.beta, strict=True))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"domain": None}, "bounded domain"),
        ({"method": "direct"}, "method must be one of"),
        ({"frozen": "not a network"}, "supports dense and sparse chains"),
    ],
)
def test_refusals_say_what_works(change, message):
    target = verify.TargetNetwork.random([3, 3, 2], seed=0)
    frozen = verify.FrozenNetwork.for_target(target, width=0.5, seed=1)
    if change.get("frozen") == "not a network":
        frozen = object()
    arguments = {"domain": verify.Ball(1.0), "method": "auto"} | {k: v for k, v in change.items() if k != "frozen"}
    with pytest.raises(ValueError, match=message):
        verify.reconstruct(target, frozen, arguments["domain"], mode="approximate", method=arguments["method"])


def _sparse(density: float, seed: int = 1) -> tuple:
    target = verify.TargetNetwork.random([4, 4, 3], seed=0)
    return target, verify.FrozenNetwork.for_target(target, "paper", seed=seed, density=density)


def test_sparse_below_the_matching_threshold_is_approximated_with_a_bound_that_holds():
    """A mask whose maximum matching is below d_k d_{k-1} (docs/design.md §4): paper mode refuses, approximate
    mode proves a bound, and the neurons the mask cuts off are switched off (γ = 0)."""
    target, frozen = _sparse(0.2)
    assert not verify.feasibility(target, frozen, "paper").ok
    with pytest.raises(verify.InfeasibleError, match="sparsity pattern"):
        verify.reconstruct(target, frozen, verify.Ball(1.0), mode="paper")
    result = verify.reconstruct(target, frozen, verify.Ball(1.0), mode="approximate")
    certificate = result.certificate
    assert not certificate.exact and certificate.holds
    assert 0 < certificate.approximation_error <= certificate.error_bound < np.inf
    x = fresh_points(verify.Ball(1.0).resolve(4), 4096, np.random.default_rng(3))
    assert 0 < np.max(np.abs(result.network(x) - target(x))) <= certificate.error_bound
    for block in verify.core.blocks.blocks(target, frozen):  # a neuron with no path through the mask: off
        k = block.k
        dead = ~np.any(block.a != 0, axis=0) | ~np.any(block.b != 0, axis=1)
        assert np.all(result.gamma[block.odd][dead] == 0), k
        assert certificate.blocks[k - 1].diagnostics["allowed_neurons"] <= int(np.count_nonzero(~dead))


def test_sparse_above_the_matching_threshold_is_paper_mode():
    target, frozen = _sparse(0.8, seed=2)
    assert verify.feasibility(target, frozen, "paper").ok
    approximate = verify.reconstruct(target, frozen, verify.Box(-np.ones(4), np.ones(4)), mode="approximate")
    paper = verify.reconstruct(target, frozen, verify.Box(-np.ones(4), np.ones(4)), mode="paper")
    assert approximate.certificate.exact
    assert approximate.certificate.error_bound == paper.certificate.error_bound
    for ours, theirs in zip(approximate.gamma + approximate.beta, paper.gamma + paper.beta, strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_frontier_densities():
    target = verify.TargetNetwork.random([3, 3, 2], seed=0)
    table = verify.frontier(
        target, widths=(1.0,), densities=(0.2, 1.0), seeds=(1,), domain=verify.Ball(1.0), points=256
    )
    sparse, dense = table.points
    assert (sparse.density, dense.density) == (0.2, 1.0)
    assert not sparse.matching and not sparse.exact and sparse.observed <= sparse.error_bound
    assert dense.matching and dense.exact
    assert "| 0.2 | False |" in table.table()
    with pytest.raises(ValueError, match="densities must be a non-empty sequence"):
        verify.frontier(target, densities=())
    with pytest.raises(ValueError, match="density must be a number in"):
        verify.frontier(target, densities=(0.0,))


def test_frontier_rows():
    target = verify.TargetNetwork.random([3, 3, 2], seed=0)
    table = verify.frontier(target, widths=(0.2, 1.0), seeds=(1, 2), domain=verify.Ball(1.0), points=256)
    assert [p.exact for p in table.points] == [False, False, True, True]
    assert all(p.observed <= p.error_bound for p in table.points)
    assert table.table().count("\n") == 5
    with pytest.raises(ValueError, match="points must be"):
        verify.frontier(target, widths=(0.5,), points=0)
    with pytest.raises(ValueError, match="widths must be a non-empty sequence"):
        verify.frontier(target, widths=0.5)
    with pytest.raises(ValueError, match="seeds must be a non-empty sequence"):
        verify.frontier(target, seeds=())
    with pytest.raises(ValueError, match="domain must be"):
        verify.frontier(target, domain="ball")


def _residual(width: object, branches: int = 2) -> tuple:
    target = verify.TargetNetwork.random([4, 5, 3], seed=0)
    return target, verify.ResidualFrozenNetwork.for_target(target, branches=branches, width=width, seed=1)


def test_residual_below_the_threshold_bounds_fresh_points():
    """Case 2 (docs/design.md §8, §11): narrow branches get the weighted-ℓ1 scales; the zonotope bound holds."""
    target, frozen = _residual(0.5)
    with pytest.raises(verify.InfeasibleError, match="stage 1, branch 1"):
        verify.reconstruct(target, frozen, verify.Ball(1.0), mode="paper")
    result = verify.reconstruct(target, frozen, verify.Ball(1.0), mode="approximate")
    certificate = result.certificate
    assert not certificate.exact and certificate.holds
    assert certificate.approximate_blocks == (1, 2, 3, 4)
    assert len(certificate.block_errors) == len(certificate.blocks) == 4
    assert 0 < certificate.approximation_error <= certificate.error_bound < np.inf
    x = fresh_points(verify.Ball(1.0).resolve(4), 4096, np.random.default_rng(3))
    assert 0 < np.max(np.abs(result.network(x) - target(x))) <= certificate.error_bound
    assert certificate.to_dict()["approximate_blocks"] == [1, 2, 3, 4]


def test_residual_at_the_paper_width_is_paper_mode():
    target, frozen = _residual("paper")
    box = verify.Box(-np.ones(4), np.ones(4))
    approximate = verify.reconstruct(target, frozen, box, mode="approximate")
    paper = verify.reconstruct(target, frozen, box, mode="paper")
    assert approximate.certificate.exact
    assert approximate.certificate.block_errors == (0.0,) * 4
    assert approximate.certificate.error_bound == paper.certificate.error_bound
    for ours, theirs in zip(approximate.gamma + approximate.beta, paper.gamma + paper.beta, strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_residual_wide_later_stage_is_exact_on_what_it_receives():
    """Stage 1 narrow, stage 2 at its paper width: only stage 1's branches are approximated; stage 2's are solved
    exactly (their scale equations to rounding) and shifted for the region enlarged by the error carried in, so
    every margin is non-negative; the certified figure carries stage 1's error through them."""
    target = verify.TargetNetwork.random([4, 5, 3], seed=0)
    paper = verify.ResidualFrozenNetwork.for_target(target, branches=2, width="paper", seed=1).odd_widths
    widths = [[max(1, n // 3) for n in paper[0]], list(paper[1])]
    frozen = verify.ResidualFrozenNetwork.for_target(target, branches=2, width=widths, seed=1)
    result = verify.reconstruct(target, frozen, verify.Box(-np.ones(4), np.ones(4)), mode="approximate")
    certificate = result.certificate
    assert certificate.approximate_blocks == (1, 2)
    later = certificate.blocks[2:]
    assert all(b.holds for b in later), [b.residual_ratio for b in later]
    assert all(b.min_margin >= 0 for b in certificate.blocks)
    assert certificate.block_errors[3] > 0  # stage 1's error, carried through the exact branches


def _conv_target() -> tuple:
    rng = np.random.default_rng(7)
    layers = [
        verify.Conv.build(rng.standard_normal((3, 2, 3, 3)) / 4, rng.standard_normal(3), padding=1),
        verify.AvgPool((2, 2), (2, 2), (0, 0)),
        verify.Conv.build(rng.standard_normal((2, 3, 3, 3)) / 5, rng.standard_normal(2), stride=2),
    ]
    return verify.ConvTargetNetwork(layers, (2, 10, 10)), verify.Box(-1, 1, shape=(2, 10, 10))


def test_conv_below_the_threshold_bounds_fresh_points_and_corners():
    """Convolutions (docs/design.md §9, §11): the objective per output channel on the patches' hull, the graph
    bound with the centred residual; fresh points and corners of the box stay within it."""
    target, box = _conv_target()
    frozen = verify.ConvFrozenNetwork.for_target(target, 0.5, seed=3)
    with pytest.raises(verify.InfeasibleError, match="block 1"):
        verify.reconstruct(target, frozen, box, mode="paper")
    result = verify.reconstruct(target, frozen, box, mode="approximate")
    certificate = result.certificate
    assert not certificate.exact and certificate.holds and certificate.approximate_blocks == (1, 2)
    assert 0 < certificate.approximation_error <= certificate.error_bound < np.inf
    rng = np.random.default_rng(5)
    lo, hi = box.lo.reshape(-1), box.hi.reshape(-1)
    x = np.concatenate([box.sample(512, rng), np.where(rng.integers(0, 2, (512, lo.size)) == 1, hi, lo)])
    observed = np.max(np.abs(result.network(x).reshape(len(x), -1) - target(x).reshape(len(x), -1)))
    assert 0 < observed <= certificate.error_bound


def test_conv_at_the_paper_width_is_paper_mode():
    target, box = _conv_target()
    frozen = verify.ConvFrozenNetwork.for_target(target, "paper", seed=3)
    approximate = verify.reconstruct(target, frozen, box, mode="approximate")
    paper = verify.reconstruct(target, frozen, box, mode="paper")
    assert approximate.certificate.exact
    assert approximate.certificate.error_bound == paper.certificate.error_bound
    for ours, theirs in zip(approximate.gamma + approximate.beta, paper.gamma + paper.beta, strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_conv_patch_hull_is_the_hull_of_every_receptive_field():
    """`patch_hull`: every position's patch (zero padding included) lies in the hull, and some patch reaches each
    side of it (it is the smallest such box)."""
    from verify.construction.approximate_conv import patch_hull
    from verify.core.conv_blocks import conv_blocks

    target, _box = _conv_target()
    frozen = verify.ConvFrozenNetwork.for_target(target, 0.5, seed=3)
    block = next(iter(conv_blocks(target, frozen)))
    rng = np.random.default_rng(1)
    lo = rng.uniform(-2, 0, size=(2, 10, 10))
    region = verify.Box(lo.reshape(-1), (lo + rng.uniform(0, 2, size=lo.shape)).reshape(-1), shape=lo.shape)
    centre, radii = patch_hull(block, region)
    layer = block.odd_layer
    fields = [layer.windows(v.reshape(region.shape)[None])[0] for v in (region.lo, region.hi)]  # (in, H, W, kh, kw)
    fields = [f.transpose(0, 3, 4, 1, 2).reshape(block.b.shape[1], -1) for f in fields]
    assert np.all(fields[0] >= centre[:, None] - radii[:, None]) and np.all(
        fields[1] <= centre[:, None] + radii[:, None]
    )
    np.testing.assert_array_equal(fields[0].min(axis=1), centre - radii)
    np.testing.assert_array_equal(fields[1].max(axis=1), centre + radii)
    assert np.any(fields[0] == 0)  # padding=1: the border patches hold zeros


def test_refusal_names_the_routes_that_work():
    target = verify.TargetNetwork.random([3, 3, 2], seed=0)
    with pytest.raises(ValueError, match=r"Case 2 residual networks .* and convolutional networks"):
        verify.reconstruct(target, object(), verify.Ball(1.0), mode="approximate")


def test_residual_later_branch_is_exact_on_the_stream_the_narrow_one_wrote():
    """Regression (docs/design.md §11, Case 2): a wide branch after a narrow one is solved on the stream as the
    narrow one wrote it, so the rows it writes carry no approximation error (solved on the planned stream, it
    passed the narrow branch's error on through its own A_R diag(γ) B_j). One stage [4, 4], two branches: rows
    0, 1 by a narrow branch, rows 2, 3 by one at its paper width. Rows 2, 3 err at rounding level (~1e-15 of
    |f|), rows 0, 1 by the approximation (~1e-1): a gap of 1e6 separates the two with room on both sides."""
    target = verify.TargetNetwork.random([4, 4], seed=3)
    need = verify.ResidualFrozenNetwork.for_target(target, branches=2, width="paper", seed=1).odd_widths[0]
    frozen = verify.ResidualFrozenNetwork.for_target(target, branches=2, width=[[need[0] // 2, need[1]]], seed=1)
    result = verify.reconstruct(target, frozen, verify.Ball(1.0), mode="approximate")
    assert result.certificate.approximate_blocks == (1,)
    x = fresh_points(verify.Ball(1.0).resolve(4), 2048, np.random.default_rng(0))
    error = np.abs(result.network(x) - target(x)).max(axis=0)
    assert error[2:].max() * 1e6 < error[:2].min()


@pytest.mark.parametrize(
    ("route", "widths", "density"),
    [("chain", [3, 3, 2], 0.5), ("Case 2, 2 branches", [3, 3, 2], 1.0), ("convolutional", [2, 3, 2], 1.0)],
)
def test_frontier_claim_reproduction_builds_the_case(route, widths, density):
    """approx/frontier: a failing row's reproduction lines rebuild that row's case (route, target, frozen seed) and
    its certified bound; the convolutional row's bound relative to max |f| is the claim's own."""
    from verify.job.claims.approx_frontier import _reproduce, conv_case

    row = {"route": route, "widths": widths, "density": density, "fraction": 0.3, "seed": 0, "method": "lstsq"}
    lines = _reproduce(row)
    scope: dict = {}
    exec("\n".join(line for line in lines if not line.startswith("print")), scope)
    assert not scope["r"].certificate.exact
    if route == "convolutional":
        claimed = conv_case(0.3, 0, "lstsq")
        target, box = scope["t"], scope["box"]
        rng = np.random.default_rng([0, 7])
        lo, hi = box.lo.reshape(-1), box.hi.reshape(-1)
        x = np.concatenate([box.sample(1024, rng), np.where(rng.integers(0, 2, (1024, lo.size)) == 1, hi, lo)])
        assert claimed["bound"] == scope["r"].certificate.error_bound / float(np.max(np.abs(target(x))))
