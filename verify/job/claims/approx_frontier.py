"""Claim ``approx/frontier``: below the threshold the certified bound holds, next to BN-only training.

For dense chains of several depths and widths and odd widths from 10% to 100% of the paper width
(docs/design.md §11), `verify.reconstruct` with ``mode="approximate"`` returns a certified
``error_bound``; on fresh points of the unit ball (half on its boundary) the observed ``max |g − f|``
is never above it, and at the paper width the result is exact. Next to it, BN-only training
(`verify.nn.training.train_norm_only`: Adam on the BatchNorm weight and bias of the *same* frozen
network, starting from weight 1 and bias 0) is given the wall-clock time the construction took
(solve and certificate included) and ten times that, and its error is measured on the same points.
Errors are reported relative to ``max |f|`` on those points. Sparse frozen networks at the paper width
(``densities``, Bernoulli masks of docs/design.md §4) are approximated the same way where their mask's
maximum matching is below ``d_k d_{k−1}`` (``matching`` False: no value of the frozen weights is exact),
and must be exact where it is not. Case 2 residual networks (``residual`` targets,
``branches`` per stage, docs/design.md §8) are run at the same ``fractions`` of each branch's paper
width, and a convolutional network (`conv_target`, on a box) at ``conv_fractions``, without BN-only
training (`verify.nn.training.train_norm_only` takes MLP modules). Sizes: ``targets``, the target
widths, ``fractions``, ``densities``, ``residual``, ``branches``, ``conv_fractions`` and ``method``:
the quick run uses the least-squares fast path (``"lstsq"``), so that
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
from verify.nn.residual import frozen_residual_mlp
from verify.nn.training import train_norm_only

__all__ = ["FRACTIONS", "LEARNING_RATE", "approximation_figure", "frontier_case", "target_module", "train_bn_only"]

FRACTIONS = (0.1, 0.3, 0.5, 0.7, 1.0)
"""Odd widths as fractions of the paper width ``d_k d_{k−1}`` (`verify.FrozenNetwork.for_target`), ``--full``;
the quick run takes 0.1 and 1.0."""
LEARNING_RATE = 1e-2
"""Adam's step size for BN-only training (the baseline claim's choice for networks of this size)."""
DENSITIES = (0.1, 0.2, 0.3, 0.5, 0.7)
"""Mask densities of the sparse frozen networks at the paper width, ``--full``; the quick run takes 0.2 and 0.5."""
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


def _frozen_module(target: verify.TargetNetwork, fraction: float, density: float, seed: int, branches: int) -> Any:
    """The frozen torch module of a case (BatchNorm weight 1, bias 0): a chain, or a Case 2 residual MLP of
    ``branches`` branches per stage (`verify.nn.residual.frozen_residual_mlp`)."""
    if branches:
        return frozen_residual_mlp(target.widths, branches=branches, width=fraction, seed=seed, dtype=torch.float64)
    frozen = verify.FrozenNetwork.for_target(target, width=fraction, density=density, seed=seed)
    return to_module(frozen, dtype=torch.float64)


def frontier_case(
    widths: Sequence[int], fraction: float, seed: int, method: str = "auto", density: float = 1.0, branches: int = 0
) -> dict[str, Any]:
    """One target ``widths`` (seed ``seed``) and frozen width ``fraction`` with masks of ``density`` (``branches``
    > 0: a Case 2 residual network of that many branches per stage): certified bound, observed, trained
    (``method`` of `verify.reconstruct`'s approximate mode)."""
    torch.set_num_threads(1)
    target = verify.TargetNetwork.random(list(widths), seed=seed)
    if branches:
        frozen = _frozen_module(target, fraction, density, 1000 + seed, branches).to_network()
    else:
        frozen = verify.FrozenNetwork.for_target(target, width=fraction, density=density, seed=1000 + seed)
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
        "density": density,
        "route": f"Case 2, {branches} branches" if branches else "chain",
        "matching": verify.feasibility(target, frozen, "paper").ok,
        "odd_widths": _odd_widths(frozen),
        "width_over_d2": float(np.mean([n / w.size for n, w in zip(_odd_widths(frozen), target.weights, strict=True)])),
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
        module = train_bn_only(
            _frozen_module(target, fraction, density, 1000 + seed, branches), reference, domain, budget * seconds, seed
        )
        with torch.no_grad():
            trained = float((module(points) - reference(points)).abs().max())
        row[f"trained_{budget}x"] = trained / size
    return row


def conv_target() -> tuple[verify.ConvTargetNetwork, verify.Box]:
    """The convolutional target of the claim (seeded): Conv 2→3 3×3 padding 1, ReLU, AvgPool 2, Conv 3→2 3×3
    stride 2, on the box ``[−1, 1]^{2×10×10}``."""
    rng = np.random.default_rng(7)
    layers = [
        verify.Conv.build(rng.standard_normal((3, 2, 3, 3)) / 4, rng.standard_normal(3), padding=1),
        verify.AvgPool((2, 2), (2, 2), (0, 0)),
        verify.Conv.build(rng.standard_normal((2, 3, 3, 3)) / 5, rng.standard_normal(2), stride=2),
    ]
    return verify.ConvTargetNetwork(layers, (2, 10, 10)), verify.Box(-1, 1, shape=(2, 10, 10))


def conv_case(fraction: float, seed: int, method: str = "auto") -> dict[str, Any]:
    """`conv_target` at ``fraction`` of each pair's paper width: certified bound and observed error (relative to
    ``max |f|``) on fresh points of the box, half of them corners. BN-only training is not run on it:
    `verify.nn.training.train_norm_only` takes MLP modules (it reads the input width off the first layer)."""
    target, box = conv_target()
    frozen = verify.ConvFrozenNetwork.for_target(target, fraction, seed=1000 + seed)
    rng = np.random.default_rng([seed, 7])
    lo, hi = box.lo.reshape(-1), box.hi.reshape(-1)
    x = np.concatenate(
        [box.sample(POINTS // 2, rng), np.where(rng.integers(0, 2, (POINTS // 2, lo.size)) == 1, hi, lo)]
    )
    f = target(x).reshape(len(x), -1)
    start = time.perf_counter()
    result = verify.reconstruct(target, frozen, box, mode="approximate", method=method)
    seconds = time.perf_counter() - start
    size = float(np.max(np.abs(f)))
    odd = list(frozen.widths[1::2])
    certificate = result.certificate
    return {
        "widths": list(target.widths),
        "fraction": fraction,
        "density": 1.0,
        "route": "convolutional",
        "matching": verify.feasibility(target, frozen, "paper").ok,
        "odd_widths": odd,
        "width_over_d2": float(np.mean([n / w.size for n, w in zip(odd, target.weights, strict=True)])),
        "seed": seed,
        "method": method,
        "exact": bool(certificate.exact),
        "holds": bool(certificate.holds),
        "bound": certificate.error_bound / size,
        "observed": float(np.max(np.abs(result.network(x).reshape(len(x), -1) - f))) / size,
        "seconds": seconds,
    }


def _odd_widths(frozen: Any) -> list[int]:
    """The odd widths per target layer (a residual network: summed over the stage's branches)."""
    if isinstance(frozen, verify.ResidualFrozenNetwork):
        return [sum(stage) for stage in frozen.odd_widths]
    return list(frozen.widths[1::2])


def train_bn_only(
    frozen: verify.FrozenNetwork | nn.Module,
    target: nn.Module,
    domain: verify.Ball | verify.Box,
    seconds: float,
    seed: int,
    inputs: np.ndarray | None = None,
) -> nn.Module:
    """The claims' BN-only baseline: ``frozen`` (a torch module, or a network made a float64 module with BatchNorm
    weight 1, bias 0) trained by
    `verify.nn.training.train_norm_only` (Adam, `LEARNING_RATE`, MSE against ``target``) for ``seconds`` of wall
    clock, on points of ``domain`` or on rows of ``inputs``; returned in eval mode."""
    module = frozen if isinstance(frozen, nn.Module) else to_module(frozen, dtype=torch.float64)
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
    """Relative error against width / d² (log axes): certified bound, observed error, BN-only training (the dense
    rows; the sparse ones are in the table)."""
    figure = _figure()
    axis = figure.subplots()
    dense = (r for r in rows if not r["exact"] and r.get("density", 1.0) == 1 and r.get("route", "chain") == "chain")
    below = sorted(dense, key=lambda r: r["width_over_d2"])
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


def _reproduce(row: dict[str, Any]) -> list[str]:
    """The lines of a failure's reproduction: the row's target, frozen network, domain and reconstruction."""
    seed, fraction, solve = 1000 + row["seed"], row["fraction"], f"mode='approximate', method={row['method']!r}"
    if row["route"] == "convolutional":
        return [
            "import verify",
            "from verify.job.claims.approx_frontier import conv_target",
            "t, box = conv_target()",
            f"fr = verify.ConvFrozenNetwork.for_target(t, {fraction}, seed={seed})",
            f"r = verify.reconstruct(t, fr, box, {solve})",
            "print(r.certificate.error_bound)",
        ]
    if row["route"] == "chain":
        frozen = f"verify.FrozenNetwork.for_target(t, width={fraction}, density={row['density']}, seed={seed})"
    else:
        branches = int(row["route"].split()[2])
        frozen = f"verify.ResidualFrozenNetwork.for_target(t, branches={branches}, width={fraction}, seed={seed})"
    return [
        "import verify",
        f"t = verify.TargetNetwork.random({row['widths']}, seed={row['seed']})",
        f"fr = {frozen}",
        f"r = verify.reconstruct(t, fr, verify.Ball(1.0), {solve})",
        "print(r.certificate.error_bound)",
    ]


def _table(claims: Sequence[Claim]) -> Table:
    columns = {
        "target": "widths",
        "route": "route",
        "width / d²": "width_over_d2",
        "density": "density",
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
`mode="approximate"` on dense chains at 10%–100% of the paper width, and on sparse ones at the paper
width below the matching threshold (unit ball, errors relative to `max |f|` on fresh points), next to
BN-only training of the same frozen network (Adam on the BatchNorm weight and bias) for the
construction's own wall-clock time and ten times it."""


@register(
    "approx/frontier",
    order=85,
    statement="Below the threshold: observed error <= certified bound; BN-only training alongside.",
    summary="{sound}/{cases} below the bound, {exact_at_paper}/{paper} exact at the paper width, "
    "{sparse_below_matching}/{sparse} sparse cases below the matching threshold, {residual} Case 2 and "
    "{convolutional} convolutional cases; "
    "training (10x time) beats the certified bound in {training_beats_bound} cases, the observed error in "
    "{training_beats_observed}",
    sizes={
        "quick": {
            "targets": ((4, 4), (6, 6, 6), (8, 8, 8, 8)),
            "fractions": (0.1, 1.0),
            "densities": (0.2, 0.5),
            "residual": ((6, 6, 6),),
            "branches": 2,
            "conv_fractions": (0.3, 1.0),
            "method": "lstsq",
        },
        "full": {
            "targets": ((4, 4), (6, 6, 6), (8, 8, 8, 8), (12, 12, 12), (16, 16), (16, 16, 16, 16)),
            "fractions": FRACTIONS,
            "densities": DENSITIES,
            "residual": ((6, 6, 6), (8, 8, 8)),
            "branches": 2,
            "conv_fractions": FRACTIONS,
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
    cases += [(tuple(t), 1.0, 0, method, density) for t in targets for density in sizes["densities"]]
    branches = sizes["branches"]
    cases += [(tuple(t), fraction, 0, method, 1.0, branches) for t in sizes["residual"] for fraction in fractions]
    rows = sweep.map(frontier_case, cases)
    rows += sweep.map(conv_case, [(fraction, 0, method) for fraction in sizes["conv_fractions"]])
    for row in rows:  # exact exactly where the width and the mask allow it (a generic frozen network)
        expected = row["fraction"] >= 1 and row["matching"]
        row["passed"] = row["holds"] and row["observed"] <= row["bound"] and row["exact"] == expected
    failures = first_failures(
        rows,
        lambda r: {
            "case": f"{r['route']} target {r['widths']}, width {r['fraction']}, density {r['density']}",
            "reason": f"holds={r['holds']} observed {r['observed']:.3g} bound {r['bound']:.3g} exact={r['exact']}",
            "reproduce": python_command(*_reproduce(r)),
        },
        failing=lambda r: not r["passed"],
    )
    below = [r for r in rows if not r["exact"] and "trained_10x" in r]  # the convolutional rows train nothing
    figures = {
        "cases": len(rows),
        "sound": sum(r["observed"] <= r["bound"] for r in rows),
        "paper": sum(r["fraction"] >= 1 and r["density"] == 1 for r in rows),
        "exact_at_paper": sum(r["exact"] for r in rows if r["fraction"] >= 1 and r["density"] == 1),
        "residual": sum(r["route"].startswith("Case 2") for r in rows),
        "convolutional": sum(r["route"] == "convolutional" for r in rows),
        "sparse": sum(r["density"] < 1 for r in rows),
        "sparse_below_matching": sum(r["density"] < 1 and not r["matching"] for r in rows),
        "training_beats_bound": sum(r["trained_10x"] < r["bound"] for r in below),
        "training_beats_observed": sum(r["trained_10x"] < r["observed"] for r in below),
        "training_1x_beats_observed": sum(r["trained_1x"] < r["observed"] for r in below),
    }
    statement = (
        f"targets {', '.join(str(list(t)) for t in targets)} at odd widths {list(fractions)} of the paper width, and "
        f"sparse at the paper width with densities {list(sizes['densities'])}, and Case 2 residual networks "
        f"({sizes['branches']} branches per stage) for {', '.join(str(list(t)) for t in sizes['residual'])} at the "
        "same widths, and a convolutional network (two convolutions and an average pool, on a box) at widths "
        f"{list(sizes['conv_fractions'])}: every approximate certificate holds, "
        "the observed error on fresh points of the unit ball is never above the certified bound, and the result is "
        "exact exactly where the width and the mask's matching allow it"
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
