"""Conv and residual results certified in the module's dtype, and the claim ``certificate/routes``."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch

import verify
import verify.job.claims.routes as routes
from verify.construction.convolutional import reconstruct_convolutional
from verify.construction.residual import reconstruct_residual
from verify.job.config import Config
from verify.job.route_models import MODELS, WRITINGS, Steps, build_model, numpy_networks
from verify.job.runner import run_claims
from verify.nn import fit_norm_layers
from verify.nn.frozen_like import conv_networks

SMALL = Config(architectures=((2, 2),), seeds=(1,), points=64, properties=False, grid="custom")


def _claim(sizes: dict | None = None, seeds: tuple[int, ...] = SMALL.seeds) -> object:
    config = dataclasses.replace(
        SMALL, seeds=seeds, only=("certificate/routes",), sizes={"certificate/routes": sizes or {}}
    )
    (claim,) = run_claims(config)
    json.dumps(claim.to_dict(), allow_nan=False)
    return claim


def _stored(values: list) -> list[np.ndarray]:
    return [np.asarray(v.detach().double() if hasattr(v, "detach") else v, dtype=np.float64) for v in values]


@pytest.mark.parametrize("name", ["cnn1d", "cnn2d", "residual"])
def test_a_float32_module_is_certified_in_float32_on_the_stored_values(name):
    """γ, β are float32 numbers, the bound is the float32 one (larger than the float64 bound of the same
    parameters), and the float32 module's own forward stays within it at fresh points, corners included."""
    model = build_model(name, 1).to(torch.float32)
    frozen, target = model.written("sequential")
    result = fit_norm_layers(frozen, target, model.domain, rtol=routes.RTOL["float32"])
    certificate = result.certificate
    assert certificate.holds and certificate.dtype == "float32" and certificate.bound.dtype == "float32"
    for value in _stored([*result.gamma, *result.beta]):
        assert np.array_equal(value.astype(np.float32).astype(np.float64), value)
    if name == "residual":
        networks = (result.target, result.frozen)
        again = reconstruct_residual(*networks, model.domain, rtol=1.0)
    else:
        networks = conv_networks(*(copy.deepcopy(m).double() for m in (model.target, model.frozen)), model.domain)
        again = reconstruct_convolutional(*networks, model.domain, rtol=1.0)
    assert again.certificate.dtype == "float64" and again.certificate.error_bound < certificate.error_bound
    x = routes.fresh_points(model.domain, 500, np.random.default_rng(5))
    inputs = torch.tensor(x.reshape(len(x), *model.shape), dtype=torch.float64)
    with torch.no_grad():
        g = frozen(inputs.float()).double().reshape(len(x), -1).numpy()
        f = copy.deepcopy(model.target).double()(inputs).reshape(len(x), -1).numpy()
    assert float(np.abs(g - f).max()) <= certificate.error_bound


def test_a_float32_module_above_rtol_is_refused_and_left_unchanged():
    model = build_model("cnn2d", 0).to(torch.float32)
    frozen, target = model.written("wrap")
    before = copy.deepcopy(frozen.state_dict())
    with pytest.raises(verify.CertificateError, match=r"in float32 the certified error bound") as refused:
        fit_norm_layers(frozen, target, model.domain, rtol=1e-6)
    assert refused.value.certificate.dtype == "float32"
    assert all(torch.equal(before[key], value) for key, value in frozen.state_dict().items())


def test_float64_routes_are_unchanged_by_the_dtype_argument():
    """The float64 default is the identity rounding: naming it gives the same bits as leaving it out."""
    model = build_model("cnn2d", 0)
    networks = numpy_networks(model, torch.float64)
    a = reconstruct_convolutional(*networks, model.domain)
    b = reconstruct_convolutional(*networks, model.domain, dtype="float64", target_dtype="float64")
    assert all(np.array_equal(x, y) for x, y in zip(_stored(a.gamma + a.beta), _stored(b.gamma + b.beta), strict=True))
    assert a.certificate.error_bound == b.certificate.error_bound


@pytest.mark.parametrize("route", [reconstruct_convolutional, reconstruct_residual], ids=["conv", "residual"])
def test_an_unknown_dtype_is_refused_naming_the_dtypes(route):
    model = build_model("cnn1d" if route is reconstruct_convolutional else "residual", 0)
    networks = numpy_networks(model, torch.float64)
    with pytest.raises(ValueError, match=r"dtype must be one of .*float32"):
        route(*networks, model.domain, dtype="float8")


