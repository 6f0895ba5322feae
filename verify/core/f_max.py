"""What a certificate's accuracy is judged against: ``f_max``, a lower bound of ``max_D |f|`` (docs/design.md §6.8).

A certificate proves ``|ĝ(x) − f̂(x)| <= error_bound`` for every ``x`` of the domain ``D``. "Accurate
to ``rtol``" then has to be relative to something a user reads: the target's own outputs. The
interval ``scale`` (the target evaluated with absolute values over the domain, an *upper* bound of
``max_D |f|``) can be far above them, so a bound within ``rtol · scale`` may still be larger than
every output. Every certificate therefore also carries

    f_max = max over the sample points x in D and outputs i of ( |f̂_i(x)| − a_i(x) ),  clipped at 0,

where ``f̂`` is the target as evaluated at the certificate's own sample points (corners included)
and ``a_i(x) >= |f̂_i(x) − f_i(x)|`` a rigorous allowance for that evaluation's rounding. Each term
is then at most ``|f_i(x)| <= max_D ‖f‖_∞`` for a point ``x`` of ``D``, so ``f_max`` is a **lower
bound** of ``max_D ‖f‖_∞`` (the exact target's largest output on the domain), and

    error_bound <= rtol · f_max   (`holds_against_f_max`)

proves that the error is at most ``rtol`` of the target's largest output on the domain. Only
points that provably lie in ``D`` count (`verify.core.domains.Domain.contains`; sample points on a
ball's sphere are drawn a hair inside it so that they do).

The allowance of a float64 evaluation (`float64_allowance`): a ReLU network whose layers sum at
most ``n_k`` products and add a bias, evaluated in float64, satisfies
``|f̂(x) − f(x)| <= γ_N |f|(x)`` with ``N = Σ_k (n_k + 2)`` and ``|f|(x)`` the target evaluated with
absolute values (Higham, §3.1: per layer ``|ẑ_k − z_k| <= |W_k| |ẑ_{k−1} − z_{k−1}| + γ_{n_k+2}
(|W_k| |ẑ_{k−1}| + |b_k|)``, ReLU is 1-Lipschitz, and ``(1 + γ_a)(1 + γ_b) <= 1 + γ_{a+b}``); twice
that covers the rounding of ``|f|(x)`` itself; terms below ``2^-960`` do not count (underflow, which that
relative allowance does not cover, is absolute: ``N · 2^-1074`` per layer, carried through the weights).
The graph route evaluates the target module in its own dtype and uses the graph bound's own ``δ_f``
(which includes the cast of the input) instead.

``f_max = 0`` (a target that vanishes at every sample point): no relative accuracy exists, and the
certificate holds only when ``error_bound == 0`` (a zero target switched off exactly has that).

On all of ``R^d`` (paired networks, ``domain=None``) ``max |f|`` is unbounded and the bound is
``error_bound + error_slope · ‖x‖_∞``. There the certificate is judged on the unit cube
``‖x‖_∞ <= 1``, where the bound is at most ``error_bound + error_slope``: that must be within
``rtol · f_max`` with ``f_max`` over the sample points in the cube; and its growth beyond, per unit
of ``‖x‖_∞``, is judged against the growth of the target's terms, ``error_slope <= rtol ·
scale_slope`` (the interval figure, as before: no sampled figure bounds a growth rate).
"""

from __future__ import annotations

import numpy as np

from verify.core.error_bound import unit_roundoff

__all__ = ["accuracy_reference", "bound_over_f_max", "float64_allowance", "holds_against_f_max", "sampled_f_max"]

_U64 = unit_roundoff("float64")
_FLOOR = 2.0**-960
"""Terms below this do not count: the float64 evaluation's underflow (at most ``N · 2^-1074`` absolute per layer,
carried through the weights) is not in the relative allowance; it reaches ``2^-960`` only through weights that
amplify it by ``2^100``."""


