"""A rigorous bound on ``|ĝ(x) − f̂(x)|`` over the whole domain for a `verify.core.graph.Graph` (docs/design.md §6.7).

One topological walk. Every node gets a `Value`: a box ``[lo, hi]`` (one entry per element of the
node's output tensor) containing the *target's exact* value ``f`` there, ``delta ≥ |ĝ − f|`` for
what the frozen network computes in ``dtype`` (any summation order), ``delta_f ≥ |f̂ − f|`` for
the target's own evaluation in ``target_dtype``, and ``terms ≥`` the target's absolute-value
evaluation (the scale). The constants are those of the dense bound (`verify.core.error_bound`):
Higham's ``γ_m``, ``OPS`` roundings per normalized layer, the underflow term ``m · η``, and every
float64 magnitude inflated by ``1 + 4 γ^{64}_{3(N+20)}`` for the bound's own arithmetic.

Transfers (``ẑ ∈ [lo − δ, hi + δ]`` is the computed input, ``|ẑ|max`` its largest magnitude):

* **input**: the domain's box; ``δ = u |x|`` when the dtype is narrower than float64 (the cast).
* **pair** (per output position): with ``s, t`` the stored norms' affine maps, the odd
  pre-activation's lower bound over the computed input's box, ``m`` (minus ``2 γ^{64}_{n+12}``
  times its magnitude), may be negative: then ``|ReLU(p) − p| ≤ −m`` is carried as an error. The
  pair in exact arithmetic is ``(W + E) ⋆ ẑ + b + r`` (the even layer is 1×1, so the composition
  is one convolution of the odd layer's geometry), so
  ``δ' = |W| ⋆ δ + |E| ⋆ |ẑ|max + |r| + |s'| |A| (ρ_odd + max(0, −m)) + ρ_even`` with
  ``ρ = γ_{n + OPS} |s|(|M| ⋆ |û| + |c| + |μ|) + γ_2 |β| + (n + OPS) η`` (`layer_rounding`), ``E``,
  ``r`` enclosed as the dense bound encloses them (`verify.core.residuals`), and ``n`` the frozen layer's
  full fan-in ``C_in · prod(kernel)``; each ``ρ`` is the smallest of that, the signed sums'
  (`verify.core.signed_sums`) and the sorted leaves' (`verify.core.pair_rounding`). A *mirrored* pair
  (`verify.core.graph.Pair`) is linear for every input (``ReLU(q) − ReLU(−q) = q``): no margin term, and
  ``E``, ``r`` are its halves'. A folded target BatchNorm (``Pair.target_norm = c``) adds its ``OPS``
  roundings and the fold's to the target's: ``γ_{m + 2 + 2·OPS}(|W| ⋆ |ẑ_f| + c)`` in place of
  ``γ_{m+2}(|W| ⋆ |ẑ_f| + |b|)``.
* **relu**: 1-Lipschitz, ``δ`` passes; an element whose ``hi + δ ≤ 0`` is exactly 0 in both.
* **maxpool**: 1-Lipschitz in ``∞``: ``δ' = maxpool(δ)``; max is exact in floating point.
* **avgpool**, **adaptiveavgpool**: a mean of ``k`` terms: ``δ' = pool(δ) + γ_{k+1} pool(|ẑ|max) + (k+1) η``.
* **add**: ``δ₁ + δ₂ + u (|ẑ₁|max + |ẑ₂|max)``; **concat**, **flatten**, **reshape**: exact.
* **map** (a linear ``f`` with coefficients ``≥ 0``, `verify.core.graph.LinearMap`): monotone, so
  ``[f(lo), f(hi)]`` encloses the exact values, and ``|f(ẑ) − f(z)| ≤ f(|ẑ − z|) ≤ f(δ)``. Selection,
  zero padding, reshaping, stacking (``terms = 0``) round nothing: every field maps through ``f``. A
  mean (``terms = k + 1``) is the average pool's transfer with ``f`` for the pool.

* **stage** (a Case-2 residual stage, `verify.core.graph_stage`): its own transfer, ``op.bound``, over the
  stage's exact region with the stream map ``x = T z + c`` kept through its branches (docs/design.md §6.6).

* **pair, centred** (an approximate construction, docs/design.md §11, ``centred=True``): below the
  threshold ``E`` is not small and the even shift centres it on the pair's input hull, ``r ≈ −E z̄``;
  then ``|E| ⋆ |ẑ|max + |r|`` charges ``|E| |z̄|`` twice, and the two are bounded together per position,
  ``max |Ê ⋆ ẑ + r̂|`` over the computed input's box (the affine range of `AffineLayer.range`, an
  enclosure), plus ``2 γ^{64}_{m+12}`` of its magnitude and the roundings of ``E`` and ``r`` as above.

The target's own rounding ``delta_f`` runs through the same transfers with ``|W|`` only.
``rounding=False`` sets the evaluation roundings of both networks to 0 (``u = η = 0``): the bound
of the parameters' own error, in exact arithmetic.
``error_bound = max(δ + δ_f)`` at the output; ``scale`` is the largest target term there.

**Affine forms** (`verify.core.affine_errors`, docs/design.md §6.7): input, pair, relu, add, flatten and
reshape also carry ``Value.form``, the errors of ``[ĝ; f̂]`` per element as a zonotope: a pair maps every
generator column by ``W + Ê`` and ``W`` in the target's geometry (``_pair_form``), its own errors are fresh
generators; an add matches generators by identity. Every ``δ`` is the smaller of the two bounds, and the
output's bound the smaller of ``δ + δ_f`` and ``|G_ĝ − G_f̂| 1 + R 1``. At most ``GENERATORS`` generators and
``FORM_ENTRIES`` entries per form; below ``MIN_GENERATORS`` the walk carries magnitudes only.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from verify.core.affine_errors import SOURCES, AffineErrors
from verify.core.convolution import AffineLayer
from verify.core.domains import Ball, Box, Domain
from verify.core.error_bound import _HUGE, _TINY, _U64, OPS, ErrorBound, _gamma, layer_rounding, unit_roundoff
from verify.core.graph import Graph, Node, Norm, Pair
from verify.core.pair_rounding import even_rounding, odd_rounding
from verify.core.residuals import Residuals, StoredNorm, block_residuals
from verify.core.signed_sums import signed_rounding, signed_terms

__all__ = ["FORM_ENTRIES", "GENERATORS", "MIN_GENERATORS", "Value", "graph_error_bound"]

GENERATORS = 512
"""The most generators a node's affine form keeps (the smallest are merged into its remainder)."""
FORM_ENTRIES = 2**22
"""The most entries (rows × generators) a form may hold: the cap shrinks for large tensors."""
MIN_GENERATORS = 256
"""Below this cap the forms are not carried: every node keeps its magnitudes only (measured on ResNet-8 at
2× paper width, cap 128: the same bound, 29 s of walk instead of 12 s)."""
_CHUNK = 256
"""Generators mapped by one convolution call."""


