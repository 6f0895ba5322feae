"""Claim ``properties``: the Hypothesis property suite (``properties/``) passes under the grid's profile.

pytest runs on the ``properties`` package of a source checkout, in a subprocess, with
``VERIFY_HYPOTHESIS_PROFILE`` set to the grid's profile (unless already set): ``budget`` (100
examples per property, the suite's files shared by two pytest processes on a local pool of two
workers or more) for the default quick grid, so that ``python -m verify`` finishes within
minutes, and ``thorough`` (1000 examples per property) with ``--full``. The claim records the profile
and how many examples Hypothesis ran (from ``--hypothesis-show-statistics``). Without a source
checkout or pytest the claim is recorded as skipped, which is not a pass. Not a numeric claim: its
time is left out of the job's numeric time.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import verify
from verify.job.claim import Claim
from verify.job.config import Config
from verify.job.progress import Sweep
from verify.job.registry import Bullets, Code, Paragraph, Section, register, summary

__all__ = ["run_properties"]

_STATEMENT = "the Hypothesis property suite (properties/) passes under the grid's profile (budget, or thorough)"
_NAME = "properties"
_PROFILES = {"full": "thorough"}
"""The Hypothesis profile of each grid; every other grid (quick, custom) runs ``budget``."""


def profile_for(config: Config) -> str:
    """The Hypothesis profile the job runs the suite under: ``thorough`` for the full grid, else ``budget``."""
    return _PROFILES.get(config.grid, "budget")


def _properties_dir() -> Path | None:
    """The ``properties`` package next to the installed ``verify`` (a source checkout), or None."""
    candidate = Path(verify.__file__).resolve().parent.parent / "properties"
    return candidate if (candidate / "__init__.py").is_file() else None


def run_properties(timeout: float | None = None, profile: str = "thorough", shards: int = 1) -> Claim:
    """Run ``pytest properties -q -p no:cacheprovider`` in a subprocess under a Hypothesis profile.

    ``VERIFY_HYPOTHESIS_PROFILE`` is set to ``profile`` unless already set (then that one runs, and
    the claim records it). The claim passes iff pytest exits 0 with at least one passed test and no
    failure or error; it is ``"skipped"`` (which is not a pass) when there is no source checkout next
    to ``verify`` or pytest is not importable. Its figures hold the profile, pytest's counts and
    Hypothesis's: ``examples`` (passing examples summed over every property), ``properties_run``
    (properties that reported statistics) and ``max_examples`` (the profile's setting, as Hypothesis
    reported it).

    ``shards`` pytest processes run side by side, each on a group of the suite's test files of about equal
    time (`_shards`); their counts are summed, and the claim passes iff every one passes.
    """
    directory = _properties_dir()
    profile = os.environ.get("VERIFY_HYPOTHESIS_PROFILE", profile)
    command = f"VERIFY_HYPOTHESIS_PROFILE={profile} python -m pytest properties -q -p no:cacheprovider"
    reason = None
    if directory is None:
        reason = f"no properties/ package next to {Path(verify.__file__).resolve().parent} (not a source checkout)"
    elif importlib.util.find_spec("pytest") is None:
        reason = "pytest is not importable (install the 'test' extra: pip install -e '.[test]')"
    if reason is not None:
        return Claim(_NAME, _STATEMENT, "skipped", {"reason": reason, "profile": profile}, command)
    start = time.perf_counter()
    env = dict(os.environ)
    env["VERIFY_HYPOTHESIS_PROFILE"] = profile
    flags = ["-q", "-p", "no:cacheprovider", *_statistics_flag()]
    groups = _shards(directory, shards)
    runs = [
        subprocess.Popen(  # one pytest per shard, side by side: the suite's files balanced by time
            [sys.executable, "-m", "pytest", *group, *flags],
            cwd=directory.parent,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for group in groups
    ]
    try:
        outputs = [run.communicate(timeout=_remaining(timeout, start))[0] for run in runs]
    except subprocess.TimeoutExpired:
        for run in runs:
            run.kill()
            run.communicate()
        figures = {"profile": profile, "reason": f"pytest did not finish within {timeout} s"}
        return Claim.checked(_NAME, _STATEMENT, False, figures, command, started=start)
    code = next((run.returncode for run in runs if run.returncode != 0), 0)  # the first failing shard's
    output = "\n".join(outputs).strip().splitlines()
    counts = _summed(_pytest_counts(one.strip().splitlines()) for one in outputs)
    failing = [line.split(" ", 1)[1] for line in output if line.startswith(("FAILED ", "ERROR "))]
    figures: dict[str, Any] = {"profile": profile, "exit_code": code, "shards": len(groups), **counts}
    figures |= _hypothesis_counts(output)
    figures |= {"failing_tests": failing, "tail": _without_statistics(output)[-15:]}
    passed = code == 0 and counts["passed"] > 0 and counts["failed"] == counts["errors"] == 0
    if not passed:
        figures["reason"] = _pytest_reason(code, counts)
    return Claim.checked(_NAME, _STATEMENT, passed, figures, command, started=start)


_SECONDS = {
    "test_soundness.py": 44,
    "test_graphs.py": 41,
    "test_approximation.py": 35,
    "test_certificate.py": 25,
    "test_pair_rounding.py": 25,
    "test_exactness.py": 18,
    "test_inputs.py": 15,
    "test_solver_invariance.py": 8,
    "test_symmetry.py": 8,
    "test_infeasible.py": 8,
    "test_tree_rounding.py": 7,
    "test_graph_ranges.py": 7,
}
"""Seconds each of the suite's heaviest files took under the ``budget`` profile (pytest ``--durations``, two
shards side by side on two cores, 2026-12-03): only the shards' balance depends on them, never a verdict. A file
not listed weighs `_LIGHT`."""
_LIGHT = 3


def _shards(directory: Path, shards: int) -> list[list[str]]:
    """The suite's test files (relative to the checkout) in at most ``shards`` groups of about equal time: each
    file, heaviest first (`_SECONDS`), goes to the group with the least time so far (longest processing time
    first); one group, ``["properties"]``, for ``shards <= 1``. Every file is in exactly one group."""
    files = sorted(path.relative_to(directory.parent).as_posix() for path in directory.glob("test_*.py"))
    if shards <= 1 or len(files) <= 1:
        return [["properties"]]
    groups: list[list[str]] = [[] for _ in range(min(shards, len(files)))]
    load = [0.0] * len(groups)
    for file in sorted(files, key=lambda f: -_SECONDS.get(Path(f).name, _LIGHT)):  # stable: ties keep name order
        k = load.index(min(load))
        groups[k].append(file)
        load[k] += _SECONDS.get(Path(file).name, _LIGHT)
    return [sorted(group) for group in groups]


def _remaining(timeout: float | None, start: float) -> float | None:
    """Seconds left of ``timeout`` since ``start`` (None: no limit)."""
    return None if timeout is None else max(0.0, timeout - (time.perf_counter() - start))


def _summed(counts: Any) -> dict[str, int]:
    """pytest's counts of every shard, added."""
    total: dict[str, int] = {}
    for one in counts:
        for key, value in one.items():
            total[key] = total.get(key, 0) + value
    return total


