"""Writing the verification report: ``verify.md``, ``verify.json`` and ``figures/*.png`` in one directory.

The figures are the ones the claim families declare (`verify.job.registry.Figure`), drawn from the
claims that ran; the markdown and JSON come from `verify.job.render_markdown` and
`verify.job.render_json`, with the environment (`verify.job.environment`) in ``meta``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from verify.job import registry
from verify.job.environment import environment
from verify.job.render_json import render_json
from verify.job.render_markdown import render_markdown

__all__ = ["write_figures", "write_report"]


def write_figures(claims: Sequence[Any], directory: str | os.PathLike[str]) -> dict[str, Path]:
    """Draw every figure whose claims ran into ``directory/figures/`` (created when something is drawn).

    Parameters
    ----------
    claims
        Objects with ``name``, ``status``, ``figures`` (dict) and ``rows`` (list of dicts), as
        `verify.job.claim.Claim`. Each registered family's figures are drawn from its claims that ran
        and were not skipped.
    directory
        The report directory; the PNGs go into its ``figures`` subdirectory.

    Returns
    -------
    dict[str, Path]
        Figure name (``width``, ``density``, ``error_vs_time``) to the path written, in claim order. A
        figure is left out when its claims are absent, skipped, or carry no data for it (a claim that
        failed before measuring anything).
    """
    ran = [c for c in claims if c.status != "skipped"]
    written: dict[str, Path] = {}
    for spec in registry.specs():
        mine = [c for c in ran if spec.matches(c.name)]
        for figure in spec.figures:
            data = figure.data(mine) if mine else None
            if data is not None:
                written[figure.key] = figure.draw(data, Path(directory) / "figures" / f"{figure.key}.png")
    return written


def write_report(
    claims: Sequence[Any], out_dir: str | os.PathLike[str], config: Any, meta: dict[str, Any] | None = None
) -> tuple[Path, Path]:
    """Write ``verify.md``, ``verify.json`` and ``figures/*.png`` into ``out_dir`` (created if needed).

    Returns the paths of the markdown and the JSON. The JSON holds ``plots`` (figure name to path
    relative to ``out_dir``) and ``passed`` (every claim passed), ``config``, ``meta`` and ``claims``: a list of
    `verify.job.claim.Claim.to_dict` entries, each with ``name``, ``passed``, ``status``, ``figures``,
    ``command`` and ``plots``.
    """
    meta = {"versions": environment()} | (meta or {})
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    plots = {key: path.relative_to(directory).as_posix() for key, path in write_figures(claims, directory).items()}
    markdown = directory / "verify.md"
    markdown.write_text(render_markdown(claims, config, meta, plots), encoding="utf-8")
    report = directory / "verify.json"
    report.write_text(render_json(claims, config, meta, plots), encoding="utf-8")
    return markdown, report
