"""``fit_norm_layers(..., mode="approximate")`` on convolutional chains and Case 2 modules (docs/design.md §11).

The convolutional route (an ``nn.Sequential`` CNN read into `verify.ConvTargetNetwork` / `verify.ConvFrozenNetwork`)
and the Case 2 route (`verify.nn.FrozenResidualMLP`) certify in the module's dtype as their exact modes do. Below
the threshold the tuned module's own torch forward, on 2,000 fresh points of the domain (400 of them corners of
the box), must stay within ``error_bound``; at the paper width the result is paper mode's, ``exact`` True; a
refusal leaves the module as it was.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn

import verify
from verify.construction.frontier import fresh_points
from verify.nn import fit_norm_layers, frozen_like, frozen_residual_mlp, target_mlp
from verify.nn.frozen_like import conv_networks
from verify.nn.modules import norm_layers

CONV_BOX = verify.Box(-1, 1, shape=(2, 5, 5))
DENSE_BOX = verify.Box(-np.ones(4), np.ones(4))
RTOL = 5e-2
"""Paper mode's accuracy demand at the threshold, for float32: `fit_norm_layers` documents 2.5e-4–1.5e-3 of the
scale measured for small CNNs and 1.5e-4–5e-2 for two-branch Case 2 modules (this one: 1.1e-2). Approximate mode
does not compare its bound with rtol below the threshold."""


def _conv(dtype: torch.dtype, width: float | str) -> tuple[nn.Module, nn.Module, verify.Box]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        layers = [nn.Conv2d(2, 2, 2), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8, 2)]
        target = nn.Sequential(*layers).to(dtype).eval()
    return target, frozen_like(target, width=width, seed=0), CONV_BOX


def _case2(dtype: torch.dtype, width: float | str) -> tuple[nn.Module, nn.Module, verify.Box]:
    target = target_mlp([4, 4, 3], seed=0, dtype=dtype).eval()
    return target, frozen_residual_mlp([4, 4, 3], branches=2, width=width, seed=1, dtype=dtype), DENSE_BOX


ROUTES = {"convolutional": _conv, "case2": _case2}


def _errors(frozen: nn.Module, target: nn.Module, x: np.ndarray, shape: tuple[int, ...] | None) -> tuple[float, float]:
    """``max |g − f̂|`` against the target's own forward (in its dtype) and ``max |g − f|`` against float64,
    every output through torch's forward of the modules."""
    dtype = next(frozen.parameters()).dtype
    points = x.reshape(len(x), *(shape or x.shape[1:]))
    with torch.no_grad():
        g = frozen(torch.tensor(points, dtype=dtype)).double()
        own = target(torch.tensor(points, dtype=dtype)).double()
        f64 = copy.deepcopy(target).double()(torch.tensor(points))
    return float((g - own).abs().max()), float((g - f64).abs().max())


def _tuned_names(module: nn.Module) -> set[str]:
    norms = norm_layers(module)
    return {f"{name}.{p}" for name, m in module.named_modules() if m in norms for p in ("weight", "bias")}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("route", ROUTES)
def test_below_the_threshold_the_module_s_own_forward_stays_within_the_bound(route: str, dtype: torch.dtype) -> None:
    target, frozen, box = ROUTES[route](dtype, 0.5)
    before = copy.deepcopy(frozen.state_dict())
    result = fit_norm_layers(frozen, target, box, mode="approximate")
    certificate = result.certificate
    assert result.mode == "approximate" and not frozen.training
    assert not certificate.exact and certificate.holds and certificate.approximate_blocks
    assert certificate.dtype == str(dtype).removeprefix("torch.")
    x = fresh_points(box, 1600, np.random.default_rng(21))  # 1,600 of the box (half on its boundary), 400 corners
    assert len(x) == 2000
    own, exact = _errors(frozen, target, x, box.shape)
    assert 0 < own <= certificate.error_bound and exact <= certificate.error_bound
    assert 0 < certificate.approximation_error <= certificate.error_bound < np.inf
    # What torch's forward shows is more than the bound's rounding part: a bound without the approximation fails.
    assert own > certificate.error_bound - certificate.approximation_error
    # The loaded values are the result's; only BatchNorm weights and biases changed.
    for bn, gamma, beta in zip(norm_layers(frozen), result.gamma, result.beta, strict=True):
        np.testing.assert_array_equal(bn.weight.detach().double().numpy(), gamma)
        np.testing.assert_array_equal(bn.bias.detach().double().numpy(), beta)
    tuned = _tuned_names(frozen)
    kept = {k: v for k, v in before.items() if k not in tuned}
    assert len(kept) > len(tuned) and all(torch.equal(frozen.state_dict()[k], v) for k, v in kept.items())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("route", ROUTES)
