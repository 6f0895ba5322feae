"""Benchmarks: `nox -s bench` (or `python benchmarks/bench.py`).

Every line is measured in this run: absolute wall time, peak traced memory (tracemalloc, which
numpy reports its buffers to), and a ratio against a baseline measured in the same run on the same
instance. Machines are shared and noisy: each timing is the best of a few repeats, and nothing
here is asserted; the figures are for reading and for the closing notes.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from solver_probe import bench_solver_probe

import verify
from verify.core.feasibility import block_feasibility


def measure(function: Callable[[], object], repeats: int = 3) -> tuple[float, float, object]:
    """Best wall time over ``repeats`` runs, peak traced memory (MiB) over them, and the last result."""
    best = np.inf
    result = None
    tracemalloc.start()
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return best, peak, result


def _random_block(d: int, factor: float, density: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = int(np.ceil(factor * d * d))
    a = rng.standard_normal((d, n)) * (rng.uniform(size=(d, n)) < density)
    b = rng.standard_normal((n, d)) * (rng.uniform(size=(n, d)) < density)
    return a, b, rng.standard_normal((d, d))


def bench_feasibility(table: Table) -> None:
    """Matching-based feasibility against the numerical rank of the explicit Khatri–Rao matrix."""
    for d in (16, 24, 32):
        a, b, w = _random_block(d, 2.0, 0.3, seed=d)
        t_match, m_match, decision = measure(lambda a=a, b=b, w=w: block_feasibility(a, b, w, "paper", block=1))
        t_rank, m_rank, rank = measure(lambda a=a, b=b: np.linalg.matrix_rank(verify.khatri_rao(a, b)), repeats=1)
        agree = "agree" if rank == decision.rank else f"DISAGREE ({rank} vs {decision.rank})"
        table.add_row(
            f"feasibility d={d}, n=2d², p=0.3",
            f"{t_match:.3f} s",
            f"{m_match:.0f} MiB",
            f"{t_rank / t_match:.0f}x faster than SVD rank ({t_rank:.2f} s, {m_rank:.0f} MiB)",
            f"rank {decision.rank}/{decision.needed}, {agree}",
        )
    target = verify.TargetNetwork.random([64, 64], seed=0)
    for density in (0.05, 0.1, 0.3, 0.9, 1.0):
        frozen = verify.FrozenNetwork.for_target(target, width=2.0, density=density, seed=1)
        t, m, report = measure(lambda frozen=frozen: verify.feasibility(target, frozen))
        block = report.blocks[0]
        table.add_row(
            f"feasibility d=64, n=2d²={block.width}, p={density}",
            f"{t:.3f} s",
            f"{m:.0f} MiB",
            "(dense SVD baseline: K is 4096x8192, not run)",
            f"rank {block.rank}/{block.needed}, ok={report.ok}",
        )


def _relative_error(a: np.ndarray, b: np.ndarray, w: np.ndarray, gamma: np.ndarray) -> float:
    return float(np.linalg.norm((a * gamma) @ b - w) / np.linalg.norm(w))


def _dense_block(d: int, factor: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return _random_block(d, factor, 1.0, seed)


def bench_solvers(table: Table) -> None:
    """docs/design.md §5: iterative vs lstsq, iterative at scale, operator GFLOP/s, direct, exact rationals."""
    from verify.core.scale_equation import KhatriRaoOperator
    from verify.solvers.exact import solve_exact
    from verify.solvers.registry import solve_with

    for d in (32, 48, 64):
        a, b, w = _dense_block(d, 2.0, seed=d)
        t_it, m_it, it = measure(lambda a=a, b=b, w=w: solve_with("iterative", a, b, w, block=1), repeats=2)
        t_ls, m_ls, ls = measure(lambda a=a, b=b, w=w: solve_with("lstsq", a, b, w, block=1), repeats=1)
        table.add_row(
            f"iterative vs lstsq, d={d}, n=2d²={2 * d * d}",
            f"{t_it:.2f} s",
            f"{m_it:.0f} MiB",
            f"{t_ls / t_it:.0f}x faster than lstsq ({t_ls:.1f} s, {m_ls:.0f} MiB)",
            f"rel err {_relative_error(a, b, w, it.scale):.1e} (lstsq {_relative_error(a, b, w, ls.scale):.1e}), "
            f"{it.diagnostics['iterations']} LSMR iterations",
        )
    for d in (128, 256):
        a, b, w = _dense_block(d, 2.0, seed=d)
        t_it, m_it, it = measure(lambda a=a, b=b, w=w: solve_with("iterative", a, b, w, block=1), repeats=1)
        table.add_row(
            f"iterative at scale, d={d}, n=2d²={2 * d * d}",
            f"{t_it:.1f} s",
            f"{m_it:.0f} MiB",
            "goal: d=256 under 120 s and 4096 MiB",
            f"rel err {_relative_error(a, b, w, it.scale):.1e}, {it.diagnostics['iterations']} LSMR iterations",
        )
    d = 128
    a, b, _ = _dense_block(d, 2.0, seed=1)
    operator = KhatriRaoOperator(a, b)
    gamma, residual = np.ones(a.shape[1]), np.ones(d * d)
    t_op, _, _ = measure(lambda: (operator.matvec(gamma), operator.rmatvec(residual)), repeats=5)
    flops = 2 * (2 * d * a.shape[1] * d)
    square = np.random.default_rng(0).standard_normal((2048, 2048))
    t_gemm, _, _ = measure(lambda: square @ square, repeats=5)
    peak = 2 * 2048**3 / t_gemm / 1e9
    achieved = flops / t_op / 1e9
    table.add_row(
        f"operator matvec+rmatvec, d={d}, n={a.shape[1]}",
        f"{t_op * 1e3:.1f} ms",
        "",
        f"{achieved / peak:.2f} of numpy GEMM peak ({peak:.1f} GFLOP/s, 2048² matmul)",
        f"{achieved:.1f} GFLOP/s",
    )
    for d in (32, 48):
        a, b, w = _dense_block(d, 1.0, seed=d)
        t_di, m_di, di = measure(lambda a=a, b=b, w=w: solve_with("direct", a, b, w, block=1), repeats=2)
        t_ls, _, ls = measure(lambda a=a, b=b, w=w: solve_with("lstsq", a, b, w, block=1), repeats=1)
        table.add_row(
            f"direct at exact width, d={d}, n=d²={d * d}",
            f"{t_di:.2f} s",
            f"{m_di:.0f} MiB",
            f"{t_ls / t_di:.1f}x faster than lstsq ({t_ls:.2f} s)",
            f"rel err {_relative_error(a, b, w, di.scale):.1e} (lstsq {_relative_error(a, b, w, ls.scale):.1e})",
        )
    for d in (8, 16):
        a, b, w = _dense_block(d, 1.0, seed=d)
        t_ex, m_ex, (ex, _) = measure(lambda a=a, b=b, w=w: solve_exact(a, b, w, block=1), repeats=1)
        t_ls, _, _ = measure(lambda a=a, b=b, w=w: solve_with("lstsq", a, b, w, block=1), repeats=3)
        table.add_row(
            f"exact rationals, one block, d={d}, n=d²={d * d}",
            f"{t_ex:.2f} s",
            f"{m_ex:.0f} MiB",
            f"{t_ex / t_ls:.0f}x slower than lstsq ({t_ls * 1e3:.1f} ms)",
            f"residual exactly 0; denominators up to {ex.diagnostics['max_denominator_bits']} bits",
        )


def _minimal_system(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Minimal mode's equilibrated system ``[W-part | −K]`` (unit-norm columns), as `solve_minimal` builds it."""
    from verify.core.scale_equation import ScaleEquation

    d_out, d_in = w.shape
    weight_part = np.zeros((d_out, d_in, d_out))
    weight_part[np.arange(d_out), :, np.arange(d_out)] = w
    system = np.hstack([weight_part.reshape(d_out * d_in, d_out), -ScaleEquation(a, b, w).k])
    return system / np.linalg.norm(system, axis=0)


