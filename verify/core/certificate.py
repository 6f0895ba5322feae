"""What a reconstruction must carry (docs/design.md §6): the certificate and its checks.

A certificate holds when, for every block, the scale-equation residual is within the tolerance
a backward-stable solve guarantees and every shifted odd-layer neuron has a non-negative activity
margin over the block's input region, when the rigorous bound of `verify.core.error_bound` on
``|ĝ(x) − f̂(x)|`` over the whole domain, in the evaluation dtype, is at most ``rtol`` times
``f_max``, the target's largest output on the sample points (a lower bound of its largest output on
the domain, `verify.core.f_max`), and when the sampled check finds no point outside that bound (a
sample outside it would mean the bound is wrong). The interval ``scale`` is kept as a figure.
Float64 tolerances come from `verify.core.tolerances`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from verify.core.error_bound import ErrorBound
from verify.core.f_max import accuracy_reference, bound_over_f_max, holds_against_f_max
from verify.core.numerics import json_ready, residual_ratio

__all__ = ["BlockCertificate", "Certificate", "ExactCheck", "SampledCheck", "by_depth"]


@dataclass(frozen=True)
class BlockCertificate:
    """The figures of one block ``k`` (target layer ``k``, frozen layers ``2k-1`` and ``2k``).

    Attributes
    ----------
    block : int
        ``k``, 1-based.
    width : int
        Odd-layer width ``n_{2k-1}``.
    live_neurons : int
        Odd-layer neurons with non-zero scale (the others are switched off).
    rank, needed : int
        Numerical rank of the block's system and what the mode needs: paper mode, full rank
        ``d_k·d_{k-1}`` (``rank == needed``); minimal mode, a non-trivial null space, i.e.
        ``rank <= needed = r + n - 1`` with ``r`` the non-zero rows of ``W_k``.
    condition : float
        Condition number of the block's system: 2-norm (largest over smallest retained singular
        value) for the SVD-based and convex solvers, 1-norm for ``direct``, LSMR's own estimate for
        ``iterative``.
    residual : float
        ``max |s' ⊙ (A diag(γ) B) − W|``.
    residual_ratio : float
        ``max |E| / (|s'| |A| |γ| |B| + |W|)`` componentwise (0/0 read as 0).
    residual_tolerance : float
        Largest accepted ``residual_ratio``.
    min_margin : float
        Smallest activity margin ``min over the region of s_i h_i + tau_i`` of the odd layer.
    solver : str
        How the scale equation was solved.
    diagnostics : dict
        The solver's own figures (iterations and stop reasons, solver status and objective, …).
    max_scale : float
        Largest ``|γ_i|`` (odd layer) or ``|s'_a|`` (even layer) of the block.
    extras : dict
        The block's route-specific figures (empty for a chain). A graph's pair (`verify.nn.graph_fit`):
        ``name`` and ``source`` of its target layer, ``depth`` (layers on the longest path from the input up to
        and including it), ``shift_ratio`` (largest bias shift against the signal), ``margin_ratio`` (the error
        carried in against the activity margins, ``<= 1``: no neuron can leave its linear regime),
        ``error_bound`` and ``observed_error`` (bound on ``|ĝ − f̂|`` at the layer's output over the domain,
        and the largest seen on the sample points) and ``scale`` (the target's absolute-value evaluation
        there). Their figures by depth: `by_depth`.
    """

    block: int
    width: int
    live_neurons: int
    rank: int
    needed: int
    condition: float
    residual: float
    residual_ratio: float
    residual_tolerance: float
    min_margin: float
    solver: str
    diagnostics: dict = field(default_factory=dict)
    max_scale: float = 0.0
    extras: dict = field(default_factory=dict)

    @property
    def holds(self) -> bool:
        """Residual within tolerance and every margin non-negative."""
        return bool(self.residual_ratio <= self.residual_tolerance and self.min_margin >= 0)


@dataclass(frozen=True)
class SampledCheck:
    """``g(x)`` against ``f(x)`` on sample points of the domain (boundary included).

    Attributes
    ----------
    points : int
        Number of points checked.
    max_abs_error : float
        ``max |g(x) − f(x)|``.
    max_relative_error : float
        ``max |g(x) − f(x)| / max |f|(x)`` over the points, where ``|f|`` is the target evaluated
        with absolute values (`TargetNetwork.magnitude`, ``>= |f|``): the size of ``f``'s own
        terms, which stays meaningful where ``f`` itself vanishes on the domain. 0 when every
        term of ``f`` is zero (then only the rounding check applies).
    error_ratio : float
        ``max |g(x) − f(x)| / (|g|(x) + |f|(x))`` componentwise: compared with ``tolerance``.
    tolerance : float
        The evaluation tolerance (`verify.core.tolerances.evaluation_tolerance`).
    min_odd_preactivation : float
        Smallest normalized pre-activation of any live odd-layer neuron at the points
        (non-negative whenever the linear regime holds; printed for inspection).
    rtol : float
        The accuracy demanded of the certified bound (a figure here: the bound, not the sample,
        proves it).
    bound_ratio : float
        ``max |g(x) − f(x)| / error_bound(x)`` over the points, with ``error_bound(x)`` the
        certified bound (`verify.core.error_bound.ErrorBound.at`); 0/0 read as 0. It must be
        ``<= 1``: a sample outside the certified bound would mean the bound is wrong.
    f_max : float
        The target's largest output on the points that provably lie in the domain, less the rounding
        of its float64 evaluation there (`verify.core.f_max.sampled_f_max`): a lower bound of
        ``max_D ‖f‖_∞``, what ``holds`` judges the bound against. On ``R^d``: over the points with
        ``‖x‖_∞ <= 1``. NaN when the network was not evaluated.
    output_size : float
        ``max |f(x)|`` over the points, against the interval ``scale`` (what the bounds allow the output to
        be); measured by the graph route, NaN elsewhere.

    A graph (`verify.nn.graph_fit`) runs both modules' own operations on the points: its ``bound_ratio`` is the
    worst ``observed / bound`` over the output and every layer's output, and ``error_ratio``, ``tolerance`` and
    ``min_odd_preactivation`` are NaN (not measured).

    The sampled check is a sanity check of the bound, not the proof: ``error_ratio`` against
    ``tolerance`` (the float64 evaluation tolerance) and ``max_relative_error`` are reported for
    inspection only.
    """

    points: int
    max_abs_error: float
    max_relative_error: float
    error_ratio: float
    tolerance: float
    min_odd_preactivation: float
    rtol: float
    bound_ratio: float = 0.0
    f_max: float = float("nan")
    output_size: float = float("nan")

    @property
    def holds(self) -> bool:
        """Every sampled ``|g(x) − f(x)|`` is within the certified bound."""
        return bool(self.bound_ratio <= 1.0)


@dataclass(frozen=True)
class ExactCheck:
    """The exact part of a certificate (``method="exact"``, docs/design.md §6); `verify.solvers.exact` builds it.

    Attributes
    ----------
    residual_is_zero : bool
        ``K γ = vec(W)`` holds exactly over the rationals in every block.
    min_margin : float
        The smallest exact activity margin (rounded to float for display).
    margins_nonnegative : bool
        Every exact margin is ``>= 0``: the linear regime holds on the whole domain, exactly.
    points : int
        Rational points of the domain at which ``g`` and ``f`` were evaluated exactly.
    agree : bool
        ``g(x) == f(x)`` exactly at every point.
    blocks : list of dict
        Per block: ``residual_is_zero`` and ``min_margin``.
    """

    residual_is_zero: bool
    min_margin: float
    margins_nonnegative: bool
    points: int
    agree: bool
    blocks: list = field(default_factory=list)

    @property
    def holds(self) -> bool:
        """Zero residual, non-negative margins and exact agreement."""
        return self.residual_is_zero and self.margins_nonnegative and self.agree


@dataclass(frozen=True)
class Certificate:
    """The proof-carrying part of a `Reconstruction` (docs/design.md §6).

    Attributes
    ----------
    mode : str
        ``"paper"`` or ``"minimal"``.
    domain : dict
        The domain, as `Domain.to_dict` gives it.
    blocks : tuple of BlockCertificate
        One per target layer.
    sampled : SampledCheck
        The sampled check of ``g = f``.
    method : str
        The ``method`` argument of `reconstruct` (each block's ``solver`` says what ran).
    exact : ExactCheck or None
        For ``method="exact"``: zero residual, non-negative margins and exact agreement of ``g`` and
        ``f`` on rational points, all in rational arithmetic.
    bound : ErrorBound or None
        The rigorous bound on ``|ĝ(x) − f̂(x)|`` over the whole domain in the evaluation dtype
        (`verify.core.error_bound`); None only for certificates built by hand (then it fails).
    rtol : float
        The accuracy demanded: ``error_bound <= rtol · f_max`` (`verify.core.f_max.holds_against_f_max`;
        on ``R^d`` the unit cube and the slope, see there).
    sampled_only : bool
        True for a certificate without a rigorous floating-point bound over the domain (``bound`` is None,
        ``error_bound`` is ``inf``; no route of `verify.reconstruct` builds one any more); the accuracy demanded is
        checked at the sample points instead, ``sampled.max_abs_error <= rtol · f_max`` (the same helper,
        with the sampled error in place of the bound: evidence, not a proof), next to the block figures
        (residuals, margins over the whole domain) and the sampled evaluation check.
    """

    mode: str
    domain: dict
    blocks: tuple[BlockCertificate, ...]
    sampled: SampledCheck
    method: str = "auto"
    exact: ExactCheck | None = None
    bound: ErrorBound | None = None
    rtol: float = 1e-6
    sampled_only: bool = False

    @property
    def error_bound(self) -> float:
        """Certified ``max |ĝ(x) − f̂(x)|`` over the domain, in the evaluation dtype (on ``R^d``: at ``x = 0``,
        plus ``error_slope · ‖x‖_∞``); ``inf`` when nothing could be proved."""
        return float("inf") if self.bound is None else self.bound.error_bound

    @property
    def error_slope(self) -> float:
        """Growth of the bound per unit ``‖x‖_∞`` (0 on a bounded domain)."""
        return 0.0 if self.bound is None else self.bound.error_slope

    @property
    def valid_radius(self) -> float:
        """On ``R^d``: the ``‖x‖_∞`` up to which the bound is proved (no intermediate value can overflow
        the dtype); ``inf`` on a bounded domain."""
        return float("inf") if self.bound is None else self.bound.valid_radius

    @property
    def scale(self) -> float:
        """Upper bound over the domain of the target's terms ``|f|`` (absolute-value evaluation), max over outputs."""
        return float("nan") if self.bound is None else self.bound.scale

    @property
    def dtype(self) -> str:
        """The dtype the result is certified in (its parameters are stored in it)."""
        return "float64" if self.bound is None else self.bound.dtype

    @property
    def f_max(self) -> float:
        """The target's largest output on the sample points (a lower bound of ``max_D ‖f‖_∞``, `SampledCheck.f_max`)."""
        return self.sampled.f_max

    @property
    def relative_error_bound(self) -> float:
        """``error_bound / f_max``, the figure ``holds`` compares with ``rtol`` (on ``R^d`` see
        `verify.core.f_max.bound_over_f_max`); ``inf`` without a bound."""
        if self.bound is None:
            return float("inf")
        b = self.bound
        return bound_over_f_max(b.error_bound, self.f_max, error_slope=b.error_slope, scale_slope=b.scale_slope)

    @property
    def bound_over_scale(self) -> float:
        """``error_bound / scale`` against the interval figure (on ``R^d`` the larger of that and
        ``error_slope / scale_slope``; ``scale = 0``: the frozen network's ``frozen_scale``); a figure."""
        if self.bound is None:
            return float("inf")
        b = self.bound
        ratios = [_ratio(b.error_bound, b.scale if b.scale > 0 else b.frozen_scale)] + (
            [_ratio(b.error_slope, b.scale_slope)] if b.error_slope else []
        )
        return max(ratios)

    @property
    def bounded(self) -> bool:
        """The accuracy demanded: ``error_bound <= rtol · f_max`` (`verify.core.f_max.holds_against_f_max`); for a
        ``sampled_only`` certificate the sampled ``max |g − f|`` in place of the bound."""
        if self.sampled_only:
            return holds_against_f_max(self.sampled.max_abs_error, self.f_max, self.rtol)
        if self.bound is None:
            return False
        b = self.bound
        return holds_against_f_max(
            b.error_bound,
            self.f_max,
            self.rtol,
            error_slope=b.error_slope,
            scale_slope=b.scale_slope,
            valid_radius=b.valid_radius,
        )

    @property
    def holds(self) -> bool:
        """Every block's checks, the certified bound within ``rtol · f_max``, the sampled check inside the bound,
        and (for ``method="exact"``) the exact check pass."""
        exact = self.exact is None or self.exact.holds
        return all(b.holds for b in self.blocks) and self.bounded and self.sampled.holds and exact

    @property
    def max_residual(self) -> float:
        """Largest scale-equation residual ``max |s' ⊙ (A diag(γ) B) − W|`` over blocks."""
        return max(b.residual for b in self.blocks)

    @property
    def min_margin(self) -> float:
        """Smallest activity margin over all blocks (>= 0 proves the linear regime on the domain)."""
        return min(b.min_margin for b in self.blocks)

    @property
    def max_scale(self) -> float:
        """Largest ``|γ|`` or ``|s'|`` of any block (huge scales cancel against huge shifts)."""
        return max(b.max_scale for b in self.blocks)

    @property
    def max_condition(self) -> float:
        """Largest condition number of any block's system (blocks whose solver computed none are skipped)."""
        known = [b.condition for b in self.blocks if not np.isnan(b.condition)]
        return max(known, default=float("nan"))

    def by_depth(self) -> list[dict]:
        """A graph's layers by depth (`by_depth` of the blocks); empty for a chain."""
        return by_depth(self.blocks)

    def failures(self) -> list[str]:
        """Human-readable reasons the certificate fails (empty when it holds)."""
        reasons = []
        for b in self.blocks:
            if not b.residual_ratio <= b.residual_tolerance:
                reasons.append(
                    f"block {b.block}: scale-equation residual ratio {b.residual_ratio:.3g} exceeds "
                    f"tolerance {b.residual_tolerance:.3g} (condition {b.condition:.3g})"
                )
            if not b.min_margin >= 0:
                reasons.append(
                    f"block {b.block}: activity margin {b.min_margin:.3g} < 0, the linear regime is not proved"
                )
        if self.sampled_only:
            if not self.bounded:
                reasons.append(
                    f"sampled |g − f| is {_ratio(self.sampled.max_abs_error, self.f_max):.3g} "
                    f"{accuracy_reference(self.f_max)}, above rtol = {self.rtol:.3g} (largest block condition number "
                    f"{self.max_condition:.3g}); use a larger rtol"
                )
        elif self.bound is None:
            reasons.append("no error bound was computed")
        elif not self.bounded:
            why = f" ({self.bound.reason})" if self.bound.reason else ""
            fix = "a larger rtol" if self.dtype == "float64" else "float64 networks or a larger rtol"
            reasons.append(
                f"in {self.dtype} the certified error bound |g − f| <= {self.error_bound:.3g}{why} is "
                f"{self.relative_error_bound:.3g} {accuracy_reference(self.f_max, self.error_slope)}, which exceeds "
                f"rtol = {self.rtol:.3g} (interval scale {self.scale:.3g}; largest block condition number "
                f"{self.max_condition:.3g}, largest scale {self.max_scale:.3g}); use {fix}"
            )
        if not self.sampled.holds:
            reasons.append(
                f"sampled check: |g − f| = {self.sampled.max_abs_error:.3g} at a sample point exceeds the certified "
                f"bound there ({self.sampled.bound_ratio:.3g} times it): "
                + ("beyond the rounding of the terms summed" if self.sampled_only else "the bound is wrong")
            )
        if self.exact is not None and not self.exact.holds:
            reasons.append(f"exact check failed: {self.exact}")
        return reasons

    def to_dict(self) -> dict:
        """A JSON-ready dictionary of every figure, with ``holds`` at each level.

        Non-finite figures (an infinite margin or bound) are written as the strings ``"inf"`` /
        ``"nan"``, so that ``json.dumps(certificate.to_dict(), allow_nan=False)`` works.
        """
        return json_ready(
            {
                "holds": self.holds,
                "mode": self.mode,
                "domain": self.domain,
                "max_residual": self.max_residual,
                "min_margin": self.min_margin,
                "blocks": [asdict(b) | {"holds": b.holds} for b in self.blocks],
                "sampled": asdict(self.sampled) | {"holds": self.sampled.holds},
                "method": self.method,
                "exact": None if self.exact is None else asdict(self.exact) | {"holds": self.exact.holds},
                "dtype": self.dtype,
                "rtol": self.rtol,
                "error_bound": self.error_bound,
                "error_slope": self.error_slope,
                "valid_radius": self.valid_radius,
                "scale": self.scale,
                "f_max": self.f_max,
                "relative_error_bound": self.relative_error_bound,
                "bound_over_scale": self.bound_over_scale,
                "bound": None if self.bound is None else asdict(self.bound),
                "sampled_only": self.sampled_only,
            }
            | ({"by_depth": self.by_depth()} if self.by_depth() else {})
        )


def by_depth(blocks: tuple[BlockCertificate, ...]) -> list[dict]:
    """Per depth of the blocks that have one (a graph's layers, `BlockCertificate.extras`), in increasing depth:
    the layers' ``nodes``, the largest ``shift_ratio`` and ``margin_ratio``, the largest ``error_bound`` and
    ``bound_over_scale`` (``error_bound / scale``, 0 where the scale is 0) and the ``worst_error_ratio``
    (``observed_error / error_bound``, 0/0 read as 0: at most 1 for a sound bound)."""
    figures = [b.extras for b in blocks if "depth" in b.extras]
    rows = []
    for depth in sorted({f["depth"] for f in figures}):
        at = [f for f in figures if f["depth"] == depth]
        rows.append(
            {
                "depth": depth,
                "nodes": [f["name"] for f in at],
                "max_shift_ratio": max(f["shift_ratio"] for f in at),
                "max_margin_ratio": max(f["margin_ratio"] for f in at),
                "error_bound": max(f["error_bound"] for f in at),
                "bound_over_scale": max(f["error_bound"] / f["scale"] if f["scale"] > 0 else 0.0 for f in at),
                "worst_error_ratio": max(error_ratio(f) for f in at),
            }
        )
    return rows


def error_ratio(extras: dict) -> float:
    """A graph layer's ``observed_error / error_bound`` (``0/0`` read as 0): at most 1 for a sound bound."""
    return residual_ratio(np.array(extras["observed_error"]), np.array(extras["error_bound"]))


def _ratio(error: float, scale: float) -> float:
    """``error / scale`` with ``0/0`` read as 0."""
    if error == 0:
        return 0.0
    return error / scale if scale > 0 else float("inf")
