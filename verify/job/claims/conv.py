"""Claims ``conv/exact/<mode>``, ``conv/tight/<mode>`` and ``conv/sparse``: convolutional targets (docs/design.md §9).

* ``conv/exact/<mode>``: random CNN targets in torch (kernel sizes 1–5, strides 1–2, paddings 0, 1 and
  ``"same"``, dilations 1–2, 1–3 conv layers, max/avg pooling, a Linear head, with and without a
  target BatchNorm) on ``[0, 1]^{C×H×W}``; ``frozen_like(target, width=mode)`` and
  ``fit_norm_layers``; the certificate holds with a finite rigorous bound (docs/design.md §6.7) and
  torch's own forward of the tuned frozen module stays within it on fresh images, a quarter of them
  box corners: ``max |g − f| <= error_bound``, ``max |g − f| / max |f| <= rtol`` and
  ``|g − f| <= tolerance · (|g| + |f|)`` (the certificate's evaluation tolerance); the bound, bound / scale
  and bound / observed are reported.
* ``conv/tight/<mode>``: one channel below the mode's width in one conv block, ``reconstruct`` raises
  `InfeasibleError` naming the block, and the block's flattened-kernel system is shown unsolvable by
  independent linear algebra (`verify.job.claims.tight`'s evidence, above ``sqrt(eps)``).
* ``conv/sparse``: on Bernoulli-masked frozen kernels, the maximum matching size of the block equals the
  numerical rank of its Khatri–Rao matrix.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

import verify
from verify.core.conv_blocks import conv_blocks
from verify.core.conv_networks import odd_widths
from verify.core.errors import InfeasibleError
from verify.job.claim import Claim, by_depth, first_failures, sci, worst
from verify.job.claims.sparse_rank import matching_and_rank, rank_agreement
from verify.job.claims.tight import SEPARATION, khatri_rao_residual, minimal_system_separation
from verify.job.config import Config
from verify.job.progress import Sweep
from verify.job.registry import Section, Table, register
from verify.nn import fit_norm_layers, frozen_like

__all__ = ["conv_exact_case", "conv_sparse_case", "conv_tight_case", "random_cnn"]


def random_cnn(case: int) -> tuple[nn.Sequential, tuple[int, int, int], str]:
    """A random float64 CNN target (seeded by ``case``), its input shape and a description."""
    rng = np.random.default_rng([1212, case])
    while True:
        size = int(rng.integers(8, 13))
        channels = [int(rng.integers(1, 3))] + [int(rng.integers(1, 4)) for _ in range(int(rng.integers(1, 4)))]
        norm, head = bool(rng.integers(0, 2)), bool(rng.integers(0, 2))
        torch.manual_seed(int(rng.integers(2**31)))
        layers: list[nn.Module] = []
        parts = []
        for k in range(1, len(channels)):
            kernel, stride, dilation = int(rng.integers(1, 6)), int(rng.integers(1, 3)), int(rng.integers(1, 3))
            padding = [0, 1, "same"][int(rng.integers(0, 3 if stride == 1 else 2))]
            layers.append(
                nn.Conv2d(channels[k - 1], channels[k], kernel, stride=stride, padding=padding, dilation=dilation)
            )
            parts.append(f"conv{kernel}/s{stride}/p{padding}/d{dilation}")
            last = k == len(channels) - 1 and not head
            if norm and k == 1:
                bn = nn.BatchNorm2d(channels[k])
                with torch.no_grad():
                    bn.running_mean.uniform_(-0.5, 0.5)
                    bn.running_var.uniform_(0.5, 2.0)
                    bn.weight.uniform_(0.5, 1.5)
                    bn.bias.uniform_(-0.5, 0.5)
                layers.append(bn)
                parts.append("bn")
            if not last:
                layers.append(nn.ReLU())
                if k == 1 and rng.integers(0, 2):
                    pool = nn.MaxPool2d(2) if rng.integers(0, 2) else nn.AvgPool2d(2)
                    layers.append(pool)
                    parts.append(type(pool).__name__)
        if head:
            layers += [nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(4 * channels[-1], int(rng.integers(1, 4)))]
            parts.append("head")
        target = nn.Sequential(*layers).double().eval()
        shape = (channels[0], size, size)
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Using padding='same'")  # torch's note on even kernels
                target(torch.zeros(1, *shape, dtype=torch.double))
        except RuntimeError:  # the kernels do not fit this input size: draw again
            continue
        return target, shape, f"{size}x{size}: " + " ".join(parts)


def conv_exact_case(mode: str, case: int, points: int) -> dict[str, Any]:
    """One random CNN: fit, certificate, torch forward on fresh images; a failure is recorded, never raised."""
    start = time.perf_counter()
    target, shape, description = random_cnn(case)
    record: dict[str, Any] = {"case": case, "target": description}
    try:
        frozen = frozen_like(target, width=mode, seed=case)
        result = fit_norm_layers(frozen, target, verify.Box(0, 1, shape=shape), mode=mode)
        record["widths"] = list(result.target.widths)
        generator = torch.Generator().manual_seed(2000 + case)
        x = torch.rand(points, *shape, dtype=torch.double, generator=generator)
        x[: points // 4] = torch.round(x[: points // 4])  # box corners: every pixel at 0 or 1
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Using padding='same'")  # torch's note on even kernels
            f, g = target(x).reshape(points, -1).numpy(), frozen(x).reshape(points, -1).numpy()
        flat = x.numpy().reshape(points, -1)
        size = result.frozen.magnitude(flat, result.gamma, result.beta).reshape(points, -1)
        size = size + result.target.magnitude(flat).reshape(points, -1)
        certificate = result.certificate
        relative = float(np.abs(g - f).max() / np.abs(f).max()) if np.abs(f).max() > 0 else float(np.abs(g - f).max())
        ratio = float(np.max(np.abs(g - f) / size))
        observed, bound = float(np.abs(g - f).max()), certificate.error_bound
        record |= {
            "error_bound": bound,
            "bound_over_f_max": certificate.relative_error_bound,
            "bound_over_scale": certificate.bound_over_scale,
            "bound_over_observed": bound / observed if observed > 0 else float("inf"),
            "within_bound": bool(observed <= bound),
            "holds": bool(certificate.holds),
            "relative_error": relative,
            "error_over_tolerance": ratio / certificate.sampled.tolerance,
            "max_condition": float(certificate.max_condition),
            "min_margin": float(certificate.min_margin),
        }
        record["passed"] = (
            record["holds"]
            and record["within_bound"]
            and relative <= certificate.rtol
            and ratio <= certificate.sampled.tolerance
        )
        if not record["passed"]:
            record["reason"] = (
                f"holds={record['holds']}, observed {observed:.3g} vs bound {bound:.3g}, rel. error {relative:.3g}, "
                f"error/tolerance {ratio:.3g}"
            )
    except Exception as error:  # any error fails this case only
        record |= {"passed": False, "holds": False, "reason": f"{type(error).__name__}: {error}"}
        record.setdefault("widths", [0, 0])
    record["seconds"] = time.perf_counter() - start
    return record


def _exact_figures(cases: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [c for c in cases if "relative_error" in c]
    return {
        "cases": len(cases),
        "passed": sum(c["passed"] for c in cases),
        "max_relative_error": worst(ok, "relative_error") if ok else float("nan"),
        "max_error_over_tolerance": worst(ok, "error_over_tolerance") if ok else float("nan"),
        "max_condition": worst(ok, "max_condition") if ok else float("nan"),
        "max_bound_over_f_max": worst(ok, "bound_over_f_max") if ok else float("nan"),
        "max_bound_over_scale": worst(ok, "bound_over_scale") if ok else float("nan"),
        "median_bound_over_observed": _median(ok, "bound_over_observed"),
        "min_bound_over_observed": worst(ok, "bound_over_observed", min) if ok else float("nan"),
        "min_margin": worst(ok, "min_margin", min) if ok else float("nan"),
        "seconds": sum(c["seconds"] for c in cases),
    }


def _median(cases: list[dict[str, Any]], key: str) -> float:
    values = [c[key] for c in cases if np.isfinite(c[key])]
    return float(np.median(values)) if values else float("nan")


def _exact_table(claims: Sequence[Claim]) -> Table:
    rows = [
        [
            claim.name.split("/")[2],
            str(r["depth"]),
            str(r["cases"]),
            f"{r['passed']}/{r['cases']}",
            sci(r["max_relative_error"]),
            sci(r["max_error_over_tolerance"]),
            sci(r["max_condition"]),
            sci(r["max_bound_over_f_max"]),
            sci(r["max_bound_over_scale"]),
            sci(r["median_bound_over_observed"]),
            sci(r["min_bound_over_observed"]),
            f"{r['seconds']:.2f}",
        ]
        for claim in claims
        for r in claim.rows
    ]
    header = [
        "mode",
        "layers",
        "targets",
        "pass",
        "max rel err",
        "worst err/tol",
        "max cond",
        "bound/f_max",
        "bound/scale",
        "median bound/obs",
        "min bound/obs",
        "time (s)",
    ]
    title = "CNN targets: torch forward of the tuned frozen module on fresh images (rel err = max|g-f| / max|f|)"
    return Table(header, rows, title=title, labels=2)


_INTRO = """\
Per case: a random float64 `nn.Sequential` CNN (`verify.job.claims.conv.random_cnn(case)`: 8x8 to 12x12
inputs with 1-2 channels, 1-3 Conv2d layers of 1-3 channels, kernel 1-5, stride 1-2, padding 0/1/"same",
dilation 1-2, a BatchNorm2d after the first conv in about half the cases, max or average pooling after the
first ReLU in about half, an AdaptiveAvgPool2d(2) + Flatten + Linear head in about half), then
`frozen_like(target, width=mode, seed=case)` and `fit_norm_layers(frozen, target, Box(0, 1, shape=...),
mode=mode)`, then torch's forward of both modules on {sizes} fresh images (a quarter of them box corners).
The certificate carries the rigorous bound of the network's graph (docs/design.md §6.7), which every fresh
image must respect (bound/obs >= 1). `conv/tight/*` removes one channel from one conv block's odd layer and
checks the refusal with tight/*'s independent evidence; `conv/sparse` compares matching size and numerical
rank on masked conv blocks."""


@register(
    "conv/exact/{mode}",
    order=70,
    statement=(
        "Random CNN targets (kernels 1-5, strides 1-2, paddings 0/1/same, dilations 1-2, 1-3 conv layers, "
        "pooling, Linear head, target BatchNorm folded) on [0,1]^{CxHxW}: frozen_like + fit_norm_layers "
        "certify with a finite rigorous bound, and torch's forward of the tuned frozen module stays within it "
        "on fresh images, corners included."
    ),
    summary=(
        "{passed}/{cases} CNN targets pass; max |g-f|/max|f| {max_relative_error:sci} on fresh images (torch "
        "forward); worst error/tolerance {max_error_over_tolerance:sci}; max condition {max_condition:sci}; "
        "bound/f_max <= {max_bound_over_f_max:sci} (bound/scale {max_bound_over_scale:sci}), median bound/observed "
        "{median_bound_over_observed:sci}"
    ),
    sizes={"quick": {"cases": 64, "points": 128}, "full": {"cases": 300, "points": 512}},
    table=_exact_table,
    section=Section("Convolutional networks", 75, intro=(_INTRO.replace("{sizes}", "128 (512 with --full)"),)),
)
def run_exact(config: Config, name: str, sweep: Sweep) -> Claim:
    """Check ``conv/exact/<mode>`` on ``cases`` random CNN targets."""
    mode = name.split("/")[2]
    start = time.perf_counter()
    sizes = config.sizes_for("conv/exact")
    cases = sweep.map(conv_exact_case, [(mode, case, sizes["points"]) for case in range(sizes["cases"])])
    failures = first_failures(cases, lambda c: {"case": f"case {c['case']}: {c['target']}", "reason": c["reason"]})
    figures = _exact_figures(cases)
    statement = (
        f"mode {mode!r}: on {figures['cases']} random CNN targets the certificate holds and torch's forward of the "
        f"tuned frozen module stays within its certified error bound on {sizes['points']} fresh images (corners "
        "included), within rtol and the rounding tolerance"
    )
    passed = figures["passed"] == figures["cases"] > 0
    return Claim.checked(
        name,
        statement,
        passed,
        figures,
        config.command(name),
        started=start,
        rows=by_depth(cases, _exact_figures),
        failures=failures,
    )


def conv_tight_case(mode: str, case: int) -> dict[str, Any]:
    """One channel below ``mode``'s width in one conv block of a random CNN: refused and unsolvable."""
    start = time.perf_counter()
    target_module, shape, description = random_cnn(case)
    record: dict[str, Any] = {"case": case, "target": description}
    try:
        from verify.nn.frozen_like import read_target_layers

        target = verify.ConvTargetNetwork(read_target_layers(target_module), shape)
        record["widths"] = list(target.widths)
        widths = odd_widths(mode, target.affine)
        block = 1 + int(np.random.default_rng(case).integers(0, target.depth))
        widths[block - 1] -= 1
        if widths[block - 1] < 1:
            record |= {"passed": True, "refused": True, "unsolvable": True, "evidence": float("inf"), "skipped": True}
            record["seconds"] = time.perf_counter() - start
            return record
        frozen = verify.ConvFrozenNetwork.for_target(target, widths, seed=1000 + case)
        try:
            verify.reconstruct(target, frozen, verify.Box(0, 1, shape=shape), mode=mode)
            refused, reason = False, "reconstruct returned a result"
        except InfeasibleError as error:
            refused, reason = error.block == block, str(error)
        equation = next(b for b in conv_blocks(target, frozen) if b.k == block).equation
        if mode == "paper":
            evidence = khatri_rao_residual(equation.a, equation.b, equation.w)
        else:
            evidence = minimal_system_separation(equation.a, equation.b, equation.w)[0]
        unsolvable = bool(evidence > SEPARATION)
        record |= {"refused": refused, "unsolvable": unsolvable, "evidence": evidence, "block": block}
        record["passed"] = refused and unsolvable
        if not record["passed"]:
            record["reason"] = f"block {block}: refused={refused} ({reason}); evidence {evidence:.3g}"
    except Exception as error:
        record |= {"passed": False, "refused": False, "unsolvable": False, "reason": f"{type(error).__name__}: {error}"}
        record.setdefault("widths", [0, 0])
    record["seconds"] = time.perf_counter() - start
    return record


@register(
    "conv/tight/{mode}",
    order=71,
    statement=(
        "One channel below the mode's width in one conv block, reconstruct raises InfeasibleError naming the block "
        "and the flattened-kernel system has no solution (independent evidence > sqrt(eps))."
    ),
    summary="{refused}/{blocks} conv blocks refused, {unsolvable}/{blocks} unsolvable; min evidence {min_evidence:sci}",
    sizes={"quick": {"cases": 64}, "full": {"cases": 300}},
)
def run_tight(config: Config, name: str, sweep: Sweep) -> Claim:
    """Check ``conv/tight/<mode>`` on ``cases`` random CNN targets, one block each."""
    mode = name.split("/")[2]
    start = time.perf_counter()
    cases = [c for c in sweep.map(conv_tight_case, [(mode, c) for c in range(config.sizes_for("conv/tight")["cases"])])]
    tested = [c for c in cases if not c.get("skipped")]
    figures = {
        "blocks": len(tested),
        "refused": sum(c["refused"] for c in tested),
        "unsolvable": sum(c["unsolvable"] for c in tested),
        "min_evidence": worst(tested, "evidence", min) if tested else float("nan"),
        "skipped": len(cases) - len(tested),
    }
    failures = first_failures(cases, lambda c: {"case": f"case {c['case']}: {c['target']}", "reason": c["reason"]})
    passed = all(c["passed"] for c in cases) and len(tested) > 0
    statement = (
        f"one channel below the {mode} width in one conv block of {len(tested)} random CNNs: InfeasibleError naming "
        f"the block, and the block's system is unsolvable (evidence > sqrt(eps) = {SEPARATION:.2g})"
    )
    return Claim.checked(name, statement, passed, figures, config.command(name), started=start, failures=failures)


def conv_sparse_case(case: int) -> dict[str, Any]:
    """A random conv layer and a masked frozen pair (seeded by ``case``): matching size and numerical rank."""
    rng = np.random.default_rng([1213, case])
    c_in, c_out, kernel = (int(v) for v in rng.integers(1, 4, 3))
    conv = verify.Conv.build(rng.standard_normal((c_out, c_in, kernel, kernel)), padding=int(rng.integers(0, 2)))
    target = verify.ConvTargetNetwork([conv], (c_in, 6, 6))
    density = float(rng.uniform(0.1, 1.0))
    factor = float(rng.uniform(0.5, 2.0))
    frozen = verify.ConvFrozenNetwork.for_target(target, factor, seed=case, density=density)
    equation = next(conv_blocks(target, frozen)).equation
    matching, rank = matching_and_rank(equation.a, equation.b)
    return {
        "case": f"case {case}: C_in={c_in} C_out={c_out} k={kernel} n={equation.n} p={density:.2f}",
        "matching": matching,
        "rank": rank,
    }


@register(
    "conv/sparse",
    order=72,
    statement="Maximum matching size = numerical rank of masked conv blocks (flattened kernels).",
    summary="{agree}/{cases} masked conv blocks: matching size = numerical rank",
    sizes={"quick": {"cases": 300}, "full": {"cases": 1500}},
)
def run_sparse(config: Config, name: str, sweep: Sweep) -> Claim:
    """Check ``conv/sparse`` on ``cases`` random masked conv blocks."""
    start = time.perf_counter()
    cases = config.sizes_for("conv/sparse")["cases"]
    results = sweep.map(conv_sparse_case, [(case,) for case in range(cases)])
    agree, failures = rank_agreement(results)
    statement = (
        f"maximum matching size equals the numerical rank of the Khatri–Rao matrix of {cases} masked conv blocks "
        "(kernels 1-3, C_in, C_out <= 3, odd width 0.5-2x paper, density 0.1-1)"
    )
    figures = {"cases": cases, "agree": agree}
    return Claim.checked(
        name, statement, agree == cases, figures, config.command(name), started=start, failures=failures
    )
