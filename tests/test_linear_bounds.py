"""Linear bounds back-substituted to the input (docs/design.md §6.9): rounded outwards, tighter than
intervals, and used by both the shifts and the certified bound."""

from fractions import Fraction

import numpy as np
import pytest

import verify
import verify.core.error_bound as error_bound_module
from verify.core import linear_bounds
from verify.core.bounds import block_input_regions
from verify.core.linear_bounds import LinearBounds, linear_regions, target_bounds


def _exact_box_minimum(coeffs: np.ndarray, offset: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> list[Fraction]:
    """``min over the box of coeffs @ x + offset`` per row, in exact rationals (attained at a corner)."""
    return [
        sum(
            (min(Fraction(c) * Fraction(a), Fraction(c) * Fraction(b)) for c, a, b in zip(row, lo, hi, strict=True)),
            Fraction(0),
        )
        + Fraction(o)
        for row, o in zip(coeffs, offset, strict=True)
    ]


def _cancelling_rows(rng: np.random.Generator, rows: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose terms span many magnitudes and nearly cancel, so that float64 sums round visibly."""
    coeffs = rng.standard_normal((rows, dim)) * 10.0 ** rng.integers(-8, 9, size=(rows, dim))
    return coeffs, -rng.standard_normal(rows) * 1e8


def test_a_box_lower_bound_is_below_the_exact_rational_minimum():
    """Outward rounding: the float64 lower bound never exceeds the exact minimum (breaks without it)."""
    rng = np.random.default_rng(0)
    dim = 40
    lo, hi = rng.uniform(-3, 0, dim), rng.uniform(0, 3, dim)
    domain = verify.Box(lo, hi)
    target = verify.TargetNetwork.random([dim, 3], seed=0)
    bounds = LinearBounds(target, domain, [], [], [], [], 0.0)
    coeffs, offset = _cancelling_rows(rng, 200, dim)
    lower = bounds.lower(0, coeffs, offset)
    exact = _exact_box_minimum(coeffs, offset, lo, hi)
    assert all(Fraction(value) <= truth for value, truth in zip(lower, exact, strict=True))
    # Not vacuous: the plain float64 sum is above the exact minimum for many rows, and the allowance that
    # moves the bound below it is a few γ_n of the terms, not more (Higham: n + 3 roundings, doubled, 2^-53).
    plain = np.sum(np.minimum(coeffs * lo, coeffs * hi), axis=1) + offset
    assert sum(Fraction(p) > t for p, t in zip(plain, exact, strict=True)) > 20
    terms = np.abs(coeffs) @ np.maximum(np.abs(lo), np.abs(hi)) + np.abs(offset)
    assert np.all(plain - lower <= 4 * (dim + 8) * 2.0**-53 * terms)


def test_a_ball_lower_bound_is_below_the_exact_minimum():
    """Over a ball ``c·x + d >= centre term − r ‖c‖``: checked in rationals by squaring (no square root)."""
    rng = np.random.default_rng(1)
    dim = 30
    centre, radius = rng.standard_normal(dim) * 100, 0.37
    target = verify.TargetNetwork.random([dim, 3], seed=0)
    bounds = LinearBounds(target, verify.Ball(radius, centre), [], [], [], [], 0.0)
    coeffs, offset = _cancelling_rows(rng, 200, dim)
    lower = bounds.lower(0, coeffs, offset)
    for row, o, value in zip(coeffs, offset, lower, strict=True):
        gap = sum((Fraction(c) * Fraction(x) for c, x in zip(row, centre, strict=True)), Fraction(o)) - Fraction(value)
        norm2 = sum(Fraction(c) ** 2 for c in row)
        assert gap >= 0 and gap * gap >= Fraction(radius) ** 2 * norm2  # value <= c·centre + o − r‖c‖


def test_back_substitution_through_active_relus_is_exact_and_rounded_outwards():
    """A hidden layer active on the whole box is substituted exactly (``relu(h) = h``): the bound then equals
    the exact minimum of ``C (W x + b)`` up to its allowance, and stays below it in rationals."""
    rng = np.random.default_rng(2)
    dim, width = 12, 9
    w = rng.standard_normal((width, dim))
    b = np.abs(w).sum(axis=1) + 1.0  # h = W x + b >= 1 on [-1, 1]^dim: every neuron active
    target = verify.TargetNetwork([w, rng.standard_normal((2, width))], [b, np.zeros(2)])
    domain = verify.Box(-np.ones(dim), np.ones(dim))
    bounds = target_bounds(target, domain)
    assert np.all(bounds.lo[0] > 0)
    coeffs = rng.standard_normal((50, width)) * 10.0 ** rng.integers(-6, 7, size=(50, width))
    lower = bounds.lower(1, coeffs)
    composed = [
        [sum(Fraction(c) * Fraction(v) for c, v in zip(row, col, strict=True)) for col in w.T] for row in coeffs
    ]
    offset = [sum(Fraction(c) * Fraction(v) for c, v in zip(row, b, strict=True)) for row in coeffs]
    # The allowance is a few γ_n of the terms |C| (|W| |x| + |b| + max |h|), n = dim + width + a few roundings.
    terms = np.abs(coeffs) @ (2 * (np.abs(w).sum(axis=1) + np.abs(b)))
    for value, row, o, size in zip(lower, composed, offset, terms, strict=True):
        truth = sum((min(-c, c) for c in row), Fraction(0)) + o  # the box [-1, 1]^dim: min is -|c|
        assert Fraction(value) <= truth
        assert float(truth) - value <= 8 * (dim + 2 * width + 8) * 2.0**-53 * size


@pytest.mark.parametrize("domain", [verify.Ball(1.0), verify.Box(-1.0, 1.0)], ids=["ball", "box"])
def test_ranges_are_tighter_than_intervals_and_reported(domain):
    """The result reports per node the interval and linear widths (linear ∩ interval is never wider), and
    the linear bounds' time next to the construction's."""
    target = verify.TargetNetwork.random([6, 24, 24, 24, 3], seed=5)
    frozen = verify.FrozenNetwork.for_target(target, seed=6)
    result = verify.reconstruct(target, frozen, domain, progress=False)
    assert [r.node for r in result.ranges] == ["h_1", "h_2", "h_3", "h_4"]
    assert result.ranges[0].interval == result.ranges[0].linear  # the first layer is exact in both
    assert all(r.linear <= r.interval and r.median_ratio >= 1 for r in result.ranges)
    assert result.ranges[-1].median_ratio > 1.5  # depth 4, width 24: intervals are loose here
    assert set(result.timings) == {"construction", "error_bound", "linear_bounds"}
    assert all(seconds >= 0 for seconds in result.timings.values())


def test_shifts_use_the_linear_regions_and_the_bound_proves_their_margins(monkeypatch):
    """The odd shifts of blocks k >= 2 cover the linear ∩ interval range, smaller than the interval box's, and
    the certified bound proves every margin on that region (no neuron is carried as leaving its linear regime)."""
    target = verify.TargetNetwork.random([6, 24, 24, 3], seed=7)
    frozen = verify.FrozenNetwork.for_target(target, seed=8)
    domain = verify.Ball(1.0).resolve(6)
    result = verify.reconstruct(target, frozen, domain, progress=False)
    regions = linear_regions(target_bounds(target, domain))
    interval = block_input_regions(target, domain)
    for k in (2, 3):
        b, c = frozen.weights[2 * k - 2][:, : target.widths[k - 1]], frozen.biases[2 * k - 2]
        tight, loose = regions[k - 1].affine_range(b, c), interval[k - 1].affine_range(b, c)
        assert np.all(tight.rad <= loose.rad) and np.median(loose.rad / tight.rad) > 1.2
    assert all(block.min_margin >= 0 for block in result.certificate.blocks)
    # The rigorous bound with the linear ranges is below the one with boxes alone (same parameters).
    original = error_bound_module.target_bounds
    monkeypatch.setattr(error_bound_module, "target_bounds", lambda t, d: _no_linear(original(t, d)))
    with_boxes = error_bound_module.error_bound(target, frozen, result.gamma, result.beta, domain)
    assert result.certificate.error_bound < with_boxes.error_bound


def _no_linear(bounds: LinearBounds) -> LinearBounds:
    """The interval ranges, and queries answered with infinite ranges: what error_bound had before."""
    widened = LinearBounds(
        bounds.target, bounds.domain, bounds.interval_lo, bounds.interval_hi, bounds.interval_lo, bounds.interval_hi, 0
    )
    widened.range = lambda k, coeffs, offset=None: (np.full(len(coeffs), -np.inf), np.full(len(coeffs), np.inf))
    return widened


def test_chunks_give_the_same_bounds_and_the_budget_falls_back_to_intervals(monkeypatch):
    """Rows are back-substituted in chunks (bounded memory) with the same result; beyond the budget a query is
    answered (-inf, inf), so the shifts and the certified bound both keep their interval ranges, consistently."""
    target = verify.TargetNetwork.random([5, 12, 12, 3], seed=9)
    frozen = verify.FrozenNetwork.for_target(target, seed=10)
    domain = verify.Box(-1.0, 1.0).resolve(5)
    whole = target_bounds(target, domain)
    query = np.random.default_rng(3).standard_normal((300, 12))
    monkeypatch.setattr(linear_bounds, "CHUNK", 24)  # two rows per chunk
    chunked = target_bounds(target, domain)
    # The same sums in another BLAS blocking differ by rounding only: the allowances, 2 γ_N (N <= 50 here) of
    # terms below 10 (1 + max |value|) on this target, are the scale of the tolerance.
    pairs = [*zip(whole.lo + whole.hi, chunked.lo + chunked.hi, strict=True)]
    pairs += [*zip(whole.range(2, query), chunked.range(2, query), strict=True)]
    for a, b in pairs:
        np.testing.assert_allclose(a, b, rtol=0, atol=400 * 2.0**-53 * (1 + np.max(np.abs(a))) * 10)
    monkeypatch.setattr(linear_bounds, "BUDGET", 0)
    skipped = target_bounds(target, domain)
    assert skipped.skipped == 2 and all(np.isinf(v).all() for v in skipped.range(1, query))
    assert all(np.array_equal(a, b) for a, b in zip(skipped.lo, skipped.interval_lo, strict=True))
    result = verify.reconstruct(target, frozen, domain, progress=False)
    assert all(r.linear == r.interval for r in result.ranges)
    assert all(block.min_margin >= 0 for block in result.certificate.blocks)


def test_a_subnormal_linear_width_reports_an_infinite_ratio_without_a_warning():
    # Found by properties/test_exactness (a [1, 8, 1, 1] chain on a ball): a node whose linear range is
    # a few subnormals wide made ``interval / linear`` overflow, which the suite turns into an error.
    target = verify.TargetNetwork.random([1, 8, 1, 1], seed=0)
    bounds = target_bounds(target, verify.Ball(0.5, center=[1.0]))
    tiny = [np.zeros_like(h) for h in bounds.lo]
    wide = [np.full_like(h, 5e-324) for h in bounds.hi]
    squeezed = LinearBounds(
        **{
            **vars(bounds),
            "lo": tiny,
            "hi": wide,
            "interval_lo": tiny,
            "interval_hi": [np.ones_like(h) for h in bounds.hi],
        }
    )
    report = squeezed.widths()
    assert all(w.median_ratio == np.inf for w in report)
