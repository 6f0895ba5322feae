"""Claim ``tight/<mode>``: one neuron below the mode's width is not enough (docs/design.md §2, tightness).

One neuron below the mode's odd-layer width in one block (``paper_width - 1`` or
``minimal_width - 1``), ``reconstruct`` raises `verify.InfeasibleError` naming that block, and
independent linear algebra shows the block's system really has no solution for the (generic)
target: in paper mode the least-squares residual of ``K γ = vec(W)`` is far from zero, in minimal
mode the square homogeneous matrix ``[W-part | -K]`` is far from singular.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.linalg

import verify
from verify.core.domains import Ball
from verify.core.errors import InfeasibleError
from verify.core.networks import FrozenNetwork, TargetNetwork, minimal_width, paper_width
from verify.core.scale_equation import khatri_rao
from verify.core.tolerances import EPS
from verify.job.claim import Claim, by_depth, first_failures, python_command, sci, worst
from verify.job.config import Config
from verify.job.progress import Sweep
from verify.job.registry import Section, Table, format_figures, register

__all__ = ["SEPARATION", "khatri_rao_residual", "minimal_system_separation", "tight_case"]

SEPARATION = math.sqrt(EPS)
"""Threshold of the tightness evidence: a relative least-squares residual, or a smallest-over-largest
singular value ratio, above ``sqrt(eps) ≈ 1.5e-8`` is not rounding error. A backward-stable solve of
these small systems (at most 144 × 144 here) perturbs either figure by about ``max(shape) · eps ≈
3e-14`` relative (Weyl's inequality for singular values); ``sqrt(eps)`` is more than five orders of
magnitude above that, so a figure above it proves the exact system is unsolvable (paper mode) or
nonsingular (minimal mode)."""


def khatri_rao_residual(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> float:
    """Relative least-squares residual ``min_γ ||K γ − vec(W)|| / ||vec(W)||`` of the paper-mode system.

    ``K = verify.khatri_rao(A, B)``, shape ``(d_out·d_in, n)``; solved with `scipy.linalg.lstsq`.
    Zero means ``A diag(γ) B = W`` is solvable; a value far above `SEPARATION` means it is not.
    """
    k = khatri_rao(a, b)
    rhs = np.asarray(w, dtype=float).reshape(-1)
    gamma = scipy.linalg.lstsq(k, rhs)[0]
    return float(np.linalg.norm(k @ gamma - rhs) / np.linalg.norm(rhs))


def minimal_system_separation(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> tuple[float, tuple[int, int]]:
    """Smallest over largest singular value of the minimal-mode homogeneous matrix, and its shape.

    The unknowns ``(ρ, γ)`` of ``diag(ρ) W = A diag(γ) B`` satisfy ``[W-part | −K] (ρ, γ) = 0`` where
    column ``a`` of the W-part holds row ``a`` of ``W`` in the equations ``(a, ·)`` (row-major, as
    ``K = verify.khatri_rao(A, B)``). Columns are scaled to unit norm first (a change of unknowns,
    which does not change whether the matrix is singular). One neuron below the minimal width the
    matrix is square, and a ratio far above `SEPARATION` proves only the trivial solution exists.
    """
    w = np.asarray(w, dtype=float)
    d_out, d_in = w.shape
    weight_part = np.zeros((d_out * d_in, d_out))
    for row in range(d_out):
        weight_part[row * d_in : (row + 1) * d_in, row] = w[row]
    system = np.hstack([weight_part, -khatri_rao(a, b)])
    norms = np.linalg.norm(system, axis=0)
    norms[norms == 0] = 1.0
    singular = scipy.linalg.svdvals(system / norms)
    ratio = float(singular[-1] / singular[0]) if singular[0] > 0 else 0.0
    if system.shape[0] < system.shape[1]:
        ratio = 0.0  # more unknowns than equations: a non-trivial null space always exists
    return ratio, (int(system.shape[0]), int(system.shape[1]))


def _reproducer(mode: str, widths: Sequence[int], seed: int, odd: Sequence[int]) -> str:
    return python_command(
        "import verify",
        f"t = verify.TargetNetwork.random({list(widths)!r}, seed={seed})",
        f"fr = verify.FrozenNetwork.for_target(t, width={list(odd)!r}, seed={1000 + seed})",
        f"verify.reconstruct(t, fr, verify.Ball(1.0), mode={mode!r})",
    )


def _rule(mode: str) -> Any:
    return paper_width if mode == "paper" else minimal_width


def tight_case(mode: str, widths: tuple[int, ...], seed: int, block: int) -> dict[str, Any]:
    """One neuron below ``mode``'s width in ``block``: refused by reconstruct, and unsolvable."""
    start = time.perf_counter()
    rule = _rule(mode)
    odd = [rule(widths[k], widths[k - 1]) for k in range(1, len(widths))]
    odd[block - 1] -= 1
    case: dict[str, Any] = {"mode": mode, "widths": list(widths), "seed": seed, "block": block, "odd_widths": odd}
    try:
        case |= _check(mode, widths, seed, block, odd)
    except Exception as error:  # a bug in the check itself fails this case only
        case |= {"passed": False, "refused": False, "unsolvable": False, "reason": f"{type(error).__name__}: {error}"}
    case["seconds"] = time.perf_counter() - start
    if "reason" in case:
        case["reproduce"] = _reproducer(mode, widths, seed, odd)
    return case


def _check(mode: str, widths: tuple[int, ...], seed: int, block: int, odd: list[int]) -> dict[str, Any]:
    target = TargetNetwork.random(widths, seed=seed)
    frozen = FrozenNetwork.for_target(target, width=odd, seed=1000 + seed)
    reasons = []
    try:
        verify.reconstruct(target, frozen, Ball(1.0), mode=mode)
    except InfeasibleError as error:
        refused = error.block == block and f"block {block}" in str(error)
        if not refused:
            reasons.append(f"InfeasibleError names block {error.block}, not {block}: {error}")
    except Exception as error:  # CertificateError, another ValueError, or a bug: not the refusal claimed
        refused = False
        reasons.append(f"expected InfeasibleError for block {block}, got {type(error).__name__}: {error}")
    else:
        refused = False
        reasons.append(f"reconstruct returned a result at odd width {odd[block - 1]} in block {block}")
    b_mat = frozen.weights[2 * block - 2][:, : widths[block - 1]]
    a_mat = frozen.weights[2 * block - 1][: widths[block], :]
    w = target.weights[block - 1]
    if mode == "paper":
        evidence = khatri_rao_residual(a_mat, b_mat, w)
        square = True
    else:
        evidence, shape = minimal_system_separation(a_mat, b_mat, w)
        square = shape[0] == shape[1]
        if not square:
            reasons.append(f"the homogeneous system has shape {shape}, not square")
    unsolvable = bool(evidence > SEPARATION)
    if not unsolvable:
        reasons.append(f"evidence {evidence:.3g} is not above {SEPARATION:.3g}: the system may be solvable")
    figures: dict[str, Any] = {
        "refused": refused,
        "evidence": evidence,
        "unsolvable": unsolvable,
        "passed": refused and unsolvable and square,
    }
    if reasons:
        figures["reason"] = "; ".join(reasons)
    return figures


def _figures(cases: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "blocks": len(cases),
        "refused": sum(c["refused"] for c in cases),
        "unsolvable": sum(c["unsolvable"] for c in cases),
        "passed": sum(c["passed"] for c in cases),
        "min_evidence": worst(cases, "evidence", min),
        "seconds": sum(c["seconds"] for c in cases),
    }


def _summary(claim: Claim) -> str:
    """The summary line: its evidence is named after the claim's mode."""
    return format_figures(
        "{refused}/{blocks} blocks refused, {unsolvable}/{blocks} unsolvable; "
        "min {what} {min_evidence:sci} > {threshold:sci}",
        what="LS residual" if claim.name.endswith("paper") else "σ_min/σ_max",
        **claim.figures,
    )


def _table(claims: Sequence[Claim]) -> Table:
    rows = [
        [
            claim.name.split("/")[1],
            str(r["depth"]),
            str(r["blocks"]),
            f"{r['refused']}/{r['blocks']}",
            f"{r['unsolvable']}/{r['blocks']}",
            sci(r["min_evidence"]),
            f"{r['seconds']:.2f}",
        ]
        for claim in claims
        for r in claim.rows
    ]
    header = ["mode", "depth", "blocks", "refused (right block)", "unsolvable", "min evidence", "time (s)"]
    title = "Tightness: one neuron below each mode's width (evidence: paper LS residual, minimal σ_min/σ_max)"
    return Table(header, rows, title=title, labels=1)


_INTRO = f"""\
Per target and block: the odd layer of that block is one neuron below the mode's width
(`paper_width - 1` or `minimal_width - 1`; blocks where that is 0 are skipped). Evidence that the
block's system has no solution, independent of `reconstruct`: paper mode, the relative least-squares
residual `min ||K γ - vec(W)|| / ||W||` (scipy.linalg.lstsq); minimal mode, `σ_min/σ_max` of the square,
column-equilibrated matrix `[W-part | -K]` (scipy.linalg.svdvals). Both must exceed sqrt(eps) =
{SEPARATION:.3g}."""


_STATEMENT = """\
One neuron below the mode's width in one block, reconstruct() raises
InfeasibleError naming that block, and the block's system is shown to have
no solution independently: paper, the least-squares residual of the
Khatri-Rao system is > sqrt(eps); minimal, sigma_min/sigma_max of the square
homogeneous matrix [W-part | -K] is > sqrt(eps)."""


@register(
    "tight/{mode}",
    order=20,
    statement=_STATEMENT,
    summary=_summary,
    table=_table,
    section=Section("Tightness", 20, intro=(_INTRO,)),
)
def run(config: Config, name: str, sweep: Sweep) -> Claim:
    """Check ``tight/<mode>`` on every block of every target and seed of ``config``, cases through ``sweep``."""
    mode = name.split("/")[1]
    start = time.perf_counter()
    rule = _rule(mode)
    arguments, skipped = [], 0
    for widths in config.architectures:
        for seed in config.seeds:
            for block in range(1, len(widths)):
                if rule(widths[block], widths[block - 1]) - 1 < 1:
                    skipped += 1  # the width would be 0: nothing to test
                    continue
                arguments.append((mode, widths, seed, block))
    cases = sweep.map(tight_case, arguments)
    rows = by_depth(cases, _figures)
    failures = first_failures(
        cases,
        lambda c: {
            "case": f"widths={c['widths']} seed={c['seed']} block={c['block']}",
            "reason": c["reason"],
            "reproduce": c["reproduce"],
        },
    )
    figures = _figures(cases) | {"skipped_blocks": skipped, "threshold": SEPARATION}
    evidence = (
        "relative least-squares residual of K γ = vec(W)"
        if mode == "paper"
        else ("σ_min/σ_max of the square matrix [W-part | -K]")
    )
    statement = (
        f"one neuron below the {mode} width in one block, reconstruct raises InfeasibleError naming that block, "
        f"and the {evidence} is above sqrt(eps) = {SEPARATION:.2g} (the system has no solution)"
    )
    passed = figures["passed"] == figures["blocks"] > 0
    return Claim.checked(
        name, statement, passed, figures, config.command(name), started=start, rows=rows, failures=failures
    )
