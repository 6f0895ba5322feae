"""Time estimates of a block's solve, the choice ``auto`` makes from them, and the line shown before a long solve.

The estimates count float64 flops and divide by one nominal rate, `FLOP_RATE`, so they are the same on
every machine and ``auto``'s choice is deterministic (docs/design.md §5, *When each is chosen*):

* ``direct`` (LU on a square ``K``, ``m = d_out·d_in``): ``2m³/3`` for the LU, plus ``4m²n`` for the QR
  with column pivoting when ``n > m``;
* ``lstsq`` (SVD of the ``m × n`` ``K``): ``4m²n + 22m³`` (LAPACK ``gesdd``, ``k = min(m, n)`` for ``m``);
* ``iterative``: `lsmr_iterations` times the two GEMMs of one iteration, ``4·n·d_out·d_in``.

`lsmr_iterations` is a model of LSMR's iteration count on a random frozen block, fitted to the measurements
of ``benchmarks/bench.py solver_probe``: about 100 at ``n ≥ 2m`` (97 on the probe block ``[100, 30]``), about
``2.2m`` at the exact width ``n = m`` (6,390 at ``m = 3000``: the square Khatri–Rao system has a 2-norm
condition number ``~10⁴``), and in between ``17 κ`` with ``κ = (1 + r^{-1/2}) / (1 − r^{-1/2})``, the
Marchenko–Pastur condition number of a random ``m × rm`` matrix, capped by the square count.
"""

from __future__ import annotations

import math
import sys
from typing import TextIO

__all__ = [
    "AUTO_DIRECT_SECONDS",
    "FLOP_RATE",
    "LONG_SOLVE_SECONDS",
    "announce",
    "estimate_seconds",
    "lsmr_iterations",
]

FLOP_RATE = 2e10
"""Nominal float64 flops per second of one BLAS thread: below what the project's 2-core machine measured
(about 40 GFLOP/s in a 3000² LU, 33 GFLOP/s in LSMR's two GEMMs), so on an idle core the estimates err long;
under load (other processes on the same cores) a solve can take several times its estimate."""
AUTO_DIRECT_SECONDS = 60.0
"""``auto`` runs ``direct`` at the exact width only while its estimate is at most this (``m ≲ 12,000``
equations, ``d ≲ 110`` for square layers: ``d = 128``'s 16384² LU is estimated at 150 s); beyond, it
runs ``iterative``, which needs ``O(d³)`` memory instead of ``O(d⁴)``."""
LONG_SOLVE_SECONDS = 60.0
"""A solve estimated longer than this is announced (`announce`) before it starts."""


def lsmr_iterations(n: int, needed: int) -> int:
    """The modelled LSMR iteration count on a random block of ``n`` neurons and ``needed = d_out·d_in`` equations."""
    square = math.ceil(2.2 * needed)
    if n <= needed:
        return square
    ratio = n / needed
    kappa = (1 + ratio**-0.5) / (1 - ratio**-0.5)
    return max(100, min(square, math.ceil(17 * kappa)))


def estimate_seconds(method: str, n: int, d_out: int, d_in: int) -> float | None:
    """The estimated seconds of ``method`` on one block (``n`` neurons, ``d_out·d_in`` equations) at `FLOP_RATE`;
    None for methods without an estimate here (the convex programs; ``exact`` refuses large blocks itself)."""
    m = d_out * d_in
    if method == "direct":
        flops = 2 * m**3 / 3 + (4 * m * m * n if n > m else 0)
    elif method in ("lstsq", "minimal"):
        k = min(m, n)
        flops = 4 * k * k * max(m, n) + 22 * k**3
    elif method == "iterative":
        flops = lsmr_iterations(n, m) * 4 * n * m
    else:
        return None
    return flops / FLOP_RATE


def announce(
    method: str, seconds: float | None, *, block: int, shape: tuple[int, int, int], stream: TextIO | None = None
) -> bool:
    """Print one line on ``stream`` (default ``sys.stderr``) before a solve estimated longer than
    `LONG_SOLVE_SECONDS`; silent when the stream is not a terminal. Returns whether it printed."""
    stream = sys.stderr if stream is None else stream
    if seconds is None or seconds <= LONG_SOLVE_SECONDS or not stream.isatty():
        return False
    n, d_out, d_in = shape
    advice = (
        " (LSMR converges in ~100 iterations from twice the exact width)"
        if method == "iterative" and n < 2 * d_out * d_in
        else ""
    )
    stream.write(
        f"verify: block {block}: method {method!r} on {d_out * d_in} equations x {n} neurons, "
        f"estimated {_duration(seconds)}{advice}\n"
    )
    stream.flush()
    return True


def _duration(seconds: float) -> str:
    return (
        f"{seconds:.0f} s"
        if seconds < 120
        else f"{seconds / 60:.0f} min"
        if seconds < 7200
        else f"{seconds / 3600:.1f} h"
    )
