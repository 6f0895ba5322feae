"""`verify.core.tree_rounding`: the worst-order bound of a float sum, and of a normalized layer, against float32.

The sums are evaluated in float32 with numpy scalars (each addition rounded to nearest), in several orders
and trees; the exact value is the float64 sum of the same float32 leaves (exact here: at most 64 leaves of
float32 values within ``2^30`` of one another fit float64's 53 bits). Two sums are built so that every
addition rounds by its largest amount, ``u`` of its result: there the bound is attained up to ``(m − 1)/m``,
so a bound that dropped the nodes' sums (only ``u Σ |a|``) fails them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from verify.core.tree_rounding import layer_figures, leaf_bounds, sum_figures, summation_rounding, tight_rounding

U32, TINY32 = 2.0**-24, 2.0**-149


def _float32_sum(values: np.ndarray, tree: str, rng: np.random.Generator) -> float:
    """``values`` (float32) summed in float32 along a tree: left to right, pairwise, or random merges."""
    items = [np.float32(v) for v in values]
    if tree == "left":
        total = items[0]
        for v in items[1:]:
            total = np.float32(total + v)
        return float(total)
    if tree == "pairwise":
        while len(items) > 1:
            items = [np.float32(a + b) for a, b in zip(items[::2], items[1::2], strict=False)] + (
                [items[-1]] if len(items) % 2 else []
            )
        return float(items[0])
    while len(items) > 1:  # random merges: any binary tree
        i, j = sorted(rng.choice(len(items), size=2, replace=False))
        merged = np.float32(items[i] + items[j])
        items = [v for k, v in enumerate(items) if k not in (i, j)] + [merged]
    return float(items[0])


def _bound(values: np.ndarray) -> float:
    """`summation_rounding` of exact leaves ``values`` (no products: the leaves' own rounding is the bound's
    ``u T``, a slight over-estimate here)."""
    a = np.abs(values.astype(np.float64))
    positive, negative = np.sum(np.maximum(values, 0)), np.sum(np.maximum(-values, 0))
    cap = np.array([max(positive, negative)], dtype=np.float64)
    return float(summation_rounding(a[None, :], np.array([a.sum()]), cap, U32, TINY32)[0])


@pytest.mark.parametrize("m", [2, 5, 17, 33])
def test_every_addition_rounding_by_u_is_covered(m):
    """``1 + 2^-24`` is a tie that rounds to 1: adding ``m − 1`` such terms to 1 left to right loses each, an
    error ``(m − 1) u`` where ``u Σ|a|`` is about ``u``; the bound is ``m u`` (to first order)."""
    values = np.array([1.0] + [U32] * (m - 1), dtype=np.float32)
    error = abs(_float32_sum(values, "left", np.random.default_rng(0)) - float(np.sum(values.astype(np.float64))))
    bound = _bound(values)
    assert error == (m - 1) * U32
    assert error <= bound <= m * U32 * (1 + 2 * m * U32)


def test_a_cancelling_sum_is_covered_by_its_capped_nodes():
    """``1, u, …, u, −1``: the partial sums stay at 1 (``max(P, N)`` caps them), the result is small."""
    m = 20
    values = np.array([1.0] + [U32] * (m - 2) + [-1.0], dtype=np.float32)
    error = abs(_float32_sum(values, "left", np.random.default_rng(0)) - float(np.sum(values.astype(np.float64))))
    assert error == (m - 2) * U32 <= _bound(values)


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("tree", ["left", "pairwise", "random"])
def test_random_sums_in_any_tree_are_covered(seed, tree):
    """Mixed signs and magnitudes over ``2^20``, sorted largest first (the order the bound's worst case is),
    smallest first, or as drawn."""
    rng = np.random.default_rng(seed)
    m = int(rng.integers(2, 64))
    values = (rng.standard_normal(m) * 2.0 ** rng.integers(-10, 10, size=m)).astype(np.float32)
    if seed % 3 == 0:
        values = values[np.argsort(-np.abs(values))]
    elif seed % 3 == 1:
        values = np.abs(values)[np.argsort(np.abs(values))]
    error = abs(_float32_sum(values, tree, rng) - float(np.sum(values.astype(np.float64))))
    assert error <= _bound(values)


def test_zero_leaves_add_nothing_and_bad_leaves_are_refused():
    """Leaves that are exactly 0 are left out: a single live leaf is only its product's rounding ``u T``."""
    bound = summation_rounding(np.array([[3.0, 0.0, 0.0]]), np.array([3.0]), np.array([3.0]), U32, 0.0)
    assert bound[0] == U32 * 3.0
    with pytest.raises(ValueError, match="non-negative"):
        summation_rounding(np.array([[-1.0]]), np.array([1.0]), np.array([1.0]), U32, 0.0)


@pytest.mark.parametrize("seed", range(10))
def test_a_float32_linear_and_batchnorm_layer_is_within_its_bound(seed):
    """torch's float32 ``BatchNorm1d(Linear(v))`` in eval mode, with a large shift (as an odd layer's ``τ``) and
    non-negative inputs, against the exact float64 value of the same float32 parameters and inputs: within
    `tight_rounding` of figures taken over the points themselves (every figure then bounds what it must there)."""
    rng = np.random.default_rng(seed)
    n_in, n_out, points = int(rng.integers(2, 40)), int(rng.integers(1, 8)), 2000
    torch.manual_seed(seed)
    linear, norm = torch.nn.Linear(n_in, n_out), torch.nn.BatchNorm1d(n_out).eval()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 4.0)
        norm.bias.uniform_(-50.0, 50.0)
        norm.running_mean.uniform_(-1.0, 1.0)
        norm.running_var.uniform_(0.5, 2.0)
    v = torch.tensor(rng.uniform(0.0, 3.0, size=(points, n_in)), dtype=torch.float32)
    with torch.no_grad():
        computed = norm(linear(v)).double().numpy()
    m, c = linear.weight.detach().double().numpy(), linear.bias.detach().double().numpy()
    gamma, beta = norm.weight.detach().double().numpy(), norm.bias.detach().double().numpy()
    mu, var = norm.running_mean.double().numpy(), norm.running_var.double().numpy()
    s = gamma / np.sqrt(var + norm.eps)
    vd = v.double().numpy()
    h = vd @ m.T + c
    exact = s * (h - mu) + beta

    def sup(coeffs: np.ndarray, offset: np.ndarray) -> np.ndarray:  # over the points, plus its float64 rounding
        reach = 2 * (n_in + 2) * 2.0**-53 * np.max(np.abs(vd) @ np.abs(coeffs).T + np.abs(offset), axis=0)
        return np.max(vd @ coeffs.T + offset, axis=0) + reach

    leaves, total, cap, value = layer_figures(m, c, vd.max(axis=0), sup)
    dot = summation_rounding(leaves, total, cap, U32, TINY32)
    t = beta - s * mu
    output = np.max(np.abs(exact), axis=0) * (1 + 1e-12)  # |s h + t| over the points (float64: 1e-12 covers it)
    observed = np.max(np.abs(computed - exact), axis=0)
    assert np.all(observed <= tight_rounding(dot, value, np.abs(s), np.abs(mu), np.abs(beta), U32, TINY32, 1.0))
    assert np.all(
        observed <= tight_rounding(dot, value, np.abs(s), np.abs(mu), np.abs(beta), U32, 0, 1, output, np.abs(t))
    )


