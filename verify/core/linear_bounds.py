"""Linear bounds back-substituted to the input: tighter ranges of a dense target's nodes (docs/design.md §6.9).

Interval bounds box every layer and lose the correlation between neurons; at random initialization
they grow looser with width and depth. CROWN (Zhang et al., 2018; auto_LiRPA's backward mode) keeps
it: a linear function ``C z_k + d`` of a hidden layer is bounded below by substituting, layer by
layer back to the input, a linear relaxation of every ReLU, and the resulting ``Λ x + ν`` is
minimized over the domain exactly. For the pre-activation ``h`` of a ReLU with ``l <= h <= u``:

* stable (``l >= 0`` or ``u <= 0``): ``relu(h) = h`` or ``0`` exactly;
* unstable: ``relu(h) <= λ h + μ`` with ``λ = u/(u − l)`` (the chord), and ``relu(h) >= α h`` with
  ``α = 1`` if ``u >= −l`` else ``0`` (auto_LiRPA's "adaptive" choice; any ``α ∈ [0, 1]`` is valid).

A positive coefficient takes the lower line, a negative one the upper line. The domain is then
concretized exactly: a box by ``Σ_i min(Λ_i lo_i, Λ_i hi_i)``, a ball by ``Λ c − r ‖Λ‖₂`` (a ball's
linear bound stays a ball's, which boxing it would lose). Every hidden pre-activation range is the
intersection of this bound with the interval step from the previous (already intersected) range.

**Outward rounding.** Every float64 operation's rounding is bounded (Higham, *Accuracy and
Stability of Numerical Algorithms*, §3: ``|fl(xᵀy) − xᵀy| <= γ_n |x|ᵀ|y|`` in any summation order,
``γ_n = n u/(1 − n u)``, ``u = 2^-53``; underflow adds at most ``η = 2^-1074`` per operation):

* the chord's slope ``λ`` is whatever float64 ``u/(u − l)`` gives; its intercept is
  ``μ >= max(−λ l, (1 − λ) u)`` (the line lies above ``relu`` at both ends of ``[l, u]``, hence on it),
  computed up by a factor ``1 + 2^-48`` (far above the three roundings of the formula) plus ``2^-1070``;
* substituting ``Λ`` through one layer, ``S = Λ ⊙ slope`` (one rounding per entry, ``2u |S|``, times
  ``max |h|``), then ``Λ' = S W`` (``γ_{d_j} |S||W| max|z|``) and the constant ``S b + Λ⁻ μ``;
* all constants are one sum of at most ``N = 1 + Σ_j 2 d_j`` products: ``γ_{N+1}`` times the sum of
  their magnitudes; the concretization ``γ_{d_0 + 3}`` times its terms (a ball's norm is
  ``sqrt(Σ Λ²)`` evaluated as written: relative error ``<= γ_{d_0 + 1}``, plus ``sqrt(d_0 η)`` for underflow).

The allowances are summed, doubled (which covers the rounding of computing them, relative
``γ_n << 1/2``), subtracted, and the result is moved one float down (``nextafter``), so the returned
lower bound is below the exact one. Upper bounds are ``−lower(−C, −d)``.

References
----------
H. Zhang, T.-W. Weng, P.-Y. Chen, C.-J. Hsieh, L. Daniel, "Efficient Neural Network Robustness
Certification with General Activation Functions", NeurIPS 2018 (CROWN). K. Xu et al., "Automatic
Perturbation Analysis for Scalable Certified Robustness and Beyond", NeurIPS 2020 (auto_LiRPA).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from verify.core.domains import AffineRange, Ball, Box, Domain
from verify.core.networks import TargetNetwork

__all__ = ["BUDGET", "CHUNK", "LinearBounds", "LinearRegion", "RangeWidths", "linear_regions", "target_bounds"]

_U = 2.0**-53
_ETA = 2.0**-1074
BUDGET = 2e10
"""Largest back-substitution (multiply-adds: twice the rows times the weights passed) a range query computes."""
CHUNK = 2**21
"""Entries of one chunk of query rows (rows × widest layer): 16 MiB per float64 copy."""
_UP = 1.0 + 2.0**-48
"""Relative upward widening of a chord intercept: covers its three roundings (each ``<= u = 2^-53``)."""


def _gamma(n: float) -> float:
    """Higham's ``γ_n = n u / (1 − n u)`` in float64 (``inf`` once ``n u >= 1/2``)."""
    nu = n * _U
    return nu / (1.0 - nu) if nu < 0.5 else float("inf")