def float64_allowance(magnitude: np.ndarray, roundings: int) -> np.ndarray:
    """``2 γ_N · |f|(x)``: a bound on the rounding of a float64 evaluation of the target at each point
    (module notes), from its absolute-value evaluation ``magnitude`` and ``N = roundings``."""
    mu = roundings * _U64
    if mu >= 0.5:
        return np.full_like(np.asarray(magnitude, dtype=np.float64), np.inf)
    return 2 * (mu / (1 - mu)) * np.asarray(magnitude, dtype=np.float64)


def sampled_f_max(values: np.ndarray, allowance: np.ndarray | float = 0.0, inside: np.ndarray | None = None) -> float:
    """``max (|f̂_i(x)| − a_i(x))`` over the points ``x`` flagged ``inside`` and every output ``i``, clipped at 0.

    Parameters
    ----------
    values : array of shape (points, ...)
        ``f̂`` at the certificate's sample points, one row per point.
    allowance : array broadcastable to ``values``, or float
        ``a_i(x) >= |f̂_i(x) − f_i(x)|``, the rounding of that evaluation (module notes).
    inside : bool array of shape (points,), optional
        The points that provably lie in the domain (all when None).

    Returns
    -------
    float
        A lower bound of ``max_D ‖f‖_∞`` (module notes); 0 when no point counts.
    """
    values = np.asarray(values, dtype=np.float64)
    rows = values.reshape(values.shape[0], -1) if values.ndim else values.reshape(1, 1)
    lower = np.abs(rows) - np.broadcast_to(np.asarray(allowance, dtype=np.float64), values.shape).reshape(rows.shape)
    if inside is not None:
        lower = lower[np.asarray(inside, dtype=bool)]
    lower = lower[np.isfinite(lower) & (lower >= _FLOOR)] if lower.size else lower
    return float(max(np.max(lower, initial=0.0), 0.0))


def holds_against_f_max(
    error_bound: float,
    f_max: float,
    rtol: float,
    *,
    error_slope: float = 0.0,
    scale_slope: float = 0.0,
    valid_radius: float = float("inf"),
) -> bool:
    """``error_bound <= rtol · f_max``: the error is at most ``rtol`` of the target's largest output on the domain.

    On ``R^d`` (``error_slope > 0``) ``error_bound + error_slope <= rtol · f_max`` on the unit cube and
    ``error_slope <= rtol · scale_slope`` beyond it (module notes), which needs the bound proved on that cube
    (``valid_radius >= 1``). ``f_max = 0`` holds only for a zero bound; NaN anywhere fails.
    """
    if error_slope:
        cube = error_bound + error_slope <= rtol * f_max and valid_radius >= 1
        return bool(cube and error_slope <= rtol * scale_slope)
    return bool(error_bound <= rtol * f_max)


def bound_over_f_max(error_bound: float, f_max: float, *, error_slope: float = 0.0, scale_slope: float = 0.0) -> float:
    """The figure `holds_against_f_max` compares with ``rtol``: ``error_bound / f_max`` (``0/0`` read as 0,
    ``x/0`` as ``inf``); on ``R^d`` the larger of ``(error_bound + error_slope) / f_max`` and
    ``error_slope / scale_slope``."""
    ratios = [_ratio(error_bound + error_slope, f_max)] + ([_ratio(error_slope, scale_slope)] if error_slope else [])
    return max(ratios)


def accuracy_reference(f_max: float, error_slope: float = 0.0) -> str:
    """What a failure message's ratio is relative to: "of the target's largest output on the sample points
    (f_max = …)", with the ``R^d`` reading (the unit cube, and the slope) and the ``f_max = 0`` case spelled out."""
    where = "on the sample points with max|x_i| <= 1" if error_slope else "on the sample points"
    if f_max == 0:
        return f"of the target's largest output {where} (f_max = 0: the target vanishes there, only a zero bound holds)"
    slope = "; the slope is judged against the growth of the target's terms" if error_slope else ""
    return f"of the target's largest output {where} (f_max = {f_max:.3g}{slope})"


def _ratio(error: float, reference: float) -> float:
    if error == 0:
        return 0.0
    if not reference > 0:
        return float("inf")
    return error / reference
