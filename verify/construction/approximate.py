"""Below the threshold (docs/design.md §11): every block tuned for the region it really receives.

`tune_approximate` runs the blocks of a chain (dense or sparse) in order. A block whose scale
equation is solvable is tuned exactly as in paper mode by `verify.construction.tuning.tune_block`; one
that is not (too narrow: rank ``K < d_k d_{k-1}``, or a sparse mask whose maximum matching is below
``d_k d_{k-1}``, docs/design.md §4) gets the ``γ`` of `verify.solvers.weighted_l1` (``s' = 1``)
minimizing its worst-case error ``Σ_j |(W − Ŵ)_ij| r_j`` over its input box, and its even shift
centres the residual: ``t' = b − (A(γ ⊙ c + τ) + c') − (Ŵ − W) z_c``, so the block computes
``W ẑ + b + (Ŵ − W)(ẑ − z_c)`` on its region.

The error carried out of block ``k`` is planned in exact arithmetic, ``δ_k = |W_k| δ_{k−1} + |Ŵ_k − W_k| r_k``
(``r_k`` the radii of block ``k``'s region), and block ``k + 1``'s region is the target's box for
``z_k`` enlarged by ``δ_k`` (and clipped at 0, after the ReLU): its odd layer is shifted over that
enlarged region, so every later neuron stays in its linear regime on whatever the approximate
blocks hand it. The certified figure is not this plan but the rigorous bound of
`verify.core.error_bound`, computed from the stored parameters afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from verify.construction.result import Reconstruction
from verify.construction.tuning import (
    APPROXIMATE,
    TunedBlock,
    certify_block,
    check_approximate_method,
    even_layer,
    tune_block,
)
from verify.core.approximate_certificate import ApproximateCertificate
from verify.core.bias_shift import activity_margin, bias_shift
from verify.core.blocks import blocks
from verify.core.bounds import block_input_regions
from verify.core.conv_networks import ConvFrozenNetwork
from verify.core.domains import AffineRange, Ball, Box, Domain
from verify.core.errors import InfeasibleError
from verify.core.interop import TorchSpec
from verify.core.networks import FrozenNetwork, TargetNetwork
from verify.core.residual import ResidualFrozenNetwork
from verify.core.scale_equation import ScaleEquation
from verify.solvers.weighted_l1 import solve_weighted

__all__ = [
    "ROUTES",
    "amplification",
    "approximate_block",
    "check_approximate_route",
    "solve_approximate",
    "tune_approximate",
]


ROUTES = (
    "dense and sparse chains (verify.FrozenNetwork), Case 2 residual networks (verify.ResidualFrozenNetwork) and "
    "convolutional networks (verify.ConvFrozenNetwork)"
)
"""What ``mode="approximate"`` takes, as its refusals name it."""


def check_approximate_route(frozen: Any, domain: Domain | None) -> None:
    """Refuse what ``mode="approximate"`` does not support, saying what does.

    A `verify.FrozenNetwork` is dense or sparse (a sparse block below the matching threshold of
    docs/design.md §4 is approximated over the scales its mask allows); a `verify.ResidualFrozenNetwork`
    is approximated branch by branch (`verify.construction.approximate_residual`), a `verify.ConvFrozenNetwork`
    pair by pair (`verify.construction.approximate_conv`). The domain must be bounded.
    """
    if not isinstance(frozen, (FrozenNetwork, ResidualFrozenNetwork, ConvFrozenNetwork)):
        raise ValueError(
            f"mode='approximate' supports {ROUTES}, got {type(frozen).__name__}; use mode='paper' or 'minimal' at "
            "or above the threshold"
        )
    if domain is None:
        raise ValueError(
            "mode='approximate' bounds the error over a bounded domain: give a verify.Ball or verify.Box "
            "(domain=None is the paired construction, exact on all of R^d)"
        )


def solve_approximate(solve: Callable[[str, str], Reconstruction], method: str) -> Reconstruction:
    """``mode="approximate"`` around one route's construction ``solve(mode, method)`` (dense, sparse, Case 2 or
    convolutional, in whatever evaluation dtype ``solve`` certifies).

    Paper mode first: where every block is solvable exactly the result is paper mode's, its certificate wrapped as
    an `ApproximateCertificate` with ``exact`` True and a zero ``approximation_error``. Where some block is too
    narrow (`InfeasibleError`), ``solve`` runs in approximate mode; ``method="auto"`` runs both objectives,
    ``"l1"`` and ``"lstsq"``, and keeps the result with the smaller certified bound (docs/design.md §11).
    """
    check_approximate_method(method)  # before paper mode, which would take methods approximate mode refuses
    try:
        exact = solve("paper", method)
    except InfeasibleError:  # some block is too narrow: approximated below
        exact = None
    if exact is not None:
        figures = ApproximateCertificate(True, exact.certificate, 0.0, ())
        figures = replace(figures, block_errors=(0.0,) * len(figures.blocks))
        return replace(exact, certificate=figures, mode=APPROXIMATE)
    if method == "auto":
        candidates = [solve(APPROXIMATE, m) for m in ("l1", "lstsq")]
        return min(candidates, key=lambda result: result.certificate.error_bound)
    return solve(APPROXIMATE, method)


def tune_approximate(
    target: TargetNetwork,
    frozen: FrozenNetwork,
    domain: Domain,
    method: str,
    spec: TorchSpec | None,
    store: Callable[[int, np.ndarray], np.ndarray] | None,
) -> tuple[list[TunedBlock], tuple[int, ...]]:
    """Every block's ``(s, t)`` and certificate, and the blocks that were solved approximately (module notes).

    ``method`` is ``"auto"``, ``"lstsq"`` or ``"l1"``: an exact block is solved by it as in paper
    mode; an approximate block by the weighted ℓ1 program (``"auto"``, ``"l1"``) or its
    least-squares fast path (``"lstsq"``).
    """
    boxes = block_input_regions(target, domain)
    carried_error = np.zeros(target.widths[0])
    row_weights = amplification(target)
    tuned, approximate = [], []
    for block in blocks(target, frozen):
        if block.k == 1:
            region, (lo, hi) = domain, domain.bounding_box()
        else:
            lo_t, hi_t = boxes[block.k - 1].bounding_box()
            lo, hi = np.maximum(lo_t - carried_error, 0.0), hi_t + carried_error
            region = Box(lo, hi)
        centre, radii = (lo + hi) / 2, (hi - lo) / 2
        try:
            result = tune_block(block, frozen, region, "paper", method, None, spec, store)
            mismatch = np.zeros_like(block.w)
        except InfeasibleError:
            rows = row_weights[block.k - 1]
            result, mismatch = approximate_block(block, frozen, region, centre, radii, rows, method, store)
            approximate.append(block.k)
        tuned.append(result)
        carried_error = np.abs(block.w) @ carried_error + np.abs(mismatch) @ radii
    return tuned, tuple(approximate)


def amplification(target: TargetNetwork) -> list[np.ndarray]:
    """Per block ``k``, ``1ᵀ |W_L| ⋯ |W_{k+1}|``: how much an error of each of its outputs can grow by the output
    (summed over the outputs), the row weights of its objective (1 for the last block)."""
    weights = [np.ones(target.widths[-1])]
    for w in reversed(target.weights[1:]):
        weights.insert(0, np.abs(w).T @ weights[0])
    return weights


def approximate_block(
    block: Any,
    frozen: FrozenNetwork,
    region: Domain,
    centre: np.ndarray,
    radii: np.ndarray,
    rows: np.ndarray,
    method: str,
    store: Callable[[int, np.ndarray], np.ndarray] | None,
    equation: ScaleEquation | None = None,
    image: AffineRange | None = None,
) -> tuple[TunedBlock, np.ndarray]:
    """A narrow block: the weighted ℓ1 (or least-squares) ``γ``, the shift over ``region``, the centred even shift.

    ``equation`` (default ``block.equation``) is the scale equation in the coordinates of ``region``, whose
    centre and radii are ``centre``, ``radii``; ``image`` (default ``block.odd_range(region)``) the range of the
    odd layer's input the shift covers. Returns the tuned block and its weight mismatch ``Ŵ − W``.
    """
    equation = block.equation if equation is None else equation
    ball = isinstance(region, Ball)  # the first block of a ball domain: its rows err by r ‖E_i‖₂ exactly
    solver = "lstsq" if method == "lstsq" else "l1"
    started = time.perf_counter()
    solution = solve_weighted(equation, radii, solver, block=block.k, ball=ball, rows=rows)
    seconds = time.perf_counter() - started
    gamma, row_scale = solution.scale, solution.row_scale
    if store is not None:  # rounded to the evaluation dtype before the shifts are computed from them
        gamma, row_scale = store(block.odd, gamma), store(block.even, row_scale)
    image = block.odd_range(region) if image is None else image
    tau = bias_shift(gamma, image)
    s_even, t_even = even_layer(block, frozen, row_scale, equation.a, gamma * block.c_odd + tau)
    mismatch, _ = equation.residual(gamma, row_scale)
    t_even[: equation.d_out] -= mismatch @ centre  # the residual centred on the region
    min_margin = float(np.min(activity_margin(gamma, tau, image)))
    certificate = certify_block(block.k, solution, equation, min_margin=min_margin)
    return TunedBlock((gamma, tau), (s_even, t_even), certificate, None, seconds), mismatch
