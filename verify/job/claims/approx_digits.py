"""Claim ``approx/digits``: the certified approximation on real data, next to BN-only training.

The target is a small MLP ``64 → hidden → 10`` (ReLU) trained in the job on scikit-learn's
``load_digits`` (8×8 images, pixels scaled to ``[0, 1]``; a stratified, seeded split holds a quarter
out as the test set): full-batch Adam on the cross-entropy, `TARGET_STEPS` steps, seeded (0.3 s
on an idle core). Frozen networks at fractions of the paper width (`verify.FrozenNetwork.for_target`, as torch
modules) are tuned by `verify.nn.fit_norm_layers` with ``mode="approximate"`` on the box ``[0, 1]^64``,
which every image lies in, so the certificate covers every test image. Per width the claim reports the
approximating module's test accuracy, its certified ``error_bound`` (absolute and over ``f_max``, the
largest ``|f|`` on the test set), the largest ``|g − f|`` observed on the test set and on fresh points of
the box (corners included), which must never exceed the bound, and the test accuracy of BN-only
training of the same frozen network (`verify.job.claims.approx_frontier.train_bn_only`: Adam on the
BatchNorm weight and bias, MSE against the target's outputs) given the construction's own wall-clock
time (``--full``: ten times it too), once on points of the box (the construction's objective) and once
on the training images. At the paper width the result must be exact, with the target's own accuracy.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

import verify
from verify.construction.frontier import fresh_points
from verify.job.claim import Claim, first_failures, python_command
from verify.job.claims.approx_frontier import target_module, train_bn_only
from verify.job.config import Config
from verify.job.progress import Sweep
from verify.job.registry import Section, Table, register
from verify.nn.export import to_module
from verify.nn.fit import fit_norm_layers
from verify.nn.modules import target_from_module

__all__ = ["DOMAIN", "digits_case", "digits_data", "digits_target"]

TEST_SIZE = 0.25
"""The held-out share of the 1,797 images (stratified by digit, split seed 0)."""
TARGET_STEPS = 300
TARGET_LR = 1e-2
FROZEN_SEED = 1
DOMAIN = verify.Box(np.zeros(64), np.ones(64))
"""The certified domain: every pixel in ``[0, 1]`` (the images' 0–16 grey levels over 16)."""
FRESH_POINTS = 1024
SOURCES = ("box", "images")
"""What BN-only training is fed: points of `DOMAIN` (half on its boundary) or the training images."""


@functools.cache
def digits_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, x_test, y_train, y_test)`` of ``load_digits``, pixels over 16, a stratified seeded split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    split = train_test_split(x / 16.0, y, test_size=TEST_SIZE, random_state=0, stratify=y)
    return tuple(np.ascontiguousarray(part) for part in split)  # type: ignore[return-value]


@functools.cache
def digits_target(hidden: int, seed: int = 0) -> verify.TargetNetwork:
    """The target ``64 → hidden → 10`` trained on the training images (module notes), seeded by ``seed``."""
    x_train, _, y_train, _ = digits_data()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(64, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10)).double()
    optimizer = torch.optim.Adam(net.parameters(), lr=TARGET_LR)
    x, y = torch.tensor(x_train), torch.tensor(y_train)
    for _ in range(TARGET_STEPS):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()
    return target_from_module(net.eval())


