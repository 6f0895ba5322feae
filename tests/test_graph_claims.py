"""The ``graph/*`` claims pass on the real construction and fail when it is broken on purpose."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from torch import nn

import verify.job.claims.graph_classes as classes_module
from verify.job.config import Config
from verify.job.runner import run_claims

SMALL = Config(architectures=((2, 2),), seeds=(0,), points=64, properties=False, grid="custom")


def _one(name: str, sizes: dict) -> object:
    (claim,) = run_claims(dataclasses.replace(SMALL, only=(name,), sizes=sizes))
    json.dumps(claim.to_dict(), allow_nan=False)
    return claim


def test_graph_classes_claim_passes_with_figures_by_model() -> None:
    claim = _one("graph/classes", {"graph/classes": {"models": ("functional-relu", "residual")}})
    assert claim.passed, claim.failures
    assert [row["model"] for row in claim.rows] == ["functional-relu", "residual"]
    assert [row["depth"] for row in claim.rows] == [4, 6]
    assert 0 < claim.figures["error_over_bound"] <= 1


def test_graph_classes_claim_fails_when_a_tuned_scale_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    real = classes_module.fit_graph

    def perturbed(frozen: nn.Module, target: nn.Module, domain: object, **options: object) -> object:
        result = real(frozen, target, domain, **options)
        bn = next(m for m in frozen.modules() if isinstance(m, nn.BatchNorm1d))
        with torch.no_grad():
            bn.weight.mul_(1 + 1e-6)  # far above the derived bound (about 1e-11 of the scale)
        return result

    monkeypatch.setattr(classes_module, "fit_graph", perturbed)
    claim = _one("graph/classes", {"graph/classes": {"models": ("functional-relu",)}})
    assert not claim.passed
    assert "on fresh points, bound" in claim.failures[0]["reason"]


def test_graph_resnet_claim_passes_on_identity_and_projection_shortcuts() -> None:
    claim = _one("graph/resnet", {"graph/resnet": {"models": ("resnet-2x1-c4-8",)}})
    assert claim.passed, claim.failures
    (row,) = claim.rows
    assert row["depth"] == 6  # stem, block 1 (2), block 2 (2, its projection beside the first), head
    assert row["max_shift_ratio"] > 1 and 0 < row["error_over_bound"] <= 1
