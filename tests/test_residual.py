"""Case 2: frozen residual networks, width d²/m and depth 2mL (docs/design.md §8)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import verify
from verify.core.residual import branch_needs, branch_systems, stage_rows
from verify.core.residual_certificate import residual_tolerance_of
from verify.core.tolerances import EPS

ARCHITECTURES = {
    "square": [4, 4, 4],
    "widening": [2, 3, 5],
    "narrowing": [6, 4, 2],
    "d_k=1": [3, 1, 3, 1],
    "depth 1": [3, 4],
    "depth 3": [3, 4, 3, 2],
}


def _fresh_points(target: verify.TargetNetwork, count: int = 64) -> np.ndarray:
    return verify.Ball(1.0).resolve(target.widths[0]).sample(count, np.random.default_rng(12345))


def _rounding(frozen: verify.ResidualFrozenNetwork, widths: tuple[int, ...]) -> float:
    """The rounding model's relative tolerance for one evaluation of ``frozen`` (no scale-equation residual)."""
    fan_ins = [w for stage in frozen.odd_widths for n in stage for w in (frozen.stream_width, n + 1)]
    count = len(fan_ins) // 2
    return residual_tolerance_of(fan_ins, widths, [0.0] * count, [1.0] * count)


def _check_exact(result, target: verify.TargetNetwork) -> None:
    """g = f at fresh points of the domain, to the certificate's own two tests (which claim every domain point):
    ``max |g − f| <= rtol · max |f|`` (|f| the absolute-value evaluation) and the rounding-model ratio."""
    x = _fresh_points(target)
    g, f = result.network(x), target(x)
    sampled = result.certificate.sampled
    assert np.abs(g - f).max() <= sampled.rtol * target.magnitude(x).max()
    scale = result.frozen.magnitude(x, result.gamma, result.beta) + target.magnitude(x)
    assert np.max(np.abs(g - f) / scale) <= sampled.tolerance


