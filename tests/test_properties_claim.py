"""The ``properties`` claim: the Hypothesis profile the job runs, the examples it reports (console, JSON, report)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from verify.job import registry
from verify.job.claims import properties as _properties
from verify.job.config import Config
from verify.job.report import write_report

EXAMPLES = 7
"""max_examples of the stand-in's profiles: small, and distinct from every real profile's."""

_PACKAGE = f"""
import os
from hypothesis import settings
for name in ("budget", "thorough"):
    settings.register_profile(name, max_examples={EXAMPLES}, deadline=None)
settings.load_profile(os.environ["VERIFY_HYPOTHESIS_PROFILE"])
"""
_TESTS = """
from hypothesis import given, strategies as st

@given(st.integers())
def test_one(n):
    assert isinstance(n, int)

@given(st.text())
def test_two(s):
    assert isinstance(s, str)
"""


@pytest.mark.parametrize(("grid", "profile"), [("quick", "budget"), ("full", "thorough"), ("custom", "budget")])
def test_each_grid_runs_its_profile(grid: str, profile: str) -> None:
    config = Config(architectures=((2, 2),), grid=grid)
    assert _properties.profile_for(config) == profile


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    package = tmp_path / "properties"
    package.mkdir()
    (package / "__init__.py").write_text(_PACKAGE)
    (package / "test_stand_in.py").write_text(_TESTS)
    monkeypatch.setattr(_properties, "_properties_dir", lambda: package)
    monkeypatch.delenv("VERIFY_HYPOTHESIS_PROFILE", raising=False)
    return tmp_path


def test_the_claim_reports_the_profile_and_the_examples_run(stand_in: Path) -> None:
    claim = _properties.run_properties(timeout=120, profile="budget")
    assert claim.passed, claim.figures
    figures = claim.figures
    assert figures["profile"] == "budget" and figures["passed"] == 2
    # Two properties, each stopped at the profile's budget of EXAMPLES passing examples.
    assert (figures["properties_run"], figures["examples"], figures["max_examples"]) == (2, 2 * EXAMPLES, [EXAMPLES])
    assert "Hypothesis Statistics" not in " ".join(figures["tail"])  # the tail keeps pytest's own summary
    line = registry.summary(claim)
    assert f"profile budget: {2 * EXAMPLES} examples over 2 properties, max_examples={EXAMPLES}" in line

    config = Config(architectures=((2, 2),), grid="quick")
    markdown, report = write_report([claim], stand_in / "report", config)
    assert f"{2 * EXAMPLES} examples over 2 properties" in markdown.read_text(encoding="utf-8")
    (entry,) = json.loads(report.read_text(encoding="utf-8"))["claims"]
    assert entry["figures"]["profile"] == "budget" and entry["figures"]["examples"] == 2 * EXAMPLES


def test_the_environment_variable_overrides_the_grid_profile(stand_in: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERIFY_HYPOTHESIS_PROFILE", "thorough")
    claim = _properties.run_properties(timeout=120, profile="budget")
    assert claim.passed and claim.figures["profile"] == "thorough"
    assert claim.command.startswith("VERIFY_HYPOTHESIS_PROFILE=thorough ")


def test_statistics_parsing_counts_every_phase_and_property() -> None:
    lines = [
        "=========== Hypothesis Statistics ===========",
        "properties/test_a.py::test_x[paper]:",
        "",
        "  - during reuse phase (0.01 seconds):",
        "    - 3 passing, 0 failing, and 0 invalid test cases",
        "  - during generate phase (0.30 seconds):",
        "    - 197 passing, 0 failing, and 7 invalid test cases",
        "  - Stopped because settings.max_examples=200",
        "",
        "properties/test_b.py::test_y:",
        "    - 12 passing, 0 failing, and 0 invalid test cases",
        "  - Stopped because nothing left to do",
        "2 passed in 1.00s",
    ]
    counts = _properties._hypothesis_counts(lines)
    assert counts == {"examples": 212, "properties_run": 2, "max_examples": [200]}
    assert _properties._without_statistics(lines) == ["2 passed in 1.00s"]


def test_shards_add_their_counts_and_any_failing_shard_fails_the_claim(stand_in: Path) -> None:
    """Two pytest processes, each on every other file: their counts are summed, and one failing test in
    either shard fails the whole claim, naming the test."""
    package = stand_in / "properties"
    (package / "test_stand_in_b.py").write_text(
        _TESTS.replace("test_one", "test_three").replace("test_two", "test_four")
    )
    claim = _properties.run_properties(timeout=120, profile="budget", shards=2)
    assert claim.passed, claim.figures
    assert claim.figures["shards"] == 2 and claim.figures["passed"] == 4
    assert claim.figures["examples"] == 4 * EXAMPLES
    (package / "test_stand_in_b.py").write_text("def test_broken():\n    assert 1 == 2\n")
    claim = _properties.run_properties(timeout=120, profile="budget", shards=2)
    assert not claim.passed
    assert (claim.figures["passed"], claim.figures["failed"]) == (2, 1)
    assert any("test_broken" in test for test in claim.figures["failing_tests"])


def test_shards_hold_every_file_once_and_balance_the_heavy_ones(tmp_path: Path) -> None:
    """The real suite's files, split in two: every file in exactly one shard, and the heaviest two files
    (by `_SECONDS`) in different shards, each shard's listed time within the heaviest file's of the other's
    (longest processing time first leaves no shard more than one file's time above another)."""
    directory = _properties._properties_dir()
    assert directory is not None
    groups = _properties._shards(directory, 2)
    files = sorted(p.relative_to(directory.parent).as_posix() for p in directory.glob("test_*.py"))
    assert sorted(f for group in groups for f in group) == files
    weight = {Path(f).name: _properties._SECONDS.get(Path(f).name, _properties._LIGHT) for f in files}
    heaviest = sorted(weight, key=weight.get, reverse=True)[:2]
    shard_of = {Path(f).name: k for k, group in enumerate(groups) for f in group}
    assert shard_of[heaviest[0]] != shard_of[heaviest[1]]
    loads = [sum(weight[Path(f).name] for f in group) for group in groups]
    assert abs(loads[0] - loads[1]) <= max(weight.values())
    # A single file, or one shard, is one group holding the whole package.
    assert _properties._shards(directory, 1) == [["properties"]]
