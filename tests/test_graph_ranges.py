"""The graph's linear ranges (docs/design.md §6.10): rounded outwards, tighter than intervals, checked by the
engine against the graph it bounds, and reported by `fit_graph`."""

import numpy as np
import pytest
import torch

import verify
from verify.core.convolution import Linear
from verify.core.graph import Graph, Node, Norm, Pair
from verify.core.graph_bound import graph_error_bound
from verify.core.graph_ranges import graph_ranges
from verify.job.tightness_cases import SmallResNet
from verify.nn import fit_norm_layers, frozen_like

flint = pytest.importorskip("flint")


def _pair(weight: np.ndarray, bias: np.ndarray) -> Pair:
    """A pair node's op with only its target layer meaningful (the ranges read nothing else)."""
    layer = Linear(weight, bias)
    norm = Norm(np.ones(len(bias)), np.zeros(len(bias)), np.zeros(len(bias)), np.ones(len(bias)))
    return Pair(layer, layer, norm, layer, norm, weight.shape[1] + 1, weight.shape[1] + 1)


def _chain(w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray) -> Graph:
    """input → pair → relu → pair."""
    return Graph(
        (
            Node("x", "input", (), None, (w1.shape[1],)),
            Node("h", "pair", ("x",), _pair(w1, b1), (w1.shape[0],)),
            Node("z", "relu", ("h",), None, (w1.shape[0],)),
            Node("y", "pair", ("z",), _pair(w2, b2), (w2.shape[0],)),
        )
    )


def _q(value: float) -> "flint.fmpq":
    return flint.fmpq(*float(value).as_integer_ratio())


def test_ranges_through_an_active_relu_stay_below_the_exact_rational_minimum():
    """Every hidden neuron active on the box (``relu(h) = h``): the output's exact range is the composition's,
    ``min over the box of W₂ (W₁ x + b₁) + b₂``, computed in rationals (python-flint). Weights spanning
    sixteen orders of magnitude make the float64 sums round visibly, so the outward rounding decides: without
    it (the allowances dropped, no ``nextafter``) rows come out above the exact minimum."""
    rng = np.random.default_rng(0)
    dim, width, rows = 12, 8, 60
    w1 = rng.standard_normal((width, dim)) * 10.0 ** rng.integers(-8, 9, size=(width, dim))
    b1 = np.abs(w1).sum(axis=1) * 2 + 1.0  # h = W₁ x + b₁ >= 1 on [-1, 1]^dim
    w2 = rng.standard_normal((rows, width)) * 10.0 ** rng.integers(-8, 9, size=(rows, width))
    b2 = -rng.standard_normal(rows) * 1e8
    graph = _chain(w1, b1, w2, b2)
    ranges = graph_ranges(graph, verify.Box(-np.ones(dim), np.ones(dim)))
    assert np.all(ranges.lo["h"] > 0)  # active: the composition is exact
    composed = [
        [sum((_q(a) * _q(c) for a, c in zip(row, col, strict=True)), flint.fmpq(0)) for col in w1.T] for row in w2
    ]
    offset = [sum((_q(a) * _q(c) for a, c in zip(row, b1, strict=True)), _q(o)) for row, o in zip(w2, b2, strict=True)]
    low, high = ranges.lo["y"], ranges.hi["y"]
    plain = w2 @ (w1 @ np.zeros(dim) + b1) + b2  # the centre's value, float64
    above = 0
    for k, (row, o) in enumerate(zip(composed, offset, strict=True)):
        reach = sum((abs(c) for c in row), flint.fmpq(0))  # the box [-1, 1]^dim: range o ∓ Σ|c|
        assert _q(low[k]) <= o - reach and o + reach <= _q(high[k])
        above += _q(plain[k]) - reach > o - reach  # the float64 centre is above the exact one: rounding matters
    assert above > 5
    # Not loose: within a few γ_n of the terms |W₂| (|W₁| |x| + |b₁|) + |b₂| (n: both layers' fan-ins, doubled).
    terms = np.abs(w2) @ (np.abs(w1).sum(axis=1) + np.abs(b1)) * 2 + np.abs(b2)
    exact_low = np.array(
        [float(o - sum((abs(c) for c in row), flint.fmpq(0))) for row, o in zip(composed, offset, strict=True)]
    )
    assert np.all(exact_low - low <= 16 * (dim + width + 16) * 2.0**-53 * terms)


def test_ranges_are_checked_against_the_graph_and_domain():
    """The engine refuses ranges of another graph or domain (ValueError): it may only use what was proved for it."""
    rng = np.random.default_rng(1)
    graph = _chain(rng.standard_normal((3, 2)), rng.standard_normal(3), rng.standard_normal((1, 3)), np.zeros(1))
    box = verify.Box(-np.ones(2), np.ones(2))
    ranges = graph_ranges(graph, box)
    ranges.check(graph, box)
    with pytest.raises(ValueError, match="another graph or domain"):
        graph_error_bound(graph, verify.Box(-np.ones(2), 2 * np.ones(2)), ranges=ranges)
    other = _chain(rng.standard_normal((3, 2)), rng.standard_normal(3), rng.standard_normal((1, 3)), np.zeros(1))
    with pytest.raises(ValueError, match="another graph or domain"):
        graph_error_bound(other, box, ranges=ranges)
    with pytest.raises(ValueError, match=r"Ball or verify\.Box"):
        graph_ranges(graph, "box")


def test_fit_graph_reports_the_ranges_and_their_time():
    """A ResNet class: the result's ``ranges`` has one `RangeWidths` per node (the linear ∩ interval width never
    above the interval width, strictly below it past the first block), and ``timings`` the ranges' seconds."""
    torch.manual_seed(0)
    target = SmallResNet().double().eval()
    frozen = frozen_like(target, width="paper", seed=0)
    result = fit_norm_layers(frozen, target, verify.Box(0, 1, shape=(3, 6, 6)), progress=False)
    widths = {w.node: w for w in result.ranges}
    assert widths["stem"].linear == widths["stem"].interval  # an affine map of the box: exact in both
    assert all(w.linear <= w.interval for w in widths.values())
    assert widths["fc"].linear < widths["fc"].interval / 2 and widths["fc"].median_ratio > 2
    assert 0 < result.timings["linear_bounds"] < result.timings["construction"]
