"""A rigorous bound on ``|ĝ(x) − f̂(x)|`` for a residual (Case 2) reconstruction (docs/design.md §6.6).

The dense-chain analysis of `verify.core.error_bound` carried per block; a residual network carries
its *stream* instead. During stage ``k`` the exact stream (the frozen network in exact arithmetic, on
the target's exact stage input ``z``) is ``x = T z + c`` (`verify.core.residual.StreamMap`), and the
error ``x̂ − x`` of the stream the frozen network computes in its dtype (any summation order) is carried
as a zonotope ``G ξ``, ``ξ ∈ [−1, 1]^g`` (`verify.core.affine_errors.AffineErrors`): its componentwise
bound is ``ε = |G| 1``. At the input ``G = diag(u |x|)`` on the input rows (the cast; 0 in float64).

**One branch** owning rows ``R`` (odd layer ``B``, even layer ``A``, per-neuron maps ``s, t`` and
``s', t'`` of the stored BatchNorm parameters; its even rows outside ``R`` have ``γ = β = 0`` and add
exactly 0):

1. *The linear regime, rigorously.* Its odd pre-activation ``s ⊙ (B x̂ + c_j) + t`` has, over ``z`` in
   the stage's box (or ball) and every error of the zonotope, the lower bound
   ``m = min_z (s ⊙ B T) z + s ⊙ (B c + c_j) + t − |(s ⊙ B) G| 1`` minus the float64 allowance of its
   evaluation. A neuron with ``m < 0`` is not assumed linear: it can leave its linear regime by at most
   ``−m``, which is added to its output's error (as in the dense bound).
2. *In exact arithmetic* the branch in its linear regime is ``M x̂ + o`` with
   ``M = diag(s') A_R diag(s) B`` and ``o = s' ⊙ (A_R (s ⊙ c_j + t) + c'_R) + t'``. At the exact stream,
   ``x_R + M x + o = W_R z + b_R + E z + r`` with the scale-equation residual ``E = M T − (W_R − T_R)``
   and the shift residual ``r = M c + o − (b_R − c_R)``, both of the stored parameters. So the updated
   rows err from the exact ``W_R z + b_R`` by ``(S_R + M)(x̂ − x)`` (``S_R`` selects rows ``R``), mapped
   exactly (``G_R ← (S_R + M) G``), plus at most

       |E| |z| + |r| + |s'| |A_R| (ρ_odd + max(0, −m)) + ρ_even

   (``ρ`` the layers' rounding, item 2 of `verify.core.error_bound`), which becomes ``|R|`` fresh
   generators together with the addition's rounding ``u (|W_R z + b_R| + …)``. ``E``, ``r`` and ``M``
   are computed in float64; each is bounded by its computed value plus ``2 γ^{64}`` of its terms'
   magnitude, and the rounding of the product ``(S_R + M) G`` is added to the fresh part. Then
   ``T_R ← W_R``, ``c_R ← b_R``.
3. *Between stages* the stream goes through a ReLU: the identity on a row positive in both networks
   on the whole domain, 0 on a row ``<= 0`` in both, and 1-Lipschitz on the others, whose error
   becomes one fresh generator of its size. The next stage's box is the target's interval bound,
   rounded outwards (`preactivation_range`).
4. The target's own rounding, the scale, the overflow checks and the inflation of the bound's own
   float64 arithmetic are those of the dense bound (`target_rounding`).

5. *Approximate branches* (docs/design.md §11, ``centred=True``): a branch too narrow for its rows
   writes ``W_R z + b_R + E (z − z_c)``, and the later branches were solved on the stream as it wrote it.
   The bookkeeping then follows the branches' own maps: after each branch ``T_R ← T_R + M T`` and
   ``c_R ← c_R + M c + o`` (computed in float64 from the stored parameters; any values are a valid
   bookkeeping, since ``E`` and ``r`` of item 2 are bounded against them, and are here at rounding level),
   and ``E``, ``r`` are bounded together, ``max |Ê z + r̂|`` over the stage's exact region plus
   ``2 γ^{64}`` of its evaluation's magnitude and their own roundings. At the end of the stage the
   bookkeeping's distance to the target, ``max |(T − W) z + (c − b)|`` over the region (rows beyond
   ``d_k`` against 0) plus the allowance of computing it, becomes one fresh generator per row: that is
   the approximation error, carried through the ReLU and the later stages with everything else.
   ``blocks`` then holds, per branch, the stream's error plus its distance to the planned stream.
   ``rounding=False`` sets the evaluation roundings of both networks to zero (``u = η = 0``): the
   parameters' own error.

The bound is a forward error analysis with no first-order truncation: every product of an error with
a magnitude is bounded by magnitudes that already include the errors.
"""

