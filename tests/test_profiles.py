"""The Hypothesis profiles of `properties` work in a user's own test suite (not only through this repo's conftest)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CODE = "import properties; from hypothesis import settings; print(settings.default.max_examples)"


def _max_examples(profile: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "VERIFY_HYPOTHESIS_PROFILE"}
    if profile is not None:
        env["VERIFY_HYPOTHESIS_PROFILE"] = profile
    # Run outside the repository root so that its conftest.py plays no part, as in a user's suite.
    return subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, cwd=os.sep)


@pytest.mark.parametrize(
    ("profile", "examples"), [("thorough", "1000"), ("budget", "100"), ("fast", "50"), (None, "100")]
)
def test_importing_properties_loads_the_named_profile(profile: str | None, examples: str) -> None:
    # None: unset leaves the user's own settings alone (Hypothesis's default, 100 examples).
    run = _max_examples(profile)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == examples


def test_an_unknown_profile_is_refused_by_name() -> None:
    run = _max_examples("thourough")
    assert run.returncode != 0
    assert "VERIFY_HYPOTHESIS_PROFILE must be one of ('fast', 'budget', 'thorough'), got 'thourough'" in run.stderr
