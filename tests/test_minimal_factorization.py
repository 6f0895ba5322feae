"""Minimal mode's one-LU null space (verify/solvers/minimal.py, docs/design.md §2.6) above `SVD_EQUATIONS`."""

from __future__ import annotations

import numpy as np
import pytest

from verify.core.errors import InfeasibleError
from verify.core.networks import minimal_width
from verify.solvers.minimal import SVD_EQUATIONS
from verify.solvers.registry import solve_with

EPS = np.finfo(float).eps
D_OUT, D_IN = 4, 80  # 320 equations, above SVD_EQUATIONS: the LU path


def _block(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = minimal_width(D_OUT, D_IN)
    return rng.standard_normal((D_OUT, n)), rng.standard_normal((n, D_IN)), rng.standard_normal((D_OUT, D_IN))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lu_null_vector_solves_the_homogeneous_system_to_rounding(seed: int) -> None:
    a, b, w = _block(seed)
    assert D_OUT * D_IN > SVD_EQUATIONS
    solution = solve_with("minimal", a, b, w, block=1)
    assert solution.method == "minimal: LU null space"
    rho, gamma = 1.0 / solution.row_scale, solution.scale
    residual = rho[:, None] * w - (a * gamma) @ b
    # Rounding bound, componentwise: each entry of diag(ρ) W − A diag(γ) B is a sum of n + 1 products
    # evaluated in float64 after a backward-stable factorization and refinement, so its error is at
    # most a small multiple of (n + 1)·eps times the sum of the magnitudes of its terms
    # |ρ_a W_ab| + Σ_i |A_ai γ_i B_ib|. The multiple 10 leaves room for the factorization's growth.
    terms = np.abs(rho)[:, None] * np.abs(w) + (np.abs(a) * np.abs(gamma)) @ np.abs(b)
    tolerance = 10.0 * (a.shape[1] + 1) * EPS * terms
    assert np.all(np.abs(residual) <= tolerance), float(np.max(np.abs(residual) / terms))
    assert solution.rank == D_OUT * D_IN and solution.diagnostics["null_dimension"] == 1


def test_rank_deficient_system_is_still_refused() -> None:
    a, b, w = _block(3)
    a[1] = 0.0  # row 1 of A diag(γ) B is 0, so ρ_1 W_1 = 0: rank drops by d_in − 1 and ρ_1 = 0 on every solution
    with pytest.raises(InfeasibleError, match=r"switches off target row\(s\) \[1\]"):
        solve_with("minimal", a, b, w, block=1)


def test_wider_layer_keeps_a_null_space_of_dimension_n_minus_minimal() -> None:
    rng = np.random.default_rng(4)
    n = minimal_width(D_OUT, D_IN) + 3
    a, b, w = rng.standard_normal((D_OUT, n)), rng.standard_normal((n, D_IN)), rng.standard_normal((D_OUT, D_IN))
    solution = solve_with("minimal", a, b, w, block=1)
    assert solution.method == "minimal: LU null space" and solution.diagnostics["null_dimension"] == 4
    rho, gamma = 1.0 / solution.row_scale, solution.scale
    terms = np.abs(rho)[:, None] * np.abs(w) + (np.abs(a) * np.abs(gamma)) @ np.abs(b)
    assert np.all(np.abs(rho[:, None] * w - (a * gamma) @ b) <= 10.0 * (n + 1) * EPS * terms)