@pytest.mark.parametrize("mode", ["paper", "minimal"])
@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_every_branch_count_reconstructs_exactly(name: str, mode: str) -> None:
    widths = ARCHITECTURES[name]
    target = verify.TargetNetwork.random(widths, seed=3)
    most = min(max(a, b) for a, b in itertools.pairwise(widths))
    for branches in sorted({1, (most + 1) // 2, most}):
        frozen = verify.ResidualFrozenNetwork.for_target(target, branches=branches, width=mode, seed=4)
        assert frozen.depth == 2 * branches * target.depth
        assert frozen.stream_width == max(widths)
        needs = [branch_needs(a, b, branches, mode, stage=k) for k, (a, b) in enumerate(itertools.pairwise(widths), 1)]
        assert [list(w) for w in frozen.odd_widths] == needs
        result = verify.reconstruct(target, frozen, verify.Ball(1.0), mode=mode)
        assert result.certificate.holds
        assert len(result.certificate.blocks) == branches * target.depth
        assert len(result.gamma) == frozen.depth
        _check_exact(result, target)
        assert verify.feasibility(target, frozen, mode).ok


def test_square_widths_are_d_squared_over_m_and_width_times_depth_is_2d2L() -> None:
    """docs/design.md §8: for a square target of width d and m | d, every odd width is d²/m and the sum of odd
    widths over the depth's branches meets d′l′ = 2d²L with d′ = d²/m, l′ = 2mL."""
    d, depth = 8, 2
    target = verify.TargetNetwork.random([d] * (depth + 1), seed=0)
    for m in (1, 2, 4, 8):
        frozen = verify.ResidualFrozenNetwork.for_target(target, branches=m, width="paper", seed=1)
        assert {n for stage in frozen.odd_widths for n in stage} == {d * d // m}
        assert (d * d // m) * frozen.depth == 2 * d * d * depth


def test_the_stream_holds_T_z_plus_c_after_every_branch() -> None:
    """The bookkeeping of docs/design.md §8: after branch j of a stage, rows R_j hold (W z + b)_R, earlier rows
    keep what they were given and later rows are untouched; the tuned network is run branch by branch."""
    target = verify.TargetNetwork.random([5, 3, 4], seed=1)
    frozen = verify.ResidualFrozenNetwork.for_target(target, branches=2, seed=2)
    result = verify.reconstruct(target, frozen, verify.Ball(1.0))
    x = _fresh_points(target, 16)
    stream = np.zeros((len(x), frozen.stream_width))
    stream[:, :5] = x
    z = x
    for k, stage in enumerate(frozen.stages):
        w, b = target.weights[k], target.biases[k]
        want = np.zeros_like(stream)
        want[:, : w.shape[0]] = z @ w.T + b
        rows = stage_rows(w.shape[1], w.shape[0], len(stage), stage=k + 1)
        for j, net in enumerate(stage):
            i = 2 * (k * len(stage) + j)
            before = stream
            stream = stream + net.forward(stream, result.gamma[i : i + 2], result.beta[i : i + 2])
            others = np.setdiff1d(np.arange(frozen.stream_width), rows[j])
            np.testing.assert_array_equal(stream[:, others], before[:, others])  # switched-off rows add exactly 0
            tolerance = 1e3 * EPS * (1 + np.abs(want[:, rows[j]]).max())
            np.testing.assert_allclose(stream[:, rows[j]], want[:, rows[j]], rtol=0, atol=tolerance)
        if k < len(frozen.stages) - 1:
            stream = np.maximum(stream, 0)
            z = stream[:, : w.shape[0]]
    np.testing.assert_allclose(stream[:, : target.widths[-1]], target(x), rtol=0, atol=1e3 * EPS * 10)


@pytest.mark.parametrize("method", ["auto", "direct", "lstsq", "iterative", "l1", "linf", "box", "min_shift", "exact"])
def test_every_method_solves_every_branch(method: str) -> None:
    target = verify.TargetNetwork.random([3, 4, 3], seed=5)
    width = "paper" if method == "direct" else 1.5
    frozen = verify.ResidualFrozenNetwork.for_target(target, branches=2, width=width, seed=6)
    result = verify.reconstruct(
        target, frozen, verify.Box(-1, 1), method=method, bound=1e3 if method == "box" else None
    )
    assert result.certificate.holds
    assert all(b.solver.startswith(method) for b in result.certificate.blocks)
    x = verify.Box(-1, 1).resolve(3).sample(32, np.random.default_rng(9))
    assert np.abs(result.network(x) - target(x)).max() <= result.certificate.sampled.rtol * target.magnitude(x).max()


@pytest.mark.parametrize("mode", verify.MODES)
def test_sparse_branches_are_decided_without_a_solve(mode: str) -> None:
    """feasibility (matching per branch, docs/design.md §4, confirmed on generic values where B_j T mixes
    columns, §8) says ok exactly when reconstruct succeeds."""
    seen = set()
    for widths, density, seed in itertools.product(([4, 4, 4], [3, 5, 2]), (0.2, 0.35, 0.5, 0.8), range(3)):
        target = verify.TargetNetwork.random(widths, seed=0)
        for branches in (2, 3):
            frozen = verify.ResidualFrozenNetwork.for_target(
                target, branches=branches, width=2.0, seed=seed, density=density
            )
            ok = verify.feasibility(target, frozen, mode).ok
            try:
                verify.reconstruct(target, frozen, verify.Ball(1.0), mode=mode)
                built = True
            except verify.InfeasibleError as error:
                built = False
                assert "stage" in str(error) and "branch" in str(error)
            assert ok == built
            seen.add(ok)
    assert seen == {True, False}  # both verdicts occur, so the comparison can fail


def test_one_neuron_below_in_one_branch_is_refused_and_its_system_is_unsolvable() -> None:
    target = verify.TargetNetwork.random([4, 4, 4], seed=2)
    needs = [branch_needs(4, 4, 2, "paper") for _ in range(2)]
    needs[1][1] -= 1
    frozen = verify.ResidualFrozenNetwork.for_target(target, branches=2, width=needs, seed=3)
    with pytest.raises(verify.InfeasibleError) as caught:
        verify.reconstruct(target, frozen, verify.Ball(1.0))
    error = caught.value
    assert (error.stage, error.branch, error.width, error.width_needed) == (2, 2, 7, 8)
    assert "stage 2, branch 2" in str(error) and "7" in str(error) and "8" in str(error)
    system = list(branch_systems(target, frozen))[3]
    k = verify.khatri_rao(system.block.a, system.block.b)
    rhs = system.block.w.reshape(-1)
    assert np.linalg.matrix_rank(k) < k.shape[0]
    gamma = np.linalg.lstsq(k, rhs, rcond=None)[0]
    assert np.linalg.norm(k @ gamma - rhs) > 1e-3 * np.linalg.norm(rhs)


def test_a_certificate_that_fails_is_an_error_never_a_result() -> None:
    target = verify.TargetNetwork.random([3, 3, 3], seed=0)
    frozen = verify.ResidualFrozenNetwork.for_target(target, branches=3, seed=1)
    with pytest.raises(verify.CertificateError) as caught:
        verify.reconstruct(target, frozen, verify.Ball(1.0), rtol=1e-300)
    assert not caught.value.certificate.holds
    assert "rtol" in str(caught.value)


def test_certificate_reports_every_branch() -> None:
    target = verify.TargetNetwork.random([4, 6, 2], seed=0)
    frozen = verify.ResidualFrozenNetwork.for_target(target, branches=3, seed=1)
    certificate = verify.reconstruct(target, frozen, verify.Ball(1.0)).certificate
    figures = certificate.to_dict()
    assert figures["holds"] and isinstance(certificate, verify.Certificate)
    # The rigorous bound is finite, within rtol of the scale, and the samples stay under it.
    assert 0 < certificate.error_bound <= certificate.rtol * certificate.f_max
    assert figures["error_bound"] == certificate.error_bound and certificate.sampled.bound_ratio <= 1
    stages = [(b["extras"]["stage"], b["extras"]["branch"]) for b in figures["blocks"]]
    assert stages == [(s, j) for s in (1, 2) for j in (1, 2, 3)]
    assert [b.block for b in certificate.blocks] == list(range(1, 7))
    for b in certificate.blocks:
        assert b.residual_ratio <= b.residual_tolerance and b.min_margin >= 0
        assert 1 <= b.extras["stream_condition"] < np.inf and np.isfinite(b.condition)
        assert b.extras["stream_rank"] >= 1 and len(b.extras["rows"]) >= 1
    assert certificate.max_stream_condition >= 1


def test_deterministic_and_inputs_untouched() -> None:
    target = verify.TargetNetwork.random([3, 3], seed=0)
    a = verify.ResidualFrozenNetwork.for_target(target, branches=3, seed=7)
    b = verify.ResidualFrozenNetwork.for_target(target, branches=3, seed=7)
    for x, y in zip(a.layers, b.layers, strict=True):
        for u, v in zip(x.weights, y.weights, strict=True):
            np.testing.assert_array_equal(u, v)
    other = verify.ResidualFrozenNetwork.for_target(target, branches=3, seed=8)
    assert not np.array_equal(a.layers[0].weights[0], other.layers[0].weights[0])
    assert not np.array_equal(a.layers[0].weights[0], a.layers[1].weights[0])  # branches are independent
    x = np.ones((2, 3))
    r = verify.reconstruct(target, a, verify.Ball(1.0))
    r.network(x)
    np.testing.assert_array_equal(x, np.ones((2, 3)))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda t: verify.ResidualFrozenNetwork.for_target(t, branches=5), "at most 4 branches"),
        (lambda t: verify.ResidualFrozenNetwork.for_target(t, branches=0), "branches must be an integer >= 1"),
        (lambda t: verify.ResidualFrozenNetwork.for_target(t, branches=True), "branches must be an integer >= 1"),
        (lambda t: verify.ResidualFrozenNetwork.for_target(t, width="huge"), "width must be"),
        (lambda t: verify.ResidualFrozenNetwork.for_target(t, width=-1.0), "positive and finite"),
        (lambda t: verify.ResidualFrozenNetwork.for_target(t, branches=2, width=[[4, 4]]), "width"),
        (lambda t: verify.ResidualFrozenNetwork.for_target(t, width=[[0], [4]]), "integer >= 1 per branch"),
        (lambda t: verify.ResidualFrozenNetwork.for_target("t"), "TargetNetwork"),
        (
            lambda t: verify.reconstruct(t, verify.ResidualFrozenNetwork.for_target(t), None),
            "bounded domain",
        ),
        (
            lambda t: verify.reconstruct(t, verify.ResidualFrozenNetwork.for_target(t), verify.Ball(1.0), mode="x"),
            "mode must be one of",
        ),
        (
            lambda t: verify.reconstruct(
                t, verify.ResidualFrozenNetwork.for_target(t), verify.Ball(1.0), mode="minimal", method="l1"
            ),
            "SVD null space",
        ),
        (
            lambda t: verify.reconstruct(
                verify.TargetNetwork.random([4, 4], seed=0), verify.ResidualFrozenNetwork.for_target(t), verify.Ball(1)
            ),
            "stages but the target has depth",
        ),
        (
            lambda t: verify.feasibility(t, verify.ResidualFrozenNetwork.for_target(t), mode="x"),
            "mode must be",
        ),
    ],
)
def test_invalid_calls(call, message: str) -> None:
    target = verify.TargetNetwork.random([4, 4, 4], seed=0)
    with pytest.raises(ValueError, match=message):
        call(target)


def test_constructor_refuses_branches_that_do_not_fit_the_stream() -> None:
    target = verify.TargetNetwork.random([2, 2], seed=0)
    good = verify.ResidualFrozenNetwork.for_target(target, branches=2)
    odd = verify.FrozenNetwork.for_target(verify.TargetNetwork.random([3, 3], seed=0))
    with pytest.raises(ValueError, match="stream of width"):
        verify.ResidualFrozenNetwork([[good.layers[0], odd]], inputs=2, outputs=2)
    with pytest.raises(ValueError, match="same number of branches"):
        verify.ResidualFrozenNetwork([[good.layers[0]], list(good.layers)], inputs=2, outputs=2)
    with pytest.raises(ValueError, match="fit the stream"):
        verify.ResidualFrozenNetwork([list(good.layers)], inputs=3, outputs=2)


def test_torch_module_fits_with_only_batchnorm_weight_and_bias_changed() -> None:
    torch = pytest.importorskip("torch")
    from verify.nn import fit_norm_layers, frozen_residual_mlp, load_norm_params, norm_only, target_mlp
    from verify.nn.modules import norm_layers

    module = frozen_residual_mlp([4, 6, 3], branches=3, seed=0, dtype=torch.float64)
    assert len(norm_layers(module)) == 2 * 3 * 2
    target = target_mlp([4, 6, 3], seed=1, dtype=torch.float64)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    module.train()
    result = fit_norm_layers(module, target, verify.Ball(1.0))
    assert result.certificate.holds and not module.training
    changed = {k for k, v in module.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.endswith(("norm.weight", "norm.bias")) for k in changed)
    x = torch.tensor(_fresh_points(result.target, 32))
    with torch.no_grad():
        g, f = module(x), target(x)
    size = result.target.magnitude(x.numpy()).max()
    assert float((g - f).abs().max()) <= result.certificate.sampled.rtol * size
    # torch's and numpy's forwards both err by at most the rounding model's tolerance times |g| (the magnitude)
    magnitude = result.frozen.magnitude(x.numpy(), result.gamma, result.beta)
    allowed = 2 * _rounding(result.frozen, result.target.widths) * magnitude
    assert np.all(np.abs(g.numpy() - result.network(x.numpy())) <= allowed)

    fresh = frozen_residual_mlp([4, 6, 3], branches=3, seed=0, dtype=torch.float64)
    load_norm_params(fresh, result)
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(x), g, rtol=0, atol=0)
    norm_only(fresh)
    trainable = {name for name, p in fresh.named_parameters() if p.requires_grad}
    assert trainable == {name for name, _ in fresh.named_parameters() if name.endswith(("norm.weight", "norm.bias"))}
    fresh.train()
    assert not any(bn.training for bn in norm_layers(fresh))


