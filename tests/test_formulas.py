"""Each building block of the construction against a hand-written formula (docs/design.md §1–2).

Tolerances: every comparison here is of two evaluations of the same finite sum of at most a few
dozen terms of size O(1), so they agree to a small multiple of ``eps`` times the sum of absolute
values; we use ``64 * eps`` relative to that magnitude unless the comparison is exact.
"""

import itertools

import numpy as np
import pytest

import verify
from verify.core.bias_shift import SLACK, activity_margin, bias_shift
from verify.core.bounds import block_input_regions

EPS = np.finfo(float).eps
RNG = np.random.default_rng(2023)


def test_khatri_rao_is_vec_of_rank_one_sum():
    a = RNG.standard_normal((3, 7))
    b = RNG.standard_normal((7, 4))
    gamma = RNG.standard_normal(7)
    k = verify.khatri_rao(a, b)
    assert k.shape == (12, 7)
    explicit = sum(gamma[i] * np.outer(a[:, i], b[i, :]) for i in range(7))
    magnitude = sum(abs(gamma[i]) * np.outer(abs(a[:, i]), abs(b[i, :])) for i in range(7))
    assert np.all(np.abs(k @ gamma - explicit.reshape(-1)) <= 64 * EPS * magnitude.reshape(-1))
    for i, (r, c) in itertools.product(range(7), itertools.product(range(3), range(4))):
        assert k[r * 4 + c, i] == a[r, i] * b[i, c]


def test_norm_params_round_trip():
    """(gamma, beta) <-> (s, t) with s = gamma / sqrt(v + eps), t = beta - s * mu."""
    target = verify.TargetNetwork.random([2, 2, 2], seed=1)
    base = verify.FrozenNetwork.for_target(target, seed=2)
    means = [RNG.standard_normal(n) for n in base.widths[1:]]
    variances = [RNG.uniform(0.1, 4.0, n) for n in base.widths[1:]]
    frozen = verify.FrozenNetwork(base.weights, None, means, variances, eps=0.01)
    scales = [RNG.standard_normal(n) for n in base.widths[1:]]
    shifts = [RNG.standard_normal(n) for n in base.widths[1:]]
    gamma, beta = frozen.norm_params(scales, shifts)
    for j in range(4):
        np.testing.assert_array_equal(gamma[j], scales[j] * np.sqrt(variances[j] + 0.01))
        np.testing.assert_array_equal(beta[j], shifts[j] + scales[j] * means[j])
    s2, t2 = frozen.affine_maps(gamma, beta)
    for j in range(4):
        np.testing.assert_allclose(s2[j], scales[j], rtol=4 * EPS, atol=0)
        mag = np.abs(shifts[j]) + 2 * np.abs(scales[j] * means[j])
        assert np.all(np.abs(t2[j] - shifts[j]) <= 8 * EPS * mag)


@pytest.mark.parametrize("domain", [verify.Ball(1.5, [0.5, -1.0, 2.0]), verify.Box([-1, 0, 2], [1, 0.5, 6])])
def test_affine_range_is_exact(domain):
    """The range of B z + c over the domain: attained (up to rounding) and never exceeded."""
    b = RNG.standard_normal((5, 3))
    c = RNG.standard_normal(5)
    image = domain.affine_range(b, c)
    x = domain.sample(4000, np.random.default_rng(1))
    h = x @ b.T + c
    tol = 64 * EPS * image.size
    assert np.all(h <= image.mid + image.rad + tol) and np.all(h >= image.mid - image.rad - tol)
    # The extremes are attained: at centre ± radius * B_i/|B_i| (ball) or at a corner (box).
    if isinstance(domain, verify.Ball):
        unit = b / np.linalg.norm(b, axis=1, keepdims=True)
        top = (domain.center + domain.radius * unit) @ b.T + c
        np.testing.assert_allclose(np.diag(top), image.mid + image.rad, rtol=64 * EPS)
    else:
        corners = np.where(b > 0, domain.hi, domain.lo)
        np.testing.assert_allclose(np.einsum("ij,ij->i", corners, b) + c, image.mid + image.rad, rtol=64 * EPS)


