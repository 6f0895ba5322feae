"""A graph pair's two roundings from the sums of their terms, for any summation order (docs/design.md §6.7).

The dense chain bounds each layer of a block in its linear regime by `verify.core.tree_rounding`: a float sum
of ``m`` leaves in any order errs by at most ``u (1 + γ_{m−1}) (T + Σ_{j=1}^{m−1} min(Ā_j, T, M))``, ``Ā_j`` the
sum of the ``j + 1`` largest leaf bounds, ``T`` a bound on the sum of the leaves' sizes and ``M`` on the larger
of the sums of the positive and of the negative leaves; BatchNorm's roundings then act on ``H >= |M v + c|``
(and its last addition on ``Y >= |s (M v + c) + t|``), not on the terms. Here the same bound is taken for the
odd and the even layer of a graph pair (`verify.core.graph.Pair`), per output channel and position:

* **The leaves.** A convolution's output ``(j, q)`` sums ``M_{j,c,k} ẑ_{c, q+k}`` over its receptive field
  (`verify.core.convolution.AffineLayer.fields`; a padded entry is exactly 0, adds nothing and is left out) and
  the bias: leaf bounds ``|M_{j,c,k}|`` times the field's magnitudes over the box, then ``|c_j|``, per row and
  position while they number at most `LEAF_ENTRIES`. Beyond, each row ``j`` gets one vector of leaf bounds for
  all its positions, every input's largest bound over the positions: the bound of a sum only grows with its
  leaf bounds and their number (``Ā_j`` of a subset is at most that of the set), so one sorted row serves every
  position (`verify.core.tree_rounding.summation_rounding` with a ``(rows, positions)`` total: a binary search
  per position, no sort per position), in blocks of rows within the same budget. The even layer is 1×1: its
  leaves are ``A_jl û_l`` with ``û_l`` at most ``u_odd`` (the odd output's upper end plus its rounding, 0 for a
  switched-off odd channel).
* **The sums, per position.** The odd layer's are over the computed input's box ``[lo, hi]``: ``T = |M| ⋆
  |ẑ|max + |c|``, ``M`` from `verify.core.signed_sums.signed_terms` (plus the bias's sign), ``H`` the range of
  ``M ⋆ ẑ + c`` and ``Y`` that of ``s (M ⋆ ẑ + c) + t`` (`verify.core.convolution.AffineLayer.range`, each plus
  ``2 γ^{64}_{n+12}`` of its size). The even layer's read ``0 <= û <= u_odd`` (a box: ``T = |A| u_odd + |c'|``,
  ``P = A⁺ u_odd + c'⁺``, ``N = A⁻ u_odd + c'⁻``) and, for a pair that is not mirrored, also
  ``p − ρ_odd <= û <= p + max(0, −m) + ρ_odd`` with ``p = s (B ⋆ ẑ + c) + t`` affine in ``ẑ``: for a row ``C``
  of coefficients ``C û + o <= ((C diag(s) B) ⋆ ẑ)(q) + C (s c + t) + o + |C| (max(0, −m) + ρ_odd + r)``,
  whose first term is the range of one convolution of the odd layer's geometry with the composed kernel over
  the box (the summed coefficients, where adding each term's maximum loses up to 2×), ``r = 2 γ^{64}_{3(n + d
  + 20)}`` of the odd magnitude (the float64 composition, ``s`` and ``t`` against their exact values). Each sum
  is the smaller of the two.

Every figure bounds what it must wherever the pair's input lies in its box, whether or not a neuron is in its
linear regime (its margin slack ``max(0, −m)`` is in ``û``'s upper end), so the caller keeps the smaller of this
and its other bounds (`verify.core.float_model.layer_rounding`, `verify.core.signed_sums.signed_rounding`).
"""

from __future__ import annotations

import numpy as np

from verify.core.convolution import AffineLayer
from verify.core.float_model import _gamma
from verify.core.graph import Norm, Pair
from verify.core.tree_rounding import leaf_bounds, sum_figures, summation_rounding, tight_rounding

__all__ = ["LEAF_ENTRIES", "even_rounding", "odd_rounding"]

