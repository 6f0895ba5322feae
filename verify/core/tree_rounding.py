"""The rounding of one frozen layer, bounded for the worst summation order from its terms (docs/design.md §6.5).

`verify.core.float_model.layer_rounding` bounds a layer ``N(M v + c)`` by ``γ_{n + OPS} |s| (|M| |v| + |c| +
|μ|) + γ_2 |β|``: every term of the dot product as if it went through all ``n`` additions, and BatchNorm's
roundings relative to the terms too. Both are far from what a sum does when its terms differ in size and
sign, as the even layer's do: its inputs carry the bias shifts ``τ``, and ``A τ`` is removed only by the
normalization's shift afterwards. This module bounds the same layer from finer figures, for any order.

**A sum in any order.** A float sum of ``m`` leaves ``a_ℓ`` (``n`` rounded products ``M_jl v_l`` and the bias
``c_j``; a leaf that is exactly 0 everywhere, a zero weight or a switched-off input, adds nothing and is left
out) is a binary tree whose internal nodes ``ν`` round their exact sum ``s_ν`` by ``|δ_ν| <= u``. Unrolling
``e_ν = (e_l + e_r)(1 + δ_ν) + δ_ν s_ν`` (leaves: ``|e_ℓ| <= u |a_ℓ|``, the product's own rounding),

    |ŝ − s| <= u (1 + γ_{m−1}) (Σ_ℓ |a_ℓ| + Σ_ν |s_ν|),    |s_ν| <= min(S_ν, max(P, N)),

with ``S_ν`` the sum of ``|a_ℓ|`` under ``ν`` and ``P``, ``N`` the sums of the positive and of the negative
leaves. For ``0 <= t``, at most ``m − q + 1`` internal nodes have ``S_ν >= t`` when ``q >= 2`` leaves are
needed to reach ``t`` (the nodes with ``S_ν >= t`` form a subtree through the root; each of its ``p`` lowest
nodes holds ``>= q`` leaves and each node with one child in it has a leaf outside, so ``m >= p q + |T| −
2p + 1``); the caterpillar that adds the largest leaves first has exactly that many. Integrating over ``t``,

    Σ_ν min(S_ν, M) <= Σ_{j=1}^{m−1} min(A_j, M),    A_j = the sum of the j + 1 largest |a_ℓ|,

for any tree. With per-leaf bounds ``U_ℓ >= |a_ℓ|`` over the region and bounds ``T >= Σ |a_ℓ|``, ``M >=
max(P, N)`` of the sums themselves (linear forms over the region when the signs of the leaves are fixed:
the caller's), the dot product's error is at most ``u (1 + γ_{m−1}) (T + Σ_j min(Ā_j, T, M)) + m η``
(`summation_rounding`; ``η`` for a product that underflows).

**The normalization after it** rounds relative to its input ``ĥ``, not to the dot product's terms:
``γ_9 |s| (|ĥ| + |μ|) + γ_2 |β|`` (the nine roundings of BatchNorm counted in
`verify.core.float_model.OPS`), with ``|ĥ| <= H + e`` and ``H >= |M v + c|`` over the region, again a linear
form. The layer's error (`tight_rounding`) is then ``|s| e + γ_9 |s| (H + e + |μ|) + γ_2 |β| + 9 η``; a
switched-off neuron (``s = β = 0``) outputs 0 exactly. Since ``T + Σ_j min(…) <= m T`` and ``H <= T``, this
is never above `layer_rounding` in exact arithmetic; the caller keeps the smaller of the two anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = [
    "BN_OPS",
    "block_roundings",
    "layer_figures",
    "leaf_bounds",
    "sum_figures",
    "summation_rounding",
    "tight_rounding",
]

_U64 = 2.0**-53
BN_OPS = 9
"""Roundings of BatchNorm in eval mode on any path (`verify.core.float_model.OPS` less the bias add)."""


def _gamma(m: np.ndarray | float, u: float) -> np.ndarray:
    mu = np.asarray(m, dtype=np.float64) * u
    return np.where(mu < 0.5, mu / np.where(mu < 0.5, 1.0 - mu, 1.0), np.inf)


def layer_figures(
    weights: np.ndarray,
    bias: np.ndarray,
    largest: np.ndarray,
    sup: Callable[[np.ndarray, np.ndarray], np.ndarray],
    total: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The figures of `summation_rounding` and `tight_rounding` for a layer ``M v + c`` (``weights`` M, rows ×
    inputs) over a region of its computed inputs ``v``.

    ``largest >= |v|`` per input (0: the input is exactly 0 everywhere); ``sup(C, o)`` an upper bound of
    ``C v + o`` over the region, per row. ``total`` given: the inputs may have either sign and ``total >=
    Σ_l |M_jl| |v_l| + |c_j|`` is the caller's (then the sums of positive and negative leaves are capped by it
    alone); ``None``: the inputs are ``>= 0``, every leaf has the sign of its weight, and the sums are linear
    forms. Returns ``(leaves, total, cap, value)``: per-leaf bounds (the products, then the bias), ``T``, ``M``,
    and ``H >= |M v + c|``, each at most ``T``.
    """
    weights, bias = np.asarray(weights, dtype=np.float64), np.asarray(bias, dtype=np.float64)
    absw = np.abs(weights)
    leaves = leaf_bounds(weights, bias, largest)
    if total is None:
        total = sup(absw, np.abs(bias))
        positive = sup(np.maximum(weights, 0.0), np.maximum(bias, 0.0))
        negative = sup(np.maximum(-weights, 0.0), np.maximum(-bias, 0.0))
        cap, value = sum_figures(total, sup(weights, bias), sup(-weights, -bias), positive, negative)
    else:
        cap, value = sum_figures(total, sup(weights, bias), sup(-weights, -bias))
    return leaves, total, cap, value


