"""Claim ``approx/frontier``: below the threshold the certified bound holds, next to BN-only training.

For dense chains of several depths and widths and odd widths from 10% to 100% of the paper width
(docs/design.md §11), `verify.reconstruct` with ``mode="approximate"`` returns a certified
``error_bound``; on fresh points of the unit ball (half on its boundary) the observed ``max |g − f|``
is never above it, and at the paper width the result is exact. Next to it, BN-only training
(`verify.nn.training.train_norm_only`: Adam on the BatchNorm weight and bias of the *same* frozen
network, starting from weight 1 and bias 0) is given the wall-clock time the construction took
(solve and certificate included) and ten times that, and its error is measured on the same points.
Errors are reported relative to ``max |f|`` on those points. Sizes: ``targets``, the target widths,
``fractions`` and ``method``: the quick run uses the least-squares fast path (``"lstsq"``), so that
construction and training take a few seconds; ``--full`` the default ``"auto"`` (both objectives).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import verify
from verify.construction.frontier import fresh_points
from verify.job.claim import Claim, first_failures, python_command
from verify.job.config import Config
from verify.job.figures import _figure, _save
from verify.job.progress import Sweep
from verify.job.registry import Figure, Image, Section, Table, register
from verify.nn.export import to_module
from verify.nn.training import train_norm_only

__all__ = ["FRACTIONS", "LEARNING_RATE", "approximation_figure", "frontier_case", "target_module", "train_bn_only"]

FRACTIONS = (0.1, 0.3, 0.5, 0.7, 1.0)
"""Odd widths as fractions of the paper width ``d_k d_{k−1}`` (`verify.FrozenNetwork.for_target`), ``--full``;
the quick run takes 0.1 and 1.0."""
LEARNING_RATE = 1e-2
"""Adam's step size for BN-only training (the baseline claim's choice for networks of this size)."""
POINTS = 2048
BUDGETS = (1, 10)
"""Training's wall-clock budget, in multiples of the construction's own time."""


def target_module(target: verify.TargetNetwork) -> nn.Sequential:
    """``target`` as a float64 ``nn.Sequential`` of Linear and ReLU layers, in eval mode."""
    layers: list[nn.Module] = []
    for k, (w, b) in enumerate(zip(target.weights, target.biases, strict=True)):
        linear = nn.Linear(w.shape[1], w.shape[0], dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(torch.tensor(w))
            linear.bias.copy_(torch.tensor(b))
        layers += [linear] + ([nn.ReLU()] if k < target.depth - 1 else [])
    return nn.Sequential(*layers).eval()


def frontier_case(widths: Sequence[int], fraction: float, seed: int, method: str = "auto") -> dict[str, Any]:
    """One target ``widths`` (seed ``seed``) and frozen width ``fraction``: certified bound, observed, trained
    (``method`` of `verify.reconstruct`'s approximate mode)."""
    torch.set_num_threads(1)
    target = verify.TargetNetwork.random(list(widths), seed=seed)
    frozen = verify.FrozenNetwork.for_target(target, width=fraction, seed=1000 + seed)
    domain = verify.Ball(1.0).resolve(widths[0])
    x = fresh_points(domain, POINTS, np.random.default_rng([seed, 7]))
    f = target(x)
    size = float(np.max(np.abs(f)))
    verify.reconstruct(target, frozen, domain, mode="approximate", method=method)  # warm-up (imports): not timed
    start = time.perf_counter()
    result = verify.reconstruct(target, frozen, domain, mode="approximate", method=method)
    seconds = time.perf_counter() - start
    certificate = result.certificate
    observed = float(np.max(np.abs(result.network(x) - f)))
    row = {
        "widths": list(widths),
        "fraction": fraction,
        "odd_widths": list(frozen.widths[1::2]),
        "width_over_d2": float(np.mean([n / w.size for n, w in zip(frozen.widths[1::2], target.weights, strict=True)])),
        "seed": seed,
        "method": method,
        "exact": bool(certificate.exact),
        "holds": bool(certificate.holds),
        "bound": certificate.error_bound / size,
        "observed": observed / size,
        "seconds": seconds,
    }
    reference = target_module(target)
    points = torch.tensor(x)
    for budget in BUDGETS:
        module = train_bn_only(frozen, reference, domain, budget * seconds, seed)
        with torch.no_grad():
            trained = float((module(points) - reference(points)).abs().max())
        row[f"trained_{budget}x"] = trained / size
    return row


def train_bn_only(
    frozen: verify.FrozenNetwork,
    target: nn.Module,
    domain: verify.Ball | verify.Box,
    seconds: float,
    seed: int,
    inputs: np.ndarray | None = None,
) -> nn.Module:
    """The claims' BN-only baseline: ``frozen`` as a float64 torch module (BatchNorm weight 1, bias 0) trained by
    `verify.nn.training.train_norm_only` (Adam, `LEARNING_RATE`, MSE against ``target``) for ``seconds`` of wall
    clock, on points of ``domain`` or on rows of ``inputs``; returned in eval mode."""
    module = to_module(frozen, dtype=torch.float64)
    train_norm_only(
        module,
        target,
        domain,
        10**9,
        LEARNING_RATE,
        seed=seed,
        time_budget=seconds,
        evaluate_every=10**9,
        inputs=inputs,
    )
    return module.eval()


def approximation_figure(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Relative error against width / d² (log axes): certified bound, observed error, BN-only training."""
    figure = _figure()
    axis = figure.subplots()
    below = sorted((r for r in rows if not r["exact"]), key=lambda r: r["width_over_d2"])
    series = (
        ("bound", "construction: certified bound", "o", "C0"),
        ("observed", "construction: observed", "s", "C1"),
        ("trained_1x", "BN-only Adam, same time", "^", "C2"),
        ("trained_10x", "BN-only Adam, 10x time", "v", "C3"),
    )
    targets = sorted({tuple(r["widths"]) for r in below}, key=lambda t: (len(t), t))
    for key, label, marker, colour in series:
        for n, widths in enumerate(targets):  # one thin line per target: its frontier across widths
            group = [r for r in below if tuple(r["widths"]) == widths]
            axis.plot(
                [r["width_over_d2"] for r in group],
                [r[key] for r in group],
                color=colour,
                marker=marker,
                markerfacecolor="none",
                linewidth=0.8,
                alpha=0.8,
                label=label if n == 0 else None,
            )
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("odd width / (d_k d_{k-1})")
    axis.set_ylabel("max |g − f| / max |f| on fresh points")
    axis.legend(fontsize=8)
    axis.set_title(f"Below the threshold: one line per target ({len(targets)} targets, unit ball)", fontsize=10.5)
    return _save(figure, path)


def _table(claims: Sequence[Claim]) -> Table:
    columns = {
        "target": "widths",
        "width / d²": "width_over_d2",
        "exact": "exact",
        "bound": "bound",
        "observed": "observed",
        "trained (1x)": "trained_1x",
        "trained (10x)": "trained_10x",
        "seconds": "seconds",
    }
    rows = [r for c in claims for r in c.rows]
    return Table.of_rows(rows, columns) if rows else Table(list(columns), [])


def _rows(claims: Sequence[Claim]) -> list[dict[str, Any]] | None:
    return [r for c in claims for r in c.rows] or None


_INTRO = """\
`mode="approximate"` on dense chains at 10%–100% of the paper width (unit ball, errors relative to
`max |f|` on fresh points), next to BN-only training of the same frozen network (Adam on the
BatchNorm weight and bias) for the construction's own wall-clock time and ten times it."""


@register(
    "approx/frontier",
    order=85,
    statement="Below the threshold: observed error <= certified bound; BN-only training alongside.",
    summary="{sound}/{cases} below the bound, {exact_at_paper}/{paper} exact at the paper width; "
    "training (10x time) beats the certified bound in {training_beats_bound} cases, the observed error in "
    "{training_beats_observed}",
    sizes={
        "quick": {"targets": ((4, 4), (6, 6, 6), (8, 8, 8, 8)), "fractions": (0.1, 1.0), "method": "lstsq"},
        "full": {
            "targets": ((4, 4), (6, 6, 6), (8, 8, 8, 8), (12, 12, 12), (16, 16), (16, 16, 16, 16)),
            "fractions": FRACTIONS,
            "method": "auto",
        },
    },
    table=_table,
    section=Section(
        "Approximation below the threshold",
        85,
        image=Image("approximation", "Relative error against width / d²: certified bound, observed, BN-only training"),
        intro=(_INTRO,),
    ),
    figures=(Figure("approximation", approximation_figure, _rows),),
)
def run(config: Config, name: str, sweep: Sweep) -> Claim:
    """Check ``approx/frontier`` (module notes), cases through ``sweep``."""
    start = time.perf_counter()
    sizes = config.sizes_for("approx/frontier")
    targets, fractions, method = sizes["targets"], sizes["fractions"], sizes["method"]
    cases = [(tuple(t), fraction, 0, method) for t in targets for fraction in fractions]
    rows = sweep.map(frontier_case, cases)
    for row in rows:
        row["passed"] = row["holds"] and row["observed"] <= row["bound"] and row["exact"] == (row["fraction"] >= 1)
    failures = first_failures(
        rows,
        lambda r: {
            "case": f"target {r['widths']}, width {r['fraction']}",
            "reason": f"holds={r['holds']} observed {r['observed']:.3g} bound {r['bound']:.3g} exact={r['exact']}",
            "reproduce": python_command(
                "import verify",
                f"t = verify.TargetNetwork.random({r['widths']}, seed={r['seed']})",
                f"fr = verify.FrozenNetwork.for_target(t, width={r['fraction']}, seed={1000 + r['seed']})",
                f"r = verify.reconstruct(t, fr, verify.Ball(1.0), mode='approximate', method={r['method']!r})",
                "print(r.certificate.error_bound)",
            ),
        },
        failing=lambda r: not r["passed"],
    )
    below = [r for r in rows if not r["exact"]]
    figures = {
        "cases": len(rows),
        "sound": sum(r["observed"] <= r["bound"] for r in rows),
        "paper": sum(r["fraction"] >= 1 for r in rows),
        "exact_at_paper": sum(r["exact"] for r in rows if r["fraction"] >= 1),
        "training_beats_bound": sum(r["trained_10x"] < r["bound"] for r in below),
        "training_beats_observed": sum(r["trained_10x"] < r["observed"] for r in below),
        "training_1x_beats_observed": sum(r["trained_1x"] < r["observed"] for r in below),
    }
    statement = (
        f"dense targets {', '.join(str(list(t)) for t in targets)} at odd widths {list(fractions)} of the paper width: "
        "every approximate certificate holds, the observed error on fresh points of the unit ball is never above "
        "the certified bound, and the paper width is exact"
    )
    return Claim.checked(
        name,
        statement,
        all(r["passed"] for r in rows),
        figures,
        config.command(name),
        started=start,
        rows=rows,
        failures=failures,
    )
