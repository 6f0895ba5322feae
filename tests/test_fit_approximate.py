"""``fit_norm_layers(..., mode="approximate")`` on dense torch chains (docs/design.md §11).

Below the threshold the tuned module's own torch forward, on fresh points of the domain (its corners
included), must stay within the certificate's ``error_bound``; at or above it the result is paper
mode's, with ``exact`` True.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import verify
from verify.construction.frontier import fresh_points
from verify.nn import fit_norm_layers, frozen_like, target_mlp
from verify.nn.modules import from_module, norm_layers, target_from_module

DOMAIN = verify.Box(-np.ones(4), np.ones(4))


def _pair(dtype: torch.dtype, width: float | str = 0.4) -> tuple[nn.Sequential, nn.Sequential]:
    target = target_mlp([4, 5, 3], seed=2, dtype=dtype).eval()
    return target, frozen_like(target, width=width, seed=3)


def _torch_errors(frozen: nn.Module, target: nn.Module, x: np.ndarray) -> tuple[float, float]:
    """``max |g − f̂|`` against the target's own forward (in its dtype) and ``max |g − f|`` against float64."""
    dtype = next(frozen.parameters()).dtype
    exact = copy.deepcopy(target).double()
    with torch.no_grad():
        g = frozen(torch.tensor(x, dtype=dtype)).double()
        f_own = target(torch.tensor(x, dtype=dtype)).double()
        f64 = exact(torch.tensor(x))
    return float((g - f_own).abs().max()), float((g - f64).abs().max())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_the_tuned_module_stays_within_the_bound_on_fresh_points_and_corners(dtype: torch.dtype) -> None:
    target, frozen = _pair(dtype)
    result = fit_norm_layers(frozen, target, DOMAIN, mode="approximate")
    certificate = result.certificate
    assert result.mode == "approximate"
    assert not certificate.exact and certificate.holds
    assert certificate.dtype == str(dtype).removeprefix("torch.")
    # 2,000 fresh points: 1,600 of the box (half on its boundary) and 400 of its corners.
    x = fresh_points(DOMAIN.resolve(4), 1600, np.random.default_rng(11))
    assert len(x) == 2000
    own, exact = _torch_errors(frozen, target, x)
    assert 0 < own <= certificate.error_bound
    assert exact <= certificate.error_bound
    assert 0 < certificate.approximation_error <= certificate.error_bound < np.inf
    # The error is not rounding: the bound is within a factor 10 of what torch's forward shows (3.1 times
    # it on this pair, in both dtypes), so a bound that ignored the approximation would fail above.
    assert certificate.error_bound < 10 * own


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_it_loads_the_numpy_api_s_result_in_place(dtype: torch.dtype) -> None:
    target, frozen = _pair(dtype)
    before = copy.deepcopy(frozen)
    expected = verify.reconstruct(target_from_module(target), from_module(before), DOMAIN, mode="approximate")
    result = fit_norm_layers(frozen, target, DOMAIN, mode="approximate")
    assert result.certificate.error_bound == expected.certificate.error_bound
    assert result.certificate.approximation_error == expected.certificate.approximation_error
    for bn, gamma, beta in zip(norm_layers(frozen), expected.gamma, expected.beta, strict=True):
        assert torch.equal(bn.weight.detach(), gamma) and torch.equal(bn.bias.detach(), beta)
    assert not frozen.training
    # Only the BatchNorm weight and bias changed: Linear weights and running statistics kept their values.
    norms = norm_layers(frozen)
    tuned = {f"{name}.{p}" for name, m in frozen.named_modules() if m in norms for p in ("weight", "bias")}
    kept = {k: v for k, v in before.state_dict().items() if k not in tuned}
    assert len(kept) > len(tuned) and all(torch.equal(frozen.state_dict()[k], v) for k, v in kept.items())


def test_at_the_paper_width_it_is_the_exact_result() -> None:
    target, frozen = _pair(torch.float64, "paper")
    paper = fit_norm_layers(copy.deepcopy(frozen), target, DOMAIN, mode="paper")
    result = fit_norm_layers(frozen, target, DOMAIN, mode="approximate")
    assert result.certificate.exact and result.certificate.approximation_error == 0.0
    assert result.certificate.error_bound == paper.certificate.error_bound
    assert all(torch.equal(a, b) for a, b in zip(result.gamma + result.beta, paper.gamma + paper.beta, strict=True))


class _Chain(nn.Module):
    """A model class whose forward is the Sequential's chain."""

    def __init__(self, net: nn.Sequential) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_a_class_read_as_a_chain_gets_the_sequential_s_parameters() -> None:
    target, frozen = _pair(torch.float64)
    sequential = fit_norm_layers(copy.deepcopy(frozen), target, DOMAIN, mode="approximate")
    wrapped = _Chain(frozen)
    result = fit_norm_layers(wrapped, _Chain(target), DOMAIN, mode="approximate")
    assert result.certificate.error_bound == sequential.certificate.error_bound
    assert all(torch.equal(a, b) for a, b in zip(result.gamma, sequential.gamma, strict=True))


def test_an_unknown_mode_names_approximate() -> None:
    target, frozen = _pair(torch.float64)
    with pytest.raises(ValueError, match="'approximate' answers below"):
        fit_norm_layers(frozen, target, DOMAIN, mode="approx")


@pytest.mark.parametrize(
    ("widths", "width", "dtype"), [([4, 6, 5, 3], 0.15, torch.float32), ([4, 3], 0.6, torch.float64)]
)
def test_deeper_and_single_layer_chains_on_a_ball_stay_within_the_bound(widths, width, dtype) -> None:
    target = target_mlp(widths, seed=5, dtype=dtype).eval()
    frozen = frozen_like(target, width=width, seed=6)
    ball = verify.Ball(1.5).resolve(4)
    result = fit_norm_layers(frozen, target, ball, mode="approximate")
    assert not result.certificate.exact and result.certificate.holds
    x = fresh_points(ball, 2000, np.random.default_rng(12))  # half of them on the sphere
    own, exact = _torch_errors(frozen, target, x)
    assert 0 < max(own, exact) <= result.certificate.error_bound
