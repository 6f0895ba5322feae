"""Claims ``tradeoff/<mode>`` and ``tradeoff/tight``: skip connections trade width for depth (docs/design.md §8).

``tradeoff/<mode>``: for every target and every branch count ``m`` from 1 to the most a stage allows,
`verify.ResidualFrozenNetwork.for_target` with ``width=<mode>`` has depth ``2mL`` and odd widths equal
to the mode's minimum (recomputed here from ``|R|`` and the rank of ``T``), `verify.reconstruct`
returns a certificate that holds, and ``g = f`` on fresh points (``max |g − f| <= rtol · max |f|``).
Its rows give the frontier: odd width against depth at ``d′l′ = 2d²L``, next to Case 1.

``tradeoff/tight``: one neuron below the mode's width in one branch (each branch in turn, both modes),
reconstruct raises `verify.InfeasibleError` naming that stage and branch, and independent linear algebra
shows the branch's system ``A_R diag(γ) (B_j T) = W_R − T_R`` has no solution: ``T`` is rebuilt here from
the target (rows written so far hold ``W``'s, cleared rows 0, the rest ``I``'s; in the coordinates of its
row space once rows were cleared), and the least-squares residual of the Khatri–Rao system (paper) or
``σ_min/σ_max`` of the square homogeneous matrix (minimal) is above ``sqrt(eps)``
(`verify.job.claims.tight`).

Sizes: ``architectures`` (targets, widths up to 8, depths 1–3) and ``seeds``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.linalg

import verify
from verify.core.errors import InfeasibleError
from verify.core.residual import branch_needs, stage_rows
from verify.job.claim import Claim, first_failures, python_command, sci, worst
from verify.job.claims.tight import SEPARATION, khatri_rao_residual, minimal_system_separation
from verify.job.config import Config
from verify.job.figures import frontier_figure
from verify.job.progress import Sweep
from verify.job.registry import Figure, Image, Section, Table, register

__all__ = ["FRONTIER", "max_branches", "tradeoff_case", "tradeoff_tight_case"]

ARCHITECTURES_QUICK = ((4, 4), (8, 8, 8), (3, 5, 2), (6, 2, 7), (5, 3, 1, 4), (1, 4, 1))
ARCHITECTURES_FULL = (*ARCHITECTURES_QUICK, (8, 8, 8, 8), (7, 4, 8), (8, 3, 6, 2), (2, 8, 8, 2), (6, 6))
FRONTIER = (8, 8, 8)
"""The square target whose rows draw the frontier figure (``d = 8``, ``L = 2``)."""
RTOL = 1e-6
"""``max |g − f| <= RTOL · max |f|`` on fresh points (the default ``rtol`` of `verify.reconstruct`)."""


def max_branches(widths: Sequence[int]) -> int:
    """The most branches every stage of a target allows: the smallest ``max(d_{k−1}, d_k)``."""
    return min(max(a, b) for a, b in itertools.pairwise(widths))


def _needs(widths: Sequence[int], m: int, mode: str) -> list[list[int]]:
    """The mode's minimum odd width per branch, recomputed here: ``|R|·r`` (paper) or ``|R|(r − 1) + 1`` with
    ``r = d_{k−1}`` minus the rows cleared by earlier branches of the stage."""
    out = []
    for k in range(1, len(widths)):
        d_in, d_out = widths[k - 1], widths[k]
        cleared, stage = 0, []
        for rows in stage_rows(d_in, d_out, m, stage=k):
            r = d_in - cleared
            stage.append(len(rows) * r if mode == "paper" else len(rows) * (r - 1) + 1)
            cleared += int(np.count_nonzero(rows >= d_out))
        out.append(stage)
    return out


def _finished(
    case: dict[str, Any], reasons: list[str], start: float, widths: Sequence[int], seed: int, frozen: str, options: str
) -> dict[str, Any]:
    """``case`` with its verdict, time and, if it failed, the reasons and a one-line reproducer (the residual
    network built with ``frozen`` arguments, reconstructed with ``options``)."""
    case["passed"] = not reasons
    case["seconds"] = time.perf_counter() - start
    if reasons:
        case["reason"] = "; ".join(reasons)
        case["reproduce"] = python_command(
            "import verify",
            f"t = verify.TargetNetwork.random({list(widths)!r}, seed={seed})",
            f"fr = verify.ResidualFrozenNetwork.for_target(t, {frozen}, seed={1000 + seed})",
            f"verify.reconstruct(t, fr, verify.Ball(1.0){options})",
        )
    return case


def tradeoff_case(mode: str, widths: tuple[int, ...], seed: int, m: int, points: int) -> dict[str, Any]:
    """One target, one branch count: shape, certificate and fresh-point error of the residual construction."""
    start = time.perf_counter()
    case: dict[str, Any] = {"mode": mode, "widths": list(widths), "seed": seed, "branches": m}
    reasons = []
    try:
        target = verify.TargetNetwork.random(widths, seed=seed)
        frozen = verify.ResidualFrozenNetwork.for_target(target, branches=m, width=mode, seed=1000 + seed)
        odd = [list(w) for w in frozen.odd_widths]
        if frozen.depth != 2 * m * target.depth:
            reasons.append(f"depth {frozen.depth} != 2mL = {2 * m * target.depth}")
        if odd != _needs(widths, m, mode):
            reasons.append(f"odd widths {odd} are not the mode's minimum {_needs(widths, m, mode)}")
        result = verify.reconstruct(target, frozen, verify.Ball(1.0), mode=mode, rtol=RTOL)
        x = verify.Ball(1.0).resolve(widths[0]).sample(points, np.random.default_rng(2000 + seed))
        size = float(target.magnitude(x).max())
        observed = float(np.abs(result.network(x) - target(x)).max())
        error = observed / size if size > 0 else 0.0
        certificate = result.certificate
        if not certificate.holds:
            reasons.append("certificate does not hold")
        if not error <= RTOL:
            reasons.append(f"fresh-point error {error:.3g} > rtol {RTOL:g}")
        if not observed <= certificate.error_bound:
            reasons.append(
                f"fresh-point |g − f| {observed:.3g} exceeds the certified bound {certificate.error_bound:.3g}"
            )
        case |= {
            "depth": frozen.depth,
            "odd_width": max(n for stage in odd for n in stage),
            "odd_neurons": sum(n for stage in odd for n in stage),
            "relative_error": error,
            "error_bound": certificate.error_bound,
            "relative_error_bound": certificate.relative_error_bound,
            "bound_over_observed": certificate.error_bound / observed if observed > 0 else float("inf"),
            "stream_condition": certificate.max_stream_condition,
            "branch_condition": certificate.max_condition,
        }
    except Exception as error:  # a refusal or a failed certificate fails this case, with its reason
        reasons.append(f"{type(error).__name__}: {error}")
    return _finished(case, reasons, start, widths, seed, f"branches={m}, width={mode!r}", f", mode={mode!r}")


def _median(cases: list[dict[str, Any]], key: str) -> float:
    """Median of ``key`` over the cases that have it (nan if none)."""
    values = [c[key] for c in cases if key in c and np.isfinite(c[key])]
    return float(np.median(values)) if values else float("nan")


def case1_point(mode: str, widths: tuple[int, ...], seed: int) -> dict[str, Any]:
    """Case 1 on the same target: a chain `verify.FrozenNetwork` of the mode's width, reconstructed."""
    target = verify.TargetNetwork.random(widths, seed=seed)
    frozen = verify.FrozenNetwork.for_target(target, width=mode, seed=1000 + seed)
    holds = verify.reconstruct(target, frozen, verify.Ball(1.0), mode=mode).certificate.holds
    return {"odd_width": max(frozen.widths[1::2]), "depth": 2 * target.depth, "holds": holds}