_STATISTICS = "Hypothesis Statistics"
"""The header of the block ``--hypothesis-show-statistics`` prints."""


def _without_statistics(lines: Sequence[str]) -> list[str]:
    """``lines`` without Hypothesis's statistics block (its header, ``path::test:`` lines and indented ones)."""
    kept, inside = [], False
    for line in lines:
        if _STATISTICS in line and line.startswith("="):
            inside = True
            continue
        if inside and (not line.strip() or line[0].isspace() or re.match(r"^\S+::.*:$", line)):
            continue
        inside = False
        kept.append(line)
    return kept


def _statistics_flag() -> list[str]:
    """``--hypothesis-show-statistics`` when Hypothesis (whose pytest plugin prints them) is importable."""
    return ["--hypothesis-show-statistics"] if importlib.util.find_spec("hypothesis") is not None else []


def _hypothesis_counts(lines: Sequence[str]) -> dict[str, Any]:
    """From ``--hypothesis-show-statistics``: passing examples summed, properties reporting, max_examples seen.

    Hypothesis prints, per property and phase, ``- N passing, M failing, and K invalid test cases``
    and, when generation stopped at the budget, ``- Stopped because settings.max_examples=N``.
    """
    examples = sum(int(n) for line in lines for n in re.findall(r"^\s*- (\d+) passing, \d+ failing", line))
    runs = sum(1 for line in lines if re.match(r"^\S+::.*:$", line))
    limits = sorted({int(n) for line in lines for n in re.findall(r"settings\.max_examples=(\d+)", line)})
    return {"examples": examples, "properties_run": runs, "max_examples": limits}


def _pytest_counts(lines: Sequence[str]) -> dict[str, int]:
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0, "xfailed": 0, "xpassed": 0}
    summary = next((line for line in reversed(lines) if re.search(r"\d+ (passed|failed|error|skipped)", line)), "")
    for number, word in re.findall(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)", summary):
        counts["errors" if word.startswith("error") else word] += int(number)
    return counts


def _pytest_reason(code: int, counts: dict[str, int]) -> str:
    if code == 5 or counts["passed"] == 0:
        return f"pytest collected no passing test (exit code {code}): an empty suite proves nothing"
    return f"pytest exit code {code}: {counts['failed']} failed, {counts['errors']} errors"


def _summary(claim: Claim) -> str:
    f = claim.figures
    text = f"{f.get('passed', 0)} passed, {f.get('failed', 0)} failed, {f.get('errors', 0)} errors"
    text += f" (profile {f.get('profile')}"
    if f.get("examples"):
        limits = "/".join(str(n) for n in f.get("max_examples", [])) or "?"
        text += f": {f['examples']} examples over {f.get('properties_run', 0)} properties, max_examples={limits}"
    text += ")"
    return text + (f"; {f['reason']}" if "reason" in f else "")


def _section(claims: Sequence[Claim], config: Config) -> list[Any]:
    blocks: list[Any] = []
    for claim in claims:
        blocks.append(Paragraph(f"`{claim.command}` (from the project root): {summary(claim)}"))
        blocks.append(Bullets([f"failing: `{test}`" for test in claim.figures.get("failing_tests", [])]))
        if claim.figures.get("tail"):
            blocks.append(Code(claim.figures["tail"]))
    return blocks


_HELP = """\
pytest on the properties/ package of a source checkout, in a subprocess,
under the Hypothesis profile 'budget' (100 examples per property; --full:
'thorough', 1000), unless VERIFY_HYPOTHESIS_PROFILE is set. The report gives
the profile and the examples run. Without a source checkout or pytest it is
recorded as skipped, which is not a pass."""


@register(
    _NAME,
    order=90,
    statement=_HELP,
    summary=_summary,
    enabled=lambda config: config.properties,
    section=Section("Property suite", 90, _section),
    numeric=False,
)
def run(config: Config, name: str, sweep: Sweep) -> Claim:
    """Check ``properties`` (see `run_properties`) under `profile_for` ``config``, in its own subprocess."""
    workers = getattr(sweep.runner, "workers", 1) if getattr(sweep.runner, "scheduler", None) is None else 1
    return run_properties(profile=profile_for(config), shards=max(1, min(int(workers or 1), 2)))
