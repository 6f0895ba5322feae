"""The registry of the verification job's claims: what each claim is, runs, shows and draws.

A claim module of `verify.job.claims` declares itself once, with `register`::

    @register(
        "threshold/{mode}",                                     # {mode}: each of config.modes
        order=30,
        statement="Single blocks of several shapes ...",       # for --help
        sizes={"quick": {"shapes": ...}, "full": {"shapes": ...}},
        summary="success rate {rate_below:.2f} below it",       # one line per claim, for the tables
        table=_table,                                           # console table (optional)
        section=Section("Success rate against width", 40, intro=("...",)),  # markdown (optional), with the table
        figures=(Figure("width", width_figure, _width_data),),           # PNGs (optional)
    )
    def run(config, name, sweep) -> Claim: ...

A summary is usually a template over the claim's figures (`format_figures`: standard format specs
plus ``sci``, ``ms``, ``max``, ...); a section usually an image, intro paragraphs and a table, left
out when the table is empty.

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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from verify.job.claim import Claim, sci

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
    "format_figures",
    "register",
    "spec_of",
    "specs",
    "standard_axes",
    "statement_and_rows",
    "summary",
    "unregister",
]

# ------------------------------------------------------------------------------------------ templates

_OPERATIONS: dict[str, Callable[[Any], Any]] = {"max": max, "min": min, "len": len, "ms": lambda seconds: seconds * 1e3}
"""Format-spec prefixes that transform a value before it is formatted (``{radii:max:g}``, ``{seconds:ms:.1f}``)."""


class _FiguresFormatter(string.Formatter):
    """`str.format` whose format specs also take the report's conventions (see `format_figures`)."""

    def format_field(self, value: Any, format_spec: str) -> str:
        """Apply the leading operations of ``format_spec``, then ``sci``/``sciN`` or a standard spec."""
        name, _, rest = format_spec.partition(":")
        while name in _OPERATIONS:
            value = _OPERATIONS[name](value)
            format_spec = rest
            name, _, rest = format_spec.partition(":")
        scientific = re.fullmatch(r"sci(\d*)", format_spec)
        if scientific:
            return sci(value, int(scientific.group(1) or 2))
        return format(value, format_spec)


_FORMATTER = _FiguresFormatter()


def format_figures(template: str, /, **values: Any) -> str:
    """``template.format(**values)`` with the report's format specs as well as the standard ones.

    ``{x:sci}`` writes a figure as the tables do (`verify.job.claim.sci`: ``2.80e-10``, NaN as
    ``–``), ``{x:sci0}`` with 0 digits (``1e-06``). Before the final spec, any of ``max``, ``min``,
    ``len`` (of a list) and ``ms`` (seconds as milliseconds) transform the value, each followed by
    a colon: ``{radii:max:g}``, ``{construction_seconds:ms:.1f}``, ``{shapes:len}``. Fields may index
    into nested figures: ``{map[fit][exponent]:.2f}``.
    """
    return _FORMATTER.vformat(template, (), values)


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

    Declared, a section is ``image`` (shown if drawn), one paragraph per ``intro`` template (prose:
    its line breaks and indentation fold into single spaces; formatted by `format_figures` with
    ``config``: ``{config.points}``) and ``table(claims)`` (by default the family's console table,
    see `register`); it is left out when that table has no rows. Written, ``body(claims, config)``
    returns the blocks instead (an empty body leaves the section out). Both get the claims of the
    family that were run, in report order. ``order`` places the section among the others (smaller
    first), independently of the order of the claims.
    """

    title: str
    order: int
    body: Callable[[Sequence[Claim], Any], Sequence[Block]] | None = None
    image: Image | None = None
    intro: Sequence[str] = ()
    table: Callable[[Sequence[Claim]], Table] | None = None

    def __post_init__(self) -> None:
        if self.body is not None and (self.image is not None or self.intro or self.table is not None):
            raise ValueError(f"section {self.title!r}: give either body or image/intro/table, not both")

    def blocks(self, claims: Sequence[Claim], config: Any) -> list[Block]:
        """The section's blocks for ``claims`` (those of the family that ran); empty leaves it out."""
        if self.body is not None:
            return list(self.body(claims, config))
        table = self.table(claims) if self.table is not None else None
        if table is not None and not table.rows:
            return []
        blocks: list[Block] = [self.image] if self.image is not None else []
        blocks += [Paragraph(format_figures(" ".join(text.split()), config=config)) for text in self.intro]
        return blocks + ([table] if table is not None else [])


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
    summary: str | Callable[[Claim], str]
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
        axes = standard_axes(config) | dict(self.axes(config))
        return [
            self.pattern.format(**dict(zip(fields, values, strict=True)))
            for values in itertools.product(*(axes[f] for f in fields))
        ]

    def matches(self, name: str) -> bool:
        """Whether ``name`` has this family's pattern (each placeholder one path segment)."""
        parts = re.split(r"\{\w+\}", self.pattern)
        return re.fullmatch("[^/]+".join(re.escape(p) for p in parts), name) is not None


_SPECS: dict[str, ClaimSpec] = {}


def standard_axes(config: Any) -> dict[str, Sequence[str]]:
    """The placeholders a pattern may use undeclared: ``{mode}`` (config.modes) and ``{domain}`` (config.domains)."""
    return {"mode": config.modes, "domain": config.domains}


def register(
    pattern: str,
    *,
    order: int,
    statement: str,
    summary: str | Callable[[Claim], str],
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
    summary : str or callable
        The claim's one-line figures in the tables: a `format_figures` template over its figures
        (``"{passed}/{cases} cases pass; max error {max_relative_error:sci}"``), or, where that
        needs logic, ``summary(claim) -> str``. Not used for a skipped claim with a reason, which
        reads ``skipped: <reason>``.
    axes : callable, optional
        ``axes(config)`` maps placeholders of ``pattern`` to their values, beyond (or instead of)
        `standard_axes`: ``{mode}`` and ``{domain}`` need no declaration.
    sizes : dict, optional
        ``{"quick": {...}, "full": {...}}``: the family's sizes per grid (``custom`` grids use ``quick``),
        read by the claim through ``config.sizes_for(key)``; a `Config` can override any of them.
    enabled : callable, optional
        ``enabled(config)``: whether the family is part of the job at all (e.g. ``config.properties``).
    table : callable, optional
        ``table(claims) -> Table``: the family's console table, from its claims that ran.
    section : Section, optional
        The family's markdown section; a declared one without a table of its own shows ``table``.
    figures : sequence of Figure, optional
        The PNGs drawn from the family's claims (listed under ``plots`` of each of them in the JSON).
    numeric : bool, optional
        False for a claim that is not a numeric check (the property suite): left out of ``numeric_time_s``.
    """

    def decorate(run: Callable[[Any, str, Any], Claim]) -> Callable[[Any, str, Any], Claim]:
        if pattern in _SPECS:
            raise ValueError(f"claim pattern {pattern!r} is already registered")
        shown = section
        if shown is not None and shown.body is None and shown.table is None:
            shown = replace(shown, table=table)
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
            section=shown,
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
    if isinstance(spec.summary, str):
        return format_figures(spec.summary, **claim.figures)
    return spec.summary(claim)