LEAF_ENTRIES = 2**22
"""The most leaves (rows × positions × inputs) a layer is bounded with per position; beyond, one row per channel."""
_U64 = 2.0**-53


def _through(layer: AffineLayer, x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``weight ⋆ x`` with ``layer``'s geometry, one tensor ``x`` (no batch axis), flattened to ``(out, positions)``."""
    out = layer.linear(x[None], weight.reshape(weight.shape[0], *layer.weight.shape[1:]))[0]
    return out.reshape(weight.shape[0], -1)


def _dot_rounding(
    weight: np.ndarray, bias: np.ndarray, fields: np.ndarray, total: np.ndarray, cap: np.ndarray, u: float, tiny: float
) -> np.ndarray:
    """`summation_rounding` of ``weight`` (rows × inputs) on the inputs ``fields`` (positions × inputs, bounds of
    their magnitudes) per row and position: with leaves per row and position within `LEAF_ENTRIES`, else one row
    of leaves per channel, from each input's largest bound over the positions (module notes), a block of rows of at
    most `LEAF_ENTRIES` leaves at a time."""
    if not np.all(np.isfinite(fields)):  # no finite leaf bounds: no bound from them
        return np.full(total.shape, np.inf)
    if weight.shape[0] * fields.size <= LEAF_ENTRIES:
        leaves = leaf_bounds(weight, bias, fields)
        return summation_rounding(leaves, total.ravel(), cap.ravel(), u, tiny).reshape(total.shape)
    largest, out = fields.max(axis=0), np.empty(total.shape)
    step = max(1, LEAF_ENTRIES // (weight.shape[1] + 1))  # rows at a time: the sorted copies stay within the budget
    for i in range(0, weight.shape[0], step):
        rows = slice(i, i + step)
        out[rows] = summation_rounding(leaf_bounds(weight[rows], bias[rows], largest), total[rows], cap[rows], u, tiny)
    return out


def _norm(norm: Norm) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``|s|``, ``|μ|``, ``|β|`` per channel as columns, and a bound on the exact ``|t|`` (``|β| + |s| |μ|`` with
    the float64 rounding of ``s``)."""
    scale, mean, beta = (np.abs(x)[:, None] for x in (norm.scale, norm.mean, norm.beta))
    return scale, mean, beta, (beta + scale * mean) * (1 + 4 * _gamma(4, _U64))


def odd_rounding(
    layer: AffineLayer,
    norm: Norm,
    lo: np.ndarray,
    hi: np.ndarray,
    total: np.ndarray,
    positive: np.ndarray,
    negative: np.ndarray,
    output: np.ndarray,
    u: float,
    tiny: float,
    inflate: float,
) -> np.ndarray:
    """The rounding of the odd layer ``N(M ⋆ ẑ + c)`` for ``ẑ`` in the box ``[lo, hi]`` (module notes), per channel
    and position, shaped like ``total``.

    ``total >= |M| ⋆ |ẑ| + |c|``; ``positive``, ``negative`` bound the sums of the positive and of the negative
    products (`verify.core.signed_sums.signed_terms`, the bias not included); ``output >= |s (M ⋆ ẑ + c) + t|``.
    All float64 evaluations are covered by the caller's ``inflate`` (raised sums) and here (signed ranges)."""
    shape = total.shape
    weight, bias = layer.flat_weight, layer.bias
    fields = layer.fields(np.maximum(np.abs(lo), np.abs(hi)))
    flat = lambda x: np.asarray(x, dtype=np.float64).reshape(weight.shape[0], -1)  # noqa: E731
    image = layer.range(lo, hi, layer.weight, bias)
    reach = 2 * _gamma(weight.shape[1] + 12, _U64) * image.size
    total = flat(total)
    cap, value = sum_figures(
        total,
        image.mid + image.rad + reach,
        image.rad - image.mid + reach,
        flat(positive) + np.maximum(bias, 0.0)[:, None] * inflate,
        flat(negative) + np.maximum(-bias, 0.0)[:, None] * inflate,
    )
    dot = _dot_rounding(weight, bias, fields, total, cap, u, tiny) * inflate
    scale, mean, beta, shift = _norm(norm)
    rho = tight_rounding(dot, value, scale, mean, beta, u, tiny, inflate, flat(output), shift * inflate)
    return rho.reshape(shape)


def even_rounding(
    pair: Pair,
    lo: np.ndarray,
    hi: np.ndarray,
    largest: np.ndarray,
    rho_odd: np.ndarray,
    slack: np.ndarray,
    mag_odd: np.ndarray,
    total: np.ndarray,
    positive: np.ndarray,
    negative: np.ndarray,
    u: float,
    tiny: float,
    inflate: float,
) -> np.ndarray:
    """The rounding of the even (1×1) layer ``N'(A û + c')`` of ``pair`` whose input is ``ẑ ∈ [lo, hi]`` (module
    notes), per channel and position, shaped like ``total``.

    ``largest >= û`` per odd channel and position (the odd output's upper end plus ``rho_odd``), ``slack`` the odd
    neurons' margin slack ``max(0, −m)``, ``mag_odd`` their magnitude; ``total >= |A| û + |c'|``, ``positive``,
    ``negative`` the box sums of the positive and negative products over ``[0, largest]`` (bias not included)."""
    odd, even, on, en = pair.odd, pair.even, pair.odd_norm, pair.even_norm
    shape = total.shape
    a, bias = even.flat_weight, even.bias
    rows = a.shape[0]
    flat = lambda x: np.asarray(x, dtype=np.float64).reshape(rows, -1)  # noqa: E731
    off = ((on.scale == 0) & (on.beta == 0))[:, None]  # a switched-off odd channel outputs 0 exactly
    largest = np.where(off, 0.0, largest.reshape(odd.out_channels, -1))
    total = flat(total)
    positive = flat(positive) + np.maximum(bias, 0.0)[:, None] * inflate
    negative = flat(negative) + np.maximum(-bias, 0.0)[:, None] * inflate
    above, below, output = positive, negative, None
    scale, mean, beta, shift = _norm(en)
    if not pair.mirrored:  # the sums as affine functions of the pair's input (module notes), the smaller kept
        b = odd.flat_weight * on.scale[:, None]
        p_offset = on.scale * odd.bias + on.shift
        reach = 2 * _gamma(3 * (a.shape[1] + b.shape[1] + 20), _U64)
        extra = (slack + rho_odd + reach * mag_odd) * inflate  # per odd channel and position

        def sup(c: np.ndarray, offset: np.ndarray, composed: np.ndarray) -> np.ndarray:
            """An upper bound of ``c û + offset`` per row and position, ``composed = c diag(s) B`` given."""
            image = odd.range(lo, hi, composed.reshape(rows, *odd.weight.shape[1:]), c @ p_offset + offset)
            inner = image.mid + image.rad + reach * image.size
            return inner + reach * np.abs(inner) + _through(even, extra, np.abs(c)) * inflate

        plus, minus = np.maximum(a, 0.0), np.maximum(-a, 0.0)
        k_plus, k_minus = plus @ b, minus @ b
        total = np.minimum(total, sup(np.abs(a), np.abs(bias), k_plus + k_minus))
        positive = np.minimum(positive, sup(plus, np.maximum(bias, 0.0), k_plus))
        negative = np.minimum(negative, sup(minus, np.maximum(-bias, 0.0), k_minus))
        above = np.minimum(above, sup(a, bias, k_plus - k_minus))
        below = np.minimum(below, sup(-a, -bias, k_minus - k_plus))
        # The normalized output s' (A û + c') + t', both ways, plus the float64 rounding of s' A, s' c' and t'.
        s_e, t_e = en.scale, en.shift
        scaled, offset = s_e[:, None] * a, s_e * bias + t_e
        composed = s_e[:, None] * (k_plus - k_minus)
        margin = reach * (scale * (total + mean) + beta) * inflate
        top = np.maximum(sup(scaled, offset, composed), sup(-scaled, -offset, -composed))
        output = np.maximum(top + margin, 0.0)
    cap, value = sum_figures(total, above, below, positive, negative)
    dot = _dot_rounding(a, bias, largest.T, total, cap, u, tiny) * inflate
    rho = tight_rounding(dot, value, scale, mean, beta, u, tiny, inflate, output, None if output is None else shift)
    return rho.reshape(shape)