from __future__ import annotations

import numpy as np

from verify.core.affine_errors import AffineErrors
from verify.core.domains import Domain
from verify.core.error_bound import (
    _HUGE,
    _TINY,
    _U64,
    _UNIT,
    ErrorBound,
    _gamma,
    _Region,
    input_region,
    layer_rounding,
    preactivation_range,
    target_rounding,
    unit_roundoff,
)
from verify.core.networks import FrozenNetwork, TargetNetwork
from verify.core.residual import ResidualFrozenNetwork, StreamMap, stage_rows

__all__ = ["residual_error_bound"]


def residual_error_bound(
    target: TargetNetwork,
    frozen: ResidualFrozenNetwork,
    gamma: list[np.ndarray],
    beta: list[np.ndarray],
    domain: Domain,
    *,
    dtype: str = "float64",
    target_dtype: str = "float64",
    centred: bool = False,
    rounding: bool = True,
) -> ErrorBound:
    """Bound ``|ĝ(x) − f̂(x)|`` over ``domain`` for the residual network with BatchNorm ``(gamma, beta)``.

    ``gamma``, ``beta`` hold the ``2 m L`` stored parameter arrays in network order; ``dtype`` is the
    frozen network's evaluation dtype, ``target_dtype`` the target's (see module notes). ``blocks`` of
    the result holds the largest stream error after each branch. ``centred`` and ``rounding`` are those
    of an approximate result (module notes, item 5).
    """
    unit_roundoff(dtype), unit_roundoff(target_dtype)
    exact = input_region(domain.resolve(target.widths[0]), "residual_error_bound")
    box_max = exact.largest()
    u, tiny, huge, uf = _UNIT[dtype], _TINY[dtype], _HUGE[dtype], _UNIT[target_dtype]
    if not rounding:  # exact evaluation of both networks: only the parameters' error remains
        u = tiny = uf = 0.0
    stream = frozen.stream_width
    widest = max(stream, *target.widths, *(n for stage in frozen.odd_widths for n in stage))
    # Generators: the input's, one per stream row per branch and per ReLU between stages, at most.
    generators = stream * (1 + frozen.branches * frozen.stage_count + frozen.stage_count * (2 if centred else 1))
    inflate = 1.0 + 4.0 * _gamma(3 * (widest + generators + 20), _U64)
    scales, shifts = frozen.affine_maps(gamma, beta)
    d = target.widths
    gamma = [np.asarray(g, dtype=np.float64) for g in gamma]
    beta = [np.asarray(b, dtype=np.float64) for b in beta]
    start = np.zeros(stream)
    start[: d[0]] = u * box_max if u > _U64 else 0.0
    errors = AffineErrors(np.diag(start), inflate)
    f_region = exact.with_delta(uf * box_max if uf > _U64 else np.zeros_like(box_max))
    terms = np.zeros(0)
    per_branch: list[float] = []
    highest = 0.0
    index = 0
    for k, stage in enumerate(frozen.stages, start=1):
        d_in, d_out = d[k - 1], d[k]
        w, bias = target.weights[k - 1], target.biases[k - 1]
        w_pad, b_pad = np.zeros((stream, d_in)), np.zeros(stream)
        w_pad[:d_out], b_pad[:d_out] = w, bias
        terms = (exact.magnitude(np.abs(w), inflate) if k == 1 else (np.abs(w) @ terms) * inflate) + np.abs(bias)
        state = planned = StreamMap.start(stream, d_in)
        for net, rows in zip(stage, stage_rows(d_in, d_out, len(stage), stage=k), strict=True):
            i = 2 * index
            step = _Branch(net, rows, scales[i : i + 2], shifts[i : i + 2], gamma[i : i + 2], beta[i : i + 2])
            planned = planned.written(rows, w_pad[rows], b_pad[rows])
            # The rows' new affine map: the target's (exact bookkeeping), or what the branch computes (centred).
            w_r, b_r = step.writes(state) if centred else (w_pad[rows], b_pad[rows])
            errors, peak = step.carry(exact, state, errors, w_r, b_r, u, tiny, inflate, centred)
            highest = max(highest, peak)
            if peak > huge / 2:
                return _failed(dtype, target_dtype, float(np.max(terms)), f"branch {index + 1}: values may overflow")
            eps = errors.bound()
            if not np.all(np.isfinite(eps)):
                return _failed(dtype, target_dtype, float(np.max(terms)), f"branch {index + 1}: not finite")
            state = state.written(rows, w_r, b_r)
            # The stream's distance to the planned one so far: 0 with the exact bookkeeping.
            away = _deviation(exact, state, planned, inflate) if centred else 0.0
            per_branch.append(float(np.max(eps + away)))
            index += 1
        if centred:  # the stage's affine map against the target's: fresh generators (module notes, item 5)
            errors = errors.fresh(_deviation(exact, state, planned, inflate), "residual")
            eps = errors.bound()
        if rounding:
            delta_f = target_rounding(f_region, np.abs(w), bias, target_dtype, inflate)
        else:
            delta_f = np.zeros(d_out)
        if k == target.depth:
            out = exact.magnitude(np.abs(w), inflate) + np.abs(bias)
            total = float(np.max(eps[:d_out] + delta_f)) * inflate
            return ErrorBound(
                total,
                float(np.max(terms)),
                dtype,
                target_dtype,
                blocks=tuple(per_branch),
                frozen_scale=float(np.max(out + eps[:d_out])),
                peak=highest,
            )
        lo_pre, hi_pre = preactivation_range(exact, w, bias, inflate)
        # ReLU on the stream: the identity on a row positive in both networks on the whole domain, 0 on a row
        # <= 0 in both; on any other row 1-Lipschitz, so its error becomes one fresh generator of its size.
        eps = errors.bound()
        active = np.zeros(stream, dtype=bool)
        active[:d_out] = lo_pre - eps[:d_out] > 0
        dead = np.zeros(stream, dtype=bool)
        dead[:d_out] = hi_pre + eps[:d_out] <= 0
        errors = errors.through_relu(active, dead)
        delta_f = np.where(hi_pre + delta_f <= 0, 0.0, delta_f)
        exact = _Region(np.maximum(lo_pre, 0.0), np.maximum(hi_pre, 0.0), np.zeros(d_out), nonneg=True)
        f_region = exact.with_delta(delta_f)
    raise AssertionError("unreachable: the last stage returns")


