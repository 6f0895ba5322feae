"""Claim ``graph/classes``: targets written as classes are reconstructed exactly (docs/design.md §10).

Each model of `verify.job.graph_models` (functional ReLU, a wrapped Sequential with a leading
Flatten, a residual MLP with folded BatchNorm, branches joined by ``torch.cat`` and pooling, a CNN
with a folded BatchNorm2d, max pooling, a strided convolution and ``view``) is read
with torch.fx, its frozen graph built by ``frozen_like`` (paper width, seed ``1000 + s``) and
fitted by the graph route (`verify.nn.graph_fit.fit_graph`, what ``fit_norm_layers`` calls for graphs
that are not chains; chain classes are read as a Sequential there) on the box ``[-1, 1]^d``. Passed
when the graph's certificate holds (bound within rtol = 1e-6 of f_max, the target's largest output on
the certificate's sample points; ``bound / scale`` against the interval figure is reported) and torch's own
forwards of both modules, on fresh points of the box (``2000 + s``, half on its boundary, corners
included), differ by no more than the bound the result derives.

Sizes: ``models``, names of `verify.job.graph_models.MODELS`.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch

import verify
from verify.job.claim import Claim, first_failures, python_command
from verify.job.config import Config
from verify.job.graph_models import MODELS, build, domain_of
from verify.job.progress import Sweep
from verify.job.registry import Section, register, statement_and_rows
from verify.nn import frozen_like
from verify.nn.graph_fit import fit_graph

__all__ = ["graph_case", "graph_claim"]


def graph_case(model: str, seed: int, points: int, rtol: float = 1e-6) -> dict[str, Any]:
    """One model class reconstructed (certified at ``rtol`` of f_max) and checked on fresh points; never raises."""
    case: dict[str, Any] = {"model": model, "seed": seed}
    try:
        start = time.perf_counter()
        target = build(model, seed)
        lo, hi, shape = domain_of(model)
        domain = verify.Box(np.full(shape, lo), np.full(shape, hi))
        frozen = frozen_like(target, seed=1000 + seed)
        result = fit_graph(frozen, target, domain, rtol=rtol)
        seconds = time.perf_counter() - start
        x = torch.tensor(domain.sample(points, np.random.default_rng(2000 + seed)).reshape(points, *shape))
        with torch.no_grad():
            f, g = target(x), frozen(x)
        error = float((g - f).abs().max())
        case |= {
            "holds": result.holds,
            "depth": result.depth,
            "pairs": len(result.nodes),
            "max_shift_ratio": result.max_shift_ratio,
            "relative_bound": result.relative_error_bound,
            "bound_over_scale": result.bound_over_scale,
            "error_over_bound": error / result.error_bound if result.error_bound > 0 else float(error > 0),
            "relative_error": error / float(f.abs().max()),
            "seconds": seconds,
        }
        case["passed"] = case["holds"] and error <= result.error_bound
        if not case["passed"]:
            case["reason"] = f"max |g - f| = {error:.3g} on fresh points, bound {result.error_bound:.3g}"
    except Exception as error:  # recorded as this case's failure, with its reason
        case |= {"passed": False, "reason": f"{type(error).__name__}: {error}"}
    return case


_COLUMNS = {
    "model": "model",
    "cases": "cases",
    "depth": "depth",
    "max shift / signal": "max_shift_ratio",
    "bound / f_max": "relative_bound",
    "bound / scale": "bound_over_scale",
    "max |g−f| / max |f|": "relative_error",
    "worst error / bound": "error_over_bound",
}

_STATEMENT = """\
MLP and CNN targets written as classes (functional ReLU, wrapped Sequentials,
leading Flatten, residual additions, cat, pooling, view) are exact: torch's
forwards agree within the derived bound on fresh points of the box."""


@register(
    "graph/classes",
    order=60,
    statement=_STATEMENT,
    summary=(
        "{passed}/{cases} cases exact; bound/f_max up to {relative_bound:sci} (bound/scale {bound_over_scale:sci}), "
        "max |g-f|/max|f| {relative_error:sci}, worst error/bound {error_over_bound:sci}"
    ),
    sizes={"quick": {"models": tuple(MODELS)}, "full": {"models": tuple(MODELS)}},
    section=Section("Models written as classes", 60, statement_and_rows(_COLUMNS)),
)
def run(config: Config, name: str, sweep: Sweep) -> Claim:
    """Check ``graph/classes`` (see the module docstring), cases through ``sweep``."""
    start = time.perf_counter()
    models = config.sizes_for("graph/classes")["models"]
    return graph_claim(
        config,
        name,
        sweep,
        models,
        start,
        "MLP and CNN targets written as classes",
        "fresh points of the box, corners included",
    )


def graph_claim(
    config: Config,
    name: str,
    sweep: Sweep,
    models: tuple[str, ...],
    start: float,
    what: str,
    where: str,
    rtol: float = 1e-6,
) -> Claim:
    """Run `graph_case` for every model and seed (certified at ``rtol``), and summarize: rows per model, figures,
    first failures."""
    results = sweep.map(graph_case, [(model, seed, config.points, rtol) for model in models for seed in config.seeds])
    done = [r for r in results if "holds" in r]
    keys = ("max_shift_ratio", "relative_bound", "bound_over_scale", "relative_error", "error_over_bound")

    def worst(rows: list[dict[str, Any]], key: str) -> float:
        return max((r[key] for r in rows), default=math.nan)

    rows = [
        {
            "model": model,
            "cases": len(at),
            "depth": max((r["depth"] for r in at), default=0),
            **{key: worst(at, key) for key in keys},
        }
        for model in models
        for at in [[r for r in done if r["model"] == model]]
    ]
    figures = {
        "cases": len(results),
        "passed": sum(r["passed"] for r in results),
        "depth": max((r["depth"] for r in done), default=0),
        **{key: worst(done, key) for key in keys},
        "seconds": sum(r.get("seconds", 0.0) for r in results),
    }
    failures = first_failures(
        results,
        lambda r: {
            "case": f"{r['model']} seed={r['seed']}",
            "reason": r["reason"],
            "reproduce": python_command(
                "import verify, numpy as np",
                "from verify.job.graph_models import build, domain_of",
                "from verify.nn import frozen_like",
                "from verify.nn.graph_fit import fit_graph",
                f"t = build({r['model']!r}, {r['seed']})",
                f"lo, hi, s = domain_of({r['model']!r})",
                f"print(fit_graph(frozen_like(t, seed={1000 + r['seed']}), t, "
                f"verify.Box(np.full(s, lo), np.full(s, hi)), rtol={rtol!r}).to_dict())",
            ),
        },
    )
    statement = (
        f"{what} ({', '.join(models)}) are reconstructed node by node and certified (bound within rtol = {rtol:g} "
        f"of f_max); torch's forwards agree within the derived bound on {config.points} {where}"
    )
    passed = bool(results) and figures["passed"] == len(results)
    return Claim.checked(
        name, statement, passed, figures, config.command(name), started=start, rows=rows, failures=failures
    )
