"""The rounding of a normalized layer whose terms have both signs (docs/design.md §6.7, *signed sums*).

A frozen layer ``N(M û + c)`` sums ``n`` products ``t_k = M_k û_k`` and a bias. The usual bound of a sum in
any order, ``γ_n Σ |t_k|`` (`verify.core.float_model.layer_rounding`), charges every addition with the sum
of *all* magnitudes. A partial sum adds a subset of the terms, and a subset of numbers of both signs
lies between ``−N`` and ``P``, the sums of the negative and of the positive terms' magnitudes: every
partial sum of any order is at most ``max(P, N)`` in magnitude. The frozen network's terms cancel (its
random weights have both signs, its inputs after a ReLU have one), so ``max(P, N)`` is about half of
``P + N``, and the bound about half of the usual one.

**The lemma.** Let the products be computed as ``t̂_k = t_k (1 + ε_k)`` (``|ε_k| ≤ u``; ``ε_k = 0`` under a
fused multiply-add) and summed with the bias ``c`` along any binary tree, every addition
``ŝ_v = (ŝ_a + ŝ_b)(1 + δ_v)``, ``|δ_v| ≤ u``. With ``s̄_v`` the exact sum of the computed terms below
``v`` and ``e_v = ŝ_v − s̄_v``: ``e_v = (e_a + e_b)(1 + δ_v) + s̄_v δ_v``, so over the ``n`` additions
``|e_root| ≤ Σ_v u (1 + u)^{n−1} |s̄_v| ≤ γ_n max_v |s̄_v|``, and ``|s̄_v| ≤ (1 + u) max(P, N) + |c|``. The
products add ``Σ |t_k ε_k| ≤ u (P + N)``. The normalization's ``OPS − 1`` further roundings act on
magnitudes of at most ``|s| (|ĥ| + |μ|)`` and ``|β|`` as in `layer_rounding` (Higham's Lemma 3.3
combines them), and carry the sum's error scaled by ``|s| (1 + γ_OPS)``. Altogether

    ρ = γ_{n+OPS} (1 + γ_OPS) |s| ((1 + u) max(P, N) + |c| + |μ|) + u (1 + 2 γ_OPS) |s| (P + N)
        + γ_2 |β| + (n + OPS) η,

valid for any bounds ``P ≥ Σ_k max(t_k, 0)`` and ``N ≥ Σ_k max(−t_k, 0)`` over the inputs considered.
Since ``max(P, N) ≤ P + N``, ``ρ`` is below `layer_rounding`'s value but for the ``(1 + γ_OPS)`` and
``u (P + N)`` terms; the caller keeps the smaller of the two (both hold).

`signed_terms` gives ``P``, ``N`` for inputs in a box ``[lo, hi]``: a term ``M_{kj} z_j`` with
``z_j ∈ [lo_j, hi_j]`` is at most ``M⁺ hi⁺ + M⁻ lo⁻`` and at least ``−(M⁺ lo⁻ + M⁻ hi⁺)`` (``x⁺ = max(x, 0)``,
``x⁻ = max(−x, 0)``), so ``P = M⁺ hi⁺ + M⁻ lo⁻`` and ``N = M⁺ lo⁻ + M⁻ hi⁺``, each evaluated in float64
and raised by the caller's inflation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from verify.core.float_model import OPS, _gamma

__all__ = ["signed_rounding", "signed_terms"]


def signed_terms(
    apply: Callable[[np.ndarray, np.ndarray], np.ndarray], weight: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(P, N)``: bounds on the sums of the positive and of the negative terms of ``weight ⋆ z`` for every ``z``
    in the box ``[lo, hi]`` (module notes), ``apply(x, w)`` being ``w ⋆ x`` with the layer's geometry. Exact
    in real arithmetic; the caller inflates them for their float64 evaluation."""
    if lo.shape != hi.shape:
        raise ValueError(f"lo and hi must have one shape, got {lo.shape} and {hi.shape}")
    plus, minus = np.maximum(weight, 0.0), np.maximum(-weight, 0.0)
    top, bottom = np.maximum(hi, 0.0), np.maximum(-lo, 0.0)
    positive, negative = apply(top, plus), apply(top, minus)
    if np.any(bottom > 0):  # inputs of both signs (a pair reading the domain, or an addition's output)
        positive = positive + apply(bottom, minus)
        negative = negative + apply(bottom, plus)
    return positive, negative


def signed_rounding(
    positive: np.ndarray,
    negative: np.ndarray,
    scale_abs: np.ndarray,
    bias_abs: np.ndarray,
    mean_abs: np.ndarray,
    beta_abs: np.ndarray,
    fan_in: int,
    u: float,
    tiny: float,
    inflate: float,
) -> np.ndarray:
    """``ρ`` of one frozen layer ``N(M û + c)`` computed in a dtype of unit roundoff ``u`` (module notes), from
    the bounds ``positive = P``, ``negative = N`` of its ``fan_in`` terms' signed sums and the absolute values
    of the norm's scale ``s``, the layer's bias ``c``, the running mean ``μ`` and ``β`` (all broadcast alike);
    a bound to take the minimum of with `verify.core.float_model.layer_rounding`'s."""
    if fan_in < 0 or not 0.0 <= u < 1.0:
        raise ValueError(f"fan_in must be >= 0 and u in [0, 1), got {fan_in} and {u}")
    ops = _gamma(OPS, u)
    top = (1.0 + u) * np.maximum(positive, negative)
    return (
        _gamma(fan_in + OPS, u) * (1.0 + ops) * scale_abs * (top + bias_abs + mean_abs)
        + u * (1.0 + 2.0 * ops) * scale_abs * (positive + negative)
        + _gamma(2, u) * beta_abs
    ) * inflate + (fan_in + OPS) * tiny