@pytest.mark.parametrize("seed", range(5))
def test_batchnorm_alone_rounds_relative_to_its_input(seed):
    """A float32 ``BatchNorm1d`` in eval mode on its own (the layer ``I v + 0``: the dot product is exact) with a
    small shift: its error, about ``u`` to ``4 u`` of ``|s v|`` (``α = γ/√(v+ε)`` carries its own roundings), is
    above the leaves' ``u |v|`` and the shift's ``γ_2 |β|``, so the normalization's ``γ_9 |s| |h|`` must be there
    (and, bounding its last addition relative to the result, its ``γ_8 |s| |h|`` before it)."""
    rng = np.random.default_rng(seed)
    n, points = 64, 4000
    norm = torch.nn.BatchNorm1d(n).eval()
    with torch.no_grad():
        norm.weight.copy_(torch.tensor(rng.uniform(1.0, 3.0, n)))
        norm.bias.copy_(torch.tensor(rng.uniform(-1e-3, 1e-3, n)))
        norm.running_var.copy_(torch.tensor(rng.uniform(0.3, 3.0, n)))
    v = torch.tensor(rng.uniform(1.0, 2.0, size=(points, n)), dtype=torch.float32)
    with torch.no_grad():
        computed = norm(v).double().numpy()
    gamma, beta = norm.weight.detach().double().numpy(), norm.bias.detach().double().numpy()
    s = gamma / np.sqrt(norm.running_var.double().numpy() + norm.eps)
    vd = v.double().numpy()
    exact = s * vd + beta
    top = vd.max(axis=0)
    leaves, total, cap, value = layer_figures(np.eye(n), np.zeros(n), top, lambda c, o: c @ top + o)
    dot = summation_rounding(leaves, total, cap, U32, TINY32)
    observed = np.max(np.abs(computed - exact), axis=0)
    assert np.all(observed <= tight_rounding(dot, value, s, 0 * s, np.abs(beta), U32, 0, 1))
    output = np.max(np.abs(exact), axis=0) * (1 + 1e-12)  # |s v + β| over the points (float64: 1e-12 covers it)
    assert np.all(observed <= tight_rounding(dot, value, s, 0 * s, np.abs(beta), U32, 0, 1, output, np.abs(beta)))


