"""The result record of the verification job: one checked `Claim`, and how its numbers are written.

Every claim module of `verify.job.claims` returns a `Claim`; the renderers (console, markdown,
JSON) and the report writer read nothing else. `sci`, `worst`, `by_depth` and `first_failures` are
the small conventions the claims share when they turn cases into figures and figures into text.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from verify.core.numerics import json_ready

__all__ = ["MAX_FAILURES", "Claim", "by_depth", "first_failures", "json_ready", "python_command", "sci", "worst"]

MAX_FAILURES = 20
"""Failing cases kept per claim (all are counted)."""

_VERDICTS = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}


@dataclass
class Claim:
    """One checked claim: its verdict, figures and the command that reproduces it.

    Attributes
    ----------
    name : str
        The claim's name, e.g. ``exact/<mode>/<domain>``, ``tight/<mode>`` or ``properties``.
    statement : str
        What is claimed, in one sentence.
    status : str
        ``"passed"``, ``"failed"`` or ``"skipped"`` (could not be checked: not a pass).
    figures : dict
        Aggregate figures (counts, worst errors, times), JSON-ready.
    command : str
        Shell command that reruns the claim.
    rows : list of dict
        Per-depth (or per-case) breakdown for the tables.
    failures : list of dict
        Failing cases, each with a reason and usually a ``reproduce`` command (at most `MAX_FAILURES`).
    seconds : float
        Wall time of the claim.
    """

    name: str
    statement: str
    status: str
    figures: dict[str, Any]
    command: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @classmethod
    def checked(
        cls,
        name: str,
        statement: str,
        passed: bool,
        figures: dict[str, Any],
        command: str,
        *,
        started: float,
        rows: list[dict[str, Any]] | None = None,
        failures: list[dict[str, Any]] | None = None,
    ) -> Claim:
        """A claim that ran: status ``"passed"`` or ``"failed"``, wall time since ``started`` (`time.perf_counter`)."""
        return cls(
            name=name,
            statement=statement,
            status="passed" if passed else "failed",
            figures=figures,
            command=command,
            rows=list(rows or []),
            failures=list(failures or []),
            seconds=time.perf_counter() - started,
        )

    @property
    def passed(self) -> bool:
        """True only for status ``"passed"``."""
        return self.status == "passed"

    @property
    def verdict(self) -> str:
        """``PASS``, ``FAIL`` or ``SKIP``: the status as the tables show it."""
        return _VERDICTS[self.status]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (non-finite floats become the strings ``"inf"``, ``"nan"``)."""
        return json_ready(
            {
                "name": self.name,
                "passed": self.passed,
                "status": self.status,
                "statement": self.statement,
                "command": self.command,
                "seconds": self.seconds,
                "figures": self.figures,
                "rows": self.rows,
                "failures": self.failures,
            }
        )


def sci(value: Any, digits: int = 2) -> str:
    """A figure as the tables write it: floats in scientific notation (NaN as ``–``), anything else as ``str``."""
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.{digits}e}"
    return str(value)


def worst(cases: Sequence[dict[str, Any]], key: str, pick: Callable[..., float] = max) -> float:
    """``pick`` (default `max`) of ``case[key]`` over the cases that have it; NaN when none has."""
    values = [c[key] for c in cases if key in c]
    return float(pick(values)) if values else math.nan


def by_depth(
    cases: Sequence[dict[str, Any]], figures: Callable[[list[dict[str, Any]]], dict[str, Any]]
) -> list[dict[str, Any]]:
    """One row per target depth ``L = len(case["widths"]) - 1``, in order: ``{"depth": L, **figures(its cases)}``."""
    depths = sorted({len(c["widths"]) - 1 for c in cases})
    return [{"depth": depth, **figures([c for c in cases if len(c["widths"]) - 1 == depth])} for depth in depths]


def first_failures(
    cases: Iterable[Any],
    describe: Callable[[Any], dict[str, Any]],
    failing: Callable[[Any], bool] = lambda case: not case["passed"],
) -> list[dict[str, Any]]:
    """``describe(case)`` for the first `MAX_FAILURES` ``failing`` cases (by default, those whose ``passed`` is false).

    A claim counts all its failing cases in its figures; its failures list keeps these.
    """
    return [describe(case) for case in itertools.islice((c for c in cases if failing(c)), MAX_FAILURES)]


def python_command(*statements: str) -> str:
    """``python -c "s1; s2; …"``: a one-line reproducer of a failing case."""
    return f'python -c "{"; ".join(statements)}"'
