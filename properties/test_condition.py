"""The condition number a block's solver reports is a true estimate of its system's (docs/design.md §5).

``direct`` reports LAPACK ``gecon``'s estimate of ``κ₁(K)`` (Hager–Higham: a lower bound, usually
within a factor 3, with no guaranteed factor); ``iterative`` reports ``κ₂(K)`` from LSMR's Golub–Kahan
bidiagonal, which matches the SVD's once LSMR has converged. Drawn: block shapes up to 8 × 8, widths
from the exact width to 2.5×, Gaussian frozen weights with per-neuron scales ``2^k``, ``|k| <= 6``
(condition numbers up to ~1e6).
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, note
from hypothesis import strategies as st

from verify.core.scale_equation import ScaleEquation
from verify.solvers.registry import solve

EPS = float(np.finfo(float).eps)


@st.composite
def equations(draw: st.DrawFn, *, square: bool) -> ScaleEquation:
    """A random block: ``d_out, d_in`` in 1..8, ``n = d_out·d_in`` (``square``) or up to 2.5× that."""
    d_out, d_in = draw(st.integers(1, 8), label="d_out"), draw(st.integers(1, 8), label="d_in")
    m = d_out * d_in
    n = m if square else draw(st.integers(m, int(2.5 * m)), label="n")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    powers = draw(st.lists(st.integers(-6, 6), min_size=n, max_size=n), label="neuron powers of two")
    a = rng.standard_normal((d_out, n)) * np.ldexp(1.0, powers)
    return ScaleEquation(a, rng.standard_normal((n, d_in)), rng.standard_normal((d_out, d_in)))


@given(equation=equations(square=True))
def test_directs_condition_is_gecons_estimate_of_the_1_norm_condition(equation: ScaleEquation) -> None:
    true = float(np.linalg.cond(equation.normalized()[0].k, 1))  # direct factors the normalized K
    reported = solve("direct", equation, block=1).condition
    note(f"reported {reported:.6g}, numpy {true:.6g}")
    # A lower bound up to the rounding of the two computations (each ~m·κ·eps relative to κ). Hager–Higham
    # has no guaranteed factor below: typically within 3 (tests/test_solver_choice.py), but the thorough
    # profile found 4.0 on 10 equations, so the property asks only for a factor max(3, m).
    factor = max(3, equation.needed)
    assert true / factor <= reported <= true * (1 + 2 * equation.needed * true * EPS)


@given(equation=equations(square=False))
def test_iteratives_condition_is_the_2_norm_condition_from_the_bidiagonal(equation: ScaleEquation) -> None:
    true = float(np.linalg.cond(equation.k))
    reported = solve("iterative", equation, block=1).condition
    note(f"reported {reported:.10g}, SVD {true:.10g}")
    # Ritz values carry absolute errors ~ σ_max·eps per step: the ratio is off by ~k·κ·eps relative,
    # k <= 20·m steps; 1e-9 covers rounding in the SVD itself (m·κ·eps) with margin.
    steps = 20 * equation.needed
    assert abs(reported - true) <= (1e-9 + steps * true * EPS) * true
