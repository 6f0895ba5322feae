"""Construction against BN-only training (Frankle, Schwab, Morcos 2021) on the same frozen network.

Used by ``nox -s bench`` and by the verification job's ``baseline/training`` claim: build one
random target and one frozen network, time `verify.nn.fit_norm_layers` (the construction), then
train a fresh copy of the same frozen network with `verify.nn.train_norm_only` for a fixed time
budget and record its error curve.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np

import verify

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


BASELINE_CLAIM = "baseline/training"
BUDGETS = {"quick": 10.0, "full": 60.0}
"""Training time budget (seconds) of the verification job's baseline claim, per grid."""


def baseline_claim(config: Any) -> Any:
    """The verification job's claim: the construction reaches ``<= 1e-10`` relative error, and BN-only
    training of the same frozen network does not get as close within the budget."""
    from verify.job.report import Claim

    start = time.perf_counter()
    budget = BUDGETS["full" if config.grid == "full" else "quick"]
    try:
        import torch  # noqa: F401
    except ImportError:
        return Claim(
            BASELINE_CLAIM,
            "construction vs BN-only training",
            "skipped",
            {"reason": "torch is not installed (pip install verify[torch])"},
            config.command(BASELINE_CLAIM),
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
    return Claim(
        BASELINE_CLAIM,
        statement,
        "passed" if passed else "failed",
        figures,
        config.command(BASELINE_CLAIM),
        rows=rows,
        seconds=time.perf_counter() - start,
    )
