"""The Case 2 and Case 3 claims (docs/design.md §8): they pass on the real construction, and each fails when
what it checks is broken on purpose (so none is a check that cannot fail)."""

from __future__ import annotations

import dataclasses
import json

import pytest

import verify
import verify.job.claims.sparse_case3 as case3_module
import verify.job.claims.tradeoff as tradeoff_module
from verify.job.config import Config
from verify.job.runner import run_claims

SMALL = Config(architectures=((2, 2),), seeds=(0,), points=64, properties=False, grid="custom")
TRADEOFF = {"tradeoff": {"architectures": ((3, 3), (8, 8, 8), (4, 2, 3)), "seeds": 1, "points": 64}}


def _one(name: str, sizes: dict) -> object:
    (claim,) = run_claims(dataclasses.replace(SMALL, only=(name,), sizes=sizes))
    json.dumps(claim.to_dict(), allow_nan=False)
    return claim


@pytest.mark.parametrize("mode", verify.MODES)
def test_tradeoff_claim_passes_and_meets_the_frontier(mode: str) -> None:
    claim = _one(f"tradeoff/{mode}", TRADEOFF)
    assert claim.passed, claim.failures
    assert claim.figures["cases"] == 3 + 8 + 3  # m up to the smallest max(d_{k-1}, d_k) of each target
    frontier = claim.figures["frontier"]
    assert [r["branches"] for r in frontier] == list(range(1, 9))
    for row in frontier:
        assert row["depth"] == 2 * row["branches"] * 2
        if 8 % row["branches"] == 0:  # equal runs: width × depth meets 2d²L (paper: with equality)
            assert row["width_x_depth"] == row["odd_width"] * row["depth"]
            assert row["width_x_depth"] == row["bound"] if mode == "paper" else row["width_x_depth"] <= row["bound"]
    assert claim.figures["case1"] == {"odd_width": 64 if mode == "paper" else 57, "depth": 4, "holds": True}


def test_tradeoff_claim_fails_when_widths_are_not_the_minimum(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tradeoff_module, "_needs", lambda widths, m, mode: [[1] * m for _ in widths[1:]])
    claim = _one("tradeoff/paper", {"tradeoff": {"architectures": ((3, 3),), "seeds": 1, "points": 16}})
    assert not claim.passed
    assert "not the mode's minimum" in claim.failures[0]["reason"]


def test_tradeoff_tight_claim_passes() -> None:
    claim = _one("tradeoff/tight", {"tradeoff/tight": {"architectures": ((3, 3, 2), (2, 4)), "seeds": 1}})
    assert claim.passed, claim.failures
    assert claim.figures["refused"] == claim.figures["unsolvable"] == claim.figures["cases"] > 0


def test_tradeoff_tight_claim_fails_when_a_narrow_branch_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify, "reconstruct", lambda *args, **options: None)
    claim = _one("tradeoff/tight", {"tradeoff/tight": {"architectures": ((2, 2),), "seeds": 1}})
    assert not claim.passed
    assert "returned a result" in claim.failures[0]["reason"]


def test_clopper_pearson_upper_bound_matches_its_closed_form() -> None:
    """With zero failures the one-sided bound solves (1 − u)^m = 1 − confidence; with all failures it is 1."""
    for masks in (10, 40, 320):
        assert case3_module.clopper_pearson_upper(0, masks) == pytest.approx(1 - 0.05 ** (1 / masks), rel=1e-12)
    assert case3_module.clopper_pearson_upper(7, 7) == 1.0
    assert case3_module.clopper_pearson_upper(1, 100) > case3_module.clopper_pearson_upper(0, 100)


def test_case3_claim_passes_and_fails_when_every_mask_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = {"sparse/case3": {"ds": (4, 8), "masks_per_d": 5}}
    claim = _one("sparse/case3", sizes)
    assert claim.passed, claim.figures
    assert all(claim.figures["c_star"][str(d)] is not None for d in (4, 8))
    monkeypatch.setattr(case3_module, "case3_failures", lambda d, c, masks: masks)
    claim = _one("sparse/case3", sizes)
    assert not claim.passed
    assert claim.figures["c_star"] == {"4": None, "8": None}
