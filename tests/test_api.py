"""The user-facing API of the core issue, exactly as written there."""

import numpy as np
import pytest

import verify


def test_issue_example_runs_as_written():
    target = verify.TargetNetwork.random([3, 5, 2], seed=0)
    rng = np.random.default_rng(0)
    w1, w2 = target.weights
    b1, b2 = target.biases
    target = verify.TargetNetwork(weights=[w1, w2], biases=[b1, b2])
    frozen = verify.FrozenNetwork.for_target(target, width="paper", seed=1)
    assert frozen.widths == (3, 15, 5, 10, 2)
    frozen = verify.FrozenNetwork(
        weights=list(frozen.weights), biases=None, running_mean=None, running_var=None, eps=0.0
    )
    domain = verify.Ball(radius=1.0, center=None)
    result = verify.reconstruct(target, frozen, domain, mode="paper")
    assert len(result.gamma) == len(result.beta) == 4
    assert [g.shape for g in result.gamma] == [(15,), (5,), (10,), (2,)]
    x = rng.standard_normal((7, 3)) * 0.3
    assert result.network(x).shape == (7, 2)
    assert result.certificate.holds
    assert result.certificate.max_residual >= 0
    assert result.certificate.min_margin >= 0
    assert result.certificate.domain["kind"] == "ball"
    assert [b.block for b in result.certificate.blocks] == [1, 2]


def test_paper_is_the_default_mode():
    target = verify.TargetNetwork.random([2, 3, 1], seed=2)
    frozen = verify.FrozenNetwork.for_target(target, seed=3)
    assert verify.reconstruct(target, frozen, verify.Ball(1.0)).mode == "paper"


@pytest.mark.parametrize(
    ("width", "odd"),
    [("paper", [15, 10]), ("minimal", [11, 9]), (20, [20, 20]), (2.0, [30, 20]), ([16, 11], [16, 11])],
)
def test_width_rules(width, odd):
    target = verify.TargetNetwork.random([3, 5, 2], seed=0)
    frozen = verify.FrozenNetwork.for_target(target, width=width, seed=1)
    assert list(frozen.widths[1::2]) == odd
    assert list(frozen.widths[0::2]) == [3, 5, 2]


def test_gamma_beta_are_what_torch_batchnorm_would_load():
    """Hand-written eval-mode BatchNorm formula against FrozenNetwork.forward (docs/design.md §1)."""
    target = verify.TargetNetwork.random([2, 3, 2], seed=4)
    base = verify.FrozenNetwork.for_target(target, seed=5, biases=True)
    rng = np.random.default_rng(6)
    means = [rng.standard_normal(n) for n in base.widths[1:]]
    variances = [rng.uniform(0.5, 2.0, n) for n in base.widths[1:]]
    frozen = verify.FrozenNetwork(base.weights, base.biases, means, variances, eps=1e-3)
    result = verify.reconstruct(target, frozen, verify.Box([-1, -2], [1, 0]))
    x = rng.uniform([-1, -2], [1, 0], size=(50, 2))
    u = x
    for j, (m, c) in enumerate(zip(frozen.weights, frozen.biases, strict=True)):
        h = u @ m.T + c
        n = result.gamma[j] * (h - means[j]) / np.sqrt(variances[j] + 1e-3) + result.beta[j]
        u = n if j == 3 else np.maximum(n, 0)
    np.testing.assert_array_equal(u, result.network(x))
    np.testing.assert_allclose(u, target(x), rtol=0, atol=1e-12 * np.abs(target(x)).max())


def test_single_vector_input():
    target = verify.TargetNetwork.random([3, 4, 2], seed=0)
    result = verify.reconstruct(target, verify.FrozenNetwork.for_target(target, seed=1), verify.Ball(2.0))
    x = np.array([0.1, -0.2, 0.3])
    assert result.network(x).shape == (2,)
    np.testing.assert_array_equal(result.network(x), result.network(x[None])[0])


def test_wider_even_layers_switch_extra_neurons_off():
    target = verify.TargetNetwork.random([2, 3, 2, 2], seed=7)
    base = verify.FrozenNetwork.for_target(target, seed=8)
    rng = np.random.default_rng(9)
    # Widen even layers 2 and 4 by two neurons each: extra rows in M_2, M_4, extra columns in M_3, M_5.
    ms = list(base.weights)
    ms[1] = np.vstack([ms[1], rng.standard_normal((2, ms[1].shape[1]))])
    ms[2] = np.hstack([ms[2], rng.standard_normal((ms[2].shape[0], 2))])
    ms[3] = np.vstack([ms[3], rng.standard_normal((2, ms[3].shape[1]))])
    ms[4] = np.hstack([ms[4], rng.standard_normal((ms[4].shape[0], 2))])
    frozen = verify.FrozenNetwork(ms)
    assert frozen.widths == (2, 6, 5, 6, 4, 4, 2)
    for mode in verify.MODES:
        result = verify.reconstruct(target, frozen, verify.Ball(1.0), mode=mode)
        for j in (1, 3):
            assert np.all(result.gamma[j][-2:] == 0) and np.all(result.beta[j][-2:] == 0)
        assert result.certificate.holds


def test_depth_one_target_has_no_hidden_relu():
    """A depth-1 target is affine: the frozen pair must reproduce it on the whole box."""
    w = np.array([[2.0, -1.0], [0.5, 3.0], [0.0, 0.0]])
    target = verify.TargetNetwork([w], [np.array([1.0, -2.0, 0.25])])
    for mode in verify.MODES:
        frozen = verify.FrozenNetwork.for_target(target, width=mode, seed=3)
        result = verify.reconstruct(target, frozen, verify.Box([-5, -5], [5, 5]), mode=mode)
        x = np.array([[-5.0, 5.0], [5.0, -5.0], [0.0, 0.0]])
        np.testing.assert_allclose(result.network(x), target(x), rtol=1e-12, atol=1e-12)


def test_results_are_deterministic():
    target = verify.TargetNetwork.random([3, 4, 3], seed=11)
    frozen = verify.FrozenNetwork.for_target(target, width="minimal", seed=12)
    first = verify.reconstruct(target, frozen, verify.Ball(1.0), mode="minimal")
    second = verify.reconstruct(target, frozen, verify.Ball(1.0), mode="minimal")
    for a, b in zip(first.gamma + first.beta, second.gamma + second.beta, strict=True):
        np.testing.assert_array_equal(a, b)
    again = verify.FrozenNetwork.for_target(target, width="minimal", seed=12)
    for a, b in zip(frozen.weights, again.weights, strict=True):
        np.testing.assert_array_equal(a, b)