def test_at_the_paper_width_it_is_paper_mode_s_result(route: str, dtype: torch.dtype) -> None:
    target, frozen, box = ROUTES[route](dtype, "paper")
    paper = fit_norm_layers(copy.deepcopy(frozen), target, box, mode="paper", rtol=RTOL)
    result = fit_norm_layers(frozen, target, box, mode="approximate", rtol=RTOL)
    certificate = result.certificate
    assert certificate.exact and certificate.holds and certificate.approximation_error == 0.0
    assert certificate.error_bound == paper.certificate.error_bound and certificate.dtype == paper.certificate.dtype
    assert certificate.approximate_blocks == () and certificate.block_errors == (0.0,) * len(certificate.blocks)
    for ours, theirs in zip(result.gamma + result.beta, paper.gamma + paper.beta, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    x = fresh_points(box, 1600, np.random.default_rng(22))
    assert max(_errors(frozen, target, x, box.shape)) <= certificate.error_bound


def test_the_convolutional_route_loads_the_numpy_api_s_result() -> None:
    target, frozen, box = _conv(torch.float64, 0.5)
    expected = verify.reconstruct(*conv_networks(target, copy.deepcopy(frozen), box), box, mode="approximate")
    result = fit_norm_layers(frozen, target, box, mode="approximate")
    assert result.certificate.error_bound == expected.certificate.error_bound
    assert result.certificate.approximation_error == expected.certificate.approximation_error
    for ours, theirs in zip(result.gamma + result.beta, expected.gamma + expected.beta, strict=True):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("route", ROUTES)
def test_auto_keeps_the_smaller_bound_of_both_objectives(route: str) -> None:
    target, frozen, box = ROUTES[route](torch.float64, 0.5)
    bounds = {
        m: fit_norm_layers(copy.deepcopy(frozen), target, box, mode="approximate", method=m).certificate.error_bound
        for m in ("l1", "lstsq")
    }
    assert fit_norm_layers(frozen, target, box, mode="approximate").certificate.error_bound == min(bounds.values())


REFUSALS: list[tuple[str, Callable[[verify.Box], dict], str]] = [
    ("convolutional", lambda box: {"domain": None}, "the domain must give the shape of one input"),
    ("case2", lambda box: {"domain": None}, "bounded domain"),
    ("convolutional", lambda box: {"domain": box, "method": "iterative"}, "method must be one of"),
    ("case2", lambda box: {"domain": box, "method": "iterative"}, "method must be one of"),
]


@pytest.mark.parametrize(("route", "arguments", "message"), REFUSALS)
def test_a_refusal_leaves_the_module_unchanged(route: str, arguments: Callable, message: str) -> None:
    target, frozen, box = ROUTES[route](torch.float64, 0.5)
    frozen.train()
    before = copy.deepcopy(frozen.state_dict())
    options = arguments(box)
    with pytest.raises(ValueError, match=message):
        fit_norm_layers(frozen, target, options.pop("domain"), mode="approximate", **options)
    assert frozen.training
    assert all(torch.equal(frozen.state_dict()[k], v) for k, v in before.items())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("route", "engine"), [("convolutional", "graph_error_bound"), ("case2", "graph_error_bound")])
def test_a_bound_too_small_is_caught_and_the_module_is_left_unchanged(
    route: str, engine: str, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The route's rigorous bound, made 10 times too small on purpose: the sampled checks refuse it
    (`verify.CertificateError`) before any BatchNorm is written."""
    from verify.construction import convolutional, residual

    owner = convolutional if route == "convolutional" else residual
    honest = getattr(owner, engine)

    def shrunk(*args: object, **kwargs: object) -> object:
        bound = honest(*args, **kwargs)
        return dataclasses.replace(bound, error_bound=bound.error_bound / 10)

    monkeypatch.setattr(owner, engine, shrunk)
    target, frozen, box = ROUTES[route](dtype, 0.5)
    frozen.train()
    before = copy.deepcopy(frozen.state_dict())
    with pytest.raises(verify.CertificateError, match="bound is wrong"):
        fit_norm_layers(frozen, target, box, mode="approximate")
    assert frozen.training
    assert all(torch.equal(frozen.state_dict()[k], v) for k, v in before.items())


class _Wrapped(nn.Module):
    """A model class whose forward is the Sequential's chain: read on the same convolutional route."""

    def __init__(self, net: nn.Sequential) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_a_cnn_class_read_as_a_chain_gets_the_sequential_s_result() -> None:
    target, frozen, box = _conv(torch.float32, 0.5)
    sequential = fit_norm_layers(copy.deepcopy(frozen), target, box, mode="approximate")
    wrapped = _Wrapped(frozen)
    result = fit_norm_layers(wrapped, _Wrapped(target), box, mode="approximate")
    assert result.certificate.error_bound == sequential.certificate.error_bound
    for ours, theirs in zip(result.gamma + result.beta, sequential.gamma + sequential.beta, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    x = fresh_points(box, 1600, np.random.default_rng(23))
    assert max(_errors(wrapped, _Wrapped(target), x, box.shape)) <= result.certificate.error_bound
