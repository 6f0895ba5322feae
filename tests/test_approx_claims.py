"""The ``approx/digits`` claim: it passes on the real construction, and fails when a tuned module leaves its
bound or the paper width stops being exact (so it is not a check that cannot fail)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

import verify.job.claims.approx_digits as digits_module
from verify.job.config import Config
from verify.job.runner import run_claims
from verify.nn.modules import norm_layers

SMALL = Config(architectures=((2, 2),), seeds=(0,), points=64, properties=False, grid="custom")
SIZES = {"approx/digits": {"targets": ((8, "lstsq", (1,)),), "fractions": (0.2, 1.0)}}


def _claim() -> object:
    (claim,) = run_claims(dataclasses.replace(SMALL, only=("approx/digits",), sizes=SIZES))
    json.dumps(claim.to_dict(), allow_nan=False)
    return claim


def test_digits_split_is_stratified_and_scaled_to_the_certified_box() -> None:
    x_train, x_test, y_train, y_test = digits_module.digits_data()
    assert x_train.shape == (1347, 64) and x_test.shape == (450, 64)
    assert x_train.min() >= 0 and max(x_train.max(), x_test.max()) <= 1  # inside DOMAIN: the bound covers them
    totals = np.bincount(y_train) + np.bincount(y_test)  # stratified: each digit's test share is a quarter of it
    assert np.all(np.abs(np.bincount(y_test, minlength=10) - 0.25 * totals) <= 1)


def test_digits_claim_passes_within_the_bound_and_exact_at_the_paper_width() -> None:
    claim = _claim()
    assert claim.passed, claim.failures
    below, paper = claim.rows
    assert claim.figures["sound"] == claim.figures["cases"] == 2
    assert below["target_accuracy"] > 0.9  # the target learned the digits (0.93 measured for 8 hidden units)
    for row in claim.rows:
        assert row["observed"] <= row["bound"] and row["observed_box"] <= row["bound"]
        assert 0 <= row["trained_box_1x"] <= 1 and 0 <= row["trained_images_1x"] <= 1
    assert not below["exact"] and below["approximation_error"] > 0
    assert paper["exact"] and paper["accuracy"] == paper["target_accuracy"] and paper["agreement"] == 1.0
    assert paper["odd_widths"] == [8 * 64, 10 * 8]


def test_digits_claim_fails_when_the_tuned_module_leaves_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    fit = digits_module.fit_norm_layers

    def shifted(frozen, target, domain, **options):
        result = fit(frozen, target, domain, **options)
        with torch.no_grad():  # the output layer's shift moved by twice the bound: no longer what was certified
            norm_layers(frozen)[-1].bias.add_(2 * result.certificate.error_bound + 1e-6)
        return result

    monkeypatch.setattr(digits_module, "fit_norm_layers", shifted)
    claim = _claim()
    assert not claim.passed
    assert claim.figures["sound"] == 0
    assert "observed" in claim.failures[0]["reason"]


def test_digits_claim_fails_when_the_paper_width_is_not_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    case = digits_module.digits_case

    def inexact(*arguments):
        row = case(*arguments)
        return row | {"exact": False} if row["fraction"] >= 1 else row

    monkeypatch.setattr(digits_module, "digits_case", inexact)
    claim = _claim()
    assert not claim.passed and claim.figures["exact_at_paper"] == 0
    assert "exact=False" in claim.failures[0]["reason"]
