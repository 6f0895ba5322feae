"""The verification job on the console (rich): each claim family's table, then one line per claim.

Everything printed comes from the registry (`verify.job.registry`): the tables a family declares,
its summary line, its failures. Nothing here knows a claim by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from verify.job import registry
from verify.job.claim import Claim

__all__ = ["make_console", "render_console"]

_STYLES = {"passed": "bold green", "failed": "bold red", "skipped": "bold yellow"}
_SHOWN_FAILURES = 5
"""Failing cases printed per claim (the report lists them all)."""


def make_console() -> Any:
    """A `rich.console.Console` on stdout, at least 150 columns wide when stdout is not a terminal (logs)."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=max(console.width, 150))


def _print_table(console: Any, table: registry.Table) -> None:
    """Print a rich table whose first ``table.labels`` columns are left-aligned labels, the rest numbers."""
    from rich.table import Table

    if not table.rows:
        return
    shown = Table(title=table.title, title_justify="left")
    for i, name in enumerate(table.header):
        shown.add_column(name, justify="left" if i < table.labels else "right", no_wrap=i < table.labels)
    for row in table.rows:
        shown.add_row(*row)
    console.print(shown)


def render_console(claims: Sequence[Claim], console: Any = None) -> None:
    """Print the claims: the tables of their families (in claim order), then the verdicts and failures."""
    from rich.table import Table

    if console is None:
        console = make_console()
    for spec in registry.specs():
        mine = [c for c in claims if spec.matches(c.name)]
        if spec.table is not None and mine:
            _print_table(console, spec.table(mine))
    table = Table(title="Claims", title_justify="left")
    table.add_column("claim")
    table.add_column("verdict")
    table.add_column("figures")
    table.add_column("time (s)", justify="right")
    for claim in claims:
        verdict = f"[{_STYLES[claim.status]}]{claim.verdict}[/]"
        table.add_row(claim.name, verdict, registry.summary(claim), f"{claim.seconds:.1f}")
    console.print(table)
    for claim in claims:
        for failure in claim.failures[:_SHOWN_FAILURES]:
            console.print(f"[red]{claim.name}[/] {failure['case']}: {failure['reason']}", highlight=False)
            if "reproduce" in failure:
                console.print(f"  reproduce: {failure['reproduce']}", highlight=False, soft_wrap=True)
