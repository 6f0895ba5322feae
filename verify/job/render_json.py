"""The verification report as JSON (``verify.json``): the document `verify.job.report.write_report` writes.

Which figures show a claim (its ``plots``) comes from the claim's family in the registry
(`verify.job.registry.Figure`); nothing here knows a claim by name.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from verify.job import registry
from verify.job.claim import Claim, json_ready

__all__ = ["render_json", "report_document"]


def report_document(
    claims: Sequence[Claim], config: Any, meta: dict[str, Any], plots: dict[str, str]
) -> dict[str, Any]:
    """The JSON-ready report: ``passed``, ``config``, ``meta``, ``plots`` and one entry per claim.

    Each entry is `Claim.to_dict` with ``plots``: the paths (relative to the report) of the figures
    of its family that were drawn.
    """
    entries = []
    for claim in claims:
        spec = registry.spec_of(claim.name)
        keys = [figure.key for figure in spec.figures] if spec is not None else []
        entries.append(claim.to_dict() | {"plots": [plots[key] for key in keys if key in plots]})
    document = {
        "passed": all(c.passed for c in claims),
        "config": config.to_dict(),
        "meta": meta,
        "plots": plots,
        "claims": entries,
    }
    return json_ready(document)


def render_json(claims: Sequence[Claim], config: Any, meta: dict[str, Any], plots: dict[str, str]) -> str:
    """`report_document` as strict JSON text (no NaN or Infinity), indented, with a final newline."""
    return json.dumps(report_document(claims, config, meta, plots), indent=2, allow_nan=False) + "\n"