@pytest.mark.parametrize("seed", range(10))
def test_one_row_of_leaves_bounds_several_sums_as_each_alone(seed):
    """``total`` and ``cap`` of shape ``(rows, sums)`` (one row of leaf bounds for every position of a convolution):
    each column is the bound of that column alone, up to the float64 rounding of two sums of at most ``m``
    non-negative terms added in different orders (``2 γ_m`` of the value, Higham's bound, doubled)."""
    rng = np.random.default_rng(seed)
    rows, m, sums = int(rng.integers(1, 6)), int(rng.integers(1, 40)), int(rng.integers(1, 7))
    leaves = rng.exponential(size=(rows, m)) * (rng.random((rows, m)) < 0.7)  # zero leaves left out
    total = leaves.sum(axis=1)[:, None] * rng.uniform(0.5, 1.5, (rows, sums))
    cap = total * rng.uniform(0.0, 1.2, (rows, sums))
    total[0, 0] = np.inf if seed % 2 else total[0, 0]  # an unbounded sum stays unbounded, and NaN-free
    several = summation_rounding(leaves, total, cap, U32, TINY32)
    assert several.shape == (rows, sums) and not np.any(np.isnan(several))
    for k in range(sums):
        alone = summation_rounding(leaves, total[:, k], cap[:, k], U32, TINY32)
        assert np.array_equal(np.isinf(several[:, k]), np.isinf(alone))
        finite = np.isfinite(alone)
        gap = 4 * (m + 2) * 2.0**-53 * alone[finite]
        assert np.all(np.abs(several[finite, k] - alone[finite]) <= gap)


def test_one_row_of_leaves_covers_float32_sums_at_every_position():
    """Positions whose leaves are each at most the row's bounds (some exactly 0, as padding is), each summed in
    float32 in the worst ties order of `test_every_addition_rounding_by_u_is_covered` and at random: every error
    within its column of the bound, from each position's own ``T`` and ``M``."""
    rng = np.random.default_rng(1)
    m, positions = 33, 6
    row = np.array([1.0] + [U32] * (m - 1))
    bounds = np.vstack([row, 2 * row])  # two rows; the second's positions use half its bounds
    values, totals, caps = [], np.zeros((2, positions)), np.zeros((2, positions))
    for r in range(2):
        for q in range(positions):
            keep = np.ones(m, dtype=bool) if q == 0 else rng.random(m) < 0.8  # padding: leaves exactly 0
            keep[0] = True
            leaf = np.where(keep, row, 0.0).astype(np.float32)
            values.append((r, q, leaf))
            totals[r, q] = np.sum(leaf.astype(np.float64))
            caps[r, q] = totals[r, q]  # one sign: M = T
    bound = summation_rounding(bounds, totals, caps, U32, TINY32)
    for r, q, leaf in values:
        exact = float(np.sum(leaf.astype(np.float64)))
        for tree in ("left", "random"):
            error = abs(_float32_sum(leaf[leaf > 0], tree, rng) - exact)
            assert error <= bound[r, q]
    assert abs(_float32_sum(values[0][2], "left", rng) - totals[0, 0]) == (m - 1) * U32  # the ties: all lost


def test_leaf_bounds_of_several_sums_are_the_rows_of_each_and_sum_figures_cap_by_the_total():
    weights, bias = np.array([[1.0, -2.0], [0.5, 0.0]]), np.array([3.0, -1.0])
    largest = np.array([[1.0, 2.0], [0.0, 4.0], [3.0, 1.0]])  # three positions
    several = leaf_bounds(weights, bias, largest)
    rows = np.vstack([leaf_bounds(weights, bias, largest[q])[j] for j in range(2) for q in range(3)])
    assert several.shape == (6, 3) and np.array_equal(several, rows)
    cap, value = sum_figures(np.array([5.0]), np.array([7.0]), np.array([-9.0]), np.array([2.0]), np.array([6.0]))
    assert cap[0] == 5.0 and value[0] == 5.0  # both at most the total
    cap, value = sum_figures(np.array([5.0]), np.array([-1.0]), np.array([-2.0]))
    assert cap[0] == 5.0 and value[0] == 0.0  # no positive and negative sums: the total; a value at least 0


def test_several_sums_need_matching_totals_and_caps():
    with pytest.raises(ValueError, match="one shape"):
        summation_rounding(np.ones((2, 3)), np.ones((2, 4)), np.ones((2, 3)), U32, 0.0)
    with pytest.raises(ValueError, match="one shape"):
        summation_rounding(np.ones((2, 3)), np.ones(3), np.ones(3), U32, 0.0)