def _frontier_rows(cases: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    rows = []
    for c in cases:
        if c["widths"] == list(FRONTIER) and c["seed"] == seed and "depth" in c:
            d, depth = FRONTIER[0], len(FRONTIER) - 1
            rows.append(
                {
                    "branches": c["branches"],
                    "odd_width": c["odd_width"],
                    "depth": c["depth"],
                    "width_x_depth": c["odd_width"] * c["depth"],
                    "bound": 2 * d * d * depth,
                    "relative_error": c["relative_error"],
                    "relative_error_bound": c["relative_error_bound"],
                    "bound_over_observed": c["bound_over_observed"],
                    "stream_condition": c["stream_condition"],
                    "passed": c["passed"],
                }
            )
    return sorted(rows, key=lambda r: r["branches"])


def _frontier_data(claims: Sequence[Claim]) -> dict[str, Any] | None:
    modes = {c.name.split("/")[1]: c.figures for c in claims if "frontier" in c.figures}
    if not modes:
        return None
    return {
        "d": FRONTIER[0],
        "depth": len(FRONTIER) - 1,
        "modes": {mode: {"case2": f["frontier"], "case1": f["case1"]} for mode, f in modes.items()},
    }


def _table(claims: Sequence[Claim]) -> Table:
    rows = [
        [
            claim.name.split("/")[1],
            str(r["branches"]),
            str(r["odd_width"]),
            str(r["depth"]),
            str(r["width_x_depth"]),
            str(r["bound"]),
            sci(r["relative_error"]),
            sci(r["relative_error_bound"]),
            sci(r["bound_over_observed"]),
            sci(r["stream_condition"]),
        ]
        for claim in claims
        for r in claim.figures.get("frontier", [])
    ]
    d, depth = FRONTIER[0], len(FRONTIER) - 1
    header = [
        "mode",
        "m",
        "odd width",
        "depth 2mL",
        "width × depth",
        "2d²L",
        "max |g−f|/|f|",
        "bound / f_max",
        "bound / observed",
        "max cond(T)",
    ]
    return Table(header, rows, title=f"Width against depth with skip connections (d = {d}, L = {depth})", labels=1)


_STATEMENT = """\
For targets of widths up to 8 and depths 1-3 and every branch count m from 1
to d: the residual frozen network has depth 2mL, odd widths equal to the
mode's minimum (about d²/m), its certificate holds (a rigorous bound on
|g − f| over the whole domain within rtol of f_max, the target's largest
output on the certificate's sample points) and g = f on fresh
points, never beyond that bound."""


@register(
    "tradeoff/{mode}",
    order=70,
    statement=_STATEMENT,
    summary="{passed}/{cases} cases (m = 1 … d) pass; max error {max_relative_error:sci}, certified bound at most "
    "{max_relative_error_bound:sci} of f_max (median {median_bound_over_observed:sci} × observed), max cond(T) "
    "{max_stream_condition:sci}",
    sizes={
        "quick": {"architectures": ARCHITECTURES_QUICK, "seeds": 2, "points": 256},
        "full": {"architectures": ARCHITECTURES_FULL, "seeds": 5, "points": 1024},
    },
    table=_table,
    section=Section(
        "Case 2: skip connections trade width for depth",
        70,
        image=Image("frontier", "Odd width against depth at d′l′ = 2d²L: Case 2 for every m, next to Case 1"),
        intro=(
            "Each target layer becomes a stage of m residual branches on a stream of width max d_k; branch j is a "
            "Case-1 block on the stage input with the scale equation A_R diag(γ) (B_j T) = W_R − T_R "
            "(docs/design.md §8). The table shows the square target d = 8, L = 2: where m divides d, the largest "
            "odd width times the depth meets the theorem's 2d²L (with equality in paper mode); where it does not, "
            "the rows split unevenly and the widest branch owns ceil(d/m) rows.",
        ),
    ),
    figures=(Figure("frontier", frontier_figure, _frontier_data),),
)
def run(config: Config, name: str, sweep: Sweep) -> Claim:
    """Check ``tradeoff/<mode>`` on every target, seed and branch count of its sizes, through ``sweep``."""
    mode = name.split("/")[1]
    start = time.perf_counter()
    sizes = config.sizes_for("tradeoff")
    seeds = range(sizes["seeds"])
    arguments = [
        (mode, tuple(widths), seed, m, sizes["points"])
        for widths in sizes["architectures"]
        for seed in seeds
        for m in range(1, max_branches(widths) + 1)
    ]
    cases = sweep.map(tradeoff_case, arguments)
    case1 = case1_point(mode, FRONTIER, 0)
    frontier = _frontier_rows(cases, 0)
    dividing = [r for r in frontier if FRONTIER[0] % r["branches"] == 0]  # equal runs of d/m rows per branch
    on_frontier = bool(dividing) and all(r["width_x_depth"] <= r["bound"] for r in dividing)
    square_equal = all(r["width_x_depth"] == r["bound"] for r in dividing)
    figures = {
        "cases": len(cases),
        "passed": sum(c["passed"] for c in cases),
        "max_relative_error": worst(cases, "relative_error"),
        "max_relative_error_bound": worst(cases, "relative_error_bound"),
        "median_bound_over_observed": _median(cases, "bound_over_observed"),
        "max_stream_condition": worst(cases, "stream_condition"),
        "max_branch_condition": worst(cases, "branch_condition"),
        "seconds": sum(c["seconds"] for c in cases),
        "frontier": frontier,
        "case1": case1,
        "paper_frontier_equality": square_equal if mode == "paper" else None,
    }
    passed = figures["passed"] == len(cases) > 0 and case1["holds"] and on_frontier
    if mode == "paper":
        passed = passed and square_equal
    failures = first_failures(
        cases,
        lambda c: {
            "case": f"widths={c['widths']} seed={c['seed']} branches={c['branches']}",
            "reason": c["reason"],
            "reproduce": c["reproduce"],
        },
    )
    statement = (
        f"{mode} mode, every m = 1 … d: depth 2mL, odd widths the mode's minimum, certificate holds, "
        f"max |g − f| <= {RTOL:g} max |f| on fresh points, and for the square d = 8 target odd width × depth "
        + ("= 2d²L" if mode == "paper" else "<= 2d²L")
        + " for every m dividing d"
    )
    return Claim.checked(name, statement, passed, figures, config.command(name), started=start, failures=failures)


# ------------------------------------------------------------------------------------------------ tight


def _independent_system(target: verify.TargetNetwork, frozen: Any, k: int, j: int) -> tuple[np.ndarray, ...]:
    """``(A_R, B_j P, (W_R − T_R) Qᵀ)`` of branch ``j`` of stage ``k``, with ``T`` rebuilt by hand: start from
    ``eye(D, d_{k−1})`` and set the rows of every earlier branch of the stage to ``W``'s rows (zero rows for
    cleared ones, ``W`` padded with zeros). At full column rank ``P = T``, ``Q = I``; once rows were cleared,
    ``Q`` spans ``T``'s row space (`scipy.linalg.orth` of ``Tᵀ``) and ``P = T Qᵀ``, so that the system has
    ``|R|·rank T`` equations, as many as the mode's width counts."""
    d = target.widths
    d_in, d_out = d[k - 1], d[k]
    stream = frozen.stream_width
    w_pad = np.zeros((stream, d_in))
    w_pad[:d_out] = target.weights[k - 1]
    t = np.eye(stream, d_in)
    parts = stage_rows(d_in, d_out, frozen.branches, stage=k)
    for rows in parts[: j - 1]:
        t[rows] = w_pad[rows]
    rows = parts[j - 1]
    b_j, a_j = frozen.stages[k - 1][j - 1].weights
    q = scipy.linalg.orth(t.T).T if np.linalg.matrix_rank(t) < d_in else np.eye(d_in)
    return a_j[rows], b_j @ t @ q.T, (w_pad[rows] - t[rows]) @ q.T


def tradeoff_tight_case(mode: str, widths: tuple[int, ...], seed: int, m: int, k: int, j: int) -> dict[str, Any]:
    """Branch ``j`` of stage ``k`` one neuron below its ``mode`` width: refused there, and its system unsolvable
    (paper: least-squares residual; minimal: the square homogeneous matrix is non-singular)."""
    start = time.perf_counter()
    needs = [branch_needs(a, b, m, mode, stage=s) for s, (a, b) in enumerate(itertools.pairwise(widths), 1)]
    needs[k - 1][j - 1] -= 1
    case: dict[str, Any] = {"mode": mode, "widths": list(widths), "seed": seed, "branches": m, "stage": k, "branch": j}
    reasons = []
    try:
        target = verify.TargetNetwork.random(widths, seed=seed)
        frozen = verify.ResidualFrozenNetwork.for_target(target, branches=m, width=needs, seed=1000 + seed)
        try:
            verify.reconstruct(target, frozen, verify.Ball(1.0), mode=mode)
            refused = False
            reasons.append(f"reconstruct returned a result with branch {j} of stage {k} one neuron narrow")
        except InfeasibleError as error:
            refused = (getattr(error, "stage", None), getattr(error, "branch", None)) == (k, j)
            refused = refused and f"stage {k}, branch {j}" in str(error)
            if not refused:
                reasons.append(f"InfeasibleError does not name stage {k}, branch {j}: {error}")
        system = _independent_system(target, frozen, k, j)
        if mode == "paper":
            evidence = khatri_rao_residual(*system)
        else:
            evidence, shape = minimal_system_separation(*system)
            if shape[0] != shape[1]:
                reasons.append(f"the homogeneous system has shape {shape}, not square")
        unsolvable = bool(evidence > SEPARATION)
        if not unsolvable:
            reasons.append(f"evidence {evidence:.3g} is not above {SEPARATION:.3g}: the system may be solvable")
        case |= {"refused": refused, "unsolvable": unsolvable, "evidence": evidence}
    except Exception as error:  # a bug in the check fails this case only
        case |= {"refused": False, "unsolvable": False}
        reasons.append(f"{type(error).__name__}: {error}")
    return _finished(case, reasons, start, widths, seed, f"branches={m}, width={needs!r}", f", mode={mode!r}")


def _tight_table(claims: Sequence[Claim]) -> Table:
    rows = [
        [
            r["mode"],
            "x".join(map(str, r["widths"])),
            str(r["branches"]),
            str(r["cases"]),
            f"{r['refused']}/{r['cases']}",
            f"{r['unsolvable']}/{r['cases']}",
            sci(r["min_evidence"]),
        ]
        for claim in claims
        for r in claim.rows
    ]
    header = ["mode", "target", "m", "branches narrowed", "refused (right branch)", "unsolvable", "min evidence"]
    title = "Tightness per branch: one neuron below the mode's width (evidence: paper LS residual, minimal σ_min/σ_max)"
    return Table(header, rows, title=title, labels=2)


@register(
    "tradeoff/tight",
    order=69,  # before tradeoff/{mode}, whose pattern would also match "tradeoff/tight"
    statement="""\
One neuron below the mode's width in any one branch of a residual network,
reconstruct() raises InfeasibleError naming that stage and branch, and the
branch's system (T rebuilt independently) has no solution: paper, its
least-squares residual is > sqrt(eps); minimal, sigma_min/sigma_max of the
square homogeneous matrix is > sqrt(eps).""",
    summary="{refused}/{cases} branches refused, {unsolvable}/{cases} unsolvable; min evidence "
    "{min_evidence:sci} > {threshold:sci}",
    sizes={
        "quick": {"architectures": ((4, 4, 4), (3, 5, 2), (6, 2, 3)), "seeds": 1},
        "full": {"architectures": ((4, 4, 4), (3, 5, 2), (6, 2, 3), (8, 8, 8), (5, 3, 1, 4)), "seeds": 3},
    },
    table=_tight_table,
    section=Section("Case 2: tightness per branch", 71),
)
def run_tight(config: Config, name: str, sweep: Sweep) -> Claim:
    """Check ``tradeoff/tight``: every branch of every target and branch count, narrowed in turn."""
    start = time.perf_counter()
    sizes = config.sizes_for("tradeoff/tight")
    arguments = []
    for mode in config.modes:
        for widths in sizes["architectures"]:
            for seed in range(sizes["seeds"]):
                for m in range(1, max_branches(widths) + 1):
                    for k in range(1, len(widths)):
                        for j, need in enumerate(branch_needs(widths[k - 1], widths[k], m, mode, stage=k), 1):
                            if need > 1:  # one below is at least one neuron
                                arguments.append((mode, tuple(widths), seed, m, k, j))
    cases = sweep.map(tradeoff_tight_case, arguments)
    groups: dict[tuple, list] = {}
    for c in cases:
        groups.setdefault((c["mode"], tuple(c["widths"]), c["branches"]), []).append(c)
    rows = [
        {
            "mode": key[0],
            "widths": list(key[1]),
            "branches": key[2],
            "cases": len(group),
            "refused": sum(c["refused"] for c in group),
            "unsolvable": sum(c["unsolvable"] for c in group),
            "min_evidence": worst(group, "evidence", min),
        }
        for key, group in groups.items()
    ]
    figures = {
        "cases": len(cases),
        "refused": sum(c["refused"] for c in cases),
        "unsolvable": sum(c["unsolvable"] for c in cases),
        "passed": sum(c["passed"] for c in cases),
        "min_evidence": worst(cases, "evidence", min),
        "threshold": SEPARATION,
        "seconds": sum(c["seconds"] for c in cases),
    }
    failures = first_failures(
        cases,
        lambda c: {
            "case": f"{c['mode']} widths={c['widths']} seed={c['seed']} m={c['branches']} stage={c['stage']} "
            f"branch={c['branch']}",
            "reason": c["reason"],
            "reproduce": c["reproduce"],
        },
    )
    statement = (
        f"one neuron below the {'/'.join(config.modes)} width in one branch (each in turn), reconstruct raises "
        "InfeasibleError naming that stage and branch, and the branch's system has no solution: the least-squares "
        f"residual (paper) or σ_min/σ_max of the square homogeneous matrix (minimal) is above sqrt(eps) = "
        f"{SEPARATION:.2g}"
    )
    passed = figures["passed"] == len(cases) > 0
    return Claim.checked(
        name, statement, passed, figures, config.command(name), started=start, rows=rows, failures=failures
    )
