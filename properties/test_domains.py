"""The two questions the construction asks a domain (docs/design.md §2, §6): exact affine ranges and sample points."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from properties._support import EPS
from properties.strategies import domains, seeds

DIMENSIONS = st.integers(1, 6)


@given(data=st.data(), dim=DIMENSIONS, count=st.integers(1, 64), seed=seeds())
def test_samples_lie_in_the_domain_about_half_on_its_boundary(data, dim, count, seed):
    """docs/design.md §6 (the sampled check uses points of the domain, boundary included): `verify.Domain.sample`.

    ``count`` points of dimension ``dim``; the first is the centre; all lie in the domain and at
    least ``count − count // 2`` of them (one less when ``count = 1``: the centre replaces it) on
    its boundary, up to the rounding of ``lo + t (hi − lo)`` or ``centre + r · direction`` (a ball's
    boundary points are drawn at radius ``r (1 − 2^-36)``, a hair inside). A box's points lie in it exactly
    (clipped), so `verify.Domain.contains` accepts every one; a centred ball's too.
    """
    domain = data.draw(domains(dim, flat=None), label="domain").resolve(dim)
    x = domain.sample(count, np.random.default_rng(seed))
    assert x.shape == (count, dim)
    on_boundary_needed = count - count // 2 - (count == 1)
    lo, hi = domain.bounding_box()
    if hasattr(domain, "radius"):
        np.testing.assert_array_equal(x[0], domain.center)
        tolerance = 4 * (dim + 2) * EPS * (np.abs(domain.center).max() + domain.radius)
        distance = np.linalg.norm(x - domain.center, axis=1)
        assert np.all(distance <= domain.radius + tolerance)
        sphere = domain.radius * (1 - 2.0**-36)
        assert np.count_nonzero(np.abs(distance - sphere) <= tolerance) >= on_boundary_needed
        if not np.any(domain.center):
            assert np.all(domain.contains(x))
    else:
        np.testing.assert_array_equal(x[0], (lo + hi) / 2)
        tolerance = 2 * EPS * (np.abs(lo) + np.abs(hi))
        assert np.all(x >= lo) and np.all(x <= hi) and np.all(domain.contains(x))
        on_face = (np.abs(x - lo) <= tolerance) | (np.abs(x - hi) <= tolerance)
        assert np.count_nonzero(on_face.any(axis=1)) >= on_boundary_needed


@given(data=st.data(), dim=DIMENSIONS, rows=st.integers(1, 6), seed=seeds())
def test_affine_range_is_the_exact_range_over_the_domain(data, dim, rows, seed):
    """docs/design.md §2: the bias shift needs ``min over the domain of (B z + c)_i``, in closed form.

    The closed form is centre and radius.

    For a generic ``B`` and ``c``, ``Domain.affine_range(B, c)`` gives ``[mid − rad, mid + rad]``:
    every sample point maps inside it, and both ends are attained, at the box corner
    ``where(B_i >= 0, hi, lo)`` (and its opposite) or at the ball point ``centre ± r B_i / ||B_i||``.
    ``size`` bounds ``|B_i| |z| + |c_i|`` on the domain. Rounding: ``4 (dim + 2) · eps · size``.
    """
    domain = data.draw(domains(dim, flat=None), label="domain").resolve(dim)
    rng = np.random.default_rng(seed)
    b_mat = rng.standard_normal((rows, dim)) * np.exp(rng.uniform(-5, 5, (rows, 1)))
    bias = rng.standard_normal(rows) * np.exp(rng.uniform(-5, 5, rows))
    image = domain.affine_range(b_mat, bias)
    tolerance = 4 * (dim + 2) * EPS * image.size
    x = domain.sample(64, rng)
    h = x @ b_mat.T + bias
    assert np.all(h >= image.mid - image.rad - tolerance)
    assert np.all(h <= image.mid + image.rad + tolerance)
    assert np.all(np.abs(x) @ np.abs(b_mat).T + np.abs(bias) <= image.size + tolerance)
    if hasattr(domain, "radius"):
        unit = b_mat / np.linalg.norm(b_mat, axis=1, keepdims=True)
        highest = domain.center + domain.radius * unit
        lowest = domain.center - domain.radius * unit
    else:
        lo, hi = domain.bounding_box()
        highest = np.where(b_mat >= 0, hi, lo)
        lowest = np.where(b_mat >= 0, lo, hi)
    top = np.einsum("ij,ij->i", highest, b_mat) + bias
    bottom = np.einsum("ij,ij->i", lowest, b_mat) + bias
    np.testing.assert_array_less(np.abs(top - (image.mid + image.rad)), tolerance + np.finfo(float).tiny)
    np.testing.assert_array_less(np.abs(bottom - (image.mid - image.rad)), tolerance + np.finfo(float).tiny)
