"""The sparse claims of the verification job (`verify.job.claims.sparse_*`), on reduced sizes."""

from __future__ import annotations

import dataclasses

import pytest

from verify.core.feasibility import BlockFeasibility
from verify.job.claims import sparse_decision as _sparse_decision
from verify.job.claims import sparse_rank as _sparse_rank
from verify.job.config import Config
from verify.job.runner import run_claims

TINY_SIZES = {
    "sparse/rank": {"cases": 40},
    "sparse/decision": {"cases": 24},
    "sparse/phase": {"ds": (4, 8, 16), "seeds_small": 12, "seeds_large": 12},
    "sparse/map": {"d": 4, "seeds": 12},
}
CONFIG = Config(architectures=((2, 2),), seeds=(0,), properties=False, only=tuple(TINY_SIZES), sizes=TINY_SIZES)
"""The four Case-1 sparse claims (``sparse/case3`` has its own tests, tests/test_case2_claims.py)."""


def test_sparse_claims_pass_and_report_figures() -> None:
    claims = {c.name: c for c in run_claims(CONFIG)}
    assert list(claims) == ["sparse/rank", "sparse/decision", "sparse/phase", "sparse/map"]
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


def test_rank_claim_fails_when_matching_is_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    real = _sparse_rank.block_feasibility

    def off_by_one(*args: object, **kwargs: object) -> BlockFeasibility:
        decision = real(*args, **kwargs)
        return dataclasses.replace(decision, rank=decision.rank + 1)

    monkeypatch.setattr(_sparse_rank, "block_feasibility", off_by_one)
    (claim,) = run_claims(dataclasses.replace(CONFIG, only=("sparse/rank",)))
    assert not claim.passed and claim.failures and "matching" in claim.failures[0]["reason"]


def test_decision_claim_fails_when_feasibility_lies(monkeypatch: pytest.MonkeyPatch) -> None:
    real = _sparse_decision.verify.feasibility

    def always_ok(*args: object, **kwargs: object):
        report = real(*args, **kwargs)
        blocks = tuple(dataclasses.replace(b, ok=True) for b in report.blocks)
        return dataclasses.replace(report, blocks=blocks)

    monkeypatch.setattr(_sparse_decision.verify, "feasibility", always_ok)
    (claim,) = run_claims(dataclasses.replace(CONFIG, only=("sparse/decision",)))
    assert not claim.passed and claim.failures
