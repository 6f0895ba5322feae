"""The scale symmetry ``(γ, s') ~ (cγ, s'/c)`` of one block (docs/design.md §2, last bullet)."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import verify
from properties._support import block_matrices, error_ratio, exactness_tolerance, solve
from properties.strategies import instances, seeds

FACTORS = st.floats(math.log(1e-3), math.log(1e3)).map(math.exp)
"""Scale factors ``c > 0``, log-uniform in ``[1e-3, 1e3]``."""


def rescaled(result: verify.Reconstruction, factors: list[float]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The affine maps ``(s, t)`` of ``result`` with each block's ``(γ, τ, s')`` replaced by ``(cγ, cτ, s'/c)``.

    The even layer's shift is recomputed by the formula of docs/design.md §2,
    ``t' = b_k − s' ⊙ (A(γ ⊙ c + τ) + c')``: it changes by ``s' ⊙ c' (1 − 1/c)``, so it is left
    unchanged only when the even layer's frozen biases ``c'`` are zero. Switched-off rows stay off.
    """
    target, frozen = result.target, result.frozen
    scales = [s.copy() for s in result.scales]
    shifts = [t.copy() for t in result.shifts]
    for k, factor in enumerate(factors, start=1):
        odd, even, d_k = 2 * k - 2, 2 * k - 1, target.widths[k]
        a_mat, _, c_odd, c_even = block_matrices(target, frozen, k)
        gamma, tau = factor * result.scales[odd], factor * result.shifts[odd]
        row_scale = result.scales[even][:d_k] / factor
        scales[odd], shifts[odd] = gamma, tau
        scales[even][:d_k] = row_scale
        shifts[even][:d_k] = target.biases[k - 1] - row_scale * (a_mat @ (gamma * c_odd + tau) + c_even)
    return scales, shifts


@pytest.mark.parametrize("mode", verify.MODES)
@given(data=st.data(), seed=seeds())
def test_rescaling_a_block_by_c_and_its_row_scales_by_1_over_c_keeps_the_network(mode, data, seed):
    """docs/design.md §2, scale symmetry: ``(γ, s')`` and ``(cγ, s'/c)`` give the same block, for every ``c > 0``.

    Every block ``k`` of a reconstruction is rescaled by its own ``c_k``: the odd layer's whole
    affine map ``(s, t) = (γ, τ)`` by ``c_k`` (the ReLU commutes with it since ``c_k > 0``), the
    even layer's live row scales ``s'`` by ``1/c_k``, and its shift ``t'`` recomputed by docs/design.md §2's
    formula. Converted with ``frozen.norm_params`` and evaluated with ``frozen.forward``, the
    network equals ``result.network`` on fresh points of the domain, up to the rounding of both
    evaluations: ``|g_c − g| <= tol · (|g_c| + |g|)`` with the magnitude evaluations
    ``frozen.magnitude`` and ``tol`` the exactness tolerance (`verify.evaluation_tolerance`).
    """
    instance = data.draw(instances(modes=mode), label="instance")
    result = solve(instance, samples=16, seed=seed)
    factors = [data.draw(FACTORS, label=f"c_{k}") for k in range(1, result.target.depth + 1)]
    frozen = result.frozen
    gamma, beta = frozen.norm_params(*rescaled(result, factors))
    x = result.domain.sample(64, np.random.default_rng([seed, 3]))
    g_rescaled, g = frozen.forward(x, gamma, beta), result.network(x)
    scale = frozen.magnitude(x, gamma, beta) + frozen.magnitude(x, result.gamma, result.beta)
    assert error_ratio(g_rescaled, g, scale) <= exactness_tolerance(result.target, frozen)
