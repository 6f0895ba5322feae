"""Exactness on the domain and the linear regime behind it (docs/design.md §2)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import verify
from properties._support import EPS, block_matrices, block_regions, error_ratio, exactness_tolerance, solve
from properties.strategies import instances, seeds

FRESH_POINTS = 64


@pytest.mark.parametrize("mode", verify.MODES)
@given(data=st.data(), seed=seeds(), samples=st.integers(1, 8))
def test_reconstruction_equals_target_on_fresh_points_of_the_domain(mode, data, seed, samples):
    """docs/design.md §2 (one block equals ``W_k z + b_k`` on D, so ``g = f`` on D): exactness up to rounding.

    ``result.network(x)`` is compared with ``target(x)`` on fresh points of the domain, about half
    of them on its boundary, drawn with a seed sequence other than the certificate's, and with
    the certificate's own sampled check deliberately weak (1 to 8 points), so that this property
    does not lean on it. The tolerance is the one `verify.reconstruct`'s sampled check uses:
    ``|g(x) − f(x)| <= tol · (|g|(x) + |f|(x))`` componentwise, where ``|g|`` and ``|f|`` are the
    magnitude evaluations ``frozen.magnitude(x, gamma, beta) + target.magnitude(x)`` and ``tol`` is
    `verify.evaluation_tolerance`, here with every block's residual at the largest value a
    certificate accepts (`verify.residual_tolerance`) rather than the residual the code reports.
    """
    instance = data.draw(instances(modes=mode), label="instance")
    result = solve(instance, samples=samples, seed=seed)
    target, frozen = result.target, result.frozen
    x = result.domain.sample(FRESH_POINTS, np.random.default_rng([seed, 1]))
    g, f = result.network(x), target(x)
    scale = frozen.magnitude(x, result.gamma, result.beta) + target.magnitude(x)
    assert error_ratio(g, f, scale) <= exactness_tolerance(target, frozen)


@pytest.mark.parametrize("mode", verify.MODES)
@given(data=st.data(), seed=seeds())
def test_every_live_odd_neuron_is_active_on_the_whole_domain(mode, data, seed):
    """docs/design.md §2 (linear regime by a bias shift): every odd neuron with ``γ_i != 0`` is active on D.

    For block ``k``, let ``[mid_i − rad_i, mid_i + rad_i]`` be the range of ``(B z + c)_i`` over an
    enclosure of the block's input ``z_{k-1}`` (the domain for ``k = 1``, then the target's linear bounds
    intersected with interval bounds, §6.9, recomputed here) and ``(s_i, τ_i)`` the odd layer's
    affine map. Then, up to rounding:

    * the activity margin ``m_i = s_i mid_i + τ_i − |s_i| rad_i`` is ``>= 0``,
    * the certificate's block margin is ``min_i m_i``,
    * at fresh points of the domain (boundary included) every live odd neuron's normalized
      pre-activation is ``>= m_i`` (so ``>= 0``: the ReLU after it is the identity),
    * a switched-off odd neuron (``γ_i = 0``) outputs exactly 0.

    Rounding: ``(fan_in + 4) · eps`` times the magnitude of each term, summed over the layers
    below, as in `verify.evaluation_tolerance`. (A computed pre-activation can be a rounding error
    below 0 when ``m_i = 0``: the ReLU then errs by that rounding error, within the exactness
    tolerance.)
    """
    instance = data.draw(instances(modes=mode), label="instance")
    result = solve(instance, samples=4, seed=seed)
    target, frozen = result.target, result.frozen
    d = target.widths
    x = result.domain.sample(FRESH_POINTS, np.random.default_rng([seed, 2]))
    pre = frozen.preactivations(x, result.gamma, result.beta)
    regions = block_regions(target, result.domain)
    u = np.abs(x)
    for j in range(len(frozen.weights)):
        # magnitude of layer j's normalized pre-activation, as FrozenNetwork.magnitude computes it
        std = np.sqrt(frozen.running_var[j] + frozen.layer_eps[j])
        h = u @ np.abs(frozen.weights[j]).T + np.abs(frozen.biases[j])
        u = np.abs(result.gamma[j]) * (h + np.abs(frozen.running_mean[j])) / std + np.abs(result.beta[j])
        if j % 2:
            continue
        k = j // 2 + 1
        _, b_mat, c_odd, _ = block_matrices(target, frozen, k)
        image = regions[k - 1].affine_range(b_mat, c_odd)
        s, t = result.scales[j], result.shifts[j]
        live = s != 0
        margin = s * image.mid + t - np.abs(s) * image.rad
        margin_rounding = (d[k - 1] + 4) * EPS * (np.abs(s) * (image.size + np.abs(image.mid)) + np.abs(t))
        point_rounding = sum(n + 4 for n in frozen.widths[: j + 1]) * EPS * u
        assert np.all(margin >= -margin_rounding)
        assert abs(result.certificate.blocks[k - 1].min_margin - margin.min()) <= margin_rounding.max()
        assert np.all(pre[j][:, live] >= (margin - margin_rounding - point_rounding)[:, live])
        assert np.all(pre[j][:, ~live] == 0)