def leaf_bounds(weights: np.ndarray, bias: np.ndarray, largest: np.ndarray) -> np.ndarray:
    """Per-leaf bounds ``U`` of a layer ``M v + c`` (``weights`` M, rows × inputs) whose inputs are at most
    ``largest`` in magnitude (0: exactly 0): ``|M_jl| largest_l``, then ``|c_j|``, shape ``(rows, inputs + 1)``.
    ``largest`` of shape ``(sums, inputs)``: the inputs of several sums per row (a convolution's positions), one
    row of leaves per row and sum, ``(rows · sums, inputs + 1)``, row-major."""
    weights, bias = np.asarray(weights, dtype=np.float64), np.asarray(bias, dtype=np.float64)
    largest = np.asarray(largest, dtype=np.float64)
    if largest.ndim == 2:
        products = (np.abs(weights)[:, None, :] * largest[None, :, :]).reshape(-1, weights.shape[1])
        return np.hstack([products, np.repeat(np.abs(bias), largest.shape[0])[:, None]])
    return np.hstack([np.abs(weights) * largest[None, :], np.abs(bias)[:, None]])


def sum_figures(
    total: np.ndarray,
    above: np.ndarray,
    below: np.ndarray,
    positive: np.ndarray | None = None,
    negative: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(cap, value)`` of `summation_rounding` and `tight_rounding` from bounds on a layer's sums over a region:
    ``total >= Σ_ℓ |a_ℓ|``, ``above >= M v + c``, ``below >= −(M v + c)``, and, when given, ``positive``,
    ``negative`` at least the sums of the positive and of the negative leaves (else ``total`` caps both).
    ``cap = min(max(positive, negative), total)``, ``value = max(0, min(max(above, below), total)) >= |M v + c|``;
    any shapes that broadcast."""
    cap = total if positive is None else np.minimum(np.maximum(positive, negative), total)
    value = np.minimum(np.maximum(above, below), total)
    return cap, np.maximum(value, 0.0)


def summation_rounding(leaves: np.ndarray, total: np.ndarray, cap: np.ndarray, u: float, tiny: float) -> np.ndarray:
    """A bound, per row, on the rounding of a float sum of rounded products and a bias in any order (module notes).

    Parameters
    ----------
    leaves : array (rows, m)
        ``U_ℓ >= |a_ℓ|`` over the region, per leaf; an entry 0 means the leaf is exactly 0 everywhere.
    total : array (rows,)
        ``T >= Σ_ℓ |a_ℓ|`` over the region.
    cap : array (rows,)
        ``M >=`` the larger of the sums of the positive and of the negative leaves over the region.
    u, tiny : float
        The dtype's unit roundoff and smallest subnormal.
    """
    leaves = np.asarray(leaves, dtype=np.float64)
    if leaves.ndim != 2 or np.any(leaves < 0) or np.any(np.isnan(leaves)):
        raise ValueError("leaves must be a 2-d array of non-negative bounds")
    total = np.asarray(total, dtype=np.float64)
    if total.ndim not in (1, 2) or total.shape[0] != leaves.shape[0] or np.shape(cap) != total.shape:
        raise ValueError(
            f"total and cap must have one shape, (rows,) or (rows, sums), for {leaves.shape[0]} rows of leaves; "
            f"got {total.shape} and {np.shape(cap)}"
        )
    count = np.sum(leaves > 0, axis=1)
    ordered = -np.sort(-leaves, axis=1)
    prefix = np.cumsum(ordered, axis=1)[:, 1:]  # A_j, j = 1 … m − 1: the j + 1 largest
    if total.ndim == 2:  # one row of leaf bounds for several sums (module notes)
        nodes = _capped_prefix_sums(prefix, np.maximum(count - 1, 0), np.minimum(total, cap))
        factor = u * (1.0 + _gamma(np.maximum(count - 1, 0), u))
        return factor[:, None] * (total + nodes) + count[:, None] * tiny
    limit = np.minimum(total, cap)[:, None]
    used = np.arange(prefix.shape[1])[None, :] + 2 <= count[:, None]  # A_j counts only while j + 1 <= m
    nodes = np.sum(np.where(used, np.minimum(prefix, limit), 0.0), axis=1)
    return u * (1.0 + _gamma(np.maximum(count - 1, 0), u)) * (total + nodes) + count * tiny


def _capped_prefix_sums(prefix: np.ndarray, used: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """``Σ_{j < used_r} min(prefix_rj, limit_rk)`` per row ``r`` and column ``k``, ``prefix`` non-decreasing along each
    row: the ``i`` entries below the limit (found by a binary search per entry) summed, plus ``used_r − i`` limits."""
    rows = prefix.shape[0]
    count = np.broadcast_to(used[:, None], limit.shape).astype(np.int64)
    lower, upper = np.zeros(limit.shape, dtype=np.int64), count.copy()
    last = max(prefix.shape[1] - 1, 0)
    padded = prefix if prefix.shape[1] else np.zeros((rows, 1))
    while np.any(lower < upper):  # lower ends as the number of used entries below the limit
        middle = (lower + upper) // 2
        below = np.take_along_axis(padded, np.minimum(middle, last), axis=1) < limit
        active = lower < upper
        lower = np.where(active & below, middle + 1, lower)
        upper = np.where(active & ~below, middle, upper)
    sums = np.hstack([np.zeros((rows, 1)), np.cumsum(prefix, axis=1)])
    rest = count - lower
    return np.take_along_axis(sums, lower, axis=1) + rest * np.where(rest > 0, limit, 0.0)


def tight_rounding(
    dot: np.ndarray,
    value: np.ndarray,
    scale_abs: np.ndarray,
    mean_abs: np.ndarray,
    beta_abs: np.ndarray,
    u: float,
    tiny: float,
    inflate: float,
    output: np.ndarray | None = None,
    shift_abs: np.ndarray | None = None,
) -> np.ndarray:
    """The error of one frozen layer ``N(M v + c)`` computed from ``v`` (module notes): ``dot`` bounds the dot
    product's rounding (`summation_rounding`), ``value >= |M v + c|`` over the region; ``|s|``, ``|μ|``,
    ``|β|`` per neuron. With ``output >= |s (M v + c) + t|`` over the region and ``shift_abs = |t|``, the
    normalization's last addition is also bounded relative to its result, and the smaller bound is kept. A
    neuron with ``s = β = 0`` gets 0 (it outputs 0 exactly)."""
    g9 = float(_gamma(BN_OPS, u))
    g2 = float(_gamma(2, u))
    rho = scale_abs * dot + g9 * scale_abs * (value + dot + mean_abs) + g2 * beta_abs
    if output is not None and shift_abs is not None:  # the last addition relative to its result (module notes)
        before = float(_gamma(BN_OPS - 1, u)) * scale_abs * (value + dot) + g9 * scale_abs * mean_abs + u * shift_abs
        last = scale_abs * dot + (1 + u) * before + u * (output + scale_abs * dot)
        rho = np.minimum(rho, last)
    rho = rho * inflate + BN_OPS * tiny
    return np.where((scale_abs == 0) & (beta_abs == 0), 0.0, rho)


def block_roundings(
    block: Any,
    region: Any,
    ranges: Any,
    odd: tuple[np.ndarray, ...],
    even: tuple[np.ndarray, ...],
    u: float,
    tiny: float,
    inflate: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Both layers' roundings ``(ρ_odd, ρ_even)`` of a dense block in its linear regime from the sums of their terms.

    ``block`` is a `verify.core.blocks.Block`, ``region`` the block input's region with its error ``δ`` (from
    `verify.core.error_bound`), ``ranges`` the target's `verify.core.linear_bounds.LinearBounds`; ``odd`` holds
    the odd layer's ``s, t, β, μ``, its magnitude and its margin slack, ``even`` the even layer's ``s, t, β, μ``.

    The sums are linear forms over the block's computed input ``ẑ`` (the odd layer's: ``B ẑ + c``; the even
    layer's through ``û <= p(ẑ) + slack + ρ_odd``, ``p = s (B ẑ + c) + t``, ``û >= 0``), bounded over the region
    and by the target's linear bounds, each plus a float64 allowance relative to its magnitude."""
    so, to, bo, muo, mag_odd, slack = odd
    se, te, be, mue = even
    k = block.k
    zmax = region.largest() + region.delta
    reach = 2 * float(_gamma(3 * (block.b.shape[0] + block.b.shape[1] + 20), _U64))

    def sup_z(c: np.ndarray, o: np.ndarray) -> np.ndarray:  # an upper bound of c ẑ + o over the computed ẑ
        value = -region.minimum(-c, -o)
        if k > 1:
            value = np.minimum(value, ranges.range(k - 1, c)[1] + o + np.abs(c) @ region.delta)
        return value + reach * (np.abs(c) @ zmax + np.abs(o)) * inflate

    signed = not np.all(region.outer()[0] >= 0)
    total = region.magnitude(np.abs(block.b), inflate) + np.abs(block.c_odd) if signed else None
    leaves, total, cap, value = layer_figures(block.b, block.c_odd, zmax, sup_z, total)
    dot = summation_rounding(leaves, total, cap, u, tiny) * inflate
    # The odd layer's output p = s (B ẑ + c) + t, both ways (t: its float64 value, the allowance covers the exact).
    allowance = reach * mag_odd
    top = sup_z(so[:, None] * block.b, so * block.c_odd + to) + allowance
    output = np.maximum(np.maximum(top, sup_z(-so[:, None] * block.b, -(so * block.c_odd + to)) + allowance), 0.0)
    t_abs = (np.abs(to) + allowance) * inflate
    rho_odd = tight_rounding(dot, value, np.abs(so), np.abs(muo), np.abs(bo), u, tiny, inflate, output, t_abs)
    # The even layer's inputs û (>= 0): each below its p's maximum plus its slack and rounding.
    off = (so == 0) & (bo == 0)  # switched off: û = 0 exactly
    largest = np.where(off, 0.0, np.maximum(top + slack + rho_odd, 0.0) * inflate)

    def sup_u(c: np.ndarray, o: np.ndarray) -> np.ndarray:  # an upper bound of c û + o
        inner = sup_z((c * so) @ block.b, c @ (so * block.c_odd + to) + o)
        return inner + reach * np.abs(inner) + (np.abs(c) @ (slack + rho_odd + allowance)) * inflate

    leaves, total, cap, value = layer_figures(block.a, block.c_even, largest, sup_u)
    dot = summation_rounding(leaves, total, cap, u, tiny) * inflate
    # The even layer's output s' (A û + c') + t', both ways, plus the float64 rounding of s' A, s' c' and t'.
    scaled_a, scaled_c = se[:, None] * block.a, se * block.c_even + te
    extra = reach * (
        np.abs(se) * (np.abs(block.a) @ largest + np.abs(block.c_even)) + np.abs(be) + np.abs(se) * np.abs(mue)
    )
    output = np.maximum(np.maximum(sup_u(scaled_a, scaled_c), sup_u(-scaled_a, -scaled_c)) + extra * inflate, 0.0)
    t_abs = (np.abs(te) + extra) * inflate
    rho_even = tight_rounding(dot, value, np.abs(se), np.abs(mue), np.abs(be), u, tiny, inflate, output, t_abs)
    return rho_odd, rho_even
