"""Claim ``baseline/training``: the construction against BN-only training on the same frozen network.

BN-only training is Frankle, Schwab, Morcos (2021). `compare_with_training` (also used by ``nox -s
bench``) builds one random target and one frozen network, times `verify.nn.fit_norm_layers` (the
construction), then trains a fresh copy of the same frozen network with `verify.nn.train_norm_only`
for a fixed time budget and records its error curve. The claim: the construction reaches ``<=
1e-10`` relative error, and training does not get as close within the budget. Sizes: ``budget``,
the training time in seconds. Skipped (not a pass) without torch.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

import verify
from verify.job.claim import Claim
from verify.job.config import Config
from verify.job.figures import error_time_figure
from verify.job.progress import Sweep
from verify.job.registry import Figure, Image, Paragraph, Section, Table, register, summary

__all__ = ["compare_with_training"]


def compare_with_training(
    widths: tuple[int, ...] = (8, 8, 8), *, budget: float = 60.0, lr: float = 1e-2, seed: int = 0
) -> dict[str, Any]:
    """Construction time and error against the best error BN-only training reaches in ``budget`` seconds.

    Errors are ``max |g − f| / max |f|`` on 1024 held-out points of the unit ball (the training
    curve's own measure, `verify.nn.TrainingCurve`).
    """
    import torch

    from verify.nn import fit_norm_layers, frozen_mlp, target_mlp, train_norm_only

    target = target_mlp(widths, seed=seed, dtype=torch.float64)
    frozen_widths = [widths[0]]
    for j in range(1, len(widths)):
        frozen_widths += [widths[j] * widths[j - 1], widths[j]]
    frozen = frozen_mlp(frozen_widths, seed=seed, dtype=torch.float64)
    trained = copy.deepcopy(frozen)
    domain = verify.Ball(1.0)

    start = time.perf_counter()
    fit_norm_layers(frozen, target, domain)
    construction_seconds = time.perf_counter() - start
    held_out = torch.tensor(domain.resolve(widths[0]).sample(1024, np.random.default_rng(seed + 1)))
    with torch.no_grad():
        expected = target(held_out)
        construction_error = float((frozen(held_out) - expected).abs().max() / expected.abs().max())

    curve = train_norm_only(trained, target, domain, steps=10**9, lr=lr, seed=seed, time_budget=budget)
    return {
        "widths": list(widths),
        "frozen_widths": frozen_widths,
        "construction_seconds": construction_seconds,
        "construction_error": construction_error,
        "training_budget_seconds": budget,
        "training_steps": curve.steps[-1],
        "training_best_error": curve.best,
        "time_ratio": budget / construction_seconds,
        "error_ratio": curve.best / max(construction_error, np.finfo(float).tiny),
        "curve": {"seconds": curve.seconds, "relative_error": curve.relative_error},
    }


def _section(claims: Sequence[Claim], config: Config) -> list[Any]:
    blocks: list[Any] = []
    for claim in claims:
        if claim.rows:
            blocks += [
                Image("error_vs_time", "Error against wall time: the construction and BN-only training"),
                Paragraph(
                    f"{claim.statement}. {summary(claim)}. Training curve (relative error on 1024 held-out points):"
                ),
                Table(
                    ["seconds", "max|g-f|/max|f|"],
                    [[f"{r['seconds']:.2f}", f"{r['relative_error']:.3e}"] for r in claim.rows],
                ),
            ]
    return blocks


def _curve_data(claims: Sequence[Any]) -> dict[str, Any] | None:
    return next((c.figures for c in claims if "curve" in c.figures), None)


_STATEMENT = """\
The construction against Adam on the BatchNorm parameters alone, same
frozen network (error_vs_time.png)."""


@register(
    "baseline/training",
    order=70,
    statement=_STATEMENT,
    summary=(
        "construction {construction_seconds:ms:.1f} ms to error {construction_error:.1e}; "
        "training {training_budget_seconds:g} s ({training_steps} steps) to best error {training_best_error:.2e}: "
        "{time_ratio:.0f}x the time, {error_ratio:.1e}x the error"
    ),
    sizes={"quick": {"budget": 10.0}, "full": {"budget": 60.0}},
    section=Section("Construction vs BN-only training", 80, _section),
    figures=(Figure("error_vs_time", error_time_figure, _curve_data),),
)
def run(config: Config, name: str, sweep: Sweep) -> Claim:
    """Check ``baseline/training`` in this process (a timed comparison: not sent to the sweep's workers)."""
    start = time.perf_counter()
    budget = config.sizes_for("baseline/training")["budget"]
    try:
        import torch  # noqa: F401
    except ImportError:
        return Claim(
            name,
            "construction vs BN-only training",
            "skipped",
            {"reason": "torch is not installed (pip install verify[torch])"},
            config.command(name),
        )
    figures = compare_with_training(budget=budget)
    curve = figures["curve"]
    kept = np.unique(np.geomspace(1, len(curve["seconds"]), 300).astype(int) - 1)  # log-spaced: the figure is log-log
    figures["curve"] = {key: [values[i] for i in kept] for key, values in curve.items()}
    rows = [
        {"seconds": s, "relative_error": e}
        for i, (s, e) in enumerate(zip(curve["seconds"], curve["relative_error"], strict=True))
        if i % max(1, len(curve["seconds"]) // 12) == 0
    ]
    passed = figures["construction_error"] <= 1e-10 and figures["training_best_error"] > figures["construction_error"]
    statement = (
        f"on one frozen network (widths {figures['frozen_widths']}), the construction reaches "
        "max|g-f|/max|f| <= 1e-10, "
        f"and Adam on the BatchNorm weight/bias alone (lr 1e-2, batch 256) does not reach the construction's error "
        f"within {budget:g} s"
    )
    return Claim.checked(name, statement, passed, figures, config.command(name), started=start, rows=rows)