def _old_svd_null_space(scaled: np.ndarray) -> tuple[np.ndarray, int]:
    """The former minimal-mode factorization, kept here only for the comparison: full SVD, null basis, rank."""
    import scipy.linalg

    from verify.core.tolerances import numerical_rank

    _, s, vt = scipy.linalg.svd(scaled, full_matrices=True)
    rank = numerical_rank(s, scaled.shape)
    return vt[rank:].T, rank


def bench_minimal(table: Table) -> None:
    """Minimal mode against paper mode on a digits-sized block (d_out=32, d_in=64: 2048 equations), same run."""
    from verify.core.networks import minimal_width, paper_width
    from verify.solvers.minimal import _lu_null_space
    from verify.solvers.registry import choose, solve_with

    d_out, d_in = 32, 64
    rng = np.random.default_rng(0)
    w = rng.standard_normal((d_out, d_in))
    n_paper, n_minimal = paper_width(d_out, d_in), minimal_width(d_out, d_in)
    a_p, b_p = rng.standard_normal((d_out, n_paper)), rng.standard_normal((n_paper, d_in))
    a_m, b_m = rng.standard_normal((d_out, n_minimal)), rng.standard_normal((n_minimal, d_in))
    paper_method = choose(n_paper, d_out * d_in, d_out=d_out, d_in=d_in)
    t_paper, m_paper, paper = measure(lambda: solve_with(paper_method, a_p, b_p, w, block=1), repeats=3)
    t_min, m_min, minimal = measure(lambda: solve_with("minimal", a_m, b_m, w, block=1), repeats=3)
    residual = np.abs(w / minimal.row_scale[:, None] - (a_m * minimal.scale) @ b_m).max()
    table.add_row(
        f"minimal vs paper mode, d_out={d_out}, d_in={d_in} ({d_out * d_in} equations), n={n_minimal} vs {n_paper}",
        f"{t_min:.2f} s",
        f"{m_min:.0f} MiB",
        f"minimal/paper = {t_min / t_paper:.2f} (paper '{paper_method}' {t_paper:.2f} s, {m_paper:.0f} MiB)",
        f"{minimal.method}; max |diag(ρ)W − A diag(γ)B| = {residual:.1e}; paper rel err "
        f"{_relative_error(a_p, b_p, w, paper.scale):.1e}",
    )
    scaled = _minimal_system(a_m, b_m, w)
    t_lu, m_lu, lu = measure(lambda: _lu_null_space(scaled), repeats=3)
    t_svd, m_svd, (svd_basis, svd_rank) = measure(lambda: _old_svd_null_space(scaled), repeats=1)
    lu_basis = lu[0]
    agree = abs(abs(float(lu_basis[:, 0] @ svd_basis[:, 0])) - 1.0)
    table.add_row(
        f"minimal null space, {scaled.shape[0]}x{scaled.shape[1]}: one LU (after) vs full SVD (before)",
        f"{t_lu:.2f} s",
        f"{m_lu:.0f} MiB",
        f"{t_svd / t_lu:.0f}x faster than the full SVD ({t_svd:.2f} s, {m_svd:.0f} MiB)",
        f"rank {lu[1]} (SVD {svd_rank}); null vectors agree to 1 − |cos| = {agree:.1e}",
    )


