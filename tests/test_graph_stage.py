"""A Case-2 residual network lowered into the core graph and bounded by the one engine (docs/design.md §6.7, §8)."""

import numpy as np
import pytest

import verify
from verify.core.affine_errors import AffineErrors
from verify.core.graph_bound import graph_error_bound
from verify.core.graph_stage import residual_graph
from verify.core.residual_certificate import BranchCertificate, ResidualCertificate, ResidualSampledCheck


def test_the_issue_example_is_proven_with_one_certificate() -> None:
    """Issue 19's example: a Case-2 result carries the one `verify.Certificate` with a finite rigorous bound."""
    target = verify.TargetNetwork.random([4, 4, 4], seed=0)
    r = verify.reconstruct(target, verify.ResidualFrozenNetwork.for_target(target, branches=3), verify.Ball(1.0))
    assert isinstance(r, verify.Reconstruction) and type(r.certificate) is verify.Certificate
    assert 0 < r.certificate.error_bound < float("inf") and r.certificate.holds
    assert r.certificate.error_bound <= r.certificate.rtol * r.certificate.f_max
    # The old names are the one certificate's types, for one release.
    assert ResidualCertificate is verify.Certificate and BranchCertificate is verify.BlockCertificate
    assert ResidualSampledCheck is verify.SampledCheck
    assert r.certificate.max_stream_condition == max(b.extras["stream_condition"] for b in r.certificate.blocks)


def test_a_chain_certificate_has_no_stream_condition() -> None:
    target = verify.TargetNetwork.random([3, 3], seed=0)
    result = verify.reconstruct(target, verify.FrozenNetwork.for_target(target, seed=1), verify.Ball(1.0))
    assert np.isnan(result.certificate.max_stream_condition)
    assert all(b.extras == {} for b in result.certificate.blocks)


@pytest.mark.parametrize("domain", [verify.Ball(1.0), verify.Box(-1.0, 2.0)])
def test_the_graph_has_a_stage_per_target_layer_and_its_bound_is_the_certificates(domain: verify.Domain) -> None:
    target = verify.TargetNetwork.random([3, 5, 2, 4], seed=6)
    frozen = verify.ResidualFrozenNetwork.for_target(target, branches=2, seed=1006)
    result = verify.reconstruct(target, frozen, domain)
    graph = residual_graph(target, frozen, result.gamma, result.beta)
    kinds = [node.kind for node in graph.nodes]
    assert kinds == ["input", "stage", "relu", "stage", "relu", "stage", "map"]
    assert [node.shape for node in graph.nodes] == [(3,)] + [(frozen.stream_width,)] * 5 + [(4,)]
    bound = graph_error_bound(graph, result.domain)
    assert bound.error_bound == result.certificate.error_bound
    assert len(bound.blocks) == len(result.certificate.blocks) == 2 * target.depth
    assert [b.extras["error_bound"] for b in result.certificate.blocks] == list(bound.blocks)


def test_residual_graph_refuses_a_frozen_network_of_another_shape() -> None:
    target = verify.TargetNetwork.random([3, 3, 3], seed=0)
    frozen = verify.ResidualFrozenNetwork.for_target(verify.TargetNetwork.random([3, 3], seed=0), seed=1)
    with pytest.raises(ValueError, match="stages"):
        residual_graph(target, frozen, [np.ones(1)] * frozen.depth, [np.zeros(1)] * frozen.depth)


def test_a_remainder_read_as_generators_cancels_where_the_remainder_cannot() -> None:
    """The regression behind the stage's input (`verify.core.graph_stage._stream_errors`): the graph's ReLU puts
    half an unstable row's error into the remainder, which a branch's map ``S_R + M`` carries in absolute value;
    read as generators it cancels. Here one error ``ρ`` (``|ρ| <= 1``) on row 0 is copied to both rows and then
    differenced: exactly 0, which the generators see and the remainder does not (2)."""
    errors = AffineErrors(np.zeros((2, 0)), 1.0).with_remainder(np.array([1.0, 0.0]), "residual")
    converted = errors.with_remainder_as_generators()
    np.testing.assert_array_equal(converted.bound(), errors.bound())  # the same errors: one generator per entry
    assert converted.rest.sum() == 0 and converted.g.shape[1] == 1
    copy, difference = np.array([[1.0, 0.0], [1.0, 0.0]]), np.array([[1.0, -1.0]])
    kept = errors.mapped(np.arange(2), copy, np.zeros(2)).reach(difference)
    read = converted.mapped(np.arange(2), copy, np.zeros(2)).reach(difference)
    assert kept[0] == 2.0 and read[0] == 0.0
