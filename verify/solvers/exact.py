"""Exact rational reconstruction (docs/design.md §5, ``method="exact"``), with python-flint.

Every float64 is a dyadic rational, so the frozen and target weights, the domain and the sample
points are rationals exactly. Over ``Q`` the paper-mode scale equation ``K γ = vec(W)`` is solved
exactly (``fmpq_mat.solve`` on ``d_out·d_in`` columns chosen by QR with column pivoting; the other
neurons are switched off), the bias shift and the even layer's shift are computed exactly (a
ball's radius ``r·‖B_i‖₂`` is replaced by a rational upper bound, which only enlarges the shift),
and then:

* the scale-equation residual is exactly zero (checked by exact multiplication),
* every activity margin is an exact rational ``>= 0``,
* an exact evaluation of ``g`` (per-neuron affine maps ``(s, t)``) and ``f`` on rational points of
  the domain agrees exactly.

The bias shift, the margins and the interval bounds are the formulas of `verify.core.bias_shift`
and `verify.core.bounds` evaluated in `rational_arithmetic`; ``K``'s columns come from the
equation's own builder with rational entries.

The float ``(γ, β)`` returned to the caller are the roundings of these rationals; the exact check
is about the rational parameters. Cost grows like ``(d_k·d_{k-1})³ ~ d⁶`` with ever larger
rationals (denominators of ~30 000 bits at ``d = 16``): measured on a 2-core machine, about 1.7 s
per block at ``d = 12``, 7 s at ``d = 16``, 27 s at ``d = 20`` and an estimated 7 min at ``d = 32``.
Blocks beyond `EXACT_MAX_EQUATIONS` (``d = 16``) are refused before any work, with the estimate
(`check_exact_reach`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from fractions import Fraction
from functools import cache

import numpy as np
import scipy.linalg

from verify.core.arithmetic import Arithmetic
from verify.core.bias_shift import activity_margin, bias_shift
from verify.core.blocks import blocks
from verify.core.bounds import block_input_regions
from verify.core.certificate import ExactCheck
from verify.core.domains import AffineRange, Ball, Box, Domain
from verify.core.errors import InfeasibleError
from verify.core.networks import FrozenNetwork, TargetNetwork
from verify.core.scale_equation import ScaleSolution, as_equation, rank_error
from verify.core.tolerances import numerical_rank

__all__ = [
    "EXACT_MAX_EQUATIONS",
    "SECONDS_PER_CUBED_EQUATION",
    "ExactCheck",
    "check_exact_reach",
    "exact_check",
    "exact_seconds",
    "rational_arithmetic",
    "solve_exact",
]

EXACT_MAX_EQUATIONS = 256
"""``method="exact"`` refuses (before any work) a block with more equations ``d_k·d_{k-1}`` than this
(``d = 16``): its cost grows like ``(d_k·d_{k-1})³`` and the next sizes take minutes (module notes)."""
SECONDS_PER_CUBED_EQUATION = 4e-7
"""Measured time of one exact block (solve and exact check, ``n = d_k·d_{k-1}``) divided by
``(d_k·d_{k-1})³``, on a 2-core machine: 1.7 s at ``d = 12``, 6.7 s at ``d = 16``, 27 s at ``d = 20``
(``d_k = d_{k-1} = d``)."""


def _q(x: float):
    import flint

    numerator, denominator = float(x).as_integer_ratio()
    return flint.fmpq(numerator, denominator)


def _rationals(array: np.ndarray) -> np.ndarray:
    """``array``'s entries as exact rationals, in an object array of the same shape."""
    return np.array([_q(v) for v in np.ravel(array)], dtype=object).reshape(np.shape(array))


@cache
def rational_arithmetic() -> Arithmetic:
    """Exact rationals (python-flint ``fmpq`` in numpy object arrays) as an `Arithmetic`; regions after the
    first are ``(lo, hi)`` pairs, and a ball's radius is bounded above by a rational (module notes)."""
    zero = _q(0.0)
    return Arithmetic(
        name="rational",
        constant=_q,
        magnitude=np.abs,
        multiply=np.multiply,
        positive_part=lambda x: np.maximum(x, zero),
        affine_range=_affine_range_q,
        box=lambda lo, hi: (lo, hi),
    )


def _qmat(array: np.ndarray):
    import flint

    array = np.atleast_2d(array)
    return flint.fmpq_mat(array.shape[0], array.shape[1], [_q(v) for v in array.ravel()])


