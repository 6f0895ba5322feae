"""The affine error forms (`verify.core.affine_errors`): each operation's claim checked on realizations.

A form claims ``e = G ξ + ρ`` with ``ξ ∈ [−1, 1]^m`` and ``|ρ| <= R 1``. Each test draws realizations
``(ξ, ρ)`` (corners of the cube included), applies the operation to the realized error, and checks
that the result is ``G' ξ' + ρ'`` with the new form's generators on the *same* ``ξ`` (kept columns) and
``|ρ'| <= R' 1``: the remainder bound is the claim, so the check is direct. Tolerances: the float64
evaluation of the check itself, ``64 u₆₄`` of the terms' magnitude (sums of at most a few dozen terms).
"""

from __future__ import annotations

import numpy as np
import pytest

from verify.core.affine_errors import SOURCES, AffineErrors

_SLACK = 64 * 2.0**-53


def _form(rng: np.random.Generator, rows: int = 5, width: int = 9) -> AffineErrors:
    g = rng.standard_normal((rows, width))
    labels = rng.integers(0, len(SOURCES), width)
    rest = np.abs(rng.standard_normal((rows, len(SOURCES)))) * (rng.random((rows, len(SOURCES))) < 0.3)
    return AffineErrors(g, 1.0, labels, rest)


def _realizations(form: AffineErrors, rng: np.random.Generator, count: int = 200) -> tuple[np.ndarray, np.ndarray]:
    m = form.g.shape[1]
    xi = np.concatenate([rng.uniform(-1, 1, (count, m)), np.where(rng.random((count, m)) < 0.5, -1.0, 1.0)])
    rho = rng.uniform(-1, 1, (len(xi), form.g.shape[0])) * form.rest.sum(axis=1)
    return xi, rho


@pytest.mark.parametrize("seed", range(5))
def test_transform_keeps_the_generators_and_bounds_the_rest(seed: int) -> None:
    rng = np.random.default_rng(seed)
    form = _form(rng)
    m = rng.standard_normal((4, 5))
    mapped = form.transform(m)
    xi, rho = _realizations(form, rng)
    errors = (form.g @ xi.T).T + rho
    left = (m @ errors.T).T - (mapped.g @ xi.T).T
    assert np.all(np.abs(left) <= mapped.rest.sum(axis=1) + _SLACK * (np.abs(m) @ form.bound()))
    assert np.allclose(mapped.bound(), np.abs(m @ form.g).sum(axis=1) + mapped.rest.sum(axis=1))
    # The signs are kept: never looser than the magnitude analysis |M| (|G| 1 + R 1).
    assert np.all(mapped.bound() <= np.abs(m) @ form.bound() * (1 + _SLACK))


@pytest.mark.parametrize("seed", range(5))
def test_capping_merges_columns_into_the_remainder(seed: int) -> None:
    rng = np.random.default_rng(seed)
    form = _form(rng)
    capped = form.capped(3)
    assert capped.g.shape[1] == 3
    kept = [j for j in range(form.g.shape[1]) if any(np.array_equal(form.g[:, j], c) for c in capped.g.T)]
    assert len(kept) == 3
    sizes = np.abs(form.g).sum(axis=0)
    assert min(sizes[kept]) >= max(np.delete(sizes, kept))  # the largest are kept
    xi, rho = _realizations(form, rng)
    left = (form.g @ xi.T).T + rho - (capped.g @ xi[:, kept].T).T
    assert np.all(np.abs(left) <= capped.rest.sum(axis=1) * (1 + _SLACK))
    assert np.allclose(capped.bound(), form.bound())
    assert np.allclose(sum(capped.terms(0).values()), capped.bound()[0])


@pytest.mark.parametrize("seed", range(5))
def test_relu_passes_active_rows_zeroes_dead_ones_and_relaxes_the_others(seed: int) -> None:
    rng = np.random.default_rng(seed)
    form = _form(rng, rows=6)
    bound = form.bound()
    # Exact pre-activations: rows 0-1 active on the whole domain, 2-3 dead, 4-5 crossing 0.
    lo = np.array([1.0, 2.0, -5.0, -9.0, -1.0, -0.5]) * (1 + bound)
    hi = np.array([3.0, 4.0, -1.0, -3.0, 1.0, 2.0]) * (1 + bound)
    active, dead = lo - bound >= 0, hi + bound <= 0
    assert list(active) == [True, True, False, False, False, False]
    assert list(dead) == [False, False, True, True, False, False]
    after = form.relu(active, dead)
    xi, rho = _realizations(form, rng)
    y = rng.uniform(lo, hi, (len(xi), 6))
    errors = (form.g @ xi.T).T + rho
    left = np.maximum(y + errors, 0.0) - np.maximum(y, 0.0) - (after.g @ xi.T).T
    assert np.all(np.abs(left) <= after.rest.sum(axis=1) * (1 + _SLACK) + _SLACK * bound)
    assert np.all(after.bound()[dead] == 0) and np.allclose(after.bound()[active], bound[active])
    assert np.allclose(after.bound(), np.where(dead, 0.0, bound))


def test_fresh_generators_are_one_per_nonzero_row_and_terms_name_their_source() -> None:
    form = AffineErrors.diagonal(np.array([1.0, 0.0, 2.0]), "input cast", 1.0)
    assert form.g.shape == (3, 2)
    form = form.fresh(np.array([0.5, 0.5, 0.0]), "even rounding")
    assert form.terms(0) == dict.fromkeys(SOURCES, 0.0) | {"input cast": 1.0, "even rounding": 0.5}
    assert np.array_equal(form.bound(), [1.5, 0.5, 2.0])


def test_fresh_and_cast_keep_the_largest_generators_and_the_others_sizes() -> None:
    sizes = np.array([3.0, 0.0, 1.0, 5.0, 2.0])
    form = AffineErrors.diagonal(sizes, "residual", 1.0, keep=2)
    assert form.g.shape[1] == 2 and sorted(np.abs(form.g).sum(axis=0)) == [3.0, 5.0]
    assert np.array_equal(form.bound(), sizes)
    cast = AffineErrors.cast(sizes, 2 * sizes, True, 1.0, True, keep=3)
    assert cast.g.shape == (10, 3) and np.array_equal(cast.bound(), np.concatenate([sizes, 2 * sizes]))
    # Shared generators cancel to |g − f| = sizes in the difference; a merged row (sizes 0, 1) keeps 3 sizes.
    assert np.allclose(cast.difference().bound(), np.where(sizes >= 2, sizes, 3 * sizes), rtol=1e-14)
