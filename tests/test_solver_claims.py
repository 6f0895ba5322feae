"""The verification job's solver claims: ``certificate/exact`` and ``solvers/speed``."""

from __future__ import annotations

import json
import math

import pytest

import verify
from verify.job.claims import certificate_exact as _certificate
from verify.job.claims.certificate_exact import exact_case
from verify.job.claims.solvers_speed import speed_verdict
from verify.job.config import Config
from verify.job.runner import run_claim


class _Serial:
    def map(self, f, cases):
        return [f(*c) for c in cases]


TINY_TARGETS = {"certificate/exact": {"targets": ((2, 2), (2, 3, 2))}}


def _config(sizes: dict | None = None) -> Config:
    return Config(((2, 2),), seeds=(0,), properties=False, grid="custom", sizes=sizes or {})


def test_exact_claim_passes_on_tiny_cases():
    claim = run_claim(_config(TINY_TARGETS), "certificate/exact", _Serial())
    assert claim.status == "passed", claim.failures
    assert claim.figures["cases"] == claim.figures["passed"] == claim.figures["controls_detected"] == 2
    assert claim.figures["max_denominator_bits"] > 0
    assert all(r["residual_is_zero"] and r["agree"] and r["fresh_check_holds"] for r in claim.rows)
    assert claim.command.endswith("--only certificate/exact")
    assert claim.figures["modes"] == ["paper"] and "Paper mode only" in claim.statement
    json.dumps(claim.to_dict(), allow_nan=False)


def test_exact_control_bites(monkeypatch):
    real = _certificate.exact_check

    def always_holds(*args):
        check = real(*args)
        return type(check)(True, check.min_margin, True, check.points, True, check.blocks)

    monkeypatch.setattr(_certificate, "exact_check", always_holds)
    claim = run_claim(_config(TINY_TARGETS), "certificate/exact", _Serial())
    assert claim.status == "failed"
    assert claim.figures["controls_detected"] == 0
    assert len(claim.failures) == 2
    assert "control not detected" in claim.failures[0]["reason"]
    assert claim.failures[0]["reproduce"].startswith(
        'python -c "from verify.job.claims.certificate_exact import exact_case;'
    )
    json.dumps(claim.to_dict(), allow_nan=False)


def test_exact_method_is_paper_mode_only():
    # The claim checks paper mode only and says so; this keeps that statement true.
    target = verify.TargetNetwork.random([2, 2], seed=0)
    frozen = verify.FrozenNetwork.for_target(target, width="minimal", seed=1)
    with pytest.raises(ValueError, match="paper-mode equation"):
        verify.reconstruct(target, frozen, verify.Ball(1.0), mode="minimal", method="exact")


def test_exact_case_records_an_error_instead_of_raising():
    case = exact_case((0, 2), 0)
    assert case["passed"] is False and "Error" in case["reason"]


def test_speed_claim_rows():
    claim = run_claim(_config({"solvers/speed": {"d": 8}}), "solvers/speed", _Serial())
    assert [r["method"] for r in claim.rows] == ["lstsq", "iterative", "direct"]
    for row in claim.rows:
        assert row["d"] == 8
        assert all(math.isfinite(row[k]) for k in ("seconds", "ratio_vs_lstsq", "relative_error", "residual"))
        assert row["relative_error"] <= 1e-10
    assert claim.rows[0]["relative_error"] == 0.0 and claim.rows[0]["ratio_vs_lstsq"] == 1.0
    assert claim.figures["d"] == 8
    json.dumps(claim.to_dict(), allow_nan=False)


def _rows(iterative_ratio: float = 14.0, error: float = 1e-14) -> list[dict]:
    return [
        {"method": "lstsq", "d": 32, "seconds": 1.4, "ratio_vs_lstsq": 1.0, "relative_error": 0.0},
        {"method": "iterative", "d": 32, "seconds": 0.1, "ratio_vs_lstsq": iterative_ratio, "relative_error": error},
        {"method": "direct", "d": 32, "seconds": 0.2, "ratio_vs_lstsq": 3.0, "relative_error": 1e-14},
    ]


def test_speed_verdict():
    assert speed_verdict(_rows()) == (True, [])
    passed, reasons = speed_verdict(_rows(iterative_ratio=2.0))
    assert not passed and "iterative" in reasons[0]
    passed, reasons = speed_verdict(_rows(error=1e-6))
    assert not passed and "relative error" in reasons[0]
    assert not speed_verdict(_rows(error=math.nan))[0]
    assert not speed_verdict(_rows()[:2])[0]


def test_unknown_name():
    solver_claims = [n for n in _config().claim_names() if n.startswith(("certificate/", "solvers/"))]
    assert solver_claims == [
        "certificate/exact",
        "certificate/sound",
        "certificate/routes",
        "certificate/tightness",
        "solvers/speed",
    ]
    with pytest.raises(ValueError, match="claim name"):
        run_claim(_config(), "solvers/nope", _Serial())