def exact_seconds(equations: int) -> float:
    """Estimated seconds of ``method="exact"`` on one block of ``equations = d_k·d_{k-1}`` equations
    (solve and exact check): ``SECONDS_PER_CUBED_EQUATION · equations³`` (module notes)."""
    return SECONDS_PER_CUBED_EQUATION * float(equations) ** 3


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def check_exact_reach(widths: Sequence[int], limit: int | None = None) -> None:
    """Refuse, before any work, a target beyond ``method="exact"``'s reach: a `ValueError` naming the
    first block with more than ``limit`` (default `EXACT_MAX_EQUATIONS`) equations ``d_k·d_{k-1}``, the
    estimated time (`exact_seconds`) and what to use instead."""
    limit = EXACT_MAX_EQUATIONS if limit is None else limit
    sizes = [d_out * d_in for d_in, d_out in itertools.pairwise(widths)]
    over = [(k, size) for k, size in enumerate(sizes, start=1) if size > limit]
    if not over:
        return
    k, size = over[0]
    total = sum(exact_seconds(s) for s in sizes)
    raise ValueError(
        f"method 'exact' is limited to d_k*d_(k-1) <= {limit} equations per block (about "
        f"{_duration(exact_seconds(limit))} per block at the limit); block {k} has "
        f"{widths[k]}*{widths[k - 1]} = {size}: "
        f"estimated {_duration(exact_seconds(size))} for that block and {_duration(total)} for the whole target (the "
        f"cost grows like (d_k*d_(k-1))^3 with ever larger rationals). Use method 'direct' or 'lstsq' (float "
        f"certificate, docs/design.md §6.1-6.3), or a smaller target"
    )


def solve_exact(*operands: object, block: int) -> tuple[ScaleSolution, list]:
    """Exact rational ``γ`` with ``K γ = vec(W)`` for a `ScaleEquation` (or its matrices ``a, b, w``).

    Returns the float solution and the rationals. A block beyond `EXACT_MAX_EQUATIONS` is refused
    before any work (`check_exact_reach`).
    """
    import flint

    equation = as_equation(operands)
    check_exact_reach([equation.d_in, equation.d_out])
    columns = equation.square_subset(block)
    needed, n, k = columns.size, equation.n, equation.k
    # The float γ returned must be usable: a numerically singular square system (duplicated neurons
    # whose proportionality is exact only up to rounding) is refused as by every other method.
    rank = numerical_rank(scipy.linalg.svdvals(k[:, columns]), (k.shape[0], needed))
    if rank < needed:
        raise rank_error(block, rank, needed, n)
    # K's entries A[a,i]·B[i,b] are products of dyadic rationals: form them exactly.
    square = flint.fmpq_mat(needed, needed, list(equation.columns(columns, _rationals).ravel()))
    try:
        solution = square.solve(_qmat(equation.target.reshape(-1, 1)))
    except ZeroDivisionError:
        rank = square.rank()
        raise InfeasibleError(
            f"block {block}: the chosen {needed} columns of the Khatri–Rao system are exactly singular "
            f"(rank {rank}); the frozen weights are not generic",
            block=block, rank=rank, needed=needed, width=n, width_needed=needed,
        ) from None  # fmt: skip
    gamma_q = [flint.fmpq(0)] * n
    for position, column in enumerate(columns):
        gamma_q[column] = solution[position, 0]
    gamma = np.array([float(Fraction(int(g.p), int(g.q))) for g in gamma_q])
    float_solution = ScaleSolution(
        gamma,
        np.ones(equation.d_out),
        needed,
        needed,
        float(np.linalg.cond(k[:, columns])),
        "exact: rational solve (python-flint)",
        diagnostics={"columns": int(columns.size), "max_denominator_bits": max(int(g.q).bit_length() for g in gamma_q)},
    )
    return float_solution, gamma_q


NORM_BITS = 64
"""Significant bits of the rational upper bound of ``‖row‖₂`` used for a ball's radius (`_ball_radius_bound`)."""


def _sqrt_upper(square) -> object:
    """A dyadic rational ``q >= sqrt(square)`` for a rational ``square >= 0``, with about `NORM_BITS`
    significant bits, from one integer square root: no loop, and no float that could underflow or
    overflow (``sqrt(square·4^e) < isqrt(floor(square·4^e)) + 1``)."""
    import flint

    p, q = int(square.p), int(square.q)
    if p == 0:
        return flint.fmpq(0)
    e = NORM_BITS - (p.bit_length() - q.bit_length()) // 2  # square·4^e ~ 4^NORM_BITS
    scaled = (p << (2 * e)) // q if e >= 0 else p // (q << (-2 * e))
    root = math.isqrt(scaled) + 1
    return flint.fmpq(root << max(-e, 0), 1 << max(e, 0))


def _ball_radius_bound(radius: float, row: np.ndarray):
    """A rational ``q >= radius·‖row‖₂``: the exact radius times a rational upper bound of the norm
    (`_sqrt_upper` of the exact ``Σ row²``). Exact whatever the magnitudes: ``radius·‖row‖₂`` may
    underflow or overflow in floating point (e.g. ``Ball(1e-320)``) without changing the bound."""
    squared = sum((_q(v) * _q(v) for v in row), _q(0.0))
    return _q(radius) * _sqrt_upper(squared)


