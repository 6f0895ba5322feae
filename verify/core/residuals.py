"""One block's residuals with the stored parameters, enclosed (docs/design.md §6.5, item 3).

A frozen block in its linear regime maps ``ẑ`` to ``(W + E) ẑ + b + r`` with the scale-equation residual
``E = s′ ⊙ (A diag(s) B) − W`` and the shift residual ``r = t′ + s′ ⊙ (A (s ⊙ c + t) + c′) − b``, where
``s = γ/√(v+ε)``, ``t = β − s μ`` are the exact (real) per-neuron maps of the stored BatchNorm values.
`block_residuals` computes ``Ê``, ``r̂`` and the block matrix ``W + Ê``, each with an allowance: the exact
values lie within ``slack`` times their terms' magnitudes (``e_terms``, ``r_terms``) of the computed ones.

The allowance is ``2 γ_{n+12}`` (``n`` products summed; ``s``, ``t`` and the products' own roundings: 12).
In float64 it is about ``2 (n + 12) u₆₄`` of the terms, while the float64 solve leaves ``|Ê|`` near
``u₆₄`` of them: the allowance, not the residual, would then dominate the bound. So ``Ê``, ``r̂`` are
computed again in ``np.longdouble`` from the stored ``γ, β, μ, v, ε`` (``s`` and ``t`` too), with the
allowance in that precision's unit roundoff (x86-64 Linux: 80-bit extended, ``u = 2^-64``; where
``longdouble`` is float64 nothing changes). Rounding the wide values to float64 costs one ``u₆₄``
relative, inside the caller's inflation. Blocks beyond ``WIDE_WORK`` products stay in float64 (no BLAS
for ``longdouble``); so do layers whose ``v``, ``ε`` are not given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["WIDE_WORK", "Residuals", "StoredNorm", "block_residuals"]

_WIDE = np.longdouble
_U_WIDE = float(np.finfo(_WIDE).eps) / 2
_U64 = 2.0**-53
WIDE_WORK = 5e7
"""The largest block (``n · d_out · d_in`` products) whose residuals are computed in ``np.longdouble``."""


def _gamma(m: int, u: float) -> float:
    return m * u / (1.0 - m * u)


@dataclass(frozen=True, eq=False)
class StoredNorm:
    """One frozen normalization restricted to the rows a block uses: its float64 maps ``scale``, ``shift``
    (``shift`` 0 where the block does not use it) and the stored values they come from (``var``, ``eps``
    ``None``: not known, the float64 maps are used as they are)."""

    scale: np.ndarray
    shift: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray | None = None
    eps: float | None = None

    def wide(self, shifted: bool) -> tuple[np.ndarray, np.ndarray]:
        """``s = γ/√(v+ε)`` and ``t = β − s μ`` (0 unless ``shifted``) in ``np.longdouble``."""
        std = np.sqrt(np.asarray(self.var, dtype=_WIDE) + _WIDE(self.eps))
        s = np.asarray(self.gamma, dtype=_WIDE) / std
        t = np.asarray(self.beta, dtype=_WIDE) - s * np.asarray(self.mean, dtype=_WIDE)
        return s, (t if shifted else np.zeros_like(t))


@dataclass(frozen=True, eq=False)
class Residuals:
    """``W + Ê`` (``carried``), ``Ê``, ``r̂``; the exact ``E``, ``r`` are within ``slack · e_terms``,
    ``slack · r_terms`` of them, the exact ``W + E`` within ``carry_slack · m_terms`` of ``carried``."""

    carried: np.ndarray
    e_hat: np.ndarray
    r_hat: np.ndarray
    m_terms: np.ndarray
    e_terms: np.ndarray
    r_terms: np.ndarray
    slack: float
    carry_slack: float

    def bars(self, inflate: float) -> tuple[np.ndarray, np.ndarray]:
        """Upper bounds ``|E|``, ``|r|`` of the exact residuals (elementwise)."""
        e_bar = (np.abs(self.e_hat) + self.slack * self.e_terms) * inflate
        r_bar = (np.abs(self.r_hat) + self.slack * self.r_terms) * inflate
        return e_bar, r_bar


def block_residuals(
    a: np.ndarray,
    b: np.ndarray,
    c_odd: np.ndarray,
    c_even: np.ndarray,
    w: np.ndarray,
    bias: np.ndarray,
    odd: StoredNorm,
    even: StoredNorm,
    t_odd_abs: np.ndarray,
    shifted: bool = True,
) -> Residuals:
    """The residuals of the block ``A, B`` (odd bias ``c_odd``, even bias ``c_even``) against ``W z + b`` (module
    notes); ``t_odd_abs`` bounds ``|t|`` of the odd layer where it is used (0 where ``shifted`` is False)."""
    n = b.shape[0]
    slack = 2 * _gamma(n + 12, _U64)
    se, so, to = even.scale, odd.scale, odd.shift
    carried = se[:, None] * ((a * so) @ b)
    e_hat = carried - w
    m_terms = np.abs(se)[:, None] * ((np.abs(a) * np.abs(so)) @ np.abs(b))
    e_terms = m_terms + np.abs(w)
    r_hat = even.shift + se * (a @ (so * c_odd + to) + c_even) - bias
    r_terms = (
        np.abs(even.beta)
        + np.abs(se) * np.abs(even.mean)
        + np.abs(se) * (np.abs(a) @ (np.abs(so) * np.abs(c_odd) + t_odd_abs) + np.abs(c_even))
        + np.abs(bias)
    )
    known = all(norm.var is not None and norm.eps is not None for norm in (odd, even))
    if known and _U_WIDE < _U64 and n * w.size <= WIDE_WORK:
        s_odd, t_odd = odd.wide(shifted)
        s_even, t_even = even.wide(True)
        a_w, b_w = np.asarray(a, dtype=_WIDE), np.asarray(b, dtype=_WIDE)
        e_wide = s_even[:, None] * ((a_w * s_odd) @ b_w) - np.asarray(w, dtype=_WIDE)
        inner = a_w @ (s_odd * np.asarray(c_odd, dtype=_WIDE) + t_odd) + np.asarray(c_even, dtype=_WIDE)
        r_wide = t_even + s_even * inner - np.asarray(bias, dtype=_WIDE)
        return Residuals(
            carried,
            e_wide.astype(np.float64),
            r_wide.astype(np.float64),
            m_terms,
            e_terms,
            r_terms,
            2 * _gamma(n + 12, _U_WIDE),
            slack,
        )
    return Residuals(carried, e_hat, r_hat, m_terms, e_terms, r_terms, slack, slack)
