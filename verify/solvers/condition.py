"""Condition estimates of a block's Khatri–Rao system, from the work a solver already did (docs/design.md §5).

* ``direct``: LAPACK's ``gecon`` on the LU factors, an estimate of the 1-norm condition number
  ``κ₁(K) = ‖K‖₁ ‖K⁻¹‖₁`` (Hager–Higham: a lower bound, usually within a factor of 3 of it, with no
  guaranteed factor: 4.0 was seen on a 10-equation system), at ``O(m²)`` instead of the ``O(m³)``
  inverse behind ``numpy.linalg.cond(K, 1)``.
* ``iterative``: the extreme singular values of the Golub–Kahan bidiagonal ``B_k`` that LSMR builds
  (Ritz values of ``K``: ``σ_max(B_k) ≤ σ_max(K)``, ``σ_min(B_k) ≥ σ_min(K)``, both sharp once LSMR has
  converged on an ill-conditioned system). LSMR's own ``acond`` is not this: it is a ratio of the
  diagonal of its QR factor and stayed near 2–3 on systems whose 2-norm condition number was ``10⁴``.
  `BidiagonalRecorder` forms ``α_k, β_k`` from the products LSMR asks for (two vector norms per
  iteration, the products themselves unchanged).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg
import scipy.linalg.lapack
import scipy.sparse.linalg

__all__ = ["BidiagonalRecorder", "bidiagonal_condition", "lu_condition"]


def lu_condition(lu: np.ndarray, norm_1: float) -> float:
    """``1 / rcond`` from LAPACK ``gecon`` on ``lu`` (`scipy.linalg.lu_factor`'s factors) of a matrix of 1-norm
    ``norm_1``: an estimate of its 1-norm condition number, ``inf`` when the factors are singular."""
    rcond, info = scipy.linalg.lapack.dgecon(lu, norm_1, norm="1")
    if info != 0:
        raise ValueError(f"gecon failed with info={info} (the LU factors must be a square float64 array)")
    return float(np.inf) if rcond == 0 else float(1.0 / rcond)


def bidiagonal_condition(alphas: list[float], betas: list[float]) -> float:
    """``σ_max / σ_min`` of the lower bidiagonal with diagonal ``alphas`` (``α_1..α_k``) and subdiagonal
    ``betas`` (``β_2..β_{k+1}``, ``k`` or ``k − 1`` of them; more are ignored).

    Its singular values are the non-negative eigenvalues of the symmetric tridiagonal with zero diagonal
    and off-diagonal ``α_1, β_2, α_2, β_3, …`` (Golub–Kahan), found by bisection for the two extremes
    only (``O(k)`` each, no squaring, so no digits are lost to ``σ²``). NaN for an empty bidiagonal.
    """
    k = len(alphas)
    if k == 0:
        return float("nan")
    off = np.empty(len(alphas) + len(betas[:k]))
    off[0::2] = alphas
    off[1::2] = betas[:k]
    size = off.size + 1
    positive = size // 2  # eigenvalues come in ±σ pairs; an odd size adds one exact 0
    low, high = size - positive, size - 1
    diagonal = np.zeros(size)
    smallest, largest = (
        float(scipy.linalg.eigvalsh_tridiagonal(diagonal, off, select="i", select_range=(i, i))[0]) for i in (low, high)
    )
    return float(np.inf) if smallest <= 0 else largest / smallest


class BidiagonalRecorder(scipy.sparse.linalg.LinearOperator):
    """``operator`` unchanged, recording the Golub–Kahan ``α_k, β_k`` of an LSMR run on it.

    LSMR calls ``rmatvec(u_1)``, then per iteration ``matvec(v_k)`` and ``rmatvec(u_{k+1})`` with unit
    vectors, and forms ``β_{k+1} = ‖K v_k − α_k u_k‖`` and ``α_{k+1} = ‖Kᵀ u_{k+1} − β_{k+1} v_k‖``; the
    recorder forms the same norms from the same vectors (norms, not dot products, which cancel when
    ``β`` is at rounding level). Use one recorder per LSMR run.
    """

    def __init__(self, operator: Any) -> None:
        super().__init__(dtype=np.float64, shape=operator.shape)
        self._operator = operator
        self._u: np.ndarray | None = None
        self._v: np.ndarray | None = None
        self._image: np.ndarray | None = None
        self.alphas: list[float] = []
        self.betas: list[float] = []

    def _matvec(self, x: np.ndarray) -> np.ndarray:
        self._v = np.array(x, dtype=np.float64)
        self._image = np.asarray(self._operator.matvec(x))
        return self._image

    def _rmatvec(self, y: np.ndarray) -> np.ndarray:
        out = np.asarray(self._operator.rmatvec(y))
        if self._v is None or self._image is None or self._u is None:
            self.alphas.append(float(np.linalg.norm(out)))
        else:
            beta = float(np.linalg.norm(self._image - self.alphas[-1] * self._u))
            self.betas.append(beta)
            self.alphas.append(float(np.linalg.norm(out - beta * self._v)))
        self._u = np.array(y, dtype=np.float64)
        return out

    def condition(self) -> float:
        """`bidiagonal_condition` of what was recorded."""
        return bidiagonal_condition(self.alphas, self.betas)