def _affine_range_q(region: Domain | tuple, weight: np.ndarray, bias: np.ndarray) -> AffineRange:
    """Exact (or upper-bounded) ``mid, rad, size`` of ``weight @ z + bias`` over a region (a `Ball`, a `Box`
    or a rational box ``(lo, hi)``), as object arrays of rationals."""
    w_q = [[_q(v) for v in row] for row in weight]
    b_q = [_q(v) for v in bias]
    zero = _q(0.0)
    if isinstance(region, Ball):
        centre = [_q(v) for v in region.center]
        mid = [
            sum((wv * cv for wv, cv in zip(row, centre, strict=True)), zero) + bv
            for row, bv in zip(w_q, b_q, strict=True)
        ]
        rad = [_ball_radius_bound(region.radius, row) for row in weight]
    else:
        lo, hi = ([_q(v) for v in region.lo], [_q(v) for v in region.hi]) if isinstance(region, Box) else region
        centre = [(x + y) / 2 for x, y in zip(lo, hi, strict=True)]
        half = [(y - x) / 2 for x, y in zip(lo, hi, strict=True)]
        mid = [
            sum((wv * cv for wv, cv in zip(row, centre, strict=True)), zero) + bv
            for row, bv in zip(w_q, b_q, strict=True)
        ]
        rad = [sum((abs(wv) * hv for wv, hv in zip(row, half, strict=True)), zero) for row in w_q]
    size = [
        sum((abs(wv) * abs(cv) for wv, cv in zip(row, centre, strict=True)), zero) + r + abs(bv)
        for row, r, bv in zip(w_q, rad, b_q, strict=True)
    ]
    return AffineRange(*(np.array(v, dtype=object) for v in (mid, rad, size)))


def exact_check(
    target: TargetNetwork,
    frozen: FrozenNetwork,
    domain: Domain,
    gammas_q: Sequence[list],
    points: np.ndarray,
) -> ExactCheck:
    """Build the exact ``(s, t)`` of every layer from the rational ``γ`` and check them (module notes)."""
    import flint

    arithmetic = rational_arithmetic()
    zero = _q(0.0)
    regions = block_input_regions(target, domain, arithmetic)
    scales_q, shifts_q, per_block = [], [], []
    residual_zero, margins_ok, min_margin = True, True, None
    for block, gamma_q, region in zip(blocks(target, frozen), gammas_q, regions, strict=True):
        gamma = np.array(gamma_q, dtype=object)
        image = block.odd_range(region, arithmetic)
        tau = bias_shift(gamma, image, arithmetic)
        margin = min(activity_margin(gamma, tau, image, arithmetic))
        # A diag(γ) B as one exact matrix product (flint clears denominators and multiplies integers).
        scaled = flint.fmpq_mat(
            block.a.shape[0], len(gamma_q), [_q(v) * g for row in block.a for v, g in zip(row, gamma_q, strict=True)]
        )
        zero_residual = bool(scaled * _qmat(block.b) == _qmat(block.w))
        c_odd = [_q(v) for v in block.c_odd]
        carried = flint.fmpq_mat(len(gamma_q), 1, [g * c + t for g, c, t in zip(gamma_q, c_odd, tau, strict=True)])
        pushed = _qmat(block.a) * carried
        t_even = [
            _q(bv) - (pushed[r, 0] + _q(cv)) for r, (bv, cv) in enumerate(zip(block.bias, block.c_even, strict=True))
        ]
        width_even = frozen.widths[block.even + 1]
        scales_q += [list(gamma_q), [_q(1.0)] * len(t_even) + [zero] * (width_even - len(t_even))]
        shifts_q += [list(tau), t_even + [zero] * (width_even - len(t_even))]
        residual_zero &= zero_residual
        margins_ok &= margin >= 0
        min_margin = margin if min_margin is None else min(min_margin, margin)
        per_block.append({"block": block.k, "residual_is_zero": zero_residual, "min_margin": _float(margin)})
    agree = _g_exact(frozen, scales_q, shifts_q, points) == _f_exact(target, points)
    return ExactCheck(residual_zero, _float(min_margin), margins_ok, len(points), agree, per_block)


def _float(q) -> float:
    return float(Fraction(int(q.p), int(q.q)))


def _layer(weight: np.ndarray, bias: np.ndarray, inputs, scale: list | None, shift: list | None, relu: bool):
    """Exact ``relu?(scale ⊙ (W U + b) + shift)`` on a matrix ``U`` whose columns are points."""
    import flint

    h = _qmat(weight) * inputs
    zero = _q(0.0)
    rows, cols = h.nrows(), h.ncols()
    values = []
    for r in range(rows):
        b_q = _q(bias[r])
        for c in range(cols):
            v = h[r, c] + b_q
            if scale is not None:
                v = scale[r] * v + shift[r]
            values.append(max(v, zero) if relu else v)
    return flint.fmpq_mat(rows, cols, values)


def _f_exact(target: TargetNetwork, points: np.ndarray):
    z = _qmat(np.asarray(points).T)
    for k, (w, b) in enumerate(zip(target.weights, target.biases, strict=True)):
        z = _layer(w, b, z, None, None, relu=k < target.depth - 1)
    return z


def _g_exact(frozen: FrozenNetwork, scales_q: list, shifts_q: list, points: np.ndarray):
    u = _qmat(np.asarray(points).T)
    last = len(frozen.weights) - 1
    for j, (m, c) in enumerate(zip(frozen.weights, frozen.biases, strict=True)):
        u = _layer(m, c, u, scales_q[j], shifts_q[j], relu=j < last)
    return u
