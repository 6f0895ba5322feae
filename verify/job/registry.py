"""The registry of the verification job's claims: what each claim is, runs, shows and draws.

A claim module of `verify.job.claims` declares itself once, with `register`::

    @register(
        "threshold/{mode}",
        axes=lambda config: {"mode": config.modes},
        order=30,
        statement="Single blocks of several shapes ...",       # for --help
        sizes={"quick": {"shapes": ...}, "full": {"shapes": ...}},
        summary=_summary,                                       # one line per claim, for the tables
        table=_table,                                           # console table (optional)
        section=Section("Success rate against width", 40, _section),   # markdown (optional)
        figures=(Figure("width", width_figure, _width_data),),           # PNGs (optional)
    )
    def run(config, name, sweep) -> Claim: ...

Everything that lists, runs or renders claims (``--list``, ``--help``, `verify.job.runner`, the
console, markdown and JSON renderers, the figures) iterates over `specs`: none of them knows a
claim by name. The content blocks `Paragraph`, `Table`, `Image`, `Bullets` and `Code` let a claim
say what its markdown section holds without writing markdown itself.
"""

from __future__ import annotations

import itertools
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from verify.job.claim import Claim

__all__ = [
    "Bullets",
    "ClaimSpec",
    "Code",
    "Figure",
    "Image",
    "Paragraph",
    "Section",
    "Table",
    "claim_names",
    "default_sizes",
    "register",
    "spec_of",
    "specs",
    "statement_and_rows",
    "summary",
    "unregister",
]

# ------------------------------------------------------------------------------------------ content blocks


@dataclass(frozen=True)
class Paragraph:
    """A paragraph of a markdown section."""

    text: str


@dataclass(frozen=True)
class Table:
    """A table of text cells: in a markdown section, or printed on the console under ``title``.

    ``labels`` is the number of leading label columns (left-aligned on the console, the rest are
    right-aligned numbers).
    """

    header: Sequence[str]
    rows: Sequence[Sequence[str]]
    title: str = ""
    labels: int = 0

    @classmethod
    def of_rows(cls, rows: Sequence[Mapping[str, Any]], columns: Mapping[str, str]) -> Table:
        """A table of ``rows`` with ``columns`` mapping a header to its row key (floats to 3 significant digits)."""

        def cell(value: Any) -> str:
            return f"{value:.3g}" if isinstance(value, float) else str(value)

        return cls(list(columns), [[cell(r.get(key, "")) for key in columns.values()] for r in rows])


@dataclass(frozen=True)
class Image:
    """A figure of the report embedded in a markdown section, if it was drawn (``key`` of a `Figure`)."""

    key: str
    caption: str


@dataclass(frozen=True)
class Bullets:
    """A bullet list of a markdown section (written with no blank line after it, as the report always had)."""

    items: Sequence[str]


@dataclass(frozen=True)
class Code:
    """A fenced block of verbatim lines in a markdown section."""

    lines: Sequence[str]


Block = Paragraph | Table | Image | Bullets | Code


def statement_and_rows(columns: Mapping[str, str]) -> Callable[[Sequence[Claim], Any], list[Block]]:
    """A section body: per claim, ``<statement>. <summary>.`` then, if it has rows, `Table.of_rows` of ``columns``."""

    def body(claims: Sequence[Claim], config: Any) -> list[Block]:
        blocks: list[Block] = []
        for claim in claims:
            blocks.append(Paragraph(f"{claim.statement}. {summary(claim)}."))
            if claim.rows:
                blocks.append(Table.of_rows(claim.rows, columns))
        return blocks

    return body


@dataclass(frozen=True)
class Section:
    """The markdown section of a family of claims.

    ``body(claims, config)`` gets the claims of the family that were run (in report order) and returns
    the section's blocks; an empty body leaves the section out. ``order`` places the section among
    the others (smaller first), independently of the order of the claims.
    """

    title: str
    order: int
    body: Callable[[Sequence[Claim], Any], Sequence[Block]]


@dataclass(frozen=True)
class Figure:
    """A PNG of the report (``figures/<key>.png``).

    ``data(claims)`` gets the claims of the family that ran and were not skipped, and returns what
    ``draw(data, path)`` draws, or ``None`` when there is nothing to draw.
    """

    key: str
    draw: Callable[[Any, Path], Path]
    data: Callable[[Sequence[Any]], Any]


# ------------------------------------------------------------------------------------------ specs