@dataclass(frozen=True, eq=False)
class Value:
    """What the walk knows at one node (see module notes): the target's exact range ``[lo, hi]``, the
    errors ``delta`` (frozen, ``dtype``) and ``delta_f`` (target, ``target_dtype``), the target's terms."""

    lo: np.ndarray
    hi: np.ndarray
    delta: np.ndarray
    delta_f: np.ndarray
    terms: np.ndarray
    nonneg: bool = False
    form: AffineErrors | None = None
    parts: dict[str, float] | None = None
    """A pair's figures: the largest entry of each term of its ``δ`` (``carried`` ``|W| ⋆ δ``, ``residual`` the
    ``E``, ``r`` terms, ``rho_odd`` and ``margin`` through ``|s'| |A|``, ``rho_even``) and of the target's
    rounding (``target``); None at other nodes."""

    def computed(self, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The box of a computed value within ``delta`` of the exact one."""
        lo = self.lo - delta
        return (np.maximum(lo, 0.0) if self.nonneg else lo), self.hi + delta

    def size(self, delta: np.ndarray) -> np.ndarray:
        """Largest magnitude of a computed value within ``delta``."""
        lo, hi = self.computed(delta)
        return np.maximum(np.abs(lo), np.abs(hi))

    def map(self, op: Callable[[np.ndarray], np.ndarray], nonneg: bool | None = None) -> Value:
        """Every field through the same exact, monotone map ``op`` (reshape, flatten, concat parts, max pool)."""
        return Value(
            op(self.lo),
            op(self.hi),
            op(self.delta),
            op(self.delta_f),
            op(self.terms),
            self.nonneg if nonneg is None else nonneg,
        )


class _Walk:
    """The walk's constants: unit roundoffs, underflow, overflow limit, the inflation of float64 sums."""

    def __init__(
        self, graph: Graph, dtype: str, target_dtype: str, centred: bool = False, rounding: bool = True
    ) -> None:
        self.u, self.uf = unit_roundoff(dtype), unit_roundoff(target_dtype)
        self.tiny, self.tinyf, self.huge = _TINY[dtype], _TINY[target_dtype], _HUGE[dtype]
        self.centred, self.rounding, self.target_dtype = centred, rounding, target_dtype
        if not rounding:  # exact evaluation of both networks: only the parameters' error remains
            self.u = self.uf = self.tiny = self.tinyf = 0.0
        widest = 2
        shapes = {node.name: node.shape for node in graph.nodes}
        for node in graph.nodes:
            if node.kind == "pair":
                pair = node.op
                widest = max(widest, pair.odd_terms, pair.even_terms, pair.target.flat_weight.shape[1] + 1)
            elif node.kind in ("avgpool", "adaptiveavgpool"):
                widest = max(widest, node.op.terms(shapes[node.inputs[0]]))
            elif node.kind in ("map", "stage"):
                widest = max(widest, node.op.terms)
        largest = max(math.prod(node.shape) for node in graph.nodes)
        self.cap = min(GENERATORS, FORM_ENTRIES // (2 * largest))
        self.forms = self.cap >= MIN_GENERATORS  # else the magnitudes alone (module notes)
        widest = max(widest, 3 * GENERATORS + 4 * largest + len(SOURCES)) if self.forms else widest
        self.inflate = 1.0 + 4.0 * _gamma(3 * (widest + 20), _U64)
        self.peak = 0.0
        self.reason = ""
        self.per_pair: list[float] = []
        self.frozen_scale = 0.0


def _channels(values: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Per-channel ``values`` broadcast over the positions of a tensor shaped like ``like``."""
    return values.reshape(-1, *([1] * (like.ndim - 1)))


def _apply(layer: AffineLayer, x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``weight ⋆ x`` with ``layer``'s geometry, one tensor (no batch axis), no bias."""
    return layer.linear(x[None], weight.reshape(layer.weight.shape[0], *layer.weight.shape[1:]))[0]


def _columns(layer: AffineLayer, x: np.ndarray, weight: np.ndarray, shape: tuple[int, ...], out: int) -> np.ndarray:
    """``weight ⋆`` every column of ``x`` (one flattened tensor of ``shape`` per column), in chunks."""
    parts = [
        layer.linear(x[:, i : i + _CHUNK].T.reshape(-1, *shape), weight.reshape(layer.weight.shape)).reshape(-1, out).T
        for i in range(0, x.shape[1], _CHUNK)
    ]
    return np.hstack(parts) if parts else np.zeros((out, 0))


def _form_of(v: Value, walk: _Walk) -> AffineErrors:
    """The value's affine form, or its box as one fresh generator per element (rows ``[ĝ; f̂]``, at most the cap)."""
    if v.form is not None:
        return v.form
    sizes = np.concatenate([v.delta.ravel(), v.delta_f.ravel()])
    return AffineErrors.diagonal(sizes, "graph node", walk.inflate, keep=walk.cap)


def _tighter(value: Value, form: AffineErrors, walk: _Walk) -> Value:
    """``value`` with its form (capped) and each bound the smaller of the two (both hold)."""
    form = form.capped(walk.cap)
    bounds = form.bound()
    n = value.delta.size
    delta = np.minimum(value.delta, bounds[:n].reshape(value.delta.shape))
    delta_f = np.minimum(value.delta_f, bounds[n:].reshape(value.delta.shape))
    return replace(value, delta=delta, delta_f=delta_f, form=form)


def _pair_form(
    walk: _Walk, p: Pair, v: Value, residuals: Residuals, fresh: np.ndarray, rho_f: np.ndarray
) -> AffineErrors:
    """The pair's errors as an affine form (module notes): ``ĝ``'s rows by ``W + Ê``, ``f̂``'s by ``W`` (both with the
    target's geometry), the float64 difference to the exact ``W + E`` and the pair's own errors ``fresh``."""
    target, inflate = p.target, walk.inflate
    shape, n_in, n_out = v.delta.shape, v.delta.size, fresh.size
    carried, w = residuals.carried, target.flat_weight

    def op(x: np.ndarray, g: np.ndarray = carried, f: np.ndarray = w) -> np.ndarray:
        return np.vstack([_columns(target, x[:n_in], g, shape, n_out), _columns(target, x[n_in:], f, shape, n_out)])

    # n + 1 terms: the product's rounding, and W's own (a folded target norm's W is a float64 product)
    form = _form_of(v, walk).apply(op, lambda x: op(x, np.abs(carried), np.abs(w)), w.shape[1] + 1)
    slack = _apply(target, v.delta, residuals.carry_slack * residuals.m_terms) * inflate
    zeros = np.zeros(n_out)
    form = form.with_remainder(np.concatenate([slack.ravel(), zeros]), "float64")
    form = form.fresh(np.concatenate([fresh.ravel(), zeros]), "graph node", walk.cap)
    return form.fresh(np.concatenate([zeros, rho_f.ravel()]), "target rounding", walk.cap)


def _norm_abs(norm: Norm, layer: AffineLayer) -> tuple[np.ndarray, ...]:
    """``|s|``, ``|c|``, ``|μ|``, ``|β|`` per channel of a frozen layer and its norm (`signed_rounding`'s)."""
    return np.abs(norm.scale), np.abs(layer.bias), np.abs(norm.mean), np.abs(norm.beta)


def _pair(walk: _Walk, node: Node, v: Value) -> Value:
    p: Pair = node.op
    inflate, u = walk.inflate, walk.u
    odd, even, target = p.odd, p.even, p.target
    on, en = p.odd_norm, p.even_norm
    so, to, se, te = on.scale, on.shift, en.scale, en.shift
    size_g = v.size(v.delta)
    lo_g, hi_g = v.computed(v.delta)
    # The odd layer: pre-normalization magnitude, normalized magnitude, rounding (per channel and position),
    # the smaller of the plain and the signed-sum bounds (`verify.core.signed_sums`).
    h_odd = _apply(odd, size_g, np.abs(odd.weight))
    h_odd = (h_odd + _channels(np.abs(odd.bias), h_odd)) * inflate
    ch = lambda values: _channels(values, h_odd)  # noqa: E731
    scaled_odd = ch(np.abs(so)) * (h_odd + ch(np.abs(on.mean)))
    mag_odd = (scaled_odd + ch(np.abs(on.beta))) * inflate
    rho_odd = layer_rounding(scaled_odd, ch(np.abs(on.beta)), p.odd_terms, u, walk.tiny, inflate)
    pos, neg = (x * inflate for x in signed_terms(lambda x, w: _apply(odd, x, w), odd.weight, lo_g, hi_g))
    signed = signed_rounding(pos, neg, *map(ch, _norm_abs(on, odd)), p.odd_terms, u, walk.tiny, inflate)
    rho_odd = np.minimum(rho_odd, signed)
    # The odd pre-activation's range per position over the computed input's box: the linear regime, the output.
    scaled = odd.weight * _channels(so, odd.weight)
    image = odd.range(lo_g, hi_g, scaled, so * odd.bias + to)
    allowance = 2 * _gamma(odd.flat_weight.shape[1] + 12, _U64) * mag_odd
    margin = (image.mid - image.rad).reshape(mag_odd.shape) - allowance
    high = (image.mid + image.rad).reshape(mag_odd.shape) + allowance
    if u > 0:  # the same rounding from the sums of its terms, for any order (`verify.core.pair_rounding`)
        output = np.minimum(mag_odd, np.maximum(np.maximum(high, -margin), 0.0))
        tree = odd_rounding(odd, on, lo_g, hi_g, h_odd, pos, neg, output, u, walk.tiny, inflate)
        rho_odd = np.fmin(rho_odd, tree)  # a NaN (from infinite figures) bounds nothing
    top_odd = mag_odd  # |p| <= its magnitude, or the image's upper end where the image is computed
    slack = np.zeros_like(rho_odd)
    if p.mirrored:  # ReLU(q) − ReLU(−q) = q: linear for every input, no regime to leave
        odd_error = rho_odd
    else:
        slack = np.maximum(-margin, 0.0) * inflate
        odd_error = rho_odd + slack
        top_odd = np.minimum(mag_odd, np.maximum(high, 0.0))
    # The even (1x1) layer on 0 <= û <= max(p, 0) + ρ_odd (a ReLU's output).
    u_odd = (top_odd + rho_odd) * inflate
    h_even = (_apply(even, u_odd, np.abs(even.weight)) + _channels(np.abs(even.bias), u_odd)) * inflate
    scaled_even = (_channels(np.abs(se), h_even) * (h_even + _channels(np.abs(en.mean), h_even))) * inflate
    mag_even = (scaled_even + _channels(np.abs(en.beta), h_even)) * inflate
    rho_even = layer_rounding(scaled_even, _channels(np.abs(en.beta), h_even), p.even_terms, u, walk.tiny, inflate)
    pos, neg = (x * inflate for x in signed_terms(lambda x, w: _apply(even, x, w), even.weight, 0 * u_odd, u_odd))
    ce = lambda values: _channels(values, h_even)  # noqa: E731
    signed = signed_rounding(pos, neg, *map(ce, _norm_abs(en, even)), p.even_terms, u, walk.tiny, inflate)
    rho_even = np.minimum(rho_even, signed)
    if u > 0:
        box = (h_even, pos, neg)
        tree = even_rounding(p, lo_g, hi_g, u_odd, rho_odd, slack, mag_odd, *box, u, walk.tiny, inflate)
        rho_even = np.fmin(rho_even, tree)
    inside = [
        (h_odd + ch(np.abs(on.mean))) * ch(np.maximum(1.0, np.abs(on.gamma))),
        (h_even + _channels(np.abs(en.mean), h_even)) * _channels(np.maximum(1.0, np.abs(en.gamma)), h_even),
    ]
    if p.switched_off is not None:  # their 0·h is 0 only while h stays finite
        layer, norm = p.switched_off
        h_off = _apply(layer, u_odd, np.abs(layer.weight)) + _channels(np.abs(layer.bias), u_odd)
        inside.append((h_off + _channels(np.abs(norm.mean), h_off)) * inflate)
    peak = max(float(np.max(a, initial=0.0)) for a in (mag_odd, mag_even, *inside)) * inflate
    walk.peak = max(walk.peak, peak)
    if peak > walk.huge / 2:
        walk.reason = walk.reason or f"{node.name}: intermediate values may overflow"
    # The residuals of the scale equation E and of the shift r, with the stored parameters.
    # A mirrored pair's exact map is its first halves' composition (row i + n/2 cancels the ReLU of row i).
    half = slice(0, odd.out_channels // 2) if p.mirrored else slice(None)
    a, b, w = even.flat_weight[:, half], odd.flat_weight[half], target.flat_weight
    so_h, to_h, c_h = so[half], to[half], odd.bias[half]
    t_abs = (np.abs(on.beta[half]) + np.abs(so_h) * np.abs(on.mean[half])) * (1 + 4 * _gamma(4, _U64))
    var_h = None if on.var is None else on.var[half]
    odd_norm = StoredNorm(so_h, to_h, on.gamma[half], on.beta[half], on.mean[half], var_h, on.eps)
    even_norm = StoredNorm(se, te, en.gamma, en.beta, en.mean, en.var, en.eps)
    residuals = block_residuals(a, b, c_h, even.bias, w, target.bias, odd_norm, even_norm, t_abs)
    e_bar, r_bar = residuals.bars(inflate)
    w_abs = np.abs(target.weight)
    own = _channels(np.abs(se), h_even) * _apply(even, odd_error, np.abs(even.weight)) + rho_even
    if walk.centred:  # max |E ⋆ ẑ + r| per position over the computed box (module notes), with its allowances
        # Ê, r̂ may be wider than float64 (`verify.core.residuals`): cast, the cast's rounding (at most u of
        # |Ê| <= e_terms, |r̂| <= r_terms) joins the slack.
        e_hat, r_hat = (np.asarray(h, dtype=np.float64) for h in (residuals.e_hat, residuals.r_hat))
        slack = residuals.slack + 2 * _U64
        residual = target.range(lo_g, hi_g, e_hat.reshape(target.weight.shape), r_hat)
        extreme = (np.abs(residual.mid) + residual.rad + 2 * _gamma(w.shape[1] + 12, _U64) * residual.size) * inflate
        terms_e = _apply(target, size_g, slack * residuals.e_terms * inflate)
        charged = extreme.reshape(h_even.shape) + terms_e + _channels(slack * residuals.r_terms * inflate, h_even)
    else:
        charged = _apply(target, size_g, e_bar) + _channels(r_bar, h_even)
    delta = (_apply(target, v.delta, w_abs) + charged + own) * inflate
    # The target: its exact range (float64 range rounded outwards), its terms and its own rounding.
    m = w.shape[1]
    exact = target.range(v.lo, v.hi, target.weight, target.bias)
    out_shape = delta.shape
    reach = (2 * _gamma(m + 6, _U64) * exact.size * inflate).reshape(out_shape)
    mid, rad = exact.mid.reshape(out_shape), exact.rad.reshape(out_shape)
    lo, hi = mid - rad - reach, mid + rad + reach
    bias_abs = _channels(np.abs(target.bias), delta)
    terms = (_apply(target, v.terms, w_abs) + bias_abs) * inflate
    # A folded target BatchNorm: its OPS roundings after the layer's, and the fold's own (done in the
    # target's dtype), on the magnitude |W| |x| + |s|(|b| + |μ|) + |β| >= both the layer's and the norm's.
    ops, extra = (0, bias_abs) if p.target_norm is None else (2 * OPS, _channels(p.target_norm, delta))
    rho_f = (
        _gamma(m + 2 + ops, walk.uf) * (_apply(target, v.size(v.delta_f), w_abs) + extra) + (m + 2 + ops) * walk.tinyf
    )
    delta_f = (_apply(target, v.delta_f, w_abs) + rho_f) * inflate
    value = Value(lo, hi, delta, delta_f, terms)
    if walk.forms:  # the residual over the exact box: E (ẑ − z) is in the map
        size = v.size(np.zeros_like(v.delta))
        fresh = (_apply(target, size, e_bar) + _channels(r_bar, h_even) + own) * inflate
        value = _tighter(value, _pair_form(walk, p, v, residuals, fresh, rho_f), walk)
    through_even = lambda e: _channels(np.abs(se), h_even) * _apply(even, e, np.abs(even.weight))  # noqa: E731
    parts = {
        "carried": _apply(target, v.delta, w_abs),
        "residual": charged,
        "rho_odd": through_even(rho_odd),
        "margin": through_even(odd_error - rho_odd) if np.any(odd_error > rho_odd) else 0.0,
        "rho_even": rho_even,
        "target": rho_f,
    }
    value = replace(value, parts={name: float(np.max(x, initial=0.0)) for name, x in parts.items()})
    walk.per_pair.append(float(np.max(value.delta)))
    walk.frozen_scale = float(np.max(mag_even))
    return value


def _relu(walk: _Walk, v: Value) -> Value:
    # An element whose computed and exact values are both <= 0 on the whole domain is exactly 0 in both.
    value = Value(
        np.maximum(v.lo, 0.0),
        np.maximum(v.hi, 0.0),
        np.where(v.hi + v.delta <= 0, 0.0, v.delta),
        np.where(v.hi + v.delta_f <= 0, 0.0, v.delta_f),
        v.terms,
        nonneg=True,
    )
    if v.form is None:
        return value
    # The form: rows >= 0 in both networks pass, rows <= 0 in both are 0, the others are relaxed.
    lo, hi = np.concatenate([v.lo.ravel()] * 2), np.concatenate([v.hi.ravel()] * 2)
    bounds = np.concatenate([v.delta.ravel(), v.delta_f.ravel()])
    return _tighter(value, v.form.relu(lo - bounds >= 0, hi + bounds <= 0), walk)


def _linear_map(walk: _Walk, fn: Callable[..., np.ndarray], values: list[Value], terms: int) -> Value:
    """A linear map with nonnegative coefficients of one or more inputs (``fn`` on one tensor per input):
    exact (``terms = 0``: selection, zero padding, reshape, concatenation) or a mean (``terms`` roundings)."""
    if terms == 0:
        fields = [fn(*(getattr(v, name) for v in values)) for name in ("lo", "hi", "delta", "delta_f", "terms")]
        return Value(*fields, nonneg=all(v.nonneg for v in values))
    inflate = walk.inflate
    size = fn(*(np.maximum(np.abs(v.lo), np.abs(v.hi)) for v in values))
    reach = 2 * _gamma(terms + 2, _U64) * size * inflate
    computed = fn(*(v.size(v.delta) for v in values))
    computed_f = fn(*(v.size(v.delta_f) for v in values))
    delta = fn(*(v.delta for v in values)) + _gamma(terms, walk.u) * computed * inflate + terms * walk.tiny
    delta_f = fn(*(v.delta_f for v in values)) + _gamma(terms, walk.uf) * computed_f * inflate + terms * walk.tinyf
    return Value(
        fn(*(v.lo for v in values)) - reach,
        fn(*(v.hi for v in values)) + reach,
        delta * inflate,
        delta_f * inflate,
        fn(*(v.terms for v in values)) * inflate,
        all(v.nonneg for v in values),
    )


def _mean(node: Node, walk: _Walk, v: Value, terms: int) -> Value:
    """Average pooling (fixed or adaptive windows): a mean of at most ``terms − 1`` entries."""
    return _linear_map(walk, lambda x, op=node.op: op(x[None])[0], [v], terms)


def _add(walk: _Walk, first: Value, second: Value) -> Value:
    inflate = walk.inflate
    reach = (
        2
        * _gamma(2, _U64)
        * (np.maximum(np.abs(first.lo), np.abs(first.hi)) + np.maximum(np.abs(second.lo), np.abs(second.hi)))
    )
    delta = (
        first.delta + second.delta + _gamma(1, walk.u) * (first.size(first.delta) + second.size(second.delta))
    ) * inflate
    delta_f = (
        first.delta_f + second.delta_f + _gamma(1, walk.uf) * (first.size(first.delta_f) + second.size(second.delta_f))
    )
    value = Value(
        first.lo + second.lo - reach,
        first.hi + second.hi + reach,
        delta,
        delta_f * inflate,
        (first.terms + second.terms) * inflate,
        first.nonneg and second.nonneg,
    )
    if not walk.forms:
        return value
    sizes = np.concatenate(
        [
            (_gamma(1, walk.u) * (first.size(first.delta) + second.size(second.delta))).ravel(),
            (_gamma(1, walk.uf) * (first.size(first.delta_f) + second.size(second.delta_f))).ravel(),
        ]
    )
    form = _form_of(first, walk).plus(_form_of(second, walk), sizes * inflate, walk.cap)
    return _tighter(value, form, walk)


def _concat(values: list[Value]) -> Value:
    fields = [np.concatenate([getattr(v, name) for v in values]) for name in ("lo", "hi", "delta", "delta_f", "terms")]
    return Value(*fields, nonneg=all(v.nonneg for v in values))


def _input(walk: _Walk, domain: Domain, shape: tuple[int, ...]) -> Value:
    lo, hi = domain.bounding_box() if isinstance(domain, Ball) else (domain.lo, domain.hi)
    lo, hi = np.asarray(lo, dtype=np.float64).reshape(shape), np.asarray(hi, dtype=np.float64).reshape(shape)
    size = np.maximum(np.abs(lo), np.abs(hi))
    cast = walk.u * size if walk.u > _U64 else np.zeros_like(size)
    cast_f = walk.uf * size if walk.uf > _U64 else np.zeros_like(size)
    if not walk.forms:
        return Value(lo, hi, cast, cast_f, size)
    form = AffineErrors.cast(cast.ravel(), cast_f.ravel(), walk.u == walk.uf, walk.inflate, True, walk.cap)
    return Value(lo, hi, cast, cast_f, size, form=form)


def graph_error_bound(
    graph: Graph,
    domain: Domain,
    dtype: str = "float64",
    target_dtype: str = "float64",
    on_node: Callable[[Node, Value], None] | None = None,
    *,
    centred: bool = False,
    rounding: bool = True,
    ranges: Any = None,
) -> ErrorBound:
    """Bound ``|ĝ(x) − f̂(x)|`` for every ``x`` of ``domain`` (a `verify.Box` or `verify.Ball` over the graph's
    input; a Ball enters through its bounding box), see module notes.

    The pairs' norms hold the stored ``(γ, β)`` (values of ``dtype``); ``dtype`` is the frozen network's
    evaluation dtype and ``target_dtype`` the target's. ``on_node(node, value)`` is called after each node
    (``value.form`` is None there). ``centred`` and ``rounding`` are those of an approximate construction
    (module notes). ``ranges``: a `verify.core.graph_ranges.GraphRanges` of this graph's target over this
    domain (checked: ValueError otherwise); every node's ``[lo, hi]`` is intersected with its range.
    ``error_bound`` is ``inf`` (with ``reason``) when an intermediate value may overflow the dtype.
    """
    if not isinstance(graph, Graph):
        raise ValueError(f"graph must be a verify.core.graph.Graph, got {type(graph).__name__}")
    if not isinstance(domain, (Ball, Box)):
        raise ValueError(f"graph_error_bound needs a verify.Ball or verify.Box domain, got {type(domain).__name__}")
    if ranges is not None:
        ranges.check(graph, domain)
    walk = _Walk(graph, dtype, target_dtype, centred, rounding)
    values: dict[str, Value] = {}
    shapes = {node.name: node.shape for node in graph.nodes}
    uses = Counter(name for node in graph.nodes for name in node.inputs)
    for node in graph.nodes:
        ins = [values[name] for name in node.inputs]
        if node.kind == "input":
            value = _input(walk, domain.resolve(math.prod(node.shape)), node.shape)
        elif node.kind == "pair":
            value = _pair(walk, node, ins[0])
        elif node.kind == "relu":
            value = _relu(walk, ins[0])
        elif node.kind == "maxpool":
            value = ins[0].map(lambda x, op=node.op: op(x[None])[0])
        elif node.kind in ("avgpool", "adaptiveavgpool"):
            value = _mean(node, walk, ins[0], node.op.terms(shapes[node.inputs[0]]))
        elif node.kind in ("flatten", "reshape"):  # the same elements in the same order: the form stays
            value = replace(ins[0].map(lambda x, shape=node.shape: x.reshape(shape)), form=ins[0].form)
        elif node.kind == "add":
            value = _add(walk, ins[0], ins[1])
        elif node.kind == "map":
            value = _linear_map(walk, node.op, ins, node.op.terms)
        elif node.kind == "stage":  # a Case-2 stage carries its own transfer (`verify.core.graph_stage`)
            value = node.op.bound(walk, ins[0], domain.resolve(math.prod(graph.input.shape)))
        else:  # concat
            value = _concat(ins)
        if ranges is not None:  # the target's proved range of this node (linear ∩ interval): both contain it
            lo, hi = np.maximum(value.lo, ranges.lo[node.name]), np.minimum(value.hi, ranges.hi[node.name])
            value = replace(value, lo=lo, hi=np.maximum(hi, lo))
        values[node.name] = value
        for name in node.inputs:  # a form no later node reads is dropped (memory)
            uses[name] -= 1
            if uses[name] == 0 and name != graph.output.name:
                values[name] = replace(values[name], form=None)
        if on_node is not None:  # without its form: the walk alone holds the forms it still needs
            on_node(node, replace(value, form=None))
    out = values[graph.output.name]
    scale = float(np.max(out.terms))
    reach = (out.delta + out.delta_f).ravel()
    if out.form is not None:  # ĝ − f̂ with the shared generators cancelling
        reach = np.minimum(reach, out.form.difference().bound())
    total = float(np.max(reach)) * walk.inflate
    if walk.reason or not np.isfinite(total):
        reason = walk.reason or "the bound is not finite"
        return ErrorBound(float("inf"), scale, dtype, target_dtype, reason=f"{reason} in {dtype}", peak=walk.peak)
    return ErrorBound(
        total,
        scale,
        dtype,
        target_dtype,
        blocks=tuple(walk.per_pair),
        frozen_scale=walk.frozen_scale,
        peak=walk.peak,
    )
