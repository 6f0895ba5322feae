"""LSMR in torch, on the tensors' device, for the Khatri–Rao operator (docs/design.md §5, ``iterative``).

The refinement around it is `verify.solvers.iterative`'s, shared with scipy's LSMR.

A line-by-line port of scipy's ``scipy.sparse.linalg.lsmr`` (Fong & Saunders, 2011) with
``damp = 0``: the scalar recurrences run on the host in Python floats, the vectors stay on the
device, and the two products are the GEMMs of `verify.core.scale_equation.KhatriRaoOperator`::

    matvec:  γ -> vec(A diag(γ) B)      rmatvec:  R -> rowsum((Aᵀ R) ⊙ B)

References
----------
D. C.-L. Fong, M. A. Saunders, "LSMR: An iterative algorithm for sparse least-squares problems",
SIAM J. Sci. Comput. 33(5), 2011.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["khatri_rao_products", "lsmr"]


def _sym_ortho(a: float, b: float) -> tuple[float, float, float]:
    """Stable Givens rotation (as scipy's ``_sym_ortho``): ``c, s, r`` with ``r = hypot(a, b)``."""
    if b == 0:
        return math.copysign(1.0, a), 0.0, abs(a)
    if a == 0:
        return 0.0, math.copysign(1.0, b), abs(b)
    if abs(b) > abs(a):
        tau = a / b
        s = math.copysign(1.0, b) / math.sqrt(1 + tau * tau)
        return s * tau, s, b / s
    tau = b / a
    c = math.copysign(1.0, a) / math.sqrt(1 + tau * tau)
    return c, c * tau, a / c


def lsmr(
    matvec: Any,
    rmatvec: Any,
    rhs: torch.Tensor,
    n: int,
    *,
    atol: float,
    btol: float,
    maxiter: int,
    record: tuple[list[float], list[float]] | None = None,
    on_iteration: Callable[[int, float], None] | None = None,
) -> tuple[torch.Tensor, int, int, float, float]:
    """Minimize ``‖K x − rhs‖`` with LSMR; returns ``x, istop, iterations, LSMR's condition estimate, ‖r‖``.

    ``istop`` follows scipy: 1 or 2 converged, 4 or 5 at machine precision, 7 iteration limit.
    ``record = (alphas, betas)``: lists that receive the Golub–Kahan ``α_1..α_k`` and ``β_2..β_{k+1}``
    (`verify.solvers.condition.bidiagonal_condition` turns them into a true condition estimate).
    ``on_iteration(iteration, ‖r‖)``, if given, is called after every iteration (LSMR's own residual
    estimate; it changes nothing in the iteration).
    """
    u = rhs.clone()
    normb = float(torch.linalg.vector_norm(u))
    x = torch.zeros(n, dtype=rhs.dtype, device=rhs.device)
    beta = normb
    if beta == 0:
        return x, 0, 0, 1.0, 0.0
    u = u / beta
    v = rmatvec(u)
    alpha = float(torch.linalg.vector_norm(v))
    if alpha == 0:
        return x, 0, 0, 1.0, beta
    v = v / alpha
    if record is not None:
        record[0].append(alpha)
    zetabar, alphabar, rho, rhobar, cbar, sbar = alpha * beta, alpha, 1.0, 1.0, 1.0, 0.0
    h = v.clone()
    hbar = torch.zeros_like(x)
    betadd, betad, rhodold, tautildeold, thetatilde, zeta, d = beta, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0
    norm_a2 = alpha * alpha
    maxrbar, minrbar, cond_a, normr = 0.0, 1e100, 1.0, beta
    istop, itn = 0, 0
    while itn < maxiter:
        itn += 1
        u = matvec(v) - alpha * u
        beta = float(torch.linalg.vector_norm(u))
        if beta > 0:
            u = u / beta
            v = rmatvec(u) - beta * v
            alpha = float(torch.linalg.vector_norm(v))
            if alpha > 0:
                v = v / alpha
        if record is not None:
            record[1].append(beta)
            if beta > 0 and alpha > 0 and itn < maxiter:
                record[0].append(alpha)
        chat, shat, alphahat = _sym_ortho(alphabar, 0.0)
        rhoold = rho
        c, s, rho = _sym_ortho(alphahat, beta)
        thetanew = s * alpha
        alphabar = c * alpha
        rhobarold, zetaold = rhobar, zeta
        thetabar = sbar * rho
        rhotemp = cbar * rho
        cbar, sbar, rhobar = _sym_ortho(cbar * rho, thetanew)
        zeta = cbar * zetabar
        zetabar = -sbar * zetabar
        hbar = h - (thetabar * rho / (rhoold * rhobarold)) * hbar
        x = x + (zeta / (rho * rhobar)) * hbar
        h = v - (thetanew / rho) * h
        betaacute = chat * betadd
        betacheck = -shat * betadd
        betahat = c * betaacute
        betadd = -s * betaacute
        thetatildeold = thetatilde
        ctildeold, stildeold, rhotildeold = _sym_ortho(rhodold, thetabar)
        thetatilde = stildeold * rhobar
        rhodold = ctildeold * rhobar
        betad = -stildeold * betad + ctildeold * betahat
        tautildeold = (zetaold - thetatildeold * tautildeold) / rhotildeold
        taud = (zeta - thetatilde * tautildeold) / rhodold
        d = d + betacheck * betacheck
        normr = math.sqrt(d + (betad - taud) ** 2 + betadd * betadd)
        if on_iteration is not None:
            on_iteration(itn, normr)
        norm_a2 += beta * beta
        norm_a = math.sqrt(norm_a2)
        norm_a2 += alpha * alpha
        maxrbar = max(maxrbar, rhobarold)
        if itn > 1:
            minrbar = min(minrbar, rhobarold)
        cond_a = max(maxrbar, rhotemp) / min(minrbar, rhotemp)
        normar = abs(zetabar)
        normx = float(torch.linalg.vector_norm(x))
        test1 = normr / normb
        test2 = normar / (norm_a * normr) if norm_a * normr != 0 else math.inf
        t1 = test1 / (1 + norm_a * normx / normb)
        rtol = btol + atol * norm_a * normx / normb
        if itn >= maxiter:
            istop = 7
        if 1 + 1 / cond_a <= 1:
            istop = 6
        if 1 + test2 <= 1:
            istop = 5
        if 1 + t1 <= 1:
            istop = 4
        if test2 <= atol:
            istop = 2
        if test1 <= rtol:
            istop = 1
        if istop > 0:
            break
    return x, istop, itn, cond_a, normr


def khatri_rao_products(a: torch.Tensor, b: torch.Tensor) -> tuple[Any, Any]:
    """The two GEMMs of ``K`` in torch on ``a``'s device: ``γ -> vec(A diag(γ) B)`` and ``R -> rowsum((Aᵀ R) ⊙ B)``."""
    d_out, d_in = a.shape[0], b.shape[1]

    def matvec(gamma: torch.Tensor) -> torch.Tensor:
        return ((a * gamma) @ b).reshape(-1)

    def rmatvec(residual: torch.Tensor) -> torch.Tensor:
        return ((a.T @ residual.reshape(d_out, d_in)) * b).sum(dim=1)

    return matvec, rmatvec