def bench_training(table: Table) -> None:
    """Construction vs BN-only training (Adam on γ, β) on the same frozen network, 60 s budget."""
    from verify.job.claims.baseline import compare_with_training

    result = compare_with_training(budget=60.0)
    curve = result["curve"]
    marks = [f"{e:.2e} at {t:.0f} s" for t, e in zip(curve["seconds"], curve["relative_error"], strict=True)][
        :: max(1, len(curve["seconds"]) // 5)
    ]
    table.add_row(
        f"construction vs BN-only training, frozen {result['frozen_widths']}",
        f"{result['construction_seconds'] * 1e3:.1f} ms",
        "",
        f"training gets {result['time_ratio']:.0f}x the time ({result['training_budget_seconds']:.0f} s, "
        f"{result['training_steps']} steps) and ends {result['error_ratio']:.1e}x less accurate",
        f"construction error {result['construction_error']:.1e}; training best {result['training_best_error']:.2e}; "
        "curve: " + ", ".join(marks),
    )


BUSY = """
import numpy as np
x = np.random.default_rng(0).standard_normal((1024, 1024))
while True:
    x = np.tanh(x @ x)
"""
"""Another process's numerical work: 1024² matmuls with its BLAS's default threads, until killed."""


def bench_threads(table: Table) -> None:
    """docs/design.md §5: the same calls with BLAS limited to one thread (the default) and unlimited, alone and
    beside a busy process (a second Python doing BLAS matmuls with default threads). The machine's load average
    is printed with each row: "alone" is idle only if nothing else runs on the machine."""
    import os
    import subprocess
    import sys

    from threadpoolctl import threadpool_info

    from verify.core.networks import minimal_width
    from verify.solvers.registry import solve_with

    rng = np.random.default_rng(0)
    w_m = rng.standard_normal((32, 64))
    n_m = minimal_width(32, 64)
    a_m, b_m = rng.standard_normal((32, n_m)), rng.standard_normal((n_m, 64))
    a_i, b_i, w_i = _dense_block(48, 2.0, seed=48)
    calls = {
        "minimal mode, d_out=32, d_in=64 (2048 equations)": lambda: solve_with("minimal", a_m, b_m, w_m, block=1),
        "iterative (LSMR), d=48, n=2d²=4608": lambda: solve_with("iterative", a_i, b_i, w_i, block=1),
    }
    default = max((lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"), default=1)
    for load in ("no process of ours beside it", "beside a busy process"):
        busy = subprocess.Popen([sys.executable, "-c", BUSY]) if load.startswith("beside") else None
        try:
            if busy is not None:
                time.sleep(1.0)  # let it start computing
            for name, call in calls.items():
                with verify.blas_threads(None):
                    t_free, _, _ = measure(call, repeats=3)
                with verify.blas_threads(1):
                    t_one, m_one, _ = measure(call, repeats=3)
                table.add_row(
                    f"{name}, {load}",
                    f"{t_one:.2f} s",
                    f"{m_one:.0f} MiB",
                    f"unlimited/limited = {t_free / t_one:.2f} (unlimited: {default} BLAS threads, {t_free:.2f} s)",
                    f"limit 1 thread (the default, verify.blas_threads); 1-min load average {os.getloadavg()[0]:.1f} "
                    f"on {os.cpu_count()} CPUs (other users' work included)",
                )
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()


def bench_residual(table: Table) -> None:
    """Case 2 (docs/design.md §8): residual networks of m branches per stage against Case 1, d = 32, L = 2.

    Case 1 (a chain of width d², depth 2L) is the baseline, measured in this run on the same target. The
    result column gives the worst relative error ``max |g − f| / max |f|`` on fresh points and the largest
    ``cond(T)`` of the stream map.
    """
    d, depth = 32, 2
    target = verify.TargetNetwork.random([d] * (depth + 1), seed=0)
    x = verify.Ball(1.0).resolve(d).sample(512, np.random.default_rng(1))
    size = float(target.magnitude(x).max())
    frozen = verify.FrozenNetwork.for_target(target, width="paper", seed=1)
    base, m_base, result = measure(lambda: verify.reconstruct(target, frozen, verify.Ball(1.0)))
    error = float(np.abs(result.network(x) - target(x)).max()) / size
    table.add_row(
        f"Case 1 d={d}, L={depth}: width {d * d}, depth {2 * depth}",
        f"{base:.3f} s",
        f"{m_base:.0f} MiB",
        "baseline",
        f"max |g−f|/|f| {error:.2e}",
    )
    for m in (1, 2, 4, 8, 16, 32):
        residual = verify.ResidualFrozenNetwork.for_target(target, branches=m, width="paper", seed=1)
        t, peak, result = measure(lambda residual=residual: verify.reconstruct(target, residual, verify.Ball(1.0)))
        error = float(np.abs(result.network(x) - target(x)).max()) / size
        table.add_row(
            f"Case 2 d={d}, L={depth}, m={m}: width {d * d // m}, depth {residual.depth}",
            f"{t:.3f} s",
            f"{peak:.0f} MiB",
            f"{t / base:.2f}x Case 1's time, {peak / m_base:.2f}x its memory",
            f"max |g−f|/|f| {error:.2e}, max cond(T) {result.certificate.max_stream_condition:.2e}",
        )


def bench_resnet8(table: Table) -> None:
    """A ResNet-8-shaped target on [0, 1]^{3×32×32} reconstructed at 2× paper width (docs/design.md §10).

    Stem conv 3 → 16, three stages of one BasicBlock (16, 32, 64 channels, stride 2 in the last two),
    global average pooling, Linear head to 10 classes; float64. Reports the total time, the time per
    pair, the process's peak resident memory (torch's buffers are not seen by tracemalloc), and the
    relative error of torch's forwards on 256 images of the box (corners included).
    """
    import resource

    import torch

    from verify.job.graph_models import ResNet
    from verify.nn import fit_norm_layers, frozen_like

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        target = ResNet((16, 32, 64), 1, classes=10).double().eval()
    start = time.perf_counter()
    frozen = frozen_like(target, width=2.0, seed=1)
    built = time.perf_counter() - start
    box = verify.Box(np.zeros((3, 32, 32)), np.ones((3, 32, 32)))  # a box over images
    try:
        result = fit_norm_layers(frozen, target, box, samples=256)
        certificate, outcome, per_pair = result.certificate, "certified", [n.seconds for n in result.nodes]
    except verify.CertificateError as error:  # the refused certificate has the same figures, not the pairs' times
        certificate, outcome, per_pair = error.certificate, f"CertificateError: {error}", []
    total = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    rows, sampled = certificate.by_depth(), certificate.sampled
    times = ""
    if per_pair:
        times = f": median {np.median(per_pair):.1f} s, max {max(per_pair):.1f} s, sum {sum(per_pair):.0f} s"
    table.add_row(
        "ResNet-8, 2x paper width",
        f"{total:.0f} s",
        f"{peak:.1f} GiB (peak RSS)",
        f"{len(certificate.blocks)} pairs{times}; frozen built in {built:.1f} s",
        f"{outcome}; max |g-f|/max|f| {sampled.max_relative_error:.2e} on 256 images (max |f| "
        f"{sampled.output_size:.3g}); bound {certificate.error_bound:.2e}: {certificate.relative_error_bound:.2e} "
        f"of f_max {certificate.f_max:.3g}, {certificate.bound_over_scale:.2e} of the scale {certificate.scale:.3g}; "
        f"largest shift/signal {max(row['max_shift_ratio'] for row in rows):.3g}",
    )
    for row in rows:
        table.add_row(
            f"  depth {row['depth']} ({', '.join(row['nodes'])})",
            "",
            "",
            "",
            f"shift/signal {row['max_shift_ratio']:.3g}, bound/scale {row['bound_over_scale']:.2e}, "
            f"worst observed/bound {row['worst_error_ratio']:.2e}",
        )


def _public_model(name: str, width: float, make: Callable[[Any], Any], table: Table) -> None:
    """One model class written as public CIFAR code writes it (``tests/models_cifar.py``), seeded, float64, read
    as written by the graph route on [0, 1]^{3×32×32} at ``width`` × paper: total time (frozen built and fitted),
    the process's peak resident memory so far, and per pair its size, solver, LSMR iterations and time."""
    import resource
    import sys
    from pathlib import Path

    from verify.nn import fit_norm_layers, frozen_like

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the model classes the tests read
    import models_cifar

    target = models_cifar.seeded(make(models_cifar), 0)
    start, cpu = time.perf_counter(), time.process_time()
    frozen = frozen_like(target, width=width, seed=1)
    built = time.perf_counter() - start
    try:
        result = fit_norm_layers(frozen, target, verify.Box(0, 1, shape=(3, 32, 32)), samples=256)
        certificate, outcome, seconds = result.certificate, "certified", [n.seconds for n in result.nodes]
    except verify.CertificateError as error:  # the refused certificate has the same figures, not the pairs' times
        certificate, outcome, seconds = error.certificate, f"CertificateError: {error}", []
    total, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    label = f"{name}, {width:g}x paper width"
    table.add_row(
        label,
        f"{total:.0f} s ({cpu:.0f} s CPU: a shared machine's wall time counts others' work)",
        f"{peak:.2f} GiB (peak RSS so far)",
        f"{len(certificate.blocks)} pairs, frozen built in {built:.1f} s",
        f"{outcome}; max |g-f|/max|f| {certificate.sampled.max_relative_error:.2e} on 256 images; bound/scale "
        f"{certificate.error_bound / certificate.scale:.2e}",
    )
    for block, time_taken in itertools.zip_longest(certificate.blocks, seconds):
        table.add_row(
            f"  {block.extras['name']}: width {block.width}, {block.needed} equations",
            "" if time_taken is None else f"{time_taken:.1f} s",
            "",
            "",
            f"{block.solver}, LSMR iterations {block.diagnostics.get('iterations', '-')}",
        )


LONG_BENCHMARK_SECONDS = 600.0
"""A public-model benchmark whose solves are estimated longer than this is reported with its estimate, not run."""


def _estimated_solves(make: Any, width: float) -> tuple[float, str]:
    """The solves' estimated seconds for ``make``'s model at ``width`` × paper (`verify.solvers.planning`, the
    method ``auto`` would choose for each pair), and the largest pair's description."""
    import sys
    from pathlib import Path

    from torch import nn

    from verify.solvers.planning import estimate_seconds
    from verify.solvers.registry import choose

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import models_cifar

    total, worst = 0.0, (0.0, "")
    for name, layer in make(models_cifar).named_modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            d_out, d_in = layer.weight.shape[0], int(np.prod(layer.weight.shape[1:]))
            n = int(np.ceil(width * d_out * d_in))
            method = choose(n, d_out * d_in, d_out=d_out, d_in=d_in)
            seconds = estimate_seconds(method, n, d_out, d_in) or 0.0
            total += seconds
            worst = max(worst, (seconds, f"{name}: {d_out * d_in:,} equations, n = {n:,}, {method}"))
    return total, worst[1]


def bench_lenet(table: Table) -> None:
    """LeNet-5 as public CIFAR code writes it (3×32×32, 6 and 16 channels, heads 120/84/10, max pooling) at the
    paper width and at 2× (goal: both within 120 s on 2 cores). A width whose solves are estimated beyond
    `LONG_BENCHMARK_SECONDS` is reported with the estimate instead of run (the paper width: its ``fc1`` is a
    square 48,000-equation system, too large for an LU in memory and about 10⁵ LSMR iterations)."""
    name = "LeNet-5 (3x32x32, 6/16 channels, 120/84/10)"
    for width in (1.0, 2.0):
        seconds, worst = _estimated_solves(lambda models: models.LeNet(), width)
        if seconds > LONG_BENCHMARK_SECONDS:
            label = f"{name}, {width:g}x paper width"
            table.add_row(label, f"not run: solves estimated at {seconds / 3600:.1f} h", "", "", f"largest: {worst}")
            continue
        _public_model(name, width, lambda models: models.LeNet(), table)


def bench_resnet20_a(table: Table) -> None:
    """A ResNet-20-style class with option-A shortcuts (strided slicing and channel zero-padding), one block per
    stage (16/32/64 channels), 3×32×32, ``F.avg_pool2d(out, out.size()[3])`` head, at 2× paper width (goal:
    within 5 min and 4 GiB)."""
    _public_model(
        "ResNet-20 style, option A, 1 block/stage (16/32/64)", 2.0, lambda m: m.ResNet((1, 1, 1), option="A"), table
    )


def cifar_target(seed: int = 0) -> verify.ConvTargetNetwork:
    """The CIFAR-shaped target of `bench_conv`: 3 → 16 → 32 → 64 channels, 3×3 convolutions (padding 1, stride 2 in
    the last two), a 2×2 adaptive average pool, flatten and a Linear head to 10 classes, on 3×32×32 inputs."""
    rng = np.random.default_rng(seed)

    def conv(c_in: int, c_out: int, stride: int) -> verify.Conv:
        return verify.Conv.build(
            rng.standard_normal((c_out, c_in, 3, 3)) / np.sqrt(9 * c_in), rng.standard_normal(c_out) * 0.1,
            stride=stride, padding=1,
        )  # fmt: skip

    layers = [conv(3, 16, 1), conv(16, 32, 2), conv(32, 64, 2), verify.AdaptiveAvgPool((2, 2)), verify.Flatten()]
    layers.append(verify.Linear(rng.standard_normal((10, 256)) / 16, rng.standard_normal(10) * 0.1))
    return verify.ConvTargetNetwork(layers, (3, 32, 32))


def bench_conv(table: Table) -> None:
    """docs/design.md §9: the CIFAR-shaped target at 2× paper width, iterative solver; dense lstsq on the largest
    block it can handle (block 2: 4608 equations × 9216 channels), same run."""
    from verify.construction.tuning import tune_block
    from verify.core.conv_blocks import conv_blocks
    from verify.solvers.registry import solve_with

    target = cifar_target()
    frozen = verify.ConvFrozenNetwork.for_target(target, 2.0, seed=1)
    domain = verify.Box(0, 1, shape=(3, 32, 32))
    regions = target.input_regions(domain)
    blocks = list(conv_blocks(target, frozen))
    for block in blocks:
        t, m, tuned = measure(
            lambda block=block: tune_block(block, frozen, regions[block.k - 1], "paper", "iterative", None, None),
            repeats=1,
        )
        cert = tuned.certificate
        table.add_row(
            f"conv block {block.k}: {block.equation.needed} equations, {block.equation.n} channels",
            f"{t:.2f} s",
            f"{m:.0f} MiB",
            "",
            f"iterative: residual ratio {cert.residual_ratio:.2g}, margin {cert.min_margin:.2g}, "
            f"{cert.diagnostics.get('iterations', '?')} iterations",
        )
    t_total, m_total, result = measure(
        lambda: verify.reconstruct(target, frozen, domain, method="iterative"), repeats=1
    )
    x = domain.sample(256, np.random.default_rng(7))
    f = target(x).reshape(256, -1)
    g = result.network(x).reshape(256, -1)
    error = float(np.abs(g - f).max() / np.abs(f).max())
    table.add_row(
        "CIFAR-shaped target, 2x paper width, iterative (whole reconstruct + certificate)",
        f"{t_total:.1f} s",
        f"{m_total:.0f} MiB",
        "",
        f"holds={result.certificate.holds}, rel. error on 256 fresh images {error:.2g} "
        f"(sampled check {result.certificate.sampled.max_relative_error:.2g})",
    )
    equation = blocks[1].equation
    t_it, m_it, _ = measure(lambda: solve_with("iterative", equation, block=2), repeats=1)
    t_ls, m_ls, _ = measure(lambda: solve_with("lstsq", equation, block=2), repeats=1)
    table.add_row(
        f"block 2 alone ({equation.needed} x {equation.n} K): iterative vs dense lstsq",
        f"{t_it:.2f} s",
        f"{m_it:.0f} MiB",
        f"{t_ls / t_it:.0f}x faster than lstsq ({t_ls:.1f} s, {m_ls:.0f} MiB)",
        "block 3's K (18432 x 36864, 5.4 GB) is beyond lstsq here",
    )


def _forward_linear_bounds(graph: Any, lo: Any, hi: Any, intervals: dict) -> dict:
    """Forward linear (symbolic) bounds through a target graph, DeepPoly's ReLU relaxation, each ReLU's input
    range intersected with the interval bounds; returns, per layer node, the concretized range of its input."""
    import torch

    from verify.nn.graph import ADD, INPUT, LINEAR, RELU
    from verify.nn.graph_lower import run_node

    d, shape = lo.numel(), lo.shape[1:]
    flat_lo, flat_hi = lo.reshape(-1), hi.reshape(-1)
    uses: dict = {}
    for node in graph.nodes:
        for name in node.inputs:
            uses[name] = uses.get(name, 0) + 1

    def concretize(lower: Any, upper: Any) -> tuple:  # rows: constant, then one per input coordinate
        cl, cu = lower.reshape(d + 1, -1), upper.reshape(d + 1, -1)
        low = cl[0] + cl[1:].clamp(min=0).T @ flat_lo + cl[1:].clamp(max=0).T @ flat_hi
        up = cu[0] + cu[1:].clamp(min=0).T @ flat_hi + cu[1:].clamp(max=0).T @ flat_lo
        return low.reshape(lower.shape[1:]), up.reshape(upper.shape[1:])

    values: dict = {}
    ranges: dict = {}
    for node in graph.nodes:
        if node.kind == INPUT:
            eye = torch.cat([torch.zeros(1, d, dtype=lo.dtype), torch.eye(d, dtype=lo.dtype)]).reshape(d + 1, *shape)
            values[node.name] = (eye, eye)
        elif node.kind == LINEAR:
            lower, upper = values[node.inputs[0]]
            ranges[node.name] = concretize(lower, upper)
            w = node.weight.to(lo.dtype)
            positive, negative = w.clamp(min=0), w.clamp(max=0)
            new_lower = node.apply(lower, positive) + node.apply(upper, negative)
            new_upper = node.apply(upper, positive) + node.apply(lower, negative)
            bias = node.bias.to(lo.dtype).reshape(-1, *[1] * (new_lower.dim() - 2))
            new_lower[0] += bias
            new_upper[0] += bias
            values[node.name] = (new_lower, new_upper)
        elif node.kind == ADD:
            (a_lo, a_up), (b_lo, b_up) = (values[name] for name in node.inputs)
            values[node.name] = (a_lo + b_lo, a_up + b_up)
        elif node.kind == RELU:
            lower, upper = values[node.inputs[0]]
            low, up = concretize(lower, upper)
            low = torch.maximum(low, intervals[node.inputs[0]][0][0])
            up = torch.minimum(up, intervals[node.inputs[0]][1][0])
            active, crossing = low >= 0, (low < 0) & (up > 0)
            slope = torch.where(crossing, up / (up - low).clamp(min=1e-300), active.to(lo.dtype))
            keep = torch.where(crossing, (up > -low).to(lo.dtype), active.to(lo.dtype))
            new_upper = upper * slope
            new_upper[0] += torch.where(crossing, -low * slope, torch.zeros_like(low))
            values[node.name] = (lower * keep, new_upper)
        else:

            def end(name: str, k: int) -> Any:
                return values[name][k] if isinstance(values[name], tuple) else values[name]

            out = [run_node(graph, node.node, lambda name, k=k: end(name, k)) for k in (0, 1)]
            values[node.name] = tuple(out) if isinstance(out[0], torch.Tensor) else out[0]
        for name in node.inputs:
            uses[name] -= 1
            if uses[name] == 0:
                del values[name]
    return ranges


def bench_resnet8_bounds(table: Table) -> None:
    """How much tighter than interval bounds forward linear bounds are on the ResNet-8 target (docs/design.md §10):
    the widest input range of every layer, interval bounds against forward linear bounds (each ReLU's range
    intersected with the interval one)."""
    import torch

    from verify.job.graph_models import ResNet
    from verify.nn.graph import read_graph
    from verify.nn.graph_lower import interval_bounds

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        target = ResNet((16, 32, 64), 1, classes=10).double().eval()
    graph = read_graph(target)
    lo, hi = torch.zeros(1, 3, 32, 32, dtype=torch.float64), torch.ones(1, 3, 32, 32, dtype=torch.float64)
    start = time.perf_counter()
    intervals = interval_bounds(graph, lo, hi)
    middle = time.perf_counter()
    linear = _forward_linear_bounds(graph, lo, hi, intervals)
    end = time.perf_counter()
    depth = graph.depths()
    for node in graph.layers:
        i_lo, i_hi = intervals[node.inputs[0]]
        l_lo, l_hi = linear[node.name]
        width_interval = float((i_hi - i_lo).max())
        width_linear = float((torch.minimum(l_hi, i_hi[0]) - torch.maximum(l_lo, i_lo[0])).max())
        table.add_row(
            f"ResNet-8 input range of {node.name} (depth {depth[node.name]})",
            f"{middle - start:.1f} s / {end - middle:.0f} s",
            "",
            f"interval / linear width {width_interval / width_linear:.2f}",
            f"widest interval {width_interval:.3g}, widest linear ∩ interval {width_linear:.3g}",
        )


@contextlib.contextmanager
def _interval_ranges() -> Iterator[None]:
    """The construction and its bound with interval regions only, as before the linear bounds (the baseline):
    the shifts over `verify.core.bounds.block_input_regions`, and `error_bound` given no linear ranges."""
    import verify.construction.reconstruct as construction
    import verify.core.error_bound as bound
    from verify.core.bounds import block_input_regions
    from verify.core.linear_bounds import LinearBounds

    saved = construction.linear_regions, bound.target_bounds

    def unbounded(target: Any, domain: Any) -> LinearBounds:
        infinite = [np.full(w.shape[0], np.inf) for w in target.weights]
        ranges = LinearBounds(target, domain, [-v for v in infinite], infinite, [], [], 0.0)
        ranges.range = lambda k, coeffs, offset=None: (np.full(len(coeffs), -np.inf), np.full(len(coeffs), np.inf))
        return ranges

    construction.linear_regions = lambda ranges: block_input_regions(ranges.target, ranges.domain)
    bound.target_bounds = unbounded
    try:
        yield
    finally:
        construction.linear_regions, bound.target_bounds = saved


RANGE_SHAPES = ([8, 16, 16, 4], [4, 8, 8, 8, 2], [6, 12, 12, 3])
"""The dense chains of `bench_ranges`: 30 targets, seed ``s`` of shape ``s mod 3``, Ball(1) for even seeds, Box."""


def _range_case(seed: int, widths: list[int]) -> tuple[verify.TargetNetwork, verify.FrozenNetwork, Any, np.ndarray]:
    target = verify.TargetNetwork.random(widths, seed=seed)
    frozen = verify.FrozenNetwork.for_target(target, width="paper", seed=seed + 100)
    domain = (verify.Ball(1.0) if seed % 2 == 0 else verify.Box(-1.0, 1.0)).resolve(widths[0])
    fresh = domain.sample(2000, np.random.default_rng(seed + 1000))  # fresh points, box corners included
    return target, frozen, domain, fresh


def bench_ranges(table: Table) -> None:
    """docs/design.md §6.9: linear bounds against interval bounds on dense chains (float64, paper width): the
    certified bound, bound / observed on 2,000 fresh points, the widths per node, and the linear bounds' time."""
    shapes = {"30 chains of RANGE_SHAPES": [(s, RANGE_SHAPES[s % 3]) for s in range(30)]}
    shapes["10 chains [6, 32, 32, 32, 3]"] = [(s, [6, 32, 32, 32, 3]) for s in range(10)]
    for label, cases in shapes.items():
        rows: dict[str, list] = {"interval": [], "linear": []}
        widths, seconds = [], []
        for seed, shape in cases:
            target, frozen, domain, fresh = _range_case(seed, shape)
            for kind in rows:
                with _interval_ranges() if kind == "interval" else contextlib.nullcontext():
                    result = verify.reconstruct(target, frozen, domain, progress=False)
                observed = float(np.max(np.abs(result.network(fresh) - target(fresh))))
                rows[kind].append((result.certificate.error_bound, observed))
            widths.append(result.ranges[-2].median_ratio)  # the last hidden node h_{L-1}
            seconds.append((result.timings["linear_bounds"], result.timings["construction"]))
        bound = {kind: np.array([b for b, _ in values]) for kind, values in rows.items()}
        ratio = {kind: np.median([b / o for b, o in values]) for kind, values in rows.items()}
        linear_s, construction_s = np.median(seconds, axis=0)
        table.add_row(
            f"{label}: interval vs linear ranges",
            f"linear bounds {1e3 * linear_s:.1f} ms, construction {1e3 * construction_s:.1f} ms (medians)",
            "",
            f"bound linear / interval: median {np.median(bound['linear'] / bound['interval']):.2f}, "
            f"max {np.max(bound['linear'] / bound['interval']):.2f}",
            f"bound / observed median {ratio['interval']:.3g} (interval), {ratio['linear']:.3g} (linear); "
            f"h_(L-1) interval / linear width median {np.median(widths):.2f}",
        )
    _readme_mlp_ranges(table)


def _readme_mlp_ranges(table: Table) -> None:
    """The README's float32 example (`frozen_mlp([4, 16, 4, 12, 3])`, a 4 → 4 → 3 target, Ball(1)) for seeds
    0-9: error_bound / max |f| on 4,096 points with interval and with linear ranges (rtol=1e-2, as the README)."""
    import torch
    from torch import nn

    from verify.nn import fit_norm_layers, frozen_mlp

    ratios: dict[str, list] = {"interval": [], "linear": []}
    for seed in range(10):
        x = torch.tensor(
            verify.Ball(1.0).resolve(4).sample(4096, np.random.default_rng(seed + 50)), dtype=torch.float32
        )
        for kind in ratios:
            torch.manual_seed(seed)
            frozen = frozen_mlp([4, 16, 4, 12, 3], seed=seed)
            target = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 3))
            with _interval_ranges() if kind == "interval" else contextlib.nullcontext():
                result = fit_norm_layers(frozen, target, verify.Ball(1.0), rtol=1e-2, progress=False)
            with torch.no_grad():
                largest = float(target(x).double().abs().max())
            ratios[kind].append(result.certificate.error_bound / largest)
    table.add_row(
        "README float32 MLP, 10 seeds: interval vs linear ranges",
        "",
        "",
        f"bound linear / interval: median {np.median(np.divide(ratios['linear'], ratios['interval'])):.2f}",
        f"error_bound / max |f| median {np.median(ratios['interval']):.3g} (interval), "
        f"{np.median(ratios['linear']):.3g} (linear); largest {max(ratios['linear']):.3g}",
    )


def bench_spend(table: Table) -> None:
    """docs/design.md §5 (*Which solution*): above the paper width ``auto`` takes the minimum weighted norm
    (``weighted``); against the plain minimum norm it replaced (``lstsq`` up to 1024 equations, ``iterative``
    beyond) and the exact program (``min_bound``),
    the same networks in the same run: certified bound and solve time (the result's ``solve_seconds``), and the
    whole construction's time."""
    from verify.core.networks import FrozenNetwork, TargetNetwork

    def fit(target: Any, frozen: Any, method: str) -> tuple[float, float, float]:
        """The bound, and the best solve time and construction time over three runs."""
        runs = [
            verify.reconstruct(target, frozen, verify.Box(-1.0, 1.0), method=method, progress=False) for _ in range(3)
        ]
        solve, whole = min(sum(r.solve_seconds) for r in runs), min(r.seconds for r in runs)
        return runs[0].certificate.error_bound, solve, whole

    cases = [(d, factor, seed) for d in (4, 8, 16) for factor in (1.5, 2.0) for seed in range(2)]
    cases += [(32, 2.0, 0), (40, 2.0, 0)]  # lstsq's largest size at 2x, then LSMR's
    for d, factor, seed in cases:
        target = TargetNetwork.random([d, d, d], seed=seed)
        frozen = FrozenNetwork.for_target(target, width=factor, seed=100 + seed)
        old = fit(target, frozen, "lstsq" if d * d <= 1024 else "iterative")  # what auto ran before, by size
        new = fit(target, frozen, "auto")
        exact = fit(target, frozen, "min_bound") if d <= 16 else None
        line = (
            f"bound(new)/bound(old) {new[0] / old[0]:.3f}, solve time(new)/time(old) {new[1] / old[1]:.1f} "
            f"({new[1]:.3f} s / {old[1]:.3f} s), construction {new[2] / old[2]:.2f}x"
        )
        result = f"bound {new[0]:.3g} (old {old[0]:.3g})"
        if exact is not None:
            result += f"; min_bound {exact[0] / old[0]:.3f} of old in {exact[1]:.2f} s"
        table.add_row(
            f"min-bound solution, [{d}, {d}, {d}] at {factor}x paper, seed {seed}", f"{new[2]:.3f} s", "", line, result
        )


def bench_tightness(table: Table) -> None:
    """Issue 20's goals of tightness, measured: every case of `verify.job.tightness_cases` (ResNet-8 included) on
    2,000 fresh points per target (64 images for ResNet-8), one row per goal: goal, measured, met; and whether
    every target stayed within its bound (the claim ``certificate/tightness`` without ResNet-8 is the quick run)."""
    from verify.job.claims.certificate_tightness import goal_rows
    from verify.job.tightness_cases import CASES, measure_case

    for case, spec in CASES.items():
        start = time.perf_counter()
        targets = [measure_case(case, index, 2000) for index in range(spec["targets"])]
        seconds = time.perf_counter() - start
        for row in goal_rows(targets, [case]):
            table.add_row(
                f"{row['case']}, {row['dtype']}",
                f"{seconds:.1f} s",
                "",
                f"goal {row['goal']}: measured {row['measured']}, met: {row['met']}",
                f"within the bound {row['sound']} on {row['points']} points; "
                f"bound/observed {row['bound_over_observed']}, "
                f"bound/max|f| {row['bound_over_f']}, certified {row['certified']}, certificate f_max {row['f_max']}",
            )
        for target in targets:
            if not target.get("sound"):
                table.add_row(f"  {case} target {target['index']}", "", "", "", f"FAILED: {target.get('reason', '')}")


BENCHMARKS = {
    "feasibility": bench_feasibility,
    "solvers": bench_solvers,
    "solver_probe": bench_solver_probe,
    "minimal": bench_minimal,
    "spend": bench_spend,
    "threads": bench_threads,
    "training": bench_training,
    "residual": bench_residual,
    "conv": bench_conv,
    "resnet8": bench_resnet8,
    "resnet8_bounds": bench_resnet8_bounds,
    "lenet": bench_lenet,
    "resnet20_a": bench_resnet20_a,
    "ranges": bench_ranges,
    "tightness": bench_tightness,
}


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks (default: all), printing each one's table as soon as it finishes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", choices=[*BENCHMARKS, []], help="benchmarks to run (default: all)")
    args = parser.parse_args(argv)
    console = Console(width=200)
    for name in args.names or list(BENCHMARKS):
        table = Table(title=f"verify benchmarks: {name}")
        for column in ("benchmark", "time", "peak memory", "ratio vs baseline (same run)", "result"):
            table.add_column(column)
        BENCHMARKS[name](table)
        console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
