"""Benchmarks: `nox -s bench` (or `python benchmarks/bench.py`).

Every line is measured in this run: absolute wall time, peak traced memory (tracemalloc, which
numpy reports its buffers to), and a ratio against a baseline measured in the same run on the same
instance. Machines are shared and noisy: each timing is the best of a few repeats, and nothing
here is asserted; the figures are for reading and for the closing notes.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable

import numpy as np
from rich.console import Console
from rich.table import Table

import verify
from verify._feasibility import block_feasibility


def measure(function: Callable[[], object], repeats: int = 3) -> tuple[float, float, object]:
    """Best wall time over ``repeats`` runs, peak traced memory (MiB) of one run, and the last result."""
    best = np.inf
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    tracemalloc.start()
    function()
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


BENCHMARKS = {"feasibility": bench_feasibility}


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks (default: all) and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", choices=[*BENCHMARKS, []], help="benchmarks to run (default: all)")
    args = parser.parse_args(argv)
    table = Table(title="verify benchmarks")
    for column in ("benchmark", "time", "peak memory", "ratio vs baseline (same run)", "result"):
        table.add_column(column)
    for name in args.names or list(BENCHMARKS):
        BENCHMARKS[name](table)
    Console(width=200).print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
