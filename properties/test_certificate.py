"""What every returned reconstruction carries (docs/design.md §6).

And how its normalizations look (docs/design.md §1–2).
"""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

import verify
from properties._support import EPS, exact_output, recomputed_residual_ratios, solve
from properties.strategies import instances, seeds
from verify.core.f_max_ascent import ascend
from verify.core.zero_target import is_zero_output


@pytest.mark.parametrize("mode", verify.MODES)
@given(data=st.data(), seed=seeds())
def test_every_returned_certificate_holds(mode, data, seed):
    """docs/design.md §6 (a result that fails its certificate is an error, never a return value) and §2.

    For every returned result: ``certificate.holds``; every block's activity margin is ``>= 0``
    (the linear regime is proved); every block's scale-equation residual ratio is within
    ``verify.residual_tolerance(n_{2k-1}, d_k, d_{k-1})``, both as reported and as recomputed
    from ``result.scales``; the sampled check holds; and the block figures describe the
    frozen network (width ``n_{2k-1}``, live neurons = non-zero ``γ``, rank as the mode needs).
    """
    instance = data.draw(instances(modes=mode), label="instance")
    result = solve(instance, seed=seed)
    certificate = result.certificate
    d, n = result.target.widths, result.frozen.widths
    assert certificate.holds
    assert certificate.mode == mode
    assert certificate.min_margin >= 0
    assert certificate.sampled.holds
    assert len(certificate.blocks) == result.target.depth
    recomputed = recomputed_residual_ratios(result)
    for k, block in enumerate(certificate.blocks, start=1):
        tolerance = verify.residual_tolerance(n[2 * k - 1], d[k], d[k - 1])
        assert block.block == k
        assert block.holds
        assert block.min_margin >= 0
        assert block.residual_tolerance == tolerance
        assert block.residual_ratio <= tolerance
        assert recomputed[k - 1] <= tolerance
        assert block.width == n[2 * k - 1]
        assert block.live_neurons == np.count_nonzero(result.scales[2 * k - 2])
        if mode == "paper":  # full rank d_k d_{k-1}
            assert block.rank == block.needed
        else:  # a non-trivial null space: rank <= r + n - 1 (r non-zero rows of W_k)
            assert block.rank <= block.needed


@pytest.mark.parametrize("mode", verify.MODES)
@given(data=st.data())
def test_normalizations_have_the_shape_of_the_construction(mode, data):
    """docs/design.md §1–2: which neurons are switched off, the even-layer scales, and ``(γ, β) ↔ (s, t)``.

    * Extra neurons of an even layer (beyond the first ``d_k``) are switched off: ``γ = β = 0``
      (so ``s = t = 0``), as are odd neurons with ``s = 0``.
    * Paper mode keeps ``s' = 1`` on the ``d_k`` live rows (``0`` in the last block of a zero target);
      minimal mode has ``s'_a = 0`` exactly on
      the zero rows of ``W_k`` and ``s'_a != 0`` on the others.
    * ``gamma, beta`` are ``frozen.norm_params(scales, shifts)``: ``frozen.affine_maps`` maps them
      back to ``result.scales, result.shifts`` up to one rounding per operation.
    """
    instance = data.draw(instances(modes=mode, min_extra_even=1), label="instance")
    result = solve(instance)
    target, frozen = result.target, result.frozen
    d = target.widths
    for k in range(1, target.depth + 1):
        odd, even = 2 * k - 2, 2 * k - 1
        assert np.all(result.gamma[even][d[k] :] == 0)
        assert np.all(result.beta[even][d[k] :] == 0)
        off = result.scales[odd] == 0
        assert np.all(result.gamma[odd][off] == 0)
        assert np.all(result.beta[odd][off] == 0)
        row_scale = result.scales[even][: d[k]]
        if mode == "paper":  # a zero target's last block is switched off (docs/design.md §6.5)
            silenced = k == target.depth and is_zero_output(target.weights, target.biases)
            assert np.all(row_scale == (0 if silenced else 1))
        else:
            zero_rows = np.all(target.weights[k - 1] == 0, axis=1)
            assert np.all(row_scale[zero_rows] == 0)
            assert np.all(row_scale[~zero_rows] != 0)
    scales, shifts = frozen.affine_maps(result.gamma, result.beta)
    for j, mu in enumerate(frozen.running_mean):
        s, t = result.scales[j], result.shifts[j]
        assert np.all(np.abs(scales[j] - s) <= 2 * EPS * np.abs(s))
        assert np.all(np.abs(shifts[j] - t) <= 4 * EPS * (np.abs(t) + np.abs(s * mu)))


def _exactly_inside(domain: verify.Domain, x: np.ndarray) -> bool:
    """``x`` in the domain, decided in rational arithmetic."""
    if isinstance(domain, verify.Box):
        return all(
            Fraction(float(lo)) <= Fraction(float(v)) <= Fraction(float(hi))
            for lo, v, hi in zip(domain.lo, x, domain.hi, strict=True)
        )
    distance = sum((Fraction(float(v)) - Fraction(float(c))) ** 2 for v, c in zip(x, domain.center, strict=True))
    return distance <= Fraction(domain.radius) ** 2


@given(data=st.data(), seed=seeds())
def test_f_max_is_an_output_of_the_exact_target_on_the_domain(data, seed):
    """docs/design.md §6.8: ``f_max`` is a lower bound of ``max_D ‖f‖_∞``. Among the certificate's own sample
    points (`solve`'s samples and seed, and the points `ascend` climbs to from them) that lie in the domain,
    decided in rational arithmetic, the exact (rational) ``|f_i(x)|`` reaches ``f_max`` at one of the 16
    largest computed ``|f̂_i(x)|`` (the rounding allowance makes every computed value less it a lower bound of
    the exact one). And ``f_max`` is at most the interval ``scale``, an upper bound of the same maximum."""
    instance = data.draw(instances(), label="instance")
    result = solve(instance, seed=seed)
    certificate, target = result.certificate, result.target
    domain = instance.domain.resolve(target.widths[0])
    x = domain.sample(256, np.random.default_rng(seed))
    x = np.concatenate([x, ascend(target, domain, x, target(x))])  # the points f_max is also taken over
    assert certificate.f_max <= certificate.scale
    if certificate.f_max == 0:
        event("f_max = 0: the target vanishes at every sample point")
        return
    size = np.abs(target(x))
    order = np.argsort(-size, axis=None, kind="stable")
    seen: set[tuple[bytes, int]] = set()
    exact: list[Fraction] = []
    for flat in order:
        point, output = x[flat // size.shape[1]], int(flat % size.shape[1])
        if (point.tobytes(), output) in seen or not _exactly_inside(domain, point):
            continue
        seen.add((point.tobytes(), output))
        exact.append(abs(exact_output(target, point)[output]))
        if len(exact) == 16:
            break
    assert max(exact) >= Fraction(certificate.f_max)