@dataclass(frozen=True)
class ClaimSpec:
    """One registered family of claims: see `register` for the fields."""

    pattern: str
    run: Callable[[Any, str, Any], Claim]
    axes: Callable[[Any], Mapping[str, Sequence[str]]]
    order: int
    statement: str
    summary: Callable[[Claim], str]
    sizes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    enabled: Callable[[Any], bool] = lambda config: True
    table: Callable[[Sequence[Claim]], Table] | None = None
    section: Section | None = None
    figures: tuple[Figure, ...] = ()
    numeric: bool = True

    @property
    def key(self) -> str:
        """Where `verify.job.config.Config` keeps this family's sizes: the pattern up to its first ``/{``."""
        return self.pattern.split("/{")[0]

    @property
    def display(self) -> str:
        """The pattern as ``--help`` writes it: ``exact/<mode>/<domain>``."""
        return re.sub(r"\{(\w+)\}", r"<\1>", self.pattern)

    def names(self, config: Any) -> list[str]:
        """The concrete claim names for ``config``: the pattern over the product of its axes, in order."""
        if not self.enabled(config):
            return []
        fields = [name for _, name, _, _ in string.Formatter().parse(self.pattern) if name]
        axes = self.axes(config)
        return [
            self.pattern.format(**dict(zip(fields, values, strict=True)))
            for values in itertools.product(*(axes[f] for f in fields))
        ]

    def matches(self, name: str) -> bool:
        """Whether ``name`` has this family's pattern (each placeholder one path segment)."""
        parts = re.split(r"\{\w+\}", self.pattern)
        return re.fullmatch("[^/]+".join(re.escape(p) for p in parts), name) is not None


_SPECS: dict[str, ClaimSpec] = {}


def register(
    pattern: str,
    *,
    order: int,
    statement: str,
    summary: Callable[[Claim], str],
    axes: Callable[[Any], Mapping[str, Sequence[str]]] = lambda config: {},
    sizes: Mapping[str, Mapping[str, Any]] | None = None,
    enabled: Callable[[Any], bool] = lambda config: True,
    table: Callable[[Sequence[Claim]], Table] | None = None,
    section: Section | None = None,
    figures: Sequence[Figure] = (),
    numeric: bool = True,
) -> Callable[[Callable[[Any, str, Any], Claim]], Callable[[Any, str, Any], Claim]]:
    """Register the decorated ``run(config, name, sweep) -> Claim`` as the family ``pattern``.

    Parameters
    ----------
    pattern : str
        The claim names, with placeholders: ``exact/{mode}/{domain}``, or a plain name such as ``paired/Rd``.
    order : int
        Position of the family among the claims (run, list and table order; smaller first).
    statement : str
        What the family claims, for ``--help`` (line breaks kept, continuation lines unindented).
    summary : callable
        ``summary(claim) -> str``: the claim's one-line figures in the tables (not used for a skipped claim
        with a reason, which reads ``skipped: <reason>``).
    axes : callable, optional
        ``axes(config)`` maps each placeholder of ``pattern`` to its values (e.g. ``config.modes``).
    sizes : dict, optional
        ``{"quick": {...}, "full": {...}}``: the family's sizes per grid (``custom`` grids use ``quick``),
        read by the claim through ``config.sizes_for(key)``; a `Config` can override any of them.
    enabled : callable, optional
        ``enabled(config)``: whether the family is part of the job at all (e.g. ``config.properties``).
    table : callable, optional
        ``table(claims) -> Table``: the family's console table, from its claims that ran.
    section : Section, optional
        The family's markdown section.
    figures : sequence of Figure, optional
        The PNGs drawn from the family's claims (listed under ``plots`` of each of them in the JSON).
    numeric : bool, optional
        False for a claim that is not a numeric check (the property suite): left out of ``numeric_time_s``.
    """

    def decorate(run: Callable[[Any, str, Any], Claim]) -> Callable[[Any, str, Any], Claim]:
        if pattern in _SPECS:
            raise ValueError(f"claim pattern {pattern!r} is already registered")
        _SPECS[pattern] = ClaimSpec(
            pattern=pattern,
            run=run,
            axes=axes,
            order=order,
            statement=statement,
            summary=summary,
            sizes=sizes or {},
            enabled=enabled,
            table=table,
            section=section,
            figures=tuple(figures),
            numeric=numeric,
        )
        return run

    return decorate


def unregister(pattern: str) -> None:
    """Remove the family ``pattern`` (for tests that register a claim of their own)."""
    del _SPECS[pattern]


def specs() -> list[ClaimSpec]:
    """Every registered family, in claim order."""
    return sorted(_SPECS.values(), key=lambda spec: spec.order)


def claim_names(config: Any) -> list[str]:
    """Every claim name of ``config``, in report order, before its ``only`` filter."""
    return [name for spec in specs() for name in spec.names(config)]


def spec_of(name: str) -> ClaimSpec | None:
    """The family of claim ``name``, or None when no registered pattern matches it."""
    return next((spec for spec in specs() if spec.matches(name)), None)


def default_sizes(key: str, grid: str) -> dict[str, Any]:
    """The sizes the family ``key`` declares for ``grid`` (``full``; anything else reads ``quick``)."""
    for spec in specs():
        if spec.key == key:
            return dict(spec.sizes.get("full" if grid == "full" else "quick", {}))
    raise ValueError(f"no claim family {key!r}; registered: {[spec.key for spec in specs()]}")


def summary(claim: Claim) -> str:
    """The one-line figures of ``claim`` in the tables: ``skipped: <reason>``, or its family's summary."""
    if claim.status == "skipped" and "reason" in claim.figures:
        return f"skipped: {claim.figures['reason']}"
    spec = spec_of(claim.name)
    if spec is None:
        raise ValueError(f"claim {claim.name!r} belongs to no registered family")
    return spec.summary(claim)