def test_a_residual_target_written_as_a_class_gives_the_sequentials_result():
    model = build_model("residual", 2)
    results = [fit_norm_layers(*model.written(w), model.domain) for w in ("sequential", "wrap", "steps")]
    first = _stored(results[0].gamma + results[0].beta)
    for other in results[1:]:
        assert all(np.array_equal(x, y) for x, y in zip(first, _stored(other.gamma + other.beta), strict=True))
        assert other.certificate.error_bound == results[0].certificate.error_bound


def test_fresh_points_hold_the_extreme_corners_and_half_corners():
    box = verify.Box(-np.ones(6), np.ones(6))
    x = routes.fresh_points(box, 100, np.random.default_rng(0))
    assert x.shape == (100, 6) and np.all(np.abs(x) <= 1)
    assert np.array_equal(x[-2], -np.ones(6)) and np.array_equal(x[-1], np.ones(6))
    assert np.sum(np.all(np.abs(x) == 1, axis=1)) >= 50


def test_the_claim_passes_with_a_row_per_model_writing_and_dtype():
    claim = _claim({"points": 200})
    assert claim.passed, claim.failures
    rows = {(r["model"], r["writing"], r["dtype"]) for r in claim.rows}
    for model in MODELS:
        assert {(model, w, "float64") for w in WRITINGS} <= rows
        assert {(model, w, "float32") for w in WRITINGS if w != "numpy" or model == "mlp"} <= rows
    assert claim.figures["cases"] == len(MODELS) * 2
    assert 1 <= claim.figures["bound_over_observed"] < np.inf
    assert claim.figures["float64_bound"] <= routes.RTOL["float64"]
    assert claim.figures["float32_bound"] <= routes.RTOL["float32"]
    assert claim.figures["uncertified"] == "none"


def test_the_claim_fails_when_a_model_is_refused_in_every_writing():
    """Seed 2 of the Conv1d CNN is refused in float32 (bound 17 times the scale, so at least 17 times f_max, far
    above rtol = 3e-2 of f_max): alike in every
    writing, so each case passes, but the claim shows no float32 certificate for that model and fails."""
    claim = _claim({"models": ("cnn1d",), "points": 64}, seeds=(2,))
    assert claim.figures["passed"] == claim.figures["cases"] and claim.figures["refused"] == 3
    assert not claim.passed and claim.figures["uncertified"] == "cnn1d float32"


def test_the_claim_fails_when_one_writing_differs_by_one_ulp(monkeypatch):
    real = routes.fit_norm_layers

    def nudged(frozen, target, domain, **options):
        result = real(frozen, target, domain, **options)
        if isinstance(frozen, Steps):
            gamma = [np.nextafter(_stored([result.gamma[0]])[0], np.inf), *result.gamma[1:]]
            result = dataclasses.replace(result, gamma=gamma)
        return result

    monkeypatch.setattr(routes, "fit_norm_layers", nudged)
    claim = _claim({"models": ("cnn2d",), "points": 64})
    assert not claim.passed
    assert "steps: gamma, beta or error_bound differ" in claim.failures[0]["reason"]


def test_the_claim_fails_when_a_bound_is_below_the_modules_own_error(monkeypatch):
    """A bound certified in float64 but claimed for the float32 module (the old behaviour) is caught."""
    real = routes.fit_norm_layers

    def float64_bound(frozen, target, domain, **options):
        result = real(frozen, target, domain, **options)
        if next(frozen.parameters()).dtype != torch.float32 or not isinstance(frozen, torch.nn.Sequential):
            return result
        networks = conv_networks(*(copy.deepcopy(m).double() for m in (target, frozen)), domain)
        bound = reconstruct_convolutional(*networks, domain, rtol=1.0).certificate.bound
        certificate = dataclasses.replace(result.certificate, bound=dataclasses.replace(bound, dtype="float32"))
        return dataclasses.replace(result, certificate=certificate)

    monkeypatch.setattr(routes, "fit_norm_layers", float64_bound)
    claim = _claim({"models": ("cnn2d",), "points": 2000})
    assert not claim.passed
    assert "on fresh points exceeds the bound" in claim.failures[0]["reason"]