def test_torch_module_matches_the_numpy_network() -> None:
    torch = pytest.importorskip("torch")
    from verify.nn import frozen_residual_mlp

    module = frozen_residual_mlp([3, 5, 2], branches=2, width="minimal", seed=4, biases=True, dtype=torch.float64)
    network = module.to_network()
    target = verify.TargetNetwork.random([3, 5, 2], seed=0)
    expected = verify.ResidualFrozenNetwork.for_target(target, branches=2, width="minimal", seed=4, biases=True)
    for ours, theirs in zip(network.layers, expected.layers, strict=True):
        for u, v in zip((*ours.weights, *ours.biases), (*theirs.weights, *theirs.biases), strict=True):
            np.testing.assert_array_equal(u, v)
    x = np.random.default_rng(0).standard_normal((5, 3))
    gamma = [np.random.default_rng(j).standard_normal(n) for j, n in enumerate(network.widths)]
    beta = [np.random.default_rng(100 + j).standard_normal(n) for j, n in enumerate(network.widths)]
    with torch.no_grad():
        for bn, g, b in zip(
            [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm1d)], gamma, beta, strict=True
        ):
            bn.weight.copy_(torch.as_tensor(g))
            bn.bias.copy_(torch.as_tensor(b))
        out = module(torch.tensor(x)).numpy()
    expected_out = network.forward(x, gamma, beta)
    allowed = 2 * _rounding(network, target.widths) * network.magnitude(x, gamma, beta)
    assert np.all(np.abs(out - expected_out) <= allowed)


