"""The verification job's width, paired and heat-map claims: they pass on the real construction, and
each fails when the property it checks is broken on purpose (so none is a check that cannot fail)."""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest

import verify
import verify.job.claims.paired as paired_module
import verify.job.claims.sparse_map as sparse_module
import verify.job.claims.threshold as width_module
from verify.job.config import Config
from verify.job.runner import run_claims

SMALL = Config(architectures=((2, 2),), seeds=(0, 1), points=64, properties=False, grid="custom")


def _one(name: str, config: Config = SMALL, sizes: dict | None = None) -> object:
    """Run claim ``name`` alone on ``config``, with ``sizes`` (family key to sizes) overriding the declared ones."""
    (claim,) = run_claims(dataclasses.replace(config, only=(name,), sizes=sizes or {}))
    json.dumps(claim.to_dict(), allow_nan=False)
    return claim


@pytest.mark.parametrize("mode", verify.MODES)
def test_threshold_claim_passes_with_a_step_at_the_threshold(mode: str) -> None:
    claim = _one(f"threshold/{mode}", sizes={"threshold": {"shapes": ((2, 2), (3, 2))}})
    assert claim.passed, claim.failures
    assert claim.figures["rate_below"] == 0.0 and claim.figures["rate_at_or_above"] == 1.0
    offsets = {r["offset"] for r in claim.rows}
    assert offsets >= {-1, 0, 1, 2, 3}
    for row in claim.rows:
        assert row["succeeded"] == (row["cases"] if row["offset"] >= 0 else 0)
        d_out, d_in = row["shape"]
        threshold = d_out * d_in if mode == "paper" else d_out * (d_in - 1) + 1
        assert row["width"] - threshold == row["offset"]


def test_threshold_claim_fails_when_a_too_narrow_width_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(width_module, "threshold_case", lambda *case: {"succeeded": True, "outcome": "certified"})
    claim = _one("threshold/paper", sizes={"threshold": {"shapes": ((2, 2),)}})
    assert not claim.passed
    assert claim.figures["rate_below"] == 1.0
    assert "expected infeasible, got certified" in claim.failures[0]["reason"]


def test_paired_claim_is_exact_far_outside_any_ball() -> None:
    claim = _one("paired/Rd", sizes={"paired/Rd": {"architectures": ((3, 2), (2, 3, 2))}})
    assert claim.passed, claim.failures
    assert claim.figures["cases"] == 2 * 2 * len(verify.MODES)
    assert [row["radius"] for row in claim.rows] == list(paired_module.RADII)
    # The control: the unpaired construction on the unit ball is far from f at radius 1e3.
    assert claim.figures["unpaired_median_relative_error_at_1e3"] > 1e-3


def test_paired_claim_fails_for_a_perturbed_solution(monkeypatch: pytest.MonkeyPatch) -> None:
    real = verify.reconstruct

    def perturbed(target, frozen, domain, mode="paper", **options):
        result = real(target, frozen, domain, mode, **options)
        if domain is not None:
            return result
        # A relative change of 1e-9 in one scale: far below what a float32 check would see, far above
        # the float64 rounding tolerance (about 1e-13 here).
        gamma = [g.copy() for g in result.gamma]
        gamma[0][0] *= 1 + 1e-9
        return dataclasses.replace(result, gamma=gamma)

    monkeypatch.setattr(paired_module.verify, "reconstruct", perturbed)
    claim = _one("paired/Rd", sizes={"paired/Rd": {"architectures": ((3, 2),)}})
    assert not claim.passed
    assert "error ratios" in claim.failures[0]["reason"]


def test_sparse_map_claim_and_its_heat_map_data() -> None:
    claim = _one("sparse/map", sizes={"sparse/map": {"seeds": 16, "d": 6}})
    assert claim.passed, claim.failures
    data = claim.figures["map"]
    assert len(data["rate"]) == len(data["factors"]) and all(len(r) == len(data["densities"]) for r in data["rate"])
    assert not any(data["rate"][0])  # c = 0.75 < 1: never full rank
    assert data["fit"]["exponent"] < 0  # wider needs sparser
    for row in data["rate"]:
        assert all(b >= a for a, b in itertools.pairwise(row))  # nested masks: monotone in p


def test_sparse_map_claim_fails_on_an_impossible_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sparse_module, "full_rank_rate", lambda d, c, p, seeds: 1.0)
    claim = _one("sparse/map", sizes={"sparse/map": {"seeds": 4, "d": 4}})
    assert not claim.passed
    assert any("c = 0.75 < 1" in f["reason"] for f in claim.failures)


def test_baseline_claim_keeps_a_log_spaced_curve_for_the_figure() -> None:
    pytest.importorskip("torch")
    claim = _one("baseline/training", sizes={"baseline/training": {"budget": 0.5}})
    curve = claim.figures["curve"]
    assert 0 < len(curve["seconds"]) <= 300
    assert np.all(np.diff(curve["seconds"]) > 0)
    assert claim.figures["construction_error"] <= 1e-10