@dataclass(frozen=True)
class RangeWidths:
    """One node's range: the widest interval-bound width, the widest width after intersecting with
    the linear bounds, and the median over its entries of interval width / linear width (>= 1)."""

    node: str
    interval: float
    linear: float
    median_ratio: float

    def to_dict(self) -> dict:
        """The figures as a JSON-ready dict."""
        return {"node": self.node, "interval": self.interval, "linear": self.linear, "median_ratio": self.median_ratio}


@dataclass(eq=False)
class LinearBounds:
    """Sound ranges of every pre-activation ``h_j = W_j z_{j−1} + b_j`` (``j = 1 … L``) of a dense target
    over a domain, and back-substituted bounds of linear functions of its layers (module notes).

    Attributes
    ----------
    lo, hi : list of ndarray
        ``lo[j−1] <= h_j(x) <= hi[j−1]`` for every ``x`` of the domain: linear bounds ∩ interval bounds.
    interval_lo, interval_hi : list of ndarray
        The interval bounds alone (each layer boxed from the previous box), for comparison.
    seconds : float
        Wall time spent in back-substitution so far: the ranges above, and every `lower`/`range` query since.
    skipped : int
        Range queries beyond `BUDGET`, answered ``(-inf, inf)``.
    """

    target: TargetNetwork
    domain: Domain
    lo: list
    hi: list
    interval_lo: list
    interval_hi: list
    seconds: float
    skipped: int = 0

    def _layer_max(self, k: int) -> np.ndarray:
        """``max |z_k|`` per entry over the domain (``z_0 = x``)."""
        if k == 0:
            if isinstance(self.domain, Ball):
                return np.abs(self.domain.center) + self.domain.radius
            lo, hi = self.domain.bounding_box()
            return np.maximum(np.abs(lo), np.abs(hi))
        return np.maximum(self.hi[k - 1], 0.0)

    def lower(self, k: int, coeffs: np.ndarray, offset: np.ndarray | None = None) -> np.ndarray:
        """A sound lower bound, per row, of ``coeffs @ z_k + offset`` over the domain (``z_0 = x``; ``z_k =
        relu(h_k)``, ``k <= L − 1``), by back-substitution (module notes). ``-inf`` where it overflows."""
        start = time.perf_counter()
        lam = np.asarray(coeffs, dtype=np.float64)
        nu = np.zeros(lam.shape[0]) if offset is None else np.asarray(offset, dtype=np.float64).copy()
        magnitude = np.abs(nu)
        allowance = np.zeros(lam.shape[0])
        terms = 1
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            for j in range(k, 0, -1):  # z_j = relu(h_j), h_j = W_j z_{j-1} + b_j
                low, high = self.lo[j - 1], self.hi[j - 1]
                unstable = (low < 0) & (high > 0)
                lower_slope = np.where(unstable, (high >= -low).astype(float), (low >= 0).astype(float))
                chord = np.where(unstable, high / np.where(unstable, high - low, 1.0), lower_slope)
                intercept = np.where(unstable, np.maximum(-chord * low, (1.0 - chord) * high) * _UP + 2.0**-1070, 0.0)
                slope = np.where(lam >= 0, lam * lower_slope, lam * chord)
                negative = np.minimum(lam, 0.0)
                w, b = self.target.weights[j - 1], self.target.biases[j - 1]
                d_j = w.shape[0]
                s_abs = np.abs(slope)
                h_max = np.maximum(np.abs(low), np.abs(high))
                z_max = self._layer_max(j - 1)
                allowance = (
                    allowance
                    + 2 * _U * (s_abs @ h_max)
                    + _gamma(d_j) * (s_abs @ (np.abs(w) @ z_max))
                    + d_j * _ETA * (float(np.sum(z_max)) + 1.0)
                )
                nu = nu + (slope @ b + negative @ intercept)
                magnitude = magnitude + s_abs @ np.abs(b) + np.abs(negative) @ intercept
                terms += 2 * d_j
                lam = slope @ w
            value, concretized = _concretize(self.domain, lam, nu)
            total = 2.0 * (allowance + concretized + _gamma(terms + 1) * magnitude)
            bound = np.nextafter(value - total, -np.inf)
        self.seconds += time.perf_counter() - start
        return np.where(np.isnan(bound), -np.inf, bound)

    def range(self, k: int, coeffs: np.ndarray, offset: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Sound ``(lo, hi)`` of ``coeffs @ z_k + offset`` over the domain: both bounds in one back-substitution,
        in chunks of rows (bounded memory). A query costing more than `BUDGET` multiply-adds is not computed:
        it returns ``(-inf, inf)`` (every caller then keeps its interval range) and is counted in ``skipped``."""
        coeffs = np.asarray(coeffs, dtype=np.float64)
        offset = np.zeros(coeffs.shape[0]) if offset is None else np.asarray(offset, dtype=np.float64)
        m = coeffs.shape[0]
        if 2 * m * sum(w.size for w in self.target.weights[:k]) > BUDGET:
            self.skipped += 1
            return np.full(m, -np.inf), np.full(m, np.inf)
        widest = max([coeffs.shape[1], *(w.shape[1] for w in self.target.weights[:k])])
        step = max(1, CHUNK // widest)
        lo, hi = np.empty(m), np.empty(m)
        for first in range(0, m, step):
            rows = slice(first, min(first + step, m))
            c, d = coeffs[rows], offset[rows]
            both = self.lower(k, np.concatenate([c, -c]), np.concatenate([d, -d]))
            lo[rows], hi[rows] = both[: len(d)], -both[len(d) :]
        return lo, hi

    def widths(self) -> tuple[RangeWidths, ...]:
        """Per pre-activation node ``h_j``: interval width against linear-bound width (``h_1`` is exact in both)."""
        report = []
        for j, (lo, hi, ilo, ihi) in enumerate(zip(self.lo, self.hi, self.interval_lo, self.interval_hi, strict=True)):
            interval, linear = ihi - ilo, hi - lo
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # a subnormal width: ratio inf
                ratio = np.where(linear > 0, interval / np.where(linear > 0, linear, 1.0), 1.0)
            report.append(
                RangeWidths(f"h_{j + 1}", float(np.max(interval)), float(np.max(linear)), float(np.median(ratio)))
            )
        return tuple(report)


def _concretize(domain: Domain, lam: np.ndarray, nu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``min over x of lam @ x + nu`` in float64, and a bound on that evaluation's rounding (module notes)."""
    d = lam.shape[1]
    lam_abs = np.abs(lam)
    if isinstance(domain, Ball):
        centre, radius = domain.center, domain.radius
        norm = np.sqrt(np.sum(lam * lam, axis=1))
        value = lam @ centre - radius * norm + nu
        allowance = _gamma(d + 3) * (lam_abs @ np.abs(centre) + radius * norm + np.abs(nu))
        allowance = allowance + radius * np.sqrt((d + 1) * _ETA) + (d + 2) * _ETA * (np.sum(np.abs(centre)) + 1.0)
        return value, allowance
    lo, hi = domain.bounding_box()
    largest = np.maximum(np.abs(lo), np.abs(hi))
    value = np.sum(np.minimum(lam * lo, lam * hi), axis=1) + nu
    allowance = _gamma(d + 2) * (lam_abs @ largest + np.abs(nu)) + (d + 2) * _ETA * (np.sum(largest) + 1.0)
    return value, allowance


def _interval_step(w: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sound bounds of ``W z + b`` over the box ``lo <= z <= hi``, rounded outwards (``γ_{d + 2}`` of the terms)."""
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow gives infinite bounds, refused downstream
        largest = np.maximum(np.abs(lo), np.abs(hi))
        reach = 2.0 * (_gamma(w.shape[1] + 2) * (np.abs(w) @ largest + np.abs(b)) + (w.shape[1] + 2) * _ETA)
        low = np.sum(np.minimum(w * lo, w * hi), axis=1) + b
        high = np.sum(np.maximum(w * lo, w * hi), axis=1) + b
        low, high = np.nextafter(low - reach, -np.inf), np.nextafter(high + reach, np.inf)
    return np.where(np.isnan(low), -np.inf, low), np.where(np.isnan(high), np.inf, high)


def target_bounds(target: TargetNetwork, domain: Domain) -> LinearBounds:
    """The linear bounds of ``target`` over ``domain`` (a `verify.Ball` or `verify.Box`): every
    pre-activation's range, linear ∩ interval, layer by layer (module notes)."""
    if not isinstance(domain, (Ball, Box)):
        raise ValueError(f"linear bounds need a verify.Ball or verify.Box domain, got {type(domain).__name__}")
    start = time.perf_counter()
    domain = domain.resolve(target.widths[0])
    bounds = LinearBounds(target, domain, [], [], [], [], 0.0)  # filled layer by layer: each needs the ones before
    for j, (w, b) in enumerate(zip(target.weights, target.biases, strict=True), start=1):
        if j == 1:  # the domain's exact range of an affine map, rounded outwards
            lo, hi = bounds.range(0, w, b)
            ilo, ihi = lo, hi
        else:
            step_lo, step_hi = _interval_step(w, b, np.maximum(bounds.lo[-1], 0.0), np.maximum(bounds.hi[-1], 0.0))
            ilo, ihi = _interval_step(
                w, b, np.maximum(bounds.interval_lo[-1], 0.0), np.maximum(bounds.interval_hi[-1], 0.0)
            )
            lin_lo, lin_hi = bounds.range(j - 1, w, b)
            lo, hi = np.maximum(step_lo, lin_lo), np.minimum(step_hi, lin_hi)
        bounds.lo.append(lo)
        bounds.hi.append(hi)
        bounds.interval_lo.append(ilo)
        bounds.interval_hi.append(ihi)
    bounds.seconds = time.perf_counter() - start
    return bounds


class LinearRegion(Box):
    """The set of a target's block inputs ``z_k`` over the domain, for the bias shift (docs/design.md §2.2):
    a `verify.Box` (the range of each entry) whose `affine_range` is the box's range intersected with the
    back-substituted linear bounds, so the shift covers only what the block can receive."""

    def __init__(self, bounds: LinearBounds, k: int) -> None:
        super().__init__(np.maximum(bounds.lo[k - 1], 0.0), np.maximum(bounds.hi[k - 1], 0.0))
        self.bounds, self.k = bounds, k

    def affine_range(self, weight: np.ndarray, bias: np.ndarray) -> AffineRange:
        """Ranges of ``weight @ z + bias``: the box's, intersected with the linear bounds of ``weight ∘ z_k``."""
        box = super().affine_range(weight, bias)
        lin_lo, lin_hi = self.bounds.range(self.k, weight, bias)
        lo = np.maximum(box.mid - box.rad, lin_lo)
        hi = np.maximum(np.minimum(box.mid + box.rad, lin_hi), lo)
        return AffineRange((lo + hi) / 2, (hi - lo) / 2, box.size)


def linear_regions(bounds: LinearBounds) -> list:
    """Block input regions ``[domain, z_1's region, …, z_{L−1}'s region]`` with linear bounds (cf.
    `verify.core.bounds.block_input_regions`, the interval ones)."""
    depth = len(bounds.target.weights)
    return [bounds.domain, *(LinearRegion(bounds, k) for k in range(1, depth))]
