"""The claim ``certificate/tightness``: it runs, its table has a row per goal of every case, a goal is
judged met or not from the measured figure, and a bound broken on purpose makes the claim fail."""

from __future__ import annotations

import dataclasses
import json

import pytest

import verify.job.tightness_cases as cases_module
from verify.job.claims.certificate_tightness import GOALS, goal_rows
from verify.job.config import Config
from verify.job.runner import run_claims

SMALL = Config(architectures=((2, 2),), seeds=(0,), points=64, properties=False, grid="custom")
QUICK = ("dense-f64", "resnet-f64", "mlp-f32", "cnn-f32", "resnet-f32")


def _claim(points: int = 256) -> object:
    config = dataclasses.replace(
        SMALL, only=("certificate/tightness",), sizes={"certificate/tightness": {"points": points}}
    )
    (claim,) = run_claims(config)
    json.dumps(claim.to_dict(), allow_nan=False)
    return claim


def test_tightness_claim_passes_with_a_row_per_goal() -> None:
    claim = _claim()
    assert claim.passed, claim.failures
    expected = [(cases_module.CASES[case]["label"], goal) for case, goal, *_ in GOALS if case in QUICK]
    assert [(row["case"], row["goal"]) for row in claim.rows] == expected
    assert claim.figures["sound"] == claim.figures["targets"] == 30 + 1 + 10 + 1 + 1
    for row in claim.rows:
        assert row["met"] in ("yes", "no")
        targets, total = map(int, row["sound"].split("/"))
        assert targets == total
    assert claim.figures["goals"] == len(claim.rows)
    assert len(claim.figures["measured"]) == claim.figures["targets"]  # the figure's points, one per target


def test_tightness_claim_fails_for_a_bound_below_the_observed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = cases_module.certified_bound
    monkeypatch.setattr(cases_module, "certified_bound", lambda result: 1e-6 * real(result))
    claim = _claim(points=64)
    assert not claim.passed
    assert claim.figures["sound"] < claim.figures["targets"]
    assert "exceeds the bound" in claim.failures[0]["reason"]


def _target(case: str, bound: float, observed: float, certified: bool = True) -> dict:
    return {
        "case": case,
        "index": 0,
        "bound": bound,
        "observed": observed,
        "max_f": 1.0,
        "f_max": None,
        "certified": certified,
        "sound": observed <= bound,
    }


@pytest.mark.parametrize(("ratio", "met"), [(10.0, "yes"), (30.0, "yes"), (31.0, "no")])
def test_a_goal_is_met_exactly_when_the_measured_figure_reaches_it(ratio: float, met: str) -> None:
    targets = [_target("dense-f64", ratio * 1e-12, 1e-12) for _ in range(3)]
    (row,) = goal_rows(targets, ["dense-f64"])
    assert row["goal"] == "median bound/observed <= 30" and row["met"] == met
    assert row["measured"] == f"{ratio:.2e}"


def test_certified_goals_count_the_librarys_verdicts() -> None:
    targets = [_target("mlp-f32", 1e-6, 1e-8, certified=i != 3) for i in range(10)]
    certified, median = goal_rows(targets, ["mlp-f32"])
    assert certified["measured"] == "9/10 certified" and certified["met"] == "no"
    assert median["met"] == "yes"  # 1e-6 of max |f| = 1
    targets[3]["certified"] = True
    assert goal_rows(targets, ["mlp-f32"])[0]["met"] == "yes"


def test_the_figure_draws_one_point_per_target_with_the_diagonal(tmp_path) -> None:
    from verify.job.claims.certificate_tightness import tightness_figure

    targets = [_target("dense-f64", 1e-9, 1e-12), _target("mlp-f32", 1e-4, 1e-6), _target("cnn-f32", 1.0, 0.0)]
    path = tightness_figure(targets, tmp_path / "tightness.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