@pytest.mark.parametrize("mode", verify.MODES)
@pytest.mark.parametrize("domain", [verify.Ball(2.0), verify.Box(-1.0, 3.0)], ids=["ball r=2", "box [-1, 3]"])
def test_frozen_biases_batchnorm_statistics_and_off_centre_domains(mode: str, domain: verify.Domain) -> None:
    """The stream constant c (docs/design.md §8) carries frozen biases and BatchNorm means/variances/eps through."""
    target = verify.TargetNetwork.random([5, 3, 4, 2], seed=2)
    drawn = verify.ResidualFrozenNetwork.for_target(target, branches=2, width=1.3, seed=3, biases=True)
    rng = np.random.default_rng(0)
    stages = [
        [
            verify.FrozenNetwork(
                net.weights,
                net.biases,
                [rng.standard_normal(n) for n in net.widths[1:]],
                [rng.uniform(0.5, 2.0, n) for n in net.widths[1:]],
                eps=1e-3,
            )
            for net in stage
        ]
        for stage in drawn.stages
    ]
    frozen = verify.ResidualFrozenNetwork(stages, inputs=5, outputs=2)
    result = verify.reconstruct(target, frozen, domain, mode=mode)
    assert result.certificate.holds
    x = domain.resolve(5).sample(64, np.random.default_rng(7))
    assert np.abs(result.network(x) - target(x)).max() <= result.certificate.sampled.rtol * target.magnitude(x).max()


