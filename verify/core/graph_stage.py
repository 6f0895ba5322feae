"""A Case-2 residual network as a core graph: one ``stage`` node per target layer (docs/design.md §6.7, §8).

`residual_graph` lowers a tuned `verify.core.residual.ResidualFrozenNetwork` and its target into a
`verify.core.graph.Graph`: ``input → stage 1 → relu → stage 2 → … → stage L → map`` (the stream's first
``d_L`` rows), which `verify.core.graph_bound.graph_error_bound` walks like any other graph. A
``stage`` node (its op a `Stage`) is the ``m`` branches of one stage, each added to the stream of
width ``D`` in place; its transfer is `Stage.bound`.

**Why a stage is one node.** During stage ``k`` the exact stream (the frozen network in exact
arithmetic on the target's exact stage input ``z``) is the affine image ``x = T z + c`` of the stage's
region (`verify.core.residual.StreamMap`). Boxing the stream after each branch, as separate ``pair``
and ``add`` nodes would, loses that dependency: the box of ``x_R + (W_R − T_R) z`` is wider than that
of ``W_R z``, the next branch's odd pre-activations are then bounded over a box wider than the region
its shifts were solved on, and the margins go negative (measured on a 4 → 4 → 4 target, 3 branches per
stage, Box domain: 1.0e5 against 7.6e-12). The stage transfer keeps the stream map and bounds every
branch over the stage's exact region (a `verify.Ball` on the first stage stays a ball).

**The transfer** (errors of the frozen stream ``x̂ − x`` as a zonotope ``G ξ``, the ``ĝ`` rows of the
input's affine form, `verify.core.affine_errors`; one branch owning rows ``R``, odd layer ``B``, even
layer ``A``, per-neuron maps ``s, t`` and ``s', t'`` of the stored BatchNorm parameters; its even rows
outside ``R`` have ``γ = β = 0`` and add exactly 0):

1. *The linear regime, rigorously.* Its odd pre-activation ``s ⊙ (B x̂ + c_j) + t`` has, over ``z`` in
   the stage's region and every error of the zonotope, the lower bound
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

   (``ρ`` the layers' rounding, `verify.core.float_model.layer_rounding`), which becomes ``|R|`` fresh
   generators together with the addition's rounding ``u (|W_R z + b_R| + …)``. ``E``, ``r`` and ``M``
   are computed in float64; each is bounded by its computed value plus ``2 γ^{64}`` of its terms'
   magnitude, and the rounding of the product ``(S_R + M) G`` is added to the fresh part. Then
   ``T_R ← W_R``, ``c_R ← b_R``.
3. *The node's output*: the target's exact stage output ``W z + b`` (rows ``>= d_k`` exactly 0) boxed
   over the region and rounded outwards (`preactivation_range`), the stream's errors ``|G| 1`` with
   ``G`` as the ``ĝ`` rows of the output's form, the target's own rounding of ``W ẑ_f + b``
   (`target_rounding`) as the ``f̂`` rows, and the target's terms. The graph's ``relu`` node between
   stages and its ``map`` (the first ``d_L`` rows) at the end are the graph engine's own transfers.
4. *Approximate branches* (docs/design.md §11, ``centred=True``): a branch too narrow for its rows
   writes ``W_R z + b_R + E (z − z_c)``, and the later branches were solved on the stream as it wrote it.
   The bookkeeping then follows the branches' own maps: after each branch ``T_R ← T_R + M T`` and
   ``c_R ← c_R + M c + o`` (computed in float64 from the stored parameters; any values are a valid
   bookkeeping, since ``E`` and ``r`` of item 2 are bounded against them, and are here at rounding level),
   and ``E``, ``r`` are bounded together, ``max |Ê z + r̂|`` over the stage's exact region plus
   ``2 γ^{64}`` of its evaluation's magnitude and their own roundings. At the end of the stage the
   bookkeeping's distance to the target, ``max |(T − W) z + (c − b)|`` over the region (rows beyond
   ``d_k`` against 0) plus the allowance of computing it, becomes one fresh generator per row: that is
   the approximation error, carried through the ReLU and the later stages with everything else. The
   per-branch figure (``ErrorBound.blocks``) is then the stream's error plus its distance to the planned
   stream.

The bound is a forward error analysis with no first-order truncation: every product of an error with a
magnitude is bounded by magnitudes that already include the errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from verify.core.affine_errors import SOURCES, AffineErrors
from verify.core.domains import Domain
from verify.core.float_model import _U64, _gamma, layer_rounding
from verify.core.graph import Graph, LinearMap, Node
from verify.core.graph_bound import GENERATORS, Value, _tighter, _Walk
from verify.core.networks import FrozenNetwork, TargetNetwork
from verify.core.regions import _Region, input_region, preactivation_range, target_rounding
from verify.core.residual import ResidualFrozenNetwork, StreamMap, check_residual_architecture, stage_rows

__all__ = ["Stage", "residual_graph"]


def residual_graph(
    target: TargetNetwork, frozen: ResidualFrozenNetwork, gamma: Sequence[object], beta: Sequence[object]
) -> Graph:
    """The graph of a residual network with the stored BatchNorm ``(gamma, beta)`` (``2 m L`` arrays in network
    order) and its target: ``input → stage 1 → relu → … → stage L → map`` (module notes).

    ValueError if the architectures do not match (`check_residual_architecture`) or ``gamma``/``beta`` do not
    hold one array per layer.
    """
    check_residual_architecture(target, frozen)
    scales, shifts = frozen.affine_maps(gamma, beta)
    gamma = [np.asarray(g, dtype=np.float64) for g in gamma]
    beta = [np.asarray(b, dtype=np.float64) for b in beta]
    d, stream = target.widths, frozen.stream_width
    widest = max(stream, *d, *(n for stage in frozen.odd_widths for n in stage))
    nodes = [Node("input", "input", (), None, (d[0],))]
    index = 0
    for k, stage in enumerate(frozen.stages, start=1):
        branches = []
        for net, rows in zip(stage, stage_rows(d[k - 1], d[k], len(stage), stage=k), strict=True):
            i = 2 * index
            branches.append(_Branch(net, rows, scales[i : i + 2], shifts[i : i + 2], gamma[i : i + 2], beta[i : i + 2]))
            index += 1
        # Terms of the stage's float64 sums: the widest product, and the generators (at most the walk's cap,
        # one per stream row per branch, one per row for the centred deviation) and remainder columns.
        terms = widest + GENERATORS + 3 * stream + len(SOURCES)
        op = Stage(k, target.weights[k - 1], target.biases[k - 1], tuple(branches), stream, k == 1, terms)
        nodes.append(Node(f"stage{k}", "stage", (nodes[-1].name,), op, (stream,)))
        if k < target.depth:
            nodes.append(Node(f"relu{k}", "relu", (nodes[-1].name,), None, (stream,)))
    out = d[-1]
    rows = LinearMap(lambda xs: xs[0][:out], 0, f"the stream's first {out} rows")
    nodes.append(Node("output", "map", (nodes[-1].name,), rows, (out,)))
    return Graph(tuple(nodes))


@dataclass(frozen=True, eq=False)
class Stage:
    """The op of a ``stage`` node: stage ``k`` (target layer ``W z + b``) as its branches on a stream of width
    ``stream`` (module notes). ``first``: it reads the graph's input ``z_0`` (the stream starts as ``[z_0; 0]``),
    else the stream after the previous stage's ReLU. ``terms`` bounds the terms of its float64 sums (the
    walk's inflation)."""

    k: int
    weight: np.ndarray
    bias: np.ndarray
    branches: tuple[_Branch, ...]
    stream: int
    first: bool
    terms: int

    def bound(self, walk: _Walk, value: Value, domain: Domain) -> Value:
        """The stage's transfer (module notes): what the walk knows after the stage, from ``value`` before it
        (``domain``, resolved, is the stage's exact region when it is the first)."""
        inflate, u, tiny, centred = walk.inflate, walk.u, walk.tiny, walk.centred
        w, bias, stream = self.weight, self.bias, self.stream
        d_out, d_in = w.shape
        if self.first:
            exact = input_region(domain, "the residual graph")
        else:
            exact = _Region(value.lo[:d_in], value.hi[:d_in], np.zeros(d_in), nonneg=value.nonneg)
        errors = _stream_errors(value, stream, inflate)
        f_region = exact.with_delta(value.delta_f[:d_in])
        w_pad, b_pad = np.zeros((stream, d_in)), np.zeros(stream)
        w_pad[:d_out], b_pad[:d_out] = w, bias
        if self.first:
            terms = exact.magnitude(np.abs(w), inflate) + np.abs(bias)
        else:
            terms = (np.abs(w) @ value.terms[:d_in]) * inflate + np.abs(bias)
        state = planned = StreamMap.start(stream, d_in)
        for j, step in enumerate(self.branches, start=1):
            rows = step.rows
            planned = planned.written(rows, w_pad[rows], b_pad[rows])
            # The rows' new affine map: the target's (exact bookkeeping), or what the branch computes (centred).
            w_r, b_r = step.writes(state) if centred else (w_pad[rows], b_pad[rows])
            errors, peak = step.carry(exact, state, errors, w_r, b_r, u, tiny, inflate, centred)
            walk.peak = max(walk.peak, peak)
            if peak > walk.huge / 2:
                walk.reason = walk.reason or f"stage {self.k}, branch {j}: values may overflow"
            eps = errors.bound()
            if not np.all(np.isfinite(eps)):
                walk.reason = walk.reason or f"stage {self.k}, branch {j}: the bound is not finite"
            state = state.written(rows, w_r, b_r)
            # The stream's distance to the planned one so far: 0 with the exact bookkeeping.
            away = _deviation(exact, state, planned, inflate) if centred else 0.0
            walk.per_pair.append(float(np.max(eps + away)))
        if centred:  # the stage's affine map against the target's: fresh generators (module notes, item 4)
            errors = errors.fresh(_deviation(exact, state, planned, inflate), "residual")
        eps = errors.bound()
        rounding = target_rounding(f_region, np.abs(w), bias, walk.target_dtype, inflate)
        delta_f = np.zeros(stream)
        delta_f[:d_out] = rounding if walk.rounding else 0.0
        lo, hi = np.zeros(stream), np.zeros(stream)
        lo[:d_out], hi[:d_out] = preactivation_range(exact, w, bias, inflate)
        out = exact.magnitude(np.abs(w), inflate) + np.abs(bias)
        walk.frozen_scale = float(np.max(out + eps[:d_out]))
        padded = np.zeros(stream)
        padded[:d_out] = terms
        result = Value(lo, hi, eps, delta_f, padded)
        if not walk.forms:
            return result
        target = AffineErrors.diagonal(delta_f, "target rounding", inflate, keep=walk.cap)
        return _tighter(result, _stacked(errors, target), walk)


