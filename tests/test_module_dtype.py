"""The convolutional and residual routes certify a float32 module in float32; its own forward is a sanity check."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

import verify
from verify.nn import fit_norm_layers, frozen_like, frozen_residual_mlp, target_mlp
from verify.nn.fit import check_module_dtype


def _conv_pair() -> tuple[nn.Module, nn.Module, verify.Box]:
    torch.manual_seed(0)
    target = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(72, 3)).eval()
    return frozen_like(target, width="paper", seed=0), target, verify.Box(np.zeros((2, 6, 6)), np.ones((2, 6, 6)))


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
    with pytest.raises(verify.CertificateError, match=r"in float32") as refused:
        fit_norm_layers(frozen, target, domain, rtol=1e-9)
    assert refused.value.certificate.dtype == "float32"
    assert all(torch.equal(before[name], value) for name, value in frozen.state_dict().items())


# The rtol asked of each float32 module: its bound / f_max (the target's largest output on the sample points),
# measured, is 2.8e-2 (this paper-wide CNN: the frozen pairs' magnitudes, with cancelling scales, are far above the
# target's outputs; the earlier two-convolution CNN here got 25, a bound larger than every output) and 9.9e-4
# (the residual MLP; 5.2e-4 of its interval scale).
FLOAT32_RTOL = {"conv": 0.1, "residual": 2e-3}


@pytest.mark.parametrize("build", [_conv_pair, _residual_pair], ids=["conv", "residual"])
def test_a_float32_module_is_certified_in_float32_and_its_own_forward_meets_the_bound(build):
    frozen, target, domain = build()
    kind = "conv" if build is _conv_pair else "residual"
    result = fit_norm_layers(frozen, target, domain, rtol=FLOAT32_RTOL[kind])
    certificate = result.certificate
    assert certificate.dtype == "float32" and certificate.error_bound <= FLOAT32_RTOL[kind] * certificate.f_max
    # γ and β are float32 values (rounded before the bound was computed), and are loaded as they are.
    for value in (*result.gamma, *result.beta):
        value = np.asarray(value, dtype=np.float64)
        assert np.array_equal(value.astype(np.float32).astype(np.float64), value)
    shape = (2, 6, 6) if isinstance(domain, verify.Box) else (4,)
    points = domain.resolve(int(np.prod(shape))).sample(128, np.random.default_rng(7)).reshape(-1, *shape)
    with torch.no_grad():
        g = frozen(torch.tensor(points, dtype=torch.float32)).double().numpy()
        f = target.double()(torch.tensor(points, dtype=torch.float64)).numpy()
    # Fresh points (another seed than the sanity check's): the bound covers every one of them, with no slack.
    assert float(np.abs(g - f).max()) <= certificate.error_bound


def test_a_wrong_bound_is_caught_by_the_sanity_check():
    """A bound that the module's own float32 forward exceeds is reported as a bug; the module is left unchanged.

    The bound is shrunk by 1e-12 after the result was certified (no sound bound is that small: float32 errs by
    about 6e-8 of the output), so only the module's own forward can see it.
    """
    frozen, target, domain = _residual_pair()
    result = fit_norm_layers(copy.deepcopy(frozen), target, domain, rtol=FLOAT32_RTOL["residual"])
    bound = result.certificate.bound
    wrong = dataclasses.replace(bound, error_bound=bound.error_bound * 1e-12)
    broken = dataclasses.replace(result, certificate=dataclasses.replace(result.certificate, bound=wrong))
    before = {name: value.clone() for name, value in frozen.state_dict().items()}
    with pytest.raises(verify.CertificateError, match=r"the certified bound is wrong \(a bug"):
        check_module_dtype(frozen, broken, "residual")
    assert all(torch.equal(before[name], value) for name, value in frozen.state_dict().items())


def test_a_float64_module_is_not_rechecked(monkeypatch):
    frozen, target, domain = _conv_pair()
    frozen, target = frozen.double(), target.double()
    calls = []
    monkeypatch.setattr("verify.nn.fit.copy.deepcopy", lambda module: calls.append(module) or module)
    fit_norm_layers(frozen, target, domain)
    assert calls == []
