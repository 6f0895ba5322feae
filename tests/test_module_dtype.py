"""Routes certified in float64 (convolutional, residual) check a float32 module's own forward against rtol."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import verify
from verify.nn import fit_norm_layers, frozen_like, frozen_residual_mlp, target_mlp
from verify.nn.fit import forward_error


def _conv_pair() -> tuple[nn.Module, nn.Module, verify.Box]:
    torch.manual_seed(0)
    target = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 3)
    ).eval()
    return frozen_like(target, width="paper", seed=0), target, verify.Box(np.zeros((3, 8, 8)), np.ones((3, 8, 8)))


def _residual_pair() -> tuple[nn.Module, nn.Module, verify.Ball]:
    return (
        frozen_residual_mlp([4, 4, 3], branches=2, width="paper", seed=0),
        target_mlp([4, 4, 3], seed=0),
        verify.Ball(1.0),
    )


@pytest.mark.parametrize("build", [_conv_pair, _residual_pair], ids=["conv", "residual"])
def test_a_float32_module_that_misses_rtol_is_refused_and_left_unchanged(build):
    frozen, target, domain = build()
    assert next(frozen.parameters()).dtype == torch.float32
    before = {name: value.clone() for name, value in frozen.state_dict().items()}
    # float32 rounding (unit roundoff 6e-8) summed over the layers' terms is far above 1e-9 of the output.
    with pytest.raises(verify.CertificateError, match=r"certified in float64.*float32 module's own forward"):
        fit_norm_layers(frozen, target, domain, rtol=1e-9)
    assert all(torch.equal(before[name], value) for name, value in frozen.state_dict().items())


@pytest.mark.parametrize("build", [_conv_pair, _residual_pair], ids=["conv", "residual"])
def test_a_float32_module_within_rtol_is_fitted_and_its_own_forward_meets_rtol(build):
    frozen, target, domain = build()
    fit_norm_layers(frozen, target, domain, rtol=1e-2)
    shape = (3, 8, 8) if isinstance(domain, verify.Box) else (4,)
    points = domain.resolve(int(np.prod(shape))).sample(128, np.random.default_rng(7)).reshape(-1, *shape)
    # Fresh points (another seed than the check's): float32 errors of ~1e-3 of max|f| were measured here; 1e-2 is
    # the rtol asked for, which the check enforced on 256 points of the same domain.
    assert forward_error(frozen, target.double(), points) <= 1e-2


def test_a_float64_module_is_not_rechecked(monkeypatch):
    frozen, target, domain = _conv_pair()
    frozen, target = frozen.double(), target.double()
    calls = []
    monkeypatch.setattr("verify.nn.fit.copy.deepcopy", lambda module: calls.append(module) or module)
    fit_norm_layers(frozen, target, domain)
    assert calls == []
