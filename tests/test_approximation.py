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
        ({"frozen": "sparse"}, "dense networks only"),
        ({"frozen": "not dense"}, "dense networks only"),
    ],
)
def test_refusals_say_what_works(change, message):
    target = verify.TargetNetwork.random([3, 3, 2], seed=0)
    frozen = verify.FrozenNetwork.for_target(target, width=0.5, seed=1)
    if change.get("frozen") == "sparse":
        frozen = verify.FrozenNetwork.for_target(target, "paper", seed=1, density=0.5)
    elif change.get("frozen") == "not dense":
        frozen = object()
    arguments = {"domain": verify.Ball(1.0), "method": "auto"} | {k: v for k, v in change.items() if k != "frozen"}
    with pytest.raises(ValueError, match=message):
        verify.reconstruct(target, frozen, arguments["domain"], mode="approximate", method=arguments["method"])


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
