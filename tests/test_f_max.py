"""``f_max``: the target's largest output on a certificate's sample points, a lower bound of ``max_D |f|``
(docs/design.md §6.8), and ``holds`` judged against it on every route."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import pytest
import torch
from torch import nn

import verify
from properties._support import exact_output
from verify.core.f_max import bound_over_f_max, float64_allowance, holds_against_f_max, sampled_f_max
from verify.core.f_max_ascent import ascend
from verify.core.interop import refuse_tf32
from verify.nn import fit_norm_layers, frozen_like, frozen_mlp
from verify.nn.graph_fit import fit_graph


def _dense(widths: list[int], domain: verify.Domain, seed: int = 0, rtol: float = 1e-6) -> verify.Reconstruction:
    target = verify.TargetNetwork.random(widths, seed=seed)
    return verify.reconstruct(target, verify.FrozenNetwork.for_target(target, seed=seed + 1), domain, rtol=rtol)


@pytest.mark.parametrize(
    "domain",
    [verify.Box([-1.0, 0.25, -2.0], [0.5, 1.0, -1.5]), verify.Ball(0.7, center=[0.3, -0.2, 1.0])],
    ids=["box", "ball"],
)
def test_f_max_of_one_layer_is_below_its_exact_maximum_and_close_to_it(domain):
    """For ``f = W x + b`` the maximum over the domain is known in closed form (a box: ``|W c + b| + |W| h`` at
    a corner; a ball: ``|W c + b| + r ‖W_i‖₂``). ``f_max`` is at most that, and, since the samples hold every
    corner of a 3-dimensional box and about a hundred points of the sphere, within a few percent of it."""
    result = _dense([3, 2], domain)
    target, certificate = result.target, result.certificate
    w, b = target.weights[0], target.biases[0]
    if isinstance(domain, verify.Box):
        centre, half = (domain.lo + domain.hi) / 2, (domain.hi - domain.lo) / 2
        exact = np.abs(w @ centre + b) + np.abs(w) @ half
    else:
        exact = np.abs(w @ domain.center + b) + domain.radius * np.linalg.norm(w, axis=1)
    largest = float(np.max(exact))
    assert certificate.f_max <= largest
    assert certificate.f_max >= (1 - 1e-12 if isinstance(domain, verify.Box) else 0.95) * largest
    assert certificate.f_max <= certificate.scale  # the interval figure is an upper bound of the same maximum


def test_f_max_is_below_the_maximum_on_a_dense_grid_plus_its_lipschitz_slack():
    """A depth-3 target on a 2-D box: ``max_D |f| <= max over a grid + L h`` (``L`` = the ∞-norm of
    ``|W_3| |W_2| |W_1|``, a Lipschitz constant of ``f``; ``h`` the grid's half spacing), so ``f_max``, a lower
    bound of ``max_D |f|``, must be below that; and it is not far below the grid's own maximum."""
    domain = verify.Box([-1.0, 0.0], [1.0, 0.5])
    result = _dense([2, 3, 3, 2], domain, seed=4)
    target = result.target
    axes = [np.linspace(lo, hi, 401) for lo, hi in zip(domain.lo, domain.hi, strict=True)]
    grid = np.stack(np.meshgrid(*axes), axis=-1).reshape(-1, 2)
    lipschitz = np.abs(target.weights[2]) @ np.abs(target.weights[1]) @ np.abs(target.weights[0])
    half = float(np.max((domain.hi - domain.lo) / 400 / 2))
    dense = float(np.max(np.abs(target(grid))))
    assert result.certificate.f_max <= dense + float(np.max(lipschitz.sum(axis=1))) * half
    assert result.certificate.f_max >= 0.9 * dense


def test_f_max_is_a_value_the_exact_target_takes_on_the_domain():
    """The rounding allowance points the right way: at the point where ``|f̂| − a`` is largest, the exact
    (rational) ``|f|`` is at least ``f_max``, and that point lies in the box exactly. The same points as the
    certificate's (``domain.sample(256, default_rng(seed))`` and the points `ascend` climbs to from them)."""
    domain = verify.Box(-np.ones(3), np.ones(3))
    result = _dense([3, 4, 2], domain, seed=2)
    target = result.target
    x = domain.sample(256, np.random.default_rng(0))
    x = np.concatenate([x, ascend(target, domain.resolve(3), x, target(x))])
    lower = np.abs(target(x)) - float64_allowance(target.magnitude(x), sum(d + 2 for d in target.widths[:-1]))
    best = np.unravel_index(int(np.argmax(lower)), lower.shape)
    assert result.certificate.f_max == float(lower[best])
    point = x[best[0]]
    assert all(
        Fraction(float(lo)) <= Fraction(float(v)) <= Fraction(float(hi))
        for lo, v, hi in zip(domain.lo, point, domain.hi, strict=True)
    )
    assert abs(exact_output(target, point)[best[1]]) >= Fraction(result.certificate.f_max)


def test_sample_points_provably_lie_in_their_domain():
    """Box samples are clipped into the box (``lo + (hi − lo)`` may round past ``hi``); a ball's sphere points are
    drawn a hair inside, so `Ball.contains`'s rigorous test accepts every one, off-centre too; a point just outside
    is rejected."""
    rng = np.random.default_rng(0)
    box = verify.Box([0.1, -3.0, 1e-10], [0.7, 1e-10, 0.3])
    assert np.all(box.contains(box.sample(500, rng)))
    for ball in (verify.Ball(1.0, np.zeros(5)), verify.Ball(0.3, center=[2.0, -1.0, 0.5, 7.0, 0.0])):
        points = ball.sample(500, rng)
        assert np.all(ball.contains(points))
        outside = ball.center + (points[-1] - ball.center) * (1 + 1e-9)
        assert not ball.contains(outside[None])[0]
    assert not box.contains(np.array([[0.1, 1e-10, np.nextafter(0.3, 1.0)]]))[0]


def test_sampled_f_max_counts_only_points_inside_and_subtracts_the_allowance():
    values = np.array([[1.0, -3.0], [5.0, 0.5], [-0.1, 0.2]])
    assert sampled_f_max(values) == 5.0
    assert sampled_f_max(values, inside=np.array([True, False, True])) == 3.0
    assert sampled_f_max(values, allowance=np.full_like(values, 0.5), inside=np.array([True, False, True])) == 2.5
    assert sampled_f_max(values, allowance=10.0) == 0.0  # clipped at 0: no point proves a positive output
    assert sampled_f_max(values, inside=np.zeros(3, dtype=bool)) == 0.0


def test_holds_flips_when_the_bound_crosses_rtol_times_f_max():
    """The one formula (`holds_against_f_max`) on a real certificate: a bound just below ``rtol · f_max`` holds,
    just above it fails with the message naming f_max; the interval scale plays no part any more."""
    result = _dense([3, 3, 2], verify.Box(-np.ones(3), np.ones(3)), seed=1)
    certificate = result.certificate
    rtol, f_max = certificate.rtol, certificate.f_max
    assert 0 < certificate.error_bound <= rtol * f_max and certificate.holds
    for factor, holds in ((1 - 1e-9, True), (1 + 1e-9, False)):
        bound = dataclasses.replace(certificate.bound, error_bound=rtol * f_max * factor)
        changed = dataclasses.replace(certificate, bound=bound)
        assert changed.holds is holds and changed.bound_over_scale < 1e-3  # far within rtol of the scale
        assert holds_against_f_max(bound.error_bound, f_max, rtol) is holds
        if not holds:
            (reason,) = changed.failures()
            assert "of the target's largest output on the sample points (f_max = " in reason
            assert changed.relative_error_bound == pytest.approx(rtol * (1 + 1e-9), rel=1e-12)
    figures = certificate.to_dict()
    assert figures["f_max"] == f_max and figures["relative_error_bound"] == certificate.error_bound / f_max
    assert figures["bound_over_scale"] == certificate.error_bound / certificate.scale


def test_f_max_zero_holds_only_for_a_zero_bound():
    """A target that is 0 on every sample point has no relative accuracy: only an exact zero bound holds (a zero
    target switched off exactly has one); any positive bound fails, and the message says why."""
    target = verify.TargetNetwork([np.zeros((2, 3))])
    result = verify.reconstruct(target, verify.FrozenNetwork.for_target(target, seed=0), verify.Ball(1.0))
    certificate = result.certificate
    assert certificate.f_max == 0.0 and certificate.error_bound == 0.0 and certificate.holds
    assert certificate.relative_error_bound == 0.0
    positive = dataclasses.replace(certificate, bound=dataclasses.replace(certificate.bound, error_bound=1e-300))
    assert not positive.holds and positive.relative_error_bound == np.inf
    assert "f_max = 0: the target vanishes there, only a zero bound holds" in positive.failures()[0]
    assert holds_against_f_max(0.0, 0.0, 1e-6) and not holds_against_f_max(5e-324, 0.0, 1e-6)
    assert bound_over_f_max(0.0, 0.0) == 0.0 and not holds_against_f_max(float("nan"), 1.0, 1e-6)


def test_on_r_d_the_unit_cube_and_the_slope_are_judged():
    """Paired networks (``domain=None``): ``f_max`` over the sample points with ``max|x_i| <= 1``; the bound there,
    ``error_bound + error_slope``, against ``rtol · f_max``, and the slope against the terms' growth."""
    target = verify.TargetNetwork.random([3, 3, 2], seed=5)
    result = verify.reconstruct(target, verify.FrozenNetwork.for_target(target, seed=6, paired=True), None)
    certificate = result.certificate
    bound = certificate.bound
    assert certificate.holds and bound.error_slope > 0
    assert 0 < certificate.f_max <= bound.scale + bound.scale_slope  # the terms' bound at max|x_i| = 1
    rtol = certificate.rtol
    cube = (bound.error_bound + bound.error_slope) / certificate.f_max
    assert certificate.relative_error_bound == max(cube, bound.error_slope / bound.scale_slope)
    slope = dict(error_slope=bound.error_slope, scale_slope=bound.scale_slope)
    assert holds_against_f_max(bound.error_bound, certificate.f_max, rtol, **slope)
    assert not holds_against_f_max(rtol * certificate.f_max, certificate.f_max, rtol, **slope)  # cube: over
    assert not holds_against_f_max(bound.error_bound, certificate.f_max, rtol, **slope, valid_radius=0.5)
    steep = dict(error_slope=bound.error_slope, scale_slope=bound.error_slope / rtol * (1 - 1e-9))
    assert not holds_against_f_max(0.0, 1e300, rtol, **steep)


def test_the_residual_convolutional_and_graph_routes_judge_against_f_max():
    """Every route's certificate carries ``f_max`` and compares ``error_bound / f_max`` with ``rtol``."""
    residual = fit_norm_layers(
        verify.nn.frozen_residual_mlp([3, 3, 2], branches=2, width="paper", seed=0).double(),
        verify.nn.target_mlp([3, 3, 2], seed=0).double(),
        verify.Ball(1.0),
    ).certificate
    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv1d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16, 2)).double().eval()
    conv = fit_norm_layers(frozen_like(cnn, seed=0), cnn, verify.Box(0, 1, shape=(1, 10))).certificate

    class Skip(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(3, 3), nn.Linear(3, 2)

        def forward(self, x):
            return self.b(torch.relu(self.a(x)) + x)

    torch.manual_seed(1)
    target = Skip().double()
    graph = fit_graph(frozen_like(target, seed=0), target, verify.Box(-np.ones(3), np.ones(3)))
    for certificate in (residual, conv):
        assert certificate.holds and 0 < certificate.f_max <= certificate.scale
        assert certificate.relative_error_bound == certificate.error_bound / certificate.f_max <= certificate.rtol
        assert certificate.to_dict()["f_max"] == certificate.f_max
    assert graph.holds and 0 < graph.f_max <= graph.output_size <= graph.scale
    assert graph.relative_error_bound == graph.error_bound / graph.f_max <= graph.rtol
    assert graph.to_dict()["f_max"] == graph.f_max
    bound = dataclasses.replace(graph.certificate.bound, error_bound=graph.rtol * graph.f_max * (1 + 1e-9))
    broken = dataclasses.replace(graph, certificate=dataclasses.replace(graph.certificate, bound=bound))
    assert not broken.holds and "(f_max = " in broken.failures()[0]


@pytest.fixture
def tf32():
    """Set torch's two TF32 flags (``tf32(matmul, cudnn)``); they are restored afterwards (they are properties of
    torch's backend modules, which monkeypatch cannot restore)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32

    def set_flags(matmul: bool, cudnn: bool) -> None:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn

    yield set_flags
    set_flags(*saved)


@pytest.mark.parametrize("flag", ["matmul", "cudnn"])
def test_tf32_on_cuda_is_refused_naming_the_flag(monkeypatch, tf32, flag):
    """A float32 module on CUDA with TF32 allowed is refused before any solve (the bound assumes IEEE float32);
    no GPU is needed: the device check and the flags are patched, the code path is the device-agnostic one."""
    tf32(flag == "matmul", flag == "cudnn")
    monkeypatch.setattr("verify.nn.modules.device_of", lambda module: torch.device("cuda"))
    name = "torch.backends.cuda.matmul.allow_tf32" if flag == "matmul" else "torch.backends.cudnn.allow_tf32"
    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv1d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16, 2)).eval()
    frozen = frozen_like(cnn, seed=0)
    with pytest.raises(ValueError, match=rf"{name.replace('.', '[.]')} is on.*set {name.replace('.', '[.]')} = False"):
        fit_norm_layers(frozen, cnn, verify.Box(0, 1, shape=(1, 10)), rtol=0.1)
    mlp = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2))
    fit = lambda: fit_norm_layers(frozen_mlp([2, 4, 2, 4, 2], seed=0), mlp, verify.Ball(1.0), rtol=0.1)  # noqa: E731
    if flag == "matmul":
        with pytest.raises(ValueError, match="allow_tf32 is on"):
            fit()
    else:  # cuDNN's flag concerns convolutions only: an MLP's products are cuBLAS's
        assert fit().certificate.holds
    tf32(False, False)
    assert fit_norm_layers(frozen_like(cnn, seed=0), cnn, verify.Box(0, 1, shape=(1, 10)), rtol=0.1).certificate.holds


def test_tf32_is_checked_only_for_float32_on_cuda(tf32):
    tf32(True, False)
    refuse_tf32(torch.device("cpu"), "float32")
    refuse_tf32(torch.device("cuda"), "float64")
    refuse_tf32("cuda:1", "float16")
    with pytest.raises(ValueError, match="TF32"):
        refuse_tf32("cuda:1", "float32")