def _stream_errors(value: Value, stream: int, inflate: float) -> AffineErrors:
    """The errors ``x̂ − x`` of the stream entering a stage (``stream`` rows; the graph's input pads with exact
    zeros): the ``ĝ`` rows of the value's affine form, its remainder as generators (the branches' maps
    ``S_R + M`` cancel, and ``|S_R + M|`` would not), or one generator per entry of its ``delta``."""
    rows = value.delta.size
    if value.form is None:
        sizes = np.zeros(stream)
        sizes[:rows] = value.delta
        return AffineErrors(np.diag(sizes), inflate)
    form = value.form.rows(slice(0, rows)).with_remainder_as_generators()
    if rows == stream:
        return form
    pad = stream - rows
    g = np.vstack([form.g, np.zeros((pad, form.g.shape[1]))])
    rest = np.vstack([form.rest, np.zeros((pad, form.rest.shape[1]))])
    return AffineErrors(g, form.inflate, form.labels, rest, form.signs, form.ids)


def _stacked(top: AffineErrors, bottom: AffineErrors) -> AffineErrors:
    """Rows ``[top; bottom]`` of two forms with no generator in common (``[ĝ; f̂]``)."""
    g = np.block(
        [
            [top.g, np.zeros((top.g.shape[0], bottom.g.shape[1]))],
            [np.zeros((bottom.g.shape[0], top.g.shape[1])), bottom.g],
        ]
    )
    labels = np.concatenate([top.labels, bottom.labels])
    ids = np.concatenate([top.ids, bottom.ids])
    return AffineErrors(g, top.inflate, labels, np.vstack([top.rest, bottom.rest]), top.signs, ids)


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
        residual terms ``E z + r`` bounded together, module notes item 4)."""
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
        else:  # |E| |z| and |r| term by term
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