def test_bias_shift_gives_nonnegative_margin_by_brute_force():
    """min over the box corners of s*(B z + c) + tau equals the closed-form margin, which is >= 0."""
    box = verify.Box([-1.0, 0.5, 2.0], [0.0, 1.5, 2.5])
    b = RNG.standard_normal((6, 3))
    c = RNG.standard_normal(6)
    s = RNG.standard_normal(6)
    s[2] = 0.0
    image = box.affine_range(b, c)
    tau = bias_shift(s, image)
    corners = np.array(list(itertools.product(*zip(box.lo, box.hi, strict=True))))
    brute = np.min(s * (corners @ b.T + c) + tau, axis=0)
    margin = activity_margin(s, tau, image)
    np.testing.assert_allclose(brute, margin, rtol=0, atol=64 * EPS * np.max(np.abs(s) * image.size))
    # margin = s*mid + tau - |s|*rad cancels terms of size |s|*(|mid| + rad): absolute rounding only.
    cancelled = 8 * EPS * np.abs(s) * (np.abs(image.mid) + image.rad + image.size)
    tight = np.abs(s) * image.rad - s * image.mid + SLACK * np.abs(s) * image.size
    expected = np.where(tight >= 0, SLACK * np.abs(s) * image.size, s * image.mid - np.abs(s) * image.rad)
    assert np.all(np.abs(margin - expected) <= cancelled)
    assert np.all(tau >= 0) and np.all(margin >= SLACK * np.abs(s) * image.size - cancelled)
    assert tau[2] == 0 and margin[2] == 0


def test_shift_is_zero_for_a_neuron_active_everywhere():
    """h in [2, 4] on the box: s = 1 needs no shift; s = -1 needs 4 (plus slack)."""
    box = verify.Box([1.0], [2.0])
    image = box.affine_range(np.array([[2.0], [2.0]]), np.zeros(2))
    tau = bias_shift(np.array([1.0, -1.0]), image)
    assert tau[0] == 0 and tau[1] == 4 + SLACK * 4


def test_interval_bounds_enclose_every_hidden_activation():
    target = verify.TargetNetwork.random([3, 6, 5, 2], seed=4)
    domain = verify.Ball(2.0, [1.0, 0.0, -1.0])
    regions = block_input_regions(target, domain)
    x = domain.sample(3000, np.random.default_rng(5))
    z = x
    for k, region in enumerate(regions[1:], start=1):
        z = np.maximum(z @ target.weights[k - 1].T + target.biases[k - 1], 0)
        slack = 64 * EPS * (1 + np.abs(region.hi))
        assert np.all(z >= region.lo - slack) and np.all(z <= region.hi + slack)


def test_ball_samples_lie_in_the_ball_and_reach_its_boundary():
    ball = verify.Ball(3.0, [1.0, 2.0])
    x = ball.sample(200, np.random.default_rng(0))
    r = np.linalg.norm(x - ball.center, axis=1)
    assert np.all(r <= 3.0 * (1 + 4 * EPS)) and np.all(ball.contains(x))
    # the sphere's points are drawn at radius r (1 − 2^-36), a hair inside (so that `contains` proves them inside)
    assert np.sum(np.abs(r - 3.0 * (1 - 2.0**-36)) <= 8 * EPS * 3.0) >= 99


def test_box_samples_lie_in_the_box_and_reach_corners_and_faces():
    box = verify.Box([-1.0, 0.0, 5.0], [1.0, 2.0, 5.5])
    x = box.sample(200, np.random.default_rng(0))
    assert np.all(x >= box.lo) and np.all(x <= box.hi) and np.all(box.contains(x))
    on_face = np.any((x == box.lo) | (x == box.hi), axis=1)
    corner = np.all((x == box.lo) | (x == box.hi), axis=1)
    assert on_face.sum() >= 100 and corner.sum() >= 40


