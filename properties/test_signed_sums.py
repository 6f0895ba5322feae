"""The signed-sum rounding bound of a normalized layer (docs/design.md §6.7, `verify.core.signed_sums`).

Two properties, each against an exact reference:

* torch's own float32 ``Linear → BatchNorm1d`` (eval mode) at fresh points of a box (its two extreme
  corners, random corners, inner points), inputs of one sign or of both, weights of both signs, stays
  within ``signed_rounding`` of the layer in exact arithmetic at the same (float32) input;
* float16 sums added one by one in the orders that make partial sums largest (the positive terms first,
  largest first, then the negative ones; the reverse; a random order) stay within ``signed_rounding`` of
  the exact sum: the worst partial sums reach ``max(P, N)``, which the bound charges, not ``|P − N|``.

The exact references: ``Σ M z + c`` in rationals (`fractions`); the normalization ``γ (h − μ)/√(v + ε) + β``
in `decimal` at 50 digits, whose own relative error (at most ``10^-45`` of ``|s| (|h| + |μ|) + |β|``, far
below float32's ``6·10^-8``) is added to the bound; the bound's own float64 evaluation (a few ``2^-53`` of
it) is covered by raising it by ``1 + 10^-12``.
"""

from __future__ import annotations

import decimal
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import event, given, note
from hypothesis import strategies as st

from properties.strategies import seeds
from verify.core.error_bound import _TINY, _UNIT
from verify.core.signed_sums import signed_rounding, signed_terms

torch = pytest.importorskip("torch")

INFLATE = 1.0 + 1e-12
"""Covers the float64 evaluation of the bound itself (a few ``2^-53`` relative)."""
REFERENCE = 1e-45
"""Relative error of the 50-digit `decimal` normalization, against ``|s| (|h| + |μ|) + |β|``."""


def _dot(apply_weight: np.ndarray):
    return lambda x, w: w @ x


def _exact_layer(weight, bias, z, gamma, beta, mean, var, eps) -> np.ndarray:
    """``γ (W z + c − μ)/√(v + ε) + β`` for one input ``z``, all stored values read exactly."""
    with decimal.localcontext() as context:
        context.prec = 50
        out = []
        for i in range(weight.shape[0]):
            h = sum((Fraction(float(w)) * Fraction(float(x)) for w, x in zip(weight[i], z, strict=True)), Fraction(0))
            h += Fraction(float(bias[i]))
            centred = decimal.Decimal(h.numerator) / decimal.Decimal(h.denominator) - decimal.Decimal(float(mean[i]))
            std = (decimal.Decimal(float(var[i])) + decimal.Decimal(float(eps))).sqrt()
            out.append(float(decimal.Decimal(float(gamma[i])) * centred / std + decimal.Decimal(float(beta[i]))))
    return np.array(out)


