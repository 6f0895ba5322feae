"""A rigorous bound on ``|ĝ(x) − f̂(x)|`` over the whole domain (docs/design.md §6.5).

``ĝ`` is the frozen network with the *stored* BatchNorm parameters ``(γ, β)`` (already rounded to
the evaluation dtype) evaluated in floating point with unit roundoff ``u`` (any summation order),
``f̂`` the target evaluated in floating point with its own unit roundoff ``u_f``. The bound is
standard forward error analysis (Higham, *Accuracy and Stability of Numerical Algorithms*, §3):
a dot product of ``m`` terms errs by at most ``γ_m |x|ᵀ|y|`` with ``γ_m = m u / (1 − m u)``, and
underflow adds at most ``m · η`` (``η`` the smallest subnormal).

**Per block ``k``** (target layer ``k`` ↔ frozen layers ``2k−1``, ``2k``) we carry

* a box ``Z_{k−1} = [lo, hi]`` that contains the target's exact block input ``z_{k−1}`` (the domain
  itself for ``k = 1``; later boxes are interval bounds through the target, rounded outwards, and
  intersected with the linear bounds of `verify.core.linear_bounds`, docs/design.md §6.9), and
* ``δ_{k−1} ≥ |ẑ_{k−1} − z_{k−1}|`` componentwise, where ``ẑ`` is what ``ĝ`` computes on the
  live rows of layer ``2k−2`` after the ReLU. ``δ_0 = u |x|`` (casting ``x`` into the evaluation
  dtype; 0 in float64). Every computed ``ẑ`` lies in ``[lo − δ, hi + δ]`` (and ``ẑ ≥ 0`` for
  ``k ≥ 2``); for a ball, the ball enlarged by the box ``δ``.

With ``s = γ/√(v+ε)``, ``t = β − s μ`` (the exact per-neuron maps of the stored parameters):

1. **Linear regime, rigorously.** The odd layer's exact pre-activation ``p_i(ẑ) = s_i (B ẑ + c)_i
   + t_i`` is ``≥ 0`` on the whole enlarged region iff its minimum there is; the minimum is
   computed in float64 (ball: ``s(Bz_c + c) + t − |s| r ‖B_i‖ − |s||B_i|δ``; box: per-term
   minima over the enlarged box; for ``k >= 2`` also ``s_i`` times the linear bounds of ``B_i z`` minus
   ``|s_i||B_i|δ``, and the larger of the two holds) minus ``2 γ^{64}_{m+12}`` times the layer's magnitude
   (rounding of that evaluation and of ``s``, ``t`` themselves). Where this lower bound ``m_i`` is ``≥ 0``,
   ReLU(p) = p on the region; where it is negative nothing is assumed: the neuron may leave its
   linear regime, but only by ``|ReLU(p) − p| = max(0, −p) ≤ −m_i``, which is added to the error of
   its output. Since ReLU is 1-Lipschitz the computed output ``û = ReLU(p̂)`` is then within
   ``ρ_odd + max(0, −m_i)`` of ``p``. (A paired block solved on its halves, §6 below, needs no
   margins and is bounded that way whenever its margins are not all ``≥ 0``.)
2. **Layer rounding** (`layer_rounding`). One frozen layer ``N(M u + c)`` computed from input ``û`` errs from
   its exact value at ``û`` by at most ``ρ = γ_{fan_in + OPS} |s| (|M| |û| + |c| + |μ|) + γ_2 |β| + (fan_in +
   OPS) η``. ``OPS = 10`` counts the bias add (1) and BatchNorm as torch evaluates it in eval mode
   (``(v + ε)``, the square root counted twice to allow an ``rsqrt`` that is not correctly rounded,
   the division, ``γ ·``, ``h·α``, ``μ·α``, ``β − μα`` and the final add: 9), since either of
   ``γ (h − μ)/√(v+ε) + β`` and the fused ``h·α + (β − μα)`` has at most that many roundings on
   any path, each relative to the magnitude above (Higham Lemma 3.3 combines them). Only the final add
   and ``β − μα`` touch ``β`` itself, hence ``γ_2 |β|`` (docs/design.md §6.5 writes both formulas out).
   On a bounded domain both layers of a block in its linear regime are also bounded from the sums of
   their terms (`verify.core.tree_rounding.block_roundings`: the worst summation order from sorted
   terms, BatchNorm relative to ``|M û + c|``), and each keeps the smaller bound.
3. **The block in exact arithmetic** (with the linear regime) maps ``ẑ`` to
   ``(W + E) ẑ + b + r``, where ``E = s′ ⊙ (A diag(s) B) − W`` is the scale-equation residual and
   ``r = t′ + s′ ⊙ (A (s ⊙ c + t) + c′) − b`` the even shift's residual, both with the stored
   parameters, enclosed by `verify.core.residuals.block_residuals` (computed in ``np.longdouble``, with
   ``2 γ_{n+12}`` of their terms in that precision). The errors are affine forms
   (`verify.core.affine_errors`), rows ``[ĝ; f̂]`` over one set of generators: the carried ones map by the
   block's matrix ``W + Ê`` (float64; the exact one's difference, ``2 γ^{64}_{n+12}`` of its terms times
   ``δ``, and the product's rounding go to the remainder), so signs cancel where ``|W| δ`` added them. The
   block's own errors are fresh generators: per odd neuron its rounding and its margin slack through the
   column of ``s′ ⊙ A``, per row the residual ``|E| |z|max + |r|`` over the exact box (``E (ẑ − z)`` is in
   the map) and ``ρ_even``. Between blocks, the target's ReLU: a row ``≥ 0`` in both networks on the whole
   domain passes its generators, one ``≤ 0`` in both is 0, any other keeps half of them and half its bound
   goes to the remainder (``ReLU(ŷ) − ReLU(y) = λ (ŷ − y)``, ``λ ∈ [0, 1]``). At most ``GENERATORS`` are kept
   (the smallest merge into the remainder). ``δ_k`` is the componentwise bound ``|G| 1 + R 1``.
4. **The target's own rounding**: the same analysis on ``f`` (``γ_{d_{k−1}+2}``: products, sum, bias) on the
   ``f̂`` rows, mapped by ``W_k``, fresh ``γ_{d_{k−1}+2}(|W_k| |ẑ^f| + |b_k|)`` per row. The input's cast is one
   generator per coordinate, shared by both networks in the same dtype (they round the same ``x``), so
   ``|ĝ − f̂| ≤ max (|G_ĝ − G_f̂| 1 + R_ĝ 1 + R_f̂ 1)``; ``ErrorBound.terms`` splits it by source.
5. **Magnitudes** are upper bounds over the enlarged regions (ball: ``|W||z_c| + r‖W_i‖₂ + |W|δ``;
   box: ``|W| max(|lo − δ|, |hi + δ|)``). The bound's own float64 arithmetic on non-negative
   quantities (a few nested sums of at most ``N`` terms: a layer's width, or a form's generators and
   remainder, ``3 GENERATORS + 4 d_max + 7``) is covered by inflating every magnitude and every ``δ_k`` by
   ``1 + 4 γ^{64}_{3(N + 20)}``; signed products of generators carry their own ``γ^{64}_n |M| |G| 1``.
6. **Paired blocks** (docs/design.md §3, ``domain=None``): the halves must carry the same ``s``
   (checked: equal ``γ`` and running variance on both halves). Then ``ReLU(p₁) − ReLU(p₂)`` with
   ``p₁ = s h + t₁``, ``p₂ = −s h + t₂`` (computed with errors ``ρ₁, ρ₂``) differs from ``s h`` by at
   most ``ρ₁ + ρ₂ + |t₁| + |t₂|``, and the block is ``(W + E) ẑ + b + r`` with ``E``, ``r`` on the
   halves. On ``R^d`` no absolute bound is finite, but every quantity above is affine in the radius
   ``R`` of the input box ``‖x‖_∞ ≤ R`` (there are no margins, the boxes are the magnitude chain
   ``[0, |W||z| + |b|]``, and the affine forms are taken in absolute value): the bound is ``a + b R``,
   reported as ``error_bound = a`` (at ``x = 0``) and ``error_slope ≥ b`` (the bound at ``R = 1``, an
   over-estimate of ``b``), so
   ``|ĝ(x) − f̂(x)| ≤ error_bound + error_slope · ‖x‖_∞`` for every ``x``.
7. **Overflow**: on a bounded domain, a magnitude above half the dtype's largest finite number
   makes the bound ``inf``; the magnitudes checked include each layer's pre-normalization values
   ``M u + c`` and BatchNorm's ``γ (h − μ)``, since a tiny scale keeps the output small while ``h``
   itself overflows (float16: ``206.75 · (−403) < −65504``). On ``R^d`` every magnitude is
   ``a_i + b_i R`` (``a_i, b_i ≥ 0``), so all stay below that limit for
   ``‖x‖_∞ ≤ valid_radius = (huge/2 − peak(0)) / peak(1)``; the bound is claimed for those ``x``
   only (float64: beyond ``1e300``-ish; float16: often a few tens).

``scale`` is the target evaluated with absolute values over the domain (its terms: ``S_0 = |x|``,
``S_k = |W_k| S_{k−1} + |b_k|``), maximized over outputs; the certificate requires
``error_bound ≤ rtol · scale`` (on ``R^d`` also ``error_slope ≤ rtol · scale_slope``). A target
whose terms all vanish on the domain (``scale = 0``, ``f ≡ 0``) has no size of its own; the bound
is then judged against ``frozen_scale``, the tuned network's own terms over the domain (the
magnitude of its output layer above), so that rounding noise of a cancelling ``g`` is accepted
when it is ``rtol``-small relative to what cancels.

8. **Approximate blocks** (docs/design.md §11): below the threshold the residual ``E`` is not small
   and the even shift centres it, ``r ≈ −E z_c``. Then ``|E| |ẑ|max + |r|`` overstates the block's
   error; with ``centred=True`` the two are bounded together, ``max |Ê z + r̂|`` over the exact
   region (``E (ẑ − z)`` is carried by the map of 3; computed in float64 like the margins, plus
   ``2 γ^{64}_{d+12}`` of its magnitude) plus the
   roundings of ``E`` and ``r`` themselves as in 3. A neuron that leaves its linear regime is
   still carried as in 1, so the bound stays rigorous whatever the shifts.

Assumptions: IEEE arithmetic in the evaluation dtype with round to nearest (or in a wider one:
float64 evaluation of float32 parameters is covered, TF32 matmuls are not), no fused operations
that round less accurately than separate ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from verify.core.affine_errors import SOURCES, AffineErrors
from verify.core.blocks import blocks
from verify.core.domains import Domain
from verify.core.float_model import (
    _HUGE,
    _NORMAL,
    _TINY,
    _U64,
    _UNIT,
    FLOAT_DTYPES,
    OPS,
    _gamma,
    layer_rounding,
    unit_roundoff,
)
from verify.core.linear_bounds import LinearBounds, target_bounds
from verify.core.networks import FrozenNetwork, TargetNetwork
from verify.core.regions import _Region, _target_fresh, input_region, preactivation_range
from verify.core.residuals import StoredNorm, block_residuals
from verify.core.tree_rounding import block_roundings

__all__ = ["FLOAT_DTYPES", "OPS", "ErrorBound", "error_bound", "unit_roundoff"]

GENERATORS = 512
"""The most generators an error form keeps (module notes 3): the smallest are merged into its remainder."""


@dataclass(frozen=True)
class ErrorBound:
    """The certified bound ``|ĝ(x) − f̂(x)| <= error_bound + error_slope · ‖x‖_∞`` on the domain.

    ``error_slope`` and ``scale_slope`` are 0 on a bounded domain; ``reason`` says why a bound is
    ``inf`` (empty otherwise); ``blocks`` holds ``max δ_k`` per block (the error carried out of it).
    ``peak`` is the largest intermediate magnitude bounded on the way. On ``R^d`` the magnitudes grow
    with ``‖x‖_∞`` and the dtype overflows somewhere: ``valid_radius`` is the ``‖x‖_∞`` up to which
    every intermediate value provably stays below half the dtype's largest number, and the bound is
    claimed there only (`at` is ``inf`` beyond; ``inf`` on a bounded domain, where overflow refuses).
    """

    error_bound: float
    scale: float
    dtype: str
    target_dtype: str
    error_slope: float = 0.0
    scale_slope: float = 0.0
    reason: str = ""
    blocks: tuple[float, ...] = field(default_factory=tuple)
    frozen_scale: float = 0.0
    peak: float = 0.0
    valid_radius: float = float("inf")
    terms: tuple[tuple[str, float], ...] = field(default_factory=tuple)

    def at(self, x: np.ndarray) -> np.ndarray:
        """The bound at each point of ``x`` (shape ``(batch, d_0)``): ``error_bound + error_slope · ‖x‖_∞``,
        and ``inf`` where ``‖x‖_∞`` exceeds ``valid_radius`` (nothing is claimed where the dtype may overflow)."""
        norms = np.max(np.abs(np.atleast_2d(x)), axis=1)
        if not np.isfinite(self.error_slope):
            return np.full_like(norms, np.inf)
        bound = self.error_bound + (self.error_slope * norms if self.error_slope else np.zeros_like(norms))
        return np.where(norms <= self.valid_radius, bound, np.inf)

    def within(self, rtol: float) -> bool:
        """``error_bound <= rtol · scale`` (and the same for the slopes on ``R^d``); ``scale = 0``: ``frozen_scale``.

        When even that reference is below the dtype's smallest normal number, every term of both
        networks is at the underflow level, where no relative accuracy exists: the bound is then
        accepted up to that smallest normal number (an absolute error indistinguishable from 0).
        """
        reference = self.scale if self.scale > 0 else self.frozen_scale
        allowed = rtol * reference
        if reference < _NORMAL[self.dtype]:
            allowed = max(allowed, _NORMAL[self.dtype])
        return bool(self.error_bound <= allowed and self.error_slope <= rtol * self.scale_slope)


def error_bound(
    target: TargetNetwork,
    frozen: FrozenNetwork,
    gamma: list[np.ndarray],
    beta: list[np.ndarray],
    domain: Domain | None,
    *,
    dtype: str = "float64",
    target_dtype: str = "float64",
    centred: bool = False,
    rounding: bool = True,
) -> ErrorBound:
    """Bound ``|ĝ(x) − f̂(x)|`` over ``domain`` (``None``: all of ``R^d``, paired blocks) (see module notes).

    ``gamma``, ``beta`` are the stored BatchNorm parameters (float64 arrays holding values of
    ``dtype``); ``dtype`` is the frozen network's evaluation dtype and ``target_dtype`` the target's.
    ``centred=True`` (an approximate construction, module notes 8) bounds the block's residual terms
    ``E ẑ + r`` together over the region instead of ``|E| |ẑ| + |r|``; ``rounding=False`` leaves the
    evaluation roundings of both networks out (``u = η = 0``): the error of the parameters alone, in
    exact arithmetic (the bound's own float64 allowances stay).
    """
    unit_roundoff(dtype), unit_roundoff(target_dtype)
    gamma = [np.asarray(g, dtype=np.float64) for g in gamma]
    beta = [np.asarray(b, dtype=np.float64) for b in beta]
    if domain is None:
        dim = target.widths[0]
        at = [
            _bound(
                target,
                frozen,
                gamma,
                beta,
                _Region(-np.full(dim, r), np.full(dim, r), np.zeros(dim)),
                True,
                dtype,
                target_dtype,
                centred,
                rounding,
            )
            for r in (0.0, 1.0)
        ]
        zero, one = at
        failed = bool(zero.reason or one.reason)
        # Every magnitude is a_i + b_i R with a_i, b_i >= 0, so max_i(a_i + b_i R) <= peak(0) + R peak(1).
        valid = (_HUGE[dtype] / 2 - zero.peak) / one.peak if one.peak > 0 else float("inf")
        return ErrorBound(
            error_bound=float("inf") if failed else zero.error_bound,
            scale=zero.scale,
            dtype=dtype,
            target_dtype=target_dtype,
            error_slope=one.error_bound,
            scale_slope=max(one.scale - zero.scale, 0.0),
            reason=zero.reason or one.reason,
            blocks=one.blocks,
            frozen_scale=zero.frozen_scale,
            peak=zero.peak,
            valid_radius=max(valid, 0.0),
        )
    domain = domain.resolve(target.widths[0])
    first = input_region(domain, "error_bound")
    ranges = target_bounds(target, domain)  # the target's linear bounds (module notes 1 and 3): tighter regions
    return _bound(target, frozen, gamma, beta, first, False, dtype, target_dtype, centred, rounding, ranges)


def _bound(
    target: TargetNetwork,
    frozen: FrozenNetwork,
    gamma: list[np.ndarray],
    beta: list[np.ndarray],
    first: _Region,
    rd: bool,
    dtype: str,
    target_dtype: str,
    centred: bool = False,
    rounding: bool = True,
    ranges: LinearBounds | None = None,
) -> ErrorBound:
    u, tiny, huge = _UNIT[dtype], _TINY[dtype], _HUGE[dtype]
    uf = _UNIT[target_dtype]
    if not rounding:  # exact evaluation of both networks: only the parameters' error remains
        u = tiny = uf = 0.0
    # Sums of non-negative terms: at most a layer's width, or an error form's generators and remainder.
    widest = max(*frozen.widths, *target.widths, 3 * GENERATORS + 4 * max(target.widths) + len(SOURCES))
    inflate = 1.0 + 4.0 * _gamma(3 * (widest + 20), _U64)
    std = list(frozen.norm_std)
    scales = [g / sd for g, sd in zip(gamma, std, strict=True)]
    shifts = [b - s * mu for b, s, mu in zip(beta, scales, frozen.running_mean, strict=True)]

    def failed(reason: str) -> ErrorBound:
        return ErrorBound(float("inf"), scale, dtype, target_dtype, reason=reason)

    box_max = first.largest()
    exact = first
    cast_g = u * box_max if u > _U64 else np.zeros_like(box_max)
    cast_f = uf * box_max if uf > _U64 else np.zeros_like(box_max)
    g_region, f_region = first.with_delta(cast_g), first.with_delta(cast_f)
    errors = AffineErrors.cast(cast_g, cast_f, u == uf, inflate, signs=not rd)
    scale = float("nan")
    terms = np.zeros(0)
    per_block = []
    highest = 0.0
    for block in blocks(target, frozen):
        k, jo, je = block.k, block.odd, block.even
        d_k = block.w.shape[0]
        w_abs = np.abs(block.w)
        # The target's terms (the scale) over the domain: |W| |z| + |b|, the ball exactly on layer 1.
        terms = (exact.magnitude(w_abs, inflate) if k == 1 else (w_abs @ terms) * inflate) + np.abs(block.bias)
        scale = float(np.max(terms))
        if k < target.depth and (np.any(gamma[je][d_k:] != 0) or np.any(beta[je][d_k:] != 0)):
            return failed(
                f"block {k}: even layer {je + 1} has neurons beyond the first {d_k} that are not switched off"
            )
        so, to, bo, muo = scales[jo], shifts[jo], beta[jo], frozen.running_mean[jo]
        se, te = scales[je][:d_k], shifts[je][:d_k]
        be, mue = beta[je][:d_k], frozen.running_mean[je][:d_k]
        fan_odd, fan_even = frozen.widths[jo], frozen.widths[je]
        b_abs, a_abs = np.abs(block.b), np.abs(block.a)
        # The odd layer: magnitude, rounding, and (shifted blocks) the rigorous linear regime.
        scaled_odd = np.abs(so) * (g_region.magnitude(b_abs, inflate) + np.abs(block.c_odd) + np.abs(muo))
        mag_odd = (scaled_odd + np.abs(bo)) * inflate
        rho_odd = layer_rounding(scaled_odd, np.abs(bo), fan_odd, u, tiny, inflate)
        t_abs = (np.abs(bo) + np.abs(so) * np.abs(muo)) * (1 + 4 * _gamma(4, _U64))
        # The exact |t| of the stored parameters: its float64 value plus the rounding of computing it
        # (s = γ/√(v+ε), s·μ, β − s·μ: a few roundings, each relative to |β| + |s||μ|).
        t_exact = (np.abs(to) + 2 * _gamma(6, _U64) * (np.abs(bo) + np.abs(so) * np.abs(muo))) * inflate
        allowance = 2 * _gamma(block.b.shape[1] + 12, _U64) * mag_odd
        m = block.pairs
        halves = (
            m is not None and np.array_equal(gamma[jo][:m], gamma[jo][m:]) and np.array_equal(std[jo][:m], std[jo][m:])
        )
        linear = False
        if not rd:  # a shifted block: its linear regime, proved on the enlarged region
            margin = g_region.minimum(so[:, None] * block.b, so * block.c_odd + to) - allowance
            if ranges is not None and k > 1:  # the same minimum from the linear bounds of B z_{k-1}; the larger holds
                low, high = ranges.range(k - 1, block.b)
                reach = np.abs(so) * (b_abs @ g_region.delta)
                tight = np.where(so >= 0, so * low, so * high) + so * block.c_odd + to - reach - allowance
                margin = np.maximum(margin, tight)
            # A neuron whose margin lower bound m_i is negative may leave its linear regime, but only by
            # |ReLU(p) − p| = max(0, −p) <= −m_i: that is carried as an error of its output, not assumed
            # away (a paired block on its halves is bounded below without margins instead).
            linear = bool(np.all(margin >= 0)) or not halves
        if linear:
            a_eff, b_eff, c_eff, s_eff, t_eff = block.a, block.b, block.c_odd, so, to
            odd_slack = np.maximum(-margin, 0.0) * inflate
        else:  # a paired block (on R^d, or solved on its halves on a bounded domain): no margin needed
            if m is None:
                return failed(f"block {k} is not paired ([B; -B], [A, -A]); all of R^d needs a paired network")
            if not halves:
                return failed(f"block {k}: the two halves of paired layer {jo + 1} have different scales")
            a_eff, b_eff, c_eff, s_eff, t_eff = block.a[:, :m], block.b[:m], block.c_odd[:m], so[:m], np.zeros(m)
            odd_slack = t_exact
        # The even layer: its input magnitude |û| <= |p| + ρ_odd, its rounding.
        u_odd = (mag_odd + rho_odd) * inflate
        scaled_even = np.abs(se) * (a_abs @ u_odd + np.abs(block.c_even) + np.abs(mue))
        mag_even = (scaled_even + np.abs(be)) * inflate
        rho_even = layer_rounding(scaled_even, np.abs(be), fan_even, u, tiny, inflate)
        if linear and ranges is not None:  # the same roundings from the layers' sums, for any order (tree_rounding)
            odd = (so, to, bo, muo, mag_odd, odd_slack)
            rounded = block_roundings(block, g_region, ranges, odd, (se, te, be, mue), u, tiny, inflate)
            rho_odd, rho_even = np.minimum(rho_odd, rounded[0]), np.minimum(rho_even, rounded[1])
        # Every row of the even layer (switched-off ones too: their h must stay finite for 0·h to be 0).
        h_even = (np.abs(frozen.weights[je]) @ u_odd + np.abs(frozen.biases[je])) * inflate
        # The pre-normalization values too (h = M u + c, then h − μ and γ·(h − μ) inside BatchNorm):
        # a tiny scale s can keep the normalized output small while h itself overflows.
        h_odd = (g_region.magnitude(b_abs, inflate) + np.abs(block.c_odd)) * inflate
        inside = [
            (h + np.abs(mu)) * np.maximum(1.0, np.abs(g)) * inflate
            for h, mu, g in ((h_odd, muo, gamma[jo]), (h_even, frozen.running_mean[je], gamma[je]))
        ]
        peak = max(
            float(np.max(mag_odd, initial=0.0)),
            float(np.max(mag_even, initial=0.0)),
            float(np.max(h_even)),
            *(float(np.max(v, initial=0.0)) for v in inside),
        )
        highest = max(highest, peak)
        if peak > huge / 2 and not rd:  # on R^d the valid radius says where overflow starts instead
            return failed(f"block {k}: intermediate values may overflow {dtype}")
        # The residuals of the scale equation and of the even shift, with the stored parameters.
        n_eff = b_eff.shape[0]
        rows = slice(0, n_eff)
        var, eps = frozen.running_var, frozen.layer_eps
        odd_norm = StoredNorm(s_eff, t_eff, gamma[jo][rows], beta[jo][rows], muo[rows], var[jo][rows], eps[jo])
        even_norm = StoredNorm(se, te, gamma[je][:d_k], be, mue, var[je][:d_k], eps[je])
        t_eff_abs = t_abs if linear else np.zeros(len(t_eff))
        res = block_residuals(
            a_eff, b_eff, c_eff, block.c_even, block.w, block.bias, odd_norm, even_norm, t_eff_abs, shifted=linear
        )
        e_hat, r_hat, e_terms, r_terms, slack = res.e_hat, res.r_hat, res.e_terms, res.r_terms, res.slack
        e_bar, r_bar = res.bars(inflate)
        if centred:  # max |E z + r| over the exact region (module notes 8), plus the roundings of E, r and of this
            affine = np.maximum(-exact.minimum(e_hat, r_hat), -exact.minimum(-e_hat, -r_hat))
            evaluation = (
                2 * _gamma(block.w.shape[1] + 12, _U64) * (exact.magnitude(np.abs(e_hat), inflate) + np.abs(r_hat))
            )
            residual = (affine + evaluation + slack * r_terms) * inflate + exact.magnitude(slack * e_terms, inflate)
        else:
            residual = (exact.magnitude(e_bar, inflate) + r_bar) * inflate
        # The block's error against the target's exact W z + b (module notes 3): the carried errors map by the
        # block's exact matrix W + E (its float64 value, the difference in the remainder), this block's own
        # errors are fresh generators: the residual per row, the odd layer's rounding per odd neuron through
        # the even layer's column of s' ⊙ A, the even layer's rounding per row.
        d_in = block.w.shape[1]
        target_fresh = _target_fresh(f_region, w_abs, block.bias, target_dtype, inflate) if rounding else np.zeros(d_k)
        carry_slack = (res.carry_slack * res.m_terms) @ g_region.delta * inflate  # float64 W + E against the exact
        errors = _block_errors(errors, res.carried, block.w, carry_slack, d_k, d_in)
        odd = se[:, None] * block.a
        errors = _with_odd(errors, odd, rho_odd, "odd rounding", d_k, inflate)
        errors = _with_odd(errors, odd, odd_slack, "margins", d_k, inflate)
        zeros = np.zeros(d_k)
        errors = errors.fresh(np.concatenate([residual, zeros]), "residual")
        errors = errors.fresh(np.concatenate([rho_even, zeros]), "even rounding")
        errors = errors.fresh(np.concatenate([zeros, target_fresh]), "target rounding").capped(GENERATORS)
        bounds = errors.bound()
        delta, delta_f = bounds[:d_k], bounds[d_k:]
        per_block.append(float(np.max(delta)))
        if not np.all(np.isfinite(delta)):
            return failed(f"block {k}: the bound is not finite in {dtype}")
        if k == target.depth:
            difference = errors.difference()
            reach = difference.bound()
            worst = int(np.argmax(reach))
            total = float(reach[worst]) * inflate
            split = tuple((name, value * inflate) for name, value in difference.terms(worst).items())
            frozen_scale = float(np.max(mag_even))
            break
        # The next block's box: the target's exact z_k, rounded outwards (R^d: the magnitude chain).
        if rd:
            lo, hi = np.zeros(d_k), terms
        else:
            lo_pre, hi_pre = preactivation_range(exact, block.w, block.bias, inflate)
            if ranges is not None:  # intersected with the linear bounds of h_k (both contain it)
                lo_pre, hi_pre = np.maximum(lo_pre, ranges.lo[k - 1]), np.minimum(hi_pre, ranges.hi[k - 1])
            lo, hi = np.maximum(lo_pre, 0.0), np.maximum(hi_pre, 0.0)
            # The target's ReLU in both networks (module notes 3): a row >= 0 in both on the whole domain passes
            # its errors, a row <= 0 in both is exactly 0, any other row is relaxed (the zonotope ReLU).
            pre = np.concatenate([lo_pre, lo_pre]), np.concatenate([hi_pre, hi_pre])
            errors = errors.relu(pre[0] - bounds >= 0, pre[1] + bounds <= 0)
            bounds = errors.bound()
            delta, delta_f = bounds[:d_k], bounds[d_k:]
        exact = _Region(lo, hi, np.zeros(d_k), nonneg=True)
        g_region, f_region = exact.with_delta(delta), exact.with_delta(delta_f)
    return ErrorBound(
        total,
        scale,
        dtype,
        target_dtype,
        blocks=tuple(per_block),
        frozen_scale=frozen_scale,
        peak=highest,
        terms=split,
    )


def _block_errors(
    errors: AffineErrors, carried: np.ndarray, w: np.ndarray, slack: np.ndarray, d_k: int, d_in: int
) -> AffineErrors:
    """Rows ``[ĝ; f̂]`` through one block: ``ĝ``'s errors by the block's matrix ``W + Ê`` (``slack`` bounds the
    exact one's difference times the errors), ``f̂``'s by ``W``."""
    matrix = np.zeros((2 * d_k, 2 * d_in))
    matrix[:d_k, :d_in], matrix[d_k:, d_in:] = carried, w
    return errors.transform(matrix).with_remainder(np.concatenate([slack, np.zeros(d_k)]), "float64")


def _with_odd(
    errors: AffineErrors, odd: np.ndarray, sizes: np.ndarray, source: str, d_k: int, inflate: float
) -> AffineErrors:
    """One generator per odd neuron ``i`` with an error of size ``sizes_i`` (through column ``i`` of ``s' ⊙ A``):
    the ``GENERATORS`` largest by ``ℓ1`` norm, the others' ``|s'| |A| sizes`` into the remainder."""
    sizes = np.maximum(sizes, 0.0)
    norms = np.abs(odd).sum(axis=0) * sizes
    chosen = np.flatnonzero(norms)
    if len(chosen) > GENERATORS:
        chosen = np.sort(chosen[np.argsort(-norms[chosen], kind="stable")[:GENERATORS]])
    others = sizes.copy()
    others[chosen] = 0.0
    columns = np.vstack([odd[:, chosen] * sizes[chosen], np.zeros((d_k, len(chosen)))])
    rest = np.concatenate([(np.abs(odd) @ others) * inflate, np.zeros(d_k)])
    return errors.with_columns(columns, source, exact=False).with_remainder(rest, source)
