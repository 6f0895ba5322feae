"""Every floating-point tolerance of the project, in one place, each derived from machine epsilon.

* Numerical rank: singular values below ``σ_max · max(shape) · eps`` are zero (the LAPACK/NumPy
  convention: the SVD's backward error is of that size).
* Scale-equation residual: after iterative refinement (Skeel 1980: one step in working precision
  makes the residual componentwise small) ``E = s' ⊙ (A diag(γ) B) − W`` satisfies
  ``|E| <= c · eps · (|s'| |A| |γ| |B| + |W|)`` componentwise, where ``c`` counts the rounding
  errors of one entry: ``n`` products summed, plus the refinement's own residual evaluation,
  coupled across the ``d_out·d_in`` equations. We accept ``c = 4 · (n + d_out·d_in)``.
* Vanishing row scale (minimal mode): a row scale whose component on the orthonormal, column-
  equilibrated null basis is below ``sqrt(eps)`` is zero to working accuracy: carrying that row
  would need ``s' = 1/ρ`` beyond ``1/sqrt(eps)`` times the others, so we report it as infeasible.
* Evaluation: computing one layer ``N(M u + c)`` in floating point errs by at most
  ``(fan_in + 4) · eps`` times its absolute-value evaluation (dot product: ``fan_in · eps``; bias,
  centring, scaling, shift: one rounding each); errors propagate through later layers with at
  most the absolute-value weights (ReLU is 1-Lipschitz), so ``|ĝ(x) − g(x)| <= Σ_j (n_{j-1} + 4) · eps
  · |g|(x)`` to first order, where ``|g|`` is the network evaluated with absolute values
  (`FrozenNetwork.magnitude`). The same holds for ``f``. ``g`` and ``f`` agree in exact arithmetic
  up to the scale-equation residual, which contributes at most its componentwise ratio times the
  same magnitudes. A factor 2 covers the second-order terms.
* Default ``rtol`` of a certificate, by the dtype it certifies (`default_rtol`): ``error_bound <= rtol ·
  f_max`` asks a fixed share of the target's largest output, and a share that suits float64 cannot be
  met by a float32 module's rounding. float64: ``1e-6`` (about ``4.5e9 u``; the project's bounds in
  float64 are ``1e-9`` of ``f_max`` or smaller). float32: ``1e-3``, three digits (about ``1.7e4 u``; one
  layer of fan-in ``n`` may round by ``γ_n`` of its magnitudes in the worst summation order, and the
  bias shifts make those magnitudes a few times the signal). float16 and bfloat16: ``1e-1``, one digit
  (``u`` is ``4.9e-4`` and ``3.9e-3``: a fan-in of 100 alone allows ``5e-2`` and ``0.4``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "DEFAULT_RTOL",
    "EPS",
    "VANISHING",
    "default_rtol",
    "evaluation_tolerance",
    "numerical_rank",
    "residual_tolerance",
]

EPS = float(np.finfo(np.float64).eps)
VANISHING = float(np.sqrt(EPS))

DEFAULT_RTOL = {"float64": 1e-6, "float32": 1e-3, "float16": 1e-1, "bfloat16": 1e-1}
"""The ``rtol`` a certificate is asked when none is given, by the dtype it certifies (see module notes)."""


def default_rtol(rtol: float | None, dtype: str) -> float:
    """``rtol`` as given, or ``DEFAULT_RTOL[dtype]`` when it is None (a ValueError for an unknown dtype)."""
    if rtol is not None:
        return rtol
    if dtype not in DEFAULT_RTOL:
        raise ValueError(f"dtype must be one of {tuple(DEFAULT_RTOL)}, got {dtype!r}")
    return DEFAULT_RTOL[dtype]


def numerical_rank(singular_values: np.ndarray, shape: tuple[int, int]) -> int:
    """Number of singular values above ``σ_max · max(shape) · eps``."""
    if singular_values.size == 0 or singular_values[0] == 0:
        return 0
    return int(np.count_nonzero(singular_values > singular_values[0] * max(shape) * EPS))


def residual_tolerance(width: int, d_out: int, d_in: int) -> float:
    """Largest componentwise scale-equation residual ratio accepted for one block (see module notes)."""
    return 4.0 * (width + d_out * d_in) * EPS


def evaluation_tolerance(
    frozen_widths: Sequence[int], target_widths: Sequence[int], residual_ratios: Sequence[float]
) -> float:
    """Bound on ``|g(x) − f(x)| / (|g|(x) + |f|(x))`` for a correct reconstruction (see module notes)."""
    frozen_terms = sum(n + 4 for n in frozen_widths[:-1])
    target_terms = sum(d + 4 for d in target_widths[:-1])
    return 2.0 * ((frozen_terms + target_terms) * EPS + float(sum(residual_ratios)))