@given(
    d_in=st.integers(1, 48),
    d_out=st.integers(1, 4),
    signs=st.sampled_from(["nonnegative", "both"]),
    seed=seeds(),
)
def test_signed_rounding_covers_torch_float32_layers(d_in: int, d_out: int, signs: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    layer = torch.nn.Sequential(torch.nn.Linear(d_in, d_out), torch.nn.BatchNorm1d(d_out)).float().eval()
    with torch.no_grad():
        layer[0].weight.copy_(torch.tensor(rng.standard_normal((d_out, d_in)) * rng.uniform(0.1, 100)))
        layer[0].bias.copy_(torch.tensor(rng.standard_normal(d_out)))
        layer[1].running_mean.copy_(torch.tensor(rng.standard_normal(d_out) * 10))
        layer[1].running_var.copy_(torch.tensor(rng.uniform(0.1, 10, d_out)))
        layer[1].weight.copy_(torch.tensor(rng.standard_normal(d_out) * 10))
        layer[1].bias.copy_(torch.tensor(rng.standard_normal(d_out) * 100))
    lo = rng.uniform(0, 1, d_in) if signs == "nonnegative" else rng.uniform(-2, 0.5, d_in)
    hi = lo + rng.uniform(0, 3, d_in)
    lo, hi = (np.asarray(v, dtype=np.float32).astype(np.float64) for v in (lo, hi))
    corners = np.where(rng.random((64, d_in)) < 0.5, lo, hi)
    inner = np.asarray(rng.uniform(lo, hi, (64, d_in)), dtype=np.float32).astype(np.float64)
    x = np.clip(np.concatenate([[lo, hi], corners, inner]), lo, hi)
    with torch.no_grad():
        g = layer(torch.tensor(x, dtype=torch.float32)).double().numpy()
    params = [p.detach().double().numpy() for p in (layer[0].weight, layer[0].bias)]
    norm = layer[1]
    stored = [t.detach().double().numpy() for t in (norm.weight, norm.bias, norm.running_mean, norm.running_var)]
    weight, bias = params
    gamma, beta, mean, var = stored
    scale = np.abs(gamma) / np.sqrt(var + norm.eps) * (1 + 1e-15)
    positive, negative = signed_terms(_dot(weight), weight, lo, hi)
    bound = signed_rounding(
        positive, negative, scale, np.abs(bias), np.abs(mean), np.abs(beta), d_in, _UNIT["float32"],
        _TINY["float32"], INFLATE,
    )  # fmt: skip
    size = scale * (positive + negative + np.abs(bias) + np.abs(mean)) + np.abs(beta)
    worst = 0.0
    for point, computed in zip(x, g, strict=True):
        exact = _exact_layer(weight, bias, point, gamma, beta, mean, var, norm.eps)
        error = np.abs(computed - exact)
        assert np.all(error <= bound + REFERENCE * size), (error, bound)
        worst = max(worst, float(np.max(error / bound)))
    note(f"largest error / bound {worst:.3g}")
    event(f"error / bound >= 1e{int(np.floor(np.log10(max(worst, 1e-12))))}")


def _float16_sum(terms: np.ndarray, bias: float) -> float:
    """``c + Σ t_k`` added one by one in float16 (each operation rounded to float16), in the given order."""
    total = np.float16(bias)
    for t in terms:
        total = np.float16(total + t)
    return float(total)


@given(
    n=st.integers(2, 64),
    share=st.floats(0.2, 0.8),
    order=st.sampled_from(["positives first", "negatives first", "random"]),
    seed=seeds(),
)
def test_signed_rounding_covers_float16_sums_in_any_order(n: int, share: float, order: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    weight = np.where(rng.random(n) < share, 1.0, -1.0) * rng.uniform(0.5, 2.0, n)
    weight = np.asarray(weight, dtype=np.float16)
    z = np.asarray(rng.uniform(0.5, 4.0, n), dtype=np.float16)  # a ReLU's output: one sign
    products = np.asarray([np.float16(w * x) for w, x in zip(weight, z, strict=True)], dtype=np.float16)
    if order == "random":
        index = rng.permutation(n)
    else:
        key = -products.astype(np.float64) if order == "positives first" else products.astype(np.float64)
        index = np.argsort(key, kind="stable")
    bias = float(np.float16(rng.standard_normal()))
    computed = _float16_sum(products[index], bias)
    exact = sum((Fraction(float(w)) * Fraction(float(x)) for w, x in zip(weight, z, strict=True)), Fraction(bias))
    w64, z64 = weight.astype(np.float64), z.astype(np.float64)
    positive, negative = signed_terms(_dot(w64), w64[None], z64, z64)
    zero = np.zeros(1)
    bound = signed_rounding(
        positive, negative, np.ones(1), np.array([abs(bias)]), zero, zero, n, _UNIT["float16"], _TINY["float16"],
        INFLATE,
    )[0]  # fmt: skip
    error = abs(Fraction(computed) - exact)
    note(f"P {positive[0]:.4g}, N {negative[0]:.4g}, error {float(error):.3g}, bound {bound:.3g}")
    assert error <= Fraction(bound)
    event(f"{order}: error / bound >= 1e{int(np.floor(np.log10(max(float(error) / bound, 1e-12))))}")
