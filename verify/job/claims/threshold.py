"""Claim ``threshold/<mode>``: where reconstruction starts to work as the odd width grows (docs/design.md §2).

For single-block targets ``[d_in, d_out]`` of several shapes and a sweep of odd widths ``n``
around the mode's threshold (paper ``d_out·d_in``, minimal ``d_out(d_in − 1) + 1``), the success
rate of `verify.reconstruct` over seeds is 0 below the threshold (every case is refused with
`verify.InfeasibleError`) and 1 at and above it (every certificate holds). This is the data of the
report's ``width.png``: success rate against ``n − threshold``.

Sizes: ``shapes``, the block shapes ``(d_out, d_in)``. Every case is deterministic: target seed
``s``, frozen network ``1000 + s``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import verify
from verify.core.networks import minimal_width, paper_width
from verify.job.claim import Claim, first_failures, python_command
from verify.job.config import Config
from verify.job.figures import width_figure
from verify.job.progress import Sweep
from verify.job.registry import Figure, Image, Section, Table, format_figures, register

__all__ = ["OFFSETS", "threshold_case"]

OFFSETS = (-3, -2, -1, 0, 1, 2, 3)
"""Odd widths ``threshold + offset`` tried for each shape (widths below 1 are left out)."""


def _threshold(mode: str, d_out: int, d_in: int) -> int:
    return paper_width(d_out, d_in) if mode == "paper" else minimal_width(d_out, d_in)


def threshold_case(mode: str, d_out: int, d_in: int, width: int, seed: int) -> dict[str, Any]:
    """Reconstruct target ``[d_in, d_out]`` (seed ``seed``) with odd width ``width``: the outcome.

    Returns ``{"succeeded": bool, "outcome": "certified" | "infeasible" | "error"}`` and, for an
    error, ``"reason"``. A refusal is an `verify.InfeasibleError`; anything else that is raised
    (a `verify.CertificateError`, a bug) is an ``"error"``, which no claim accepts.
    """
    target = verify.TargetNetwork.random([d_in, d_out], seed=seed)
    frozen = verify.FrozenNetwork.for_target(target, width=[width], seed=1000 + seed)
    try:
        result = verify.reconstruct(target, frozen, verify.Ball(1.0), mode=mode)
    except verify.InfeasibleError:
        return {"succeeded": False, "outcome": "infeasible"}
    except Exception as error:  # recorded, so that the claim fails with the reason instead of the job crashing
        return {"succeeded": False, "outcome": "error", "reason": f"{type(error).__name__}: {error}"}
    holds = bool(result.certificate.holds)
    return {"succeeded": holds, "outcome": "certified" if holds else "error", "reason": "" if holds else "not held"}


def _summary(claim: Claim) -> str:
    """The summary line, which counts the cases as predicted (the figures count the others)."""
    return format_figures(
        "{right}/{cases} cases as predicted; success rate {rate_below:.2f} below the threshold, "
        "{rate_at_or_above:.2f} at or above it ({shapes:len} block shapes)",
        right=claim.figures["cases"] - claim.figures["wrong"],
        **claim.figures,
    )


def _table(claims: Sequence[Claim]) -> Table:
    """Success rate per block shape (rows) and offset from the threshold (columns), both modes."""
    rows = [r for c in claims for r in c.rows]
    offsets = sorted({r["offset"] for r in rows})
    table: dict[tuple[str, str], dict[int, str]] = {}
    for r in rows:
        key = (r["mode"], f"{r['shape'][0]}x{r['shape'][1]}")
        table.setdefault(key, {})[r["offset"]] = f"{r['succeeded'] / r['cases']:.2f}"
    header = ["mode", "block", *(f"{o:+d}" for o in offsets)]
    cells = [[mode, shape, *(cells.get(o, "") for o in offsets)] for (mode, shape), cells in table.items()]
    return Table(header, cells, title="Success rate against odd width n − threshold (one block, all seeds)", labels=2)


_INTRO = """\
One block `[d_in, d_out]` per shape, odd width `n` from threshold − 3 to threshold + 3 (paper
`d_out·d_in`, minimal `d_out(d_in − 1) + 1`), every seed. Success = `reconstruct` returns a certified
result; below the threshold every case must be refused with `InfeasibleError`."""


def _failure(mode: str, case: dict[str, Any]) -> dict[str, Any]:
    """A case whose outcome is not the expected one, with its reproducer."""
    (d_out, d_in), width, seed, outcome = case["block"], case["width"], case["seed"], case["outcome"]
    return {
        "case": f"block {d_out}x{d_in}, odd width {width} (threshold {case['offset']:+d}), seed {seed}",
        "reason": f"expected {case['expected']}, got {outcome['outcome']} {outcome.get('reason', '')}".strip(),
        "reproduce": python_command(
            "import verify",
            f"t = verify.TargetNetwork.random([{d_in}, {d_out}], seed={seed})",
            f"fr = verify.FrozenNetwork.for_target(t, width=[{width}], seed={1000 + seed})",
            f"print(verify.reconstruct(t, fr, verify.Ball(1.0), mode={mode!r}).certificate.holds)",
        ),
    }


def _width_data(claims: Sequence[Any]) -> list[dict[str, Any]] | None:
    return [r for c in claims for r in c.rows] or None


_STATEMENT = """\
Single blocks of several shapes at odd widths threshold-3 ... threshold+3:
every width below the threshold is refused, every width at or above it is
certified (figure width.png: success rate against width - threshold)."""


@register(
    "threshold/{mode}",
    order=30,
    statement=_STATEMENT,
    summary=_summary,
    sizes={
        "quick": {"shapes": ((2, 2), (3, 3), (4, 4), (2, 5), (5, 3))},
        "full": {"shapes": ((2, 2), (3, 3), (4, 4), (6, 6), (2, 5), (5, 3), (8, 4))},
    },
    table=_table,
    section=Section(
        "Success rate against width",
        40,
        image=Image("width", "Success rate against odd width minus the threshold, paper and minimal mode"),
        intro=(_INTRO, "Success rate per block shape and `n − threshold`:"),
    ),
    figures=(Figure("width", width_figure, _width_data),),
)
def run(config: Config, name: str, sweep: Sweep) -> Claim:
    """Check ``threshold/paper`` or ``threshold/minimal`` (see the module docstring), cases through ``sweep``."""
    start = time.perf_counter()
    mode = name.split("/")[1]
    shapes = config.sizes_for("threshold")["shapes"]
    cases = [
        (mode, d_out, d_in, _threshold(mode, d_out, d_in) + offset, seed)
        for d_out, d_in in shapes
        for offset in OFFSETS
        if _threshold(mode, d_out, d_in) + offset >= 1
        for seed in config.seeds
    ]
    outcomes = sweep.map(threshold_case, cases)
    rows: dict[tuple[int, int, int], dict[str, Any]] = {}
    checked = []
    for (_, d_out, d_in, width, seed), outcome in zip(cases, outcomes, strict=True):
        offset = width - _threshold(mode, d_out, d_in)
        row = rows.setdefault(
            (d_out, d_in, width),
            {"mode": mode, "shape": [d_out, d_in], "offset": offset, "width": width, "cases": 0, "succeeded": 0},
        )
        row["cases"] += 1
        row["succeeded"] += outcome["succeeded"]
        expected = "certified" if offset >= 0 else "infeasible"
        case = {"block": (d_out, d_in), "width": width, "offset": offset, "seed": seed, "expected": expected}
        checked.append(case | {"outcome": outcome, "passed": outcome["outcome"] == expected})
    failures = first_failures(checked, lambda c: _failure(mode, c))
    below = [r for r in rows.values() if r["offset"] < 0]
    above = [r for r in rows.values() if r["offset"] >= 0]
    wrong = sum(not c["passed"] for c in checked)
    figures = {
        "shapes": [list(s) for s in shapes],
        "cases": len(cases),
        "wrong": wrong,
        "rate_below": sum(r["succeeded"] for r in below) / max(1, sum(r["cases"] for r in below)),
        "rate_at_or_above": sum(r["succeeded"] for r in above) / max(1, sum(r["cases"] for r in above)),
    }
    rule = "d_out·d_in" if mode == "paper" else "d_out(d_in − 1) + 1"
    statement = (
        f"{mode} mode, one block of shapes {', '.join(f'{a}x{b}' for a, b in shapes)}: every odd width below {rule} "
        "is refused with InfeasibleError and every width at or above it (up to +3) is certified"
    )
    return Claim.checked(
        name,
        statement,
        wrong == 0 and bool(below) and bool(above),
        figures,
        config.command(name),
        started=start,
        rows=sorted(rows.values(), key=lambda r: (r["shape"], r["width"])),
        failures=failures,
    )