def test_a_stream_map_that_loses_rank_is_named() -> None:
    """W[0, 0] = 0: after branch 1 writes row 0, T = [W_0; e_1] no longer determines z (docs/design.md §8, why the
    order matters). Refused naming stage and branch, by reconstruct and feasibility alike; one branch works."""
    target = verify.TargetNetwork([np.array([[0.0, 1.0], [1.0, 2.0]])])
    frozen = verify.ResidualFrozenNetwork.for_target(target, branches=2, seed=3)
    for call in (
        lambda: verify.reconstruct(target, frozen, verify.Ball(1.0)),
        lambda: verify.feasibility(target, frozen),
    ):
        with pytest.raises(verify.InfeasibleError, match="stage 1, branch 2: the stream map T") as caught:
            call()
        assert (caught.value.stage, caught.value.branch) == (1, 2)
    one = verify.ResidualFrozenNetwork.for_target(target, branches=1, seed=3)
    assert verify.reconstruct(target, one, verify.Ball(1.0)).certificate.holds


def test_one_result_type_and_a_finite_bound() -> None:
    """A Case-2 result is a `verify.Reconstruction` (the old name stays an alias) with a proved, finite bound."""
    target = verify.TargetNetwork.random([4, 4, 4], seed=0)
    r = verify.reconstruct(target, verify.ResidualFrozenNetwork.for_target(target, branches=3), verify.Ball(1.0))
    assert isinstance(r, verify.Reconstruction) and verify.ResidualReconstruction is verify.Reconstruction
    assert r.certificate.error_bound < float("inf") and r.certificate.holds
