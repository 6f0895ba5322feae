"""Shared pieces of the property tests: solving an instance, tolerances, independent recomputations.

Everything a property compares against is recomputed here from the public API and the formulas
of docs/design.md, not read back from the certificate the code reports about itself; the tolerances
come from `verify.evaluation_tolerance` and `verify.residual_tolerance` (machine epsilon and the
widths only).
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import TypeVar

import numpy as np
from hypothesis import assume, event, note

import verify
from properties.strategies import Instance
from verify.core.linear_bounds import linear_regions, target_bounds

__all__ = [
    "EPS",
    "block_matrices",
    "block_regions",
    "certified_or_discard",
    "error_ratio",
    "exact_output",
    "exactness_tolerance",
    "network_arrays",
    "recomputed_residual_ratios",
    "solve",
]

EPS = float(np.finfo(np.float64).eps)

T = TypeVar("T")


def exact_output(target: verify.TargetNetwork, x: np.ndarray) -> list[Fraction]:
    """``f(x)`` for one point ``x``, in rational arithmetic: no rounding anywhere (stdlib `fractions`, independent
    of the library's own python-flint evaluation)."""
    z = [Fraction(float(v)) for v in x]
    for k, (w, b) in enumerate(zip(target.weights, target.biases, strict=True)):
        z = [
            sum((Fraction(float(w[i, j])) * z[j] for j in range(len(z))), Fraction(float(b[i]))) for i in range(len(b))
        ]
        if k < target.depth - 1:
            z = [max(v, Fraction(0)) for v in z]
    return z


def certified_or_discard(
    fit: Callable[[], T], refused: str = "refused", discard: dict[type[Exception], str] | None = None
) -> T:
    """``fit()``'s result, or the example discarded (`hypothesis.assume`) with an event saying why.

    A refusal (`verify.CertificateError`: the bound is above ``rtol``) is discarded as ``refused`` only after
    checking that no sampled point of its certificate lies outside the bound; an `verify.InfeasibleError`
    (a rank-deficient draw) is discarded as ``infeasible (rank)``; so is an exception of a class in ``discard``,
    with the event it maps to.
    """
    try:
        return fit()
    except verify.CertificateError as error:
        assert error.certificate.sampled.holds, "a sampled point lies outside the certified bound"
        event(refused)
    except verify.InfeasibleError:
        event("infeasible (rank)")
    except tuple(discard or ()) as error:
        event(next(label for kind, label in discard.items() if isinstance(error, kind)))
    assume(False)
    raise AssertionError("unreachable: assume(False) discards the example")


def solve(instance: Instance, *, samples: int = 256, seed: int = 0) -> verify.Reconstruction:
    """``verify.reconstruct(*instance, samples=samples, seed=seed)``, discarding its accuracy refusals.

    docs/design.md §6 makes a failing certificate an error, and the properties are about the results that
    are returned. `verify.reconstruct` also refuses (`verify.CertificateError`) a reconstruction
    whose proof holds (every block's residual and margin) and whose sampled error is within the
    rounding tolerance, when its certified error bound exceeds ``rtol`` times the target's scale
    (docs/design.md §6.5): ``g`` is exact in exact arithmetic but its floating-point evaluation may
    lose too many digits of ``f``. A refusal whose sampled check found a point outside the bound is
    never discarded (it would mean the bound is wrong). Such
    examples are discarded with `hypothesis.assume` (and counted with `hypothesis.event`); any
    other `verify.CertificateError` propagates and fails the property. The known source: minimal
    mode with a small target, where huge even-layer scales ``s' = 1/ρ`` amplify the rounding of
    BatchNorm's ``h − μ`` (a running mean much larger than ``h``). (Vanishing targets used to be
    refused too; that was a bug, fixed, see tests/test_regressions.py.)
    """
    target, frozen, domain, mode = instance
    note(f"instance: {target!r} {frozen!r} {domain!r} mode={mode!r}")
    try:
        return verify.reconstruct(target, frozen, domain, mode, samples=samples, seed=seed)
    except verify.CertificateError as error:
        certificate = error.certificate
        sampled = certificate.sampled
        if not sampled.holds:  # a sample outside the certified bound: the bound is wrong, never discarded
            raise
        if not (all(block.holds for block in certificate.blocks) and sampled.error_ratio <= sampled.tolerance):
            raise
        points = domain.resolve(target.widths[0]).sample(samples, np.random.default_rng(seed))
        event(f"refused: rtol ({mode}); target vanishes: {not np.any(target(points))}")
        assume(False)
        raise  # unreachable: assume(False) discards the example


def exactness_tolerance(target: verify.TargetNetwork, frozen: verify.FrozenNetwork) -> float:
    """The largest ``|g − f| / (|g| + |f|)`` a correct reconstruction can show
    (docs/design.md §2, `verify.core.tolerances`).

    ``verify.evaluation_tolerance`` with every block's scale-equation residual at the largest
    value a certificate accepts, ``verify.residual_tolerance(n_{2k-1}, d_k, d_{k-1})``: so the
    bound does not depend on the residuals the code reports.
    """
    d, n = target.widths, frozen.widths
    accepted = [verify.residual_tolerance(n[2 * k - 1], d[k], d[k - 1]) for k in range(1, target.depth + 1)]
    return verify.evaluation_tolerance(n, d, accepted)


def error_ratio(g: np.ndarray, f: np.ndarray, scale: np.ndarray) -> float:
    """``max |g − f| / scale`` componentwise, with ``0/0`` read as 0 (as `verify.reconstruct`'s sampled check)."""
    difference = np.abs(g - f)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(difference == 0, 0.0, difference / scale)
    return float(np.max(ratios, initial=0.0))


def block_matrices(
    target: verify.TargetNetwork, frozen: verify.FrozenNetwork, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(A, B, c, c')`` of block ``k`` (docs/design.md §2).

    ``B``: the columns of ``M_{2k-1}`` fed by live neurons; ``A``: the rows of ``M_{2k}`` carrying the
    target; ``c``: the odd layer's frozen biases; ``c'``: the even layer's, on those rows.
    """
    d = target.widths
    b_mat = frozen.weights[2 * k - 2][:, : d[k - 1]]
    a_mat = frozen.weights[2 * k - 1][: d[k], :]
    return a_mat, b_mat, frozen.biases[2 * k - 2], frozen.biases[2 * k - 1][: d[k]]


def block_regions(target: verify.TargetNetwork, domain: verify.Domain) -> list[verify.Domain]:
    """Regions enclosing each block's input ``z_{k-1}`` on ``domain`` (docs/design.md §2.2, §6.9), as the shifts use.

    Block 1's region is the domain; block ``k``'s is the box ``[relu(lo), relu(hi)]`` of the target's
    pre-activation ranges, whose ``affine_range`` is the box's range intersected with the linear bounds
    back-substituted to the input (`verify.core.linear_bounds.LinearRegion`).
    """
    return linear_regions(target_bounds(target, domain.resolve(target.widths[0])))


def recomputed_residual_ratios(result: verify.Reconstruction) -> list[float]:
    """Each block's componentwise residual ratio of the scale equation ``s' ⊙ (A diag(γ) B) = W``, recomputed.

    ``max |E| / (|s'| |A| |γ| |B| + |W|)`` with ``E = s' ⊙ (A diag(γ) B) − W`` (0/0 read as 0),
    evaluated from ``result.scales`` with an explicit ``diag(γ)`` (another summation order than
    the construction's).
    """
    target, frozen = result.target, result.frozen
    ratios = []
    for k in range(1, target.depth + 1):
        a_mat, b_mat, _, _ = block_matrices(target, frozen, k)
        gamma = result.scales[2 * k - 2]
        row_scale = result.scales[2 * k - 1][: target.widths[k]]
        w = target.weights[k - 1]
        error = row_scale[:, None] * (a_mat @ np.diag(gamma) @ b_mat) - w
        terms = np.abs(row_scale)[:, None] * (np.abs(a_mat) @ np.diag(np.abs(gamma)) @ np.abs(b_mat)) + np.abs(w)
        ratios.append(error_ratio(error, 0.0, terms))
    return ratios


def network_arrays(network: verify.TargetNetwork | verify.FrozenNetwork) -> dict[str, np.ndarray]:
    """Every array a network holds, by name (weights, biases and, for a frozen network, running statistics)."""
    arrays = {f"weights[{j}]": w for j, w in enumerate(network.weights)}
    arrays |= {f"biases[{j}]": b for j, b in enumerate(network.biases)}
    if isinstance(network, verify.FrozenNetwork):
        arrays |= {f"running_mean[{j}]": m for j, m in enumerate(network.running_mean)}
        arrays |= {f"running_var[{j}]": v for j, v in enumerate(network.running_var)}
    return arrays
