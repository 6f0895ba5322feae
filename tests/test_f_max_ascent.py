"""`verify.core.f_max_ascent`: the points ``f_max`` is also taken over (docs/design.md §6.8)."""

from __future__ import annotations

import numpy as np
import pytest

import verify
from verify.core.f_max_ascent import ascend, gradient


def test_the_gradient_is_the_active_pieces_slope():
    """On the piece of a point, ``f`` is affine: a central difference of step ``1e-7`` that stays on the piece
    (both ends have the point's ReLU pattern) equals the gradient up to the float64 rounding of ``f`` divided by
    the step, below ``1e-7`` of the slope's size for these unit-scale weights."""
    target = verify.TargetNetwork.random((5, 7, 6, 3), seed=3)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(50, 5))
    step = 1e-7
    checked = 0
    for i in range(3):
        g = gradient(target, x, i)
        for axis in range(5):
            e = np.zeros(5)
            e[axis] = step
            difference = (target(x + e)[:, i] - target(x - e)[:, i]) / (2 * step)
            same = [_pattern(target, p + e) == _pattern(target, p - e) == _pattern(target, p) for p in x]
            scale = np.abs(g).max() + 1.0
            assert np.all(np.abs(difference - g[:, axis])[same] <= 1e-7 * scale)
            checked += int(np.sum(same))
    assert checked > 500


def _pattern(target: verify.TargetNetwork, x: np.ndarray) -> tuple:
    z, pattern = x, []
    for w, b in zip(target.weights[:-1], target.biases[:-1], strict=True):
        h = w @ z + b
        pattern.append(tuple(h > 0))
        z = np.maximum(h, 0)
    return tuple(pattern)


@pytest.mark.parametrize("seed", range(5))
def test_one_layer_climbs_to_its_maximum_on_a_ball(seed):
    """``f = W x + b`` on a ball peaks at ``|W_i c + b_i| + r ‖W_i‖₂``; from 32 random sample points (about 10%
    below it) the climb reaches it within ``1e-9`` (its points stop at radius ``r (1 − 2^-36)``), inside the ball."""
    target = verify.TargetNetwork.random((6, 3), seed=seed)
    domain = verify.Ball(0.8, center=np.full(6, 0.1)).resolve(6)
    x = domain.sample(32, np.random.default_rng(seed))
    points = ascend(target, domain, x, target(x))
    w, b = target.weights[0], target.biases[0]
    exact = float(np.max(np.abs(w @ domain.center + b) + domain.radius * np.linalg.norm(w, axis=1)))
    assert np.all(domain.contains(points))
    assert np.max(np.abs(target(points))) >= (1 - 1e-9) * exact
    assert np.max(np.abs(target(points))) <= exact


@pytest.mark.parametrize("seed", range(5))
def test_a_deep_target_climbs_above_its_samples_and_stays_in_its_box(seed):
    """The climb never ends below its best start, and clipping keeps every point in the box exactly."""
    target = verify.TargetNetwork.random((8, 6, 6, 2), seed=seed)
    domain = verify.Box(-np.ones(8), 2 * np.ones(8))
    x = domain.sample(64, np.random.default_rng(seed))
    points = ascend(target, domain, x, target(x))
    assert np.all(domain.contains(points))
    assert np.max(np.abs(target(points))) >= np.max(np.abs(target(x)))


def test_mismatched_points_are_refused():
    target = verify.TargetNetwork.random((2, 2), seed=0)
    with pytest.raises(ValueError, match="same number of points"):
        ascend(target, verify.Box(-np.ones(2), np.ones(2)), np.zeros((3, 2)), np.zeros((2, 2)))


def test_the_certificate_takes_f_max_over_the_climbed_points_too():
    """A depth-2 target on a 4-D ball: the certificate's ``f_max`` is at least the climbed points' (less their
    rounding allowance, which is below ``1e-12`` of them) and above every sample point's."""
    target = verify.TargetNetwork.random((4, 4, 3), seed=7)
    domain = verify.Ball(1.0)
    result = verify.reconstruct(target, verify.FrozenNetwork.for_target(target, seed=8), domain, progress=False)
    resolved = domain.resolve(4)
    x = resolved.sample(256, np.random.default_rng(0))
    climbed = float(np.max(np.abs(target(ascend(target, resolved, x, target(x))))))
    assert result.certificate.f_max >= (1 - 1e-12) * climbed >= float(np.max(np.abs(target(x))))


def test_the_residual_route_takes_f_max_over_the_climbed_points_too():
    """A Case-2 residual fit (`frozen_residual_mlp`) judges against ``f_max`` over the same climbed points: at
    least the climb's best (less its allowance, below ``1e-12`` of it) and at most ``max_D |f|`` (the target
    ``3 → 3 → 2`` on the unit ball: below every output's Lipschitz bound ``|W_2| |W_1|`` row sum plus ``|f(0)|``)."""
    from verify.nn import fit_norm_layers, frozen_residual_mlp, target_mlp

    module = target_mlp([3, 3, 2], seed=0).double()
    result = fit_norm_layers(
        frozen_residual_mlp([3, 3, 2], branches=2, width="paper", seed=0).double(), module, verify.Ball(1.0)
    )
    target = result.target
    resolved = verify.Ball(1.0).resolve(3)
    x = resolved.sample(256, np.random.default_rng(0))
    climbed = float(np.max(np.abs(target(ascend(target, resolved, x, target(x))))))
    lipschitz = np.linalg.norm(np.abs(target.weights[1]) @ np.abs(target.weights[0]), axis=1)
    assert result.certificate.f_max >= (1 - 1e-12) * climbed >= float(np.max(np.abs(target(x))))
    assert result.certificate.f_max <= float(np.max(np.abs(target(np.zeros((1, 3)))) + lipschitz))