def test_target_forward_matches_formula():
    w1, w2 = RNG.standard_normal((4, 3)), RNG.standard_normal((2, 4))
    b1, b2 = RNG.standard_normal(4), RNG.standard_normal(2)
    target = verify.TargetNetwork([w1, w2], [b1, b2])
    x = RNG.standard_normal((10, 3))
    np.testing.assert_array_equal(target(x), np.maximum(x @ w1.T + b1, 0) @ w2.T + b2)


def test_bias_shift_is_one_formula_in_float_and_in_rationals():
    """The float shift and margin are the rational ones rounded (docs/design.md §2): one formula, two arithmetics."""
    from fractions import Fraction

    from verify.solvers.exact import rational_arithmetic

    pytest.importorskip("flint")
    rationals = rational_arithmetic()
    scale, mid, rad = RNG.standard_normal(9), RNG.standard_normal(9), RNG.uniform(0, 2, 9)
    size = np.abs(mid) + rad
    image = verify.core.domains.AffineRange(mid, rad, size)
    exact_image = verify.core.domains.AffineRange(
        *(np.array([rationals.constant(v) for v in x]) for x in (mid, rad, size))
    )
    exact_scale = np.array([rationals.constant(v) for v in scale])
    tau, tau_q = bias_shift(scale, image), bias_shift(exact_scale, exact_image, rationals)
    margin_q = activity_margin(exact_scale, tau_q, exact_image, rationals)
    as_float = [float(Fraction(int(q.p), int(q.q))) for q in tau_q]
    assert np.all(np.abs(tau - as_float) <= 64 * EPS * (np.abs(scale) * (np.abs(mid) + rad + size)))
    assert all(m >= 0 for m in margin_q)
    slack = rationals.constant(SLACK)
    by_hand = [
        max(abs(s) * (r + slack * z) - s * m, 0)
        for s, m, r, z in zip(exact_scale, exact_image.mid, exact_image.rad, exact_image.size, strict=True)
    ]
    assert list(tau_q) == by_hand


def test_relu_box_is_the_interval_of_relu():
    from verify.core.bounds import relu_box

    image = verify.core.domains.AffineRange(np.array([-2.0, 0.5, 3.0]), np.array([1.0, 1.0, 0.5]), np.ones(3))
    lo, hi = relu_box(image)
    assert np.array_equal(lo, [0.0, 0.0, 2.5]) and np.array_equal(hi, [0.0, 1.5, 3.5])


def test_dense_layers_have_one_channel_per_neuron():
    """The channel seam (verify.core.channels): dense layers count neurons and leave ranges per neuron."""
    from verify.core.blocks import blocks
    from verify.core.channels import DenseChannels

    target = verify.TargetNetwork.random([3, 4, 2], seed=3)
    frozen = verify.FrozenNetwork.for_target(target, seed=4)
    assert frozen.channels == tuple(DenseChannels(n) for n in frozen.widths[1:])
    assert [c.count for c in frozen.channels] == list(frozen.widths[1:])
    regions = block_input_regions(target, verify.Ball(1.0, np.zeros(3)))
    for block, region in zip(blocks(target, frozen), regions, strict=True):
        image = region.affine_range(block.b, block.c_odd)
        assert block.channels.reduce_range(image) is image
    with pytest.raises(ValueError, match="does not fit a dense layer"):
        DenseChannels(5).reduce_range(image)


def test_the_construction_reads_ranges_through_the_channels(monkeypatch):
    """Every block's odd-layer range passes through its layer's `Channels.reduce_range` once."""
    from verify.core.channels import DenseChannels

    seen = []

    class Spy(DenseChannels):
        def reduce_range(self, image):
            seen.append(self.width)
            return super().reduce_range(image)

    monkeypatch.setattr(verify.FrozenNetwork, "channels", property(lambda self: tuple(Spy(n) for n in self.widths[1:])))
    target = verify.TargetNetwork.random([3, 4, 2], seed=3)
    frozen = verify.FrozenNetwork.for_target(target, seed=4)
    assert verify.reconstruct(target, frozen, verify.Ball(1.0)).certificate.holds
    assert seen == [frozen.widths[1], frozen.widths[3]]