class _Branch:
    """One branch's figures (module notes, items 1–2)."""

    def __init__(
        self,
        net: FrozenNetwork,
        rows: np.ndarray,
        scales: list[np.ndarray],
        shifts: list[np.ndarray],
        gamma: list[np.ndarray],
        beta: list[np.ndarray],
    ) -> None:
        self.b, self.a = net.weights[0], net.weights[1][rows]
        self.c_j, self.c_even = net.biases[0], net.biases[1][rows]
        self.mu, self.mu_even = net.running_mean[0], net.running_mean[1]
        self.s, self.t, self.g, self.beta_odd = scales[0], shifts[0], gamma[0], beta[0]
        self.se, self.te, self.be = scales[1][rows], shifts[1][rows], beta[1][rows]
        self.rows, self.g_even, self.a_full, self.c_full = rows, gamma[1], net.weights[1], net.biases[1]
        self.n, self.stream = self.b.shape

    def writes(self, state: StreamMap) -> tuple[np.ndarray, np.ndarray]:
        """The affine map ``(T_R, c_R)`` of the rows after this branch in exact arithmetic and its linear regime,
        computed in float64 (any values are a valid bookkeeping: `carry` bounds the residuals against them):
        ``T_R + M T`` and ``c_R + M c + o``, ``M = diag(s') A_R diag(s) B``,
        ``o = s' ⊙ (A_R (s ⊙ c_j + t) + c'_R) + t'``."""
        m_hat = self.se[:, None] * ((self.a * self.s) @ self.b)
        offset = self.se * (self.a @ (self.s * self.c_j + self.t) + self.c_even) + self.te
        return state.t[self.rows] + m_hat @ state.t, state.c[self.rows] + m_hat @ state.c + offset

    def carry(
        self,
        exact: _Region,
        state: StreamMap,
        errors: AffineErrors,
        w_r: np.ndarray,
        b_r: np.ndarray,
        u: float,
        tiny: float,
        inflate: float,
        centred: bool = False,
    ) -> tuple[AffineErrors, float]:
        """The stream's errors after this branch, and the largest magnitude bounded on the way (``centred``: the
        residual terms ``E z + r`` bounded together, module notes item 5)."""
        eps = errors.bound()
        s, t, b, a, se = self.s, self.t, self.b, self.a, self.se
        abs_s, abs_se, abs_b, abs_a = np.abs(s), np.abs(se), np.abs(b), np.abs(a)
        t_abs = (np.abs(self.beta_odd) + abs_s * np.abs(self.mu)) * (1 + 4 * _gamma(4, _U64))
        # The exact stream's magnitude |T z + c| over the stage's region, then the computed one's.
        x_mag = (exact.magnitude(np.abs(state.t), inflate) + np.abs(state.c)) * inflate
        xhat = (x_mag + eps) * inflate
        scaled_odd = abs_s * (abs_b @ xhat + np.abs(self.c_j) + np.abs(self.mu))
        mag_odd = (scaled_odd + np.abs(self.beta_odd)) * inflate
        rho_odd = layer_rounding(scaled_odd, np.abs(self.beta_odd), self.stream, u, tiny, inflate)
        sbt = s[:, None] * (b @ state.t)
        c_odd = b @ state.c + self.c_j
        allowance = 2 * _gamma(self.stream + state.t.shape[1] + 12, _U64) * mag_odd
        # How far the computed pre-activation can sit below the exact one: |s ⊙ B G| 1, plus that product's rounding.
        shift = errors.reach(s[:, None] * b) + _gamma(self.stream + 2, _U64) * ((abs_s[:, None] * abs_b) @ eps)
        margin = exact.minimum(sbt, s * c_odd + t) - shift * inflate - allowance
        odd_error = rho_odd + np.maximum(-margin, 0.0) * inflate
        u_odd = (mag_odd + rho_odd) * inflate
        scaled_even = abs_se * (abs_a @ u_odd + np.abs(self.c_even) + np.abs(self.mu_even[self.rows]))
        mag_even = (scaled_even + np.abs(self.be)) * inflate
        rho_even = layer_rounding(scaled_even, np.abs(self.be), self.n, u, tiny, inflate)
        h_even = (np.abs(self.a_full) @ u_odd + np.abs(self.c_full)) * inflate  # every row must stay finite
        h_odd = (abs_b @ xhat + np.abs(self.c_j)) * inflate
        inside = [
            (h + np.abs(mu)) * np.maximum(1.0, np.abs(g)) * inflate
            for h, mu, g in ((h_odd, self.mu, self.g), (h_even, self.mu_even, self.g_even))
        ]
        peak = max(float(np.max(v, initial=0.0)) for v in (mag_odd, mag_even, h_even, xhat, *inside))
        # M, E = M T − (W_R − T_R) and r = M c + o − (b_R − c_R), each with its float64 allowance.
        slack = 2 * _gamma(self.n + self.stream + state.t.shape[1] + 12, _U64)
        m_hat = se[:, None] * ((a * s) @ b)
        m_terms = abs_se[:, None] * ((abs_a * abs_s) @ abs_b)
        m_bar = np.abs(m_hat) + slack * m_terms
        select = np.zeros_like(m_hat)
        select[np.arange(len(self.rows)), self.rows] = 1.0
        change = w_r - state.t[self.rows]
        e_hat = m_hat @ state.t - change
        e_terms = m_bar @ np.abs(state.t) + np.abs(w_r) + np.abs(state.t[self.rows])
        e_bar = (np.abs(e_hat) + slack * e_terms) * inflate
        want = b_r - state.c[self.rows]
        r_hat = self.te + se * (a @ (s * c_odd + t) + self.c_even) - want
        r_terms = (
            np.abs(self.be)
            + abs_se * np.abs(self.mu_even[self.rows])
            + abs_se * (abs_a @ (abs_s * (abs_b @ np.abs(state.c) + np.abs(self.c_j)) + t_abs) + np.abs(self.c_even))
            + np.abs(b_r)
            + np.abs(state.c[self.rows])
        )
        r_bar = (np.abs(r_hat) + slack * r_terms) * inflate
        if centred:  # max |E z + r| over the region, its evaluation's allowance, the roundings of E and r
            affine = np.maximum(-exact.minimum(e_hat, r_hat), -exact.minimum(-e_hat, -r_hat))
            evaluation = (
                2 * _gamma(e_hat.shape[1] + 12, _U64) * (exact.magnitude(np.abs(e_hat), inflate) + np.abs(r_hat))
            )
            residual = (
                (affine + evaluation + slack * r_terms) * inflate + exact.magnitude(slack * e_terms, inflate),
                0.0,
            )
        else:  # added term by term below, as before the centred form existed (the same float64 sums)
            residual = (exact.magnitude(e_bar, inflate), r_bar)
        # The errors carried in map through S_R + M exactly (the linear regime); what M's own rounding and the
        # product's rounding add, the residuals, the layers' rounding and the regime's slack are fresh.
        carried = select + m_hat
        fresh = (
            (slack * (m_terms + select) + _gamma(self.stream + 2, _U64) * np.abs(carried)) @ eps
            + residual[0]
            + residual[1]
            + abs_se * (abs_a @ odd_error)
            + rho_even
        ) * inflate
        target_mag = (exact.magnitude(np.abs(w_r), inflate) + np.abs(b_r)) * inflate
        # The addition to the stream rounds once: u times the magnitude of the computed sum.
        rounding = u * (target_mag + (np.abs(carried) @ eps + fresh) * inflate)
        return errors.mapped(self.rows, carried, (fresh + rounding) * inflate), peak


def _deviation(exact: _Region, state: StreamMap, planned: StreamMap, inflate: float) -> np.ndarray:
    """Per stream row, ``max |(T − T_p) z + (c − c_p)|`` over the exact region, rounded up: how far the stream's
    affine map (``state``) is from the planned one (``planned``), with the allowance of computing the
    difference and its extremes in float64."""
    t, c = state.t - planned.t, state.c - planned.c
    extreme = np.maximum(-exact.minimum(t, c), -exact.minimum(-t, -c))
    terms = exact.magnitude(np.abs(state.t) + np.abs(planned.t), inflate) + np.abs(state.c) + np.abs(planned.c)
    return (extreme + 2 * _gamma(t.shape[1] + 14, _U64) * terms) * inflate


def _failed(dtype: str, target_dtype: str, scale: float, reason: str) -> ErrorBound:
    return ErrorBound(float("inf"), scale, dtype, target_dtype, reason=reason)