def _accuracy(module: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float(np.mean(module(torch.tensor(x)).argmax(1).numpy() == y))


def digits_case(
    hidden: int, fraction: float, method: str, seed: int = 0, budgets: Sequence[int] = (1,)
) -> dict[str, Any]:
    """One frozen width ``fraction`` of the paper width for the digits target of ``hidden`` units (module notes)."""
    torch.set_num_threads(1)
    _, x_test, _, y_test = digits_data()
    target = digits_target(hidden, seed)
    reference = target_module(target)
    frozen = verify.FrozenNetwork.for_target(target, width=fraction, seed=FROZEN_SEED + seed)
    module = to_module(frozen, dtype=torch.float64)
    small = verify.TargetNetwork.random([2, 2], seed=0)  # warm-up (imports, cvxpy's first solve): not timed
    narrow = verify.FrozenNetwork.for_target(small, width=0.5, seed=0)
    verify.reconstruct(small, narrow, verify.Ball(1.0), "approximate", method=method)
    start = time.perf_counter()
    result = fit_norm_layers(module, reference, DOMAIN, mode="approximate", method=method, progress=False)
    seconds = time.perf_counter() - start
    certificate = result.certificate
    box = fresh_points(DOMAIN, FRESH_POINTS, np.random.default_rng([seed, 11]))
    with torch.no_grad():
        f = reference(torch.tensor(x_test)).numpy()
        observed = float(np.abs(module(torch.tensor(x_test)).numpy() - f).max())
        observed_box = float((module(torch.tensor(box)) - reference(torch.tensor(box))).abs().max())
        agreement = float(np.mean(module(torch.tensor(x_test)).argmax(1).numpy() == f.argmax(1)))
    f_max = float(np.abs(f).max())
    row = {
        "hidden": hidden,
        "fraction": fraction,
        "odd_widths": list(frozen.widths[1::2]),
        "seed": seed,
        "method": method,
        "exact": bool(certificate.exact),
        "holds": bool(certificate.holds),
        "target_accuracy": _accuracy(reference, x_test, y_test),
        "accuracy": _accuracy(module, x_test, y_test),
        "agreement": agreement,
        "f_max": f_max,
        "bound": certificate.error_bound,
        "approximation_error": certificate.approximation_error,
        "bound_rel": certificate.error_bound / f_max,
        "observed": observed,
        "observed_rel": observed / f_max,
        "observed_box": observed_box,
        "seconds": seconds,
    }
    x_train = digits_data()[0]
    for budget in budgets:
        for source in SOURCES:
            inputs = x_train if source == "images" else None
            trained = train_bn_only(frozen, reference, DOMAIN, budget * seconds, seed, inputs=inputs)
            row[f"trained_{source}_{budget}x"] = _accuracy(trained, x_test, y_test)
    return row


def _table(claims: Sequence[Claim]) -> Table:
    rows = [r for c in claims for r in c.rows]
    columns = {
        "hidden": "hidden",
        "method": "method",
        "width": "fraction",
        "exact": "exact",
        "accuracy": "accuracy",
        "bound / f_max": "bound_rel",
        "observed / f_max": "observed_rel",
        "BN-only (box, 1x)": "trained_box_1x",
        "BN-only (images, 1x)": "trained_images_1x",
    }
    if any("trained_images_10x" in r for r in rows):  # --full: blank for targets trained at 1x only
        columns |= {"BN-only (box, 10x)": "trained_box_10x", "BN-only (images, 10x)": "trained_images_10x"}
    columns["seconds"] = "seconds"
    return Table.of_rows(rows, columns) if rows else Table(list(columns), [])


_INTRO = """\
A `load_digits` MLP target (trained in the job, seeded; a quarter of the images held out) and frozen
networks at fractions of the paper width, tuned by `fit_norm_layers(..., mode="approximate")` on the
box `[0, 1]^64`: the approximating module's test accuracy, its certified bound and the error observed
on the test images (relative to `f_max`, the largest `|f|` there), next to BN-only training of the same
frozen network (Adam, the construction's wall-clock time) on points of the box or on the training images."""


@register(
    "approx/digits",
    order=86,
    statement="On load_digits: observed error <= certified bound at every width; exact at the paper width.",
    summary="{sound}/{cases} within the bound on test images and the box; exact with the target's test accuracy "
    "{target_accuracy:.3f} at the paper width: {exact_at_paper}/{paper}; best accuracy below it "
    "{best_accuracy_below:.3f}",
    sizes={
        "quick": {"targets": ((16, "lstsq", (1,)),), "fractions": (0.1, 0.5, 1.0)},
        "full": {
            "targets": ((16, "lstsq", (1, 10)), (16, "auto", (1,)), (32, "lstsq", (1,))),
            "fractions": (0.1, 0.3, 0.5, 0.7, 0.9, 1.0),
        },
    },
    table=_table,
    section=Section("Approximation on real data: digits", 86, intro=(_INTRO,)),
)
def run(config: Config, name: str, sweep: Sweep) -> Claim:
    """Check ``approx/digits`` (module notes), cases through ``sweep``."""
    start = time.perf_counter()
    sizes = config.sizes_for("approx/digits")
    cases = [
        (hidden, fraction, method, 0, tuple(budgets))
        for hidden, method, budgets in sizes["targets"]
        for fraction in sizes["fractions"]
    ]
    rows = sweep.map(digits_case, cases)
    for row in rows:
        paper = row["fraction"] >= 1
        row["passed"] = (
            row["holds"]
            and row["observed"] <= row["bound"]
            and row["observed_box"] <= row["bound"]
            and row["exact"] == paper
            and (not paper or row["accuracy"] == row["target_accuracy"])
        )
    failures = first_failures(
        rows,
        lambda r: {
            "case": f"digits target 64-{r['hidden']}-10, width {r['fraction']}",
            "reason": f"holds={r['holds']} observed {r['observed']:.3g} (box {r['observed_box']:.3g}) bound "
            f"{r['bound']:.3g} exact={r['exact']} accuracy {r['accuracy']:.3f} (target {r['target_accuracy']:.3f})",
            "reproduce": python_command(
                "from verify.job.claims.approx_digits import digits_case",
                f"print(digits_case({r['hidden']}, {r['fraction']}, {r['method']!r}))",
            ),
        },
    )
    at_paper = [r for r in rows if r["fraction"] >= 1]
    figures = {
        "cases": len(rows),
        "sound": sum(r["observed"] <= r["bound"] and r["observed_box"] <= r["bound"] for r in rows),
        "paper": len(at_paper),
        "exact_at_paper": sum(r["exact"] and r["accuracy"] == r["target_accuracy"] for r in at_paper),
        "target_accuracy": min(r["target_accuracy"] for r in rows),
        "best_accuracy_below": max((r["accuracy"] for r in rows if r["fraction"] < 1), default=float("nan")),
    }
    statement = (
        f"load_digits targets 64-{{{', '.join(sorted({str(t[0]) for t in sizes['targets']}))}}}-10 at widths "
        f"{list(sizes['fractions'])} of the paper width on [0, 1]^64: every certificate holds, no test image and no "
        "fresh point of the box is farther from the target than the certified bound, and the paper width is exact "
        "with the target's test accuracy"
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
