"""The sparse claims of the verification job (`verify.job.sparse_claims`), on reduced sizes."""

from __future__ import annotations

import dataclasses

import pytest

from verify.core.feasibility import BlockFeasibility
from verify.job import sparse_claims as _sparse_claims
from verify.job.report import Config, run_claims

TINY_SIZES = {"rank_cases": 40, "decision_cases": 24, "ds": (4, 8, 16), "seeds_small": 12, "seeds_large": 12}
TINY_SIZES |= {"map_d": 4, "map_seeds": 12}
CONFIG = Config(architectures=((2, 2),), seeds=(0,), properties=False, only=("sparse/*",))


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(_sparse_claims.SIZES, "quick", TINY_SIZES)


def test_sparse_claims_pass_and_report_figures(tiny: None) -> None:
    claims = {c.name: c for c in run_claims(CONFIG)}
    assert list(claims) == list(_sparse_claims.SPARSE_CLAIMS)
    assert all(c.passed for c in claims.values()), {n: (c.figures, c.failures) for n, c in claims.items()}
    assert claims["sparse/rank"].figures["agree"] == 40
    decision = claims["sparse/decision"].figures
    for mode in ("paper", "minimal"):
        assert decision[mode]["agree"] == decision[mode]["cases"] == 24
    rows = claims["sparse/phase"].rows
    assert [(r["factor"], r["d"]) for r in rows] == [(f, d) for f in (1.0, 2.0, 4.0) for d in (4, 8, 16)]
    for r in rows:
        # Bisection brackets the threshold: the nested masks make the rate monotone in p.
        assert r["rate_at_0.8p"] < 0.5 <= r["rate_at_1.25p"]
        assert r["nonzeros_multiple"] == pytest.approx(r["p_star"] * 2 * r["factor"] * r["d"])


def test_rank_claim_fails_when_matching_is_wrong(tiny: None, monkeypatch: pytest.MonkeyPatch) -> None:
    real = _sparse_claims.block_feasibility

    def off_by_one(*args: object, **kwargs: object) -> BlockFeasibility:
        decision = real(*args, **kwargs)
        return dataclasses.replace(decision, rank=decision.rank + 1)

    monkeypatch.setattr(_sparse_claims, "block_feasibility", off_by_one)
    (claim,) = run_claims(dataclasses.replace(CONFIG, only=("sparse/rank",)))
    assert not claim.passed and claim.failures and "matching" in claim.failures[0]["reason"]


def test_decision_claim_fails_when_feasibility_lies(tiny: None, monkeypatch: pytest.MonkeyPatch) -> None:
    real = _sparse_claims.verify.feasibility

    def always_ok(*args: object, **kwargs: object):
        report = real(*args, **kwargs)
        blocks = tuple(dataclasses.replace(b, ok=True) for b in report.blocks)
        return dataclasses.replace(report, blocks=blocks)

    monkeypatch.setattr(_sparse_claims.verify, "feasibility", always_ok)
    (claim,) = run_claims(dataclasses.replace(CONFIG, only=("sparse/decision",)))
    assert not claim.passed and claim.failures
