"""One block of the construction (docs/design.md §2, §3, §9): solve, shift, certify.

`tune_block` is the step `verify.construction.reconstruct` and the convolutional construction
(`verify.construction.convolutional`) both run for every block: solve the block's scale equation
(`verify.core.scale_equation`) with a solver of `verify.solvers.registry`, shift its odd layer by
`verify.core.bias_shift` over the per-channel range of its input region (`verify.core.channels`),
restore the target's bias in the even layer and collect the block's certificate figures.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from verify.construction.progress import announce_pair
from verify.core.bias_shift import activity_margin, bias_shift
from verify.core.blocks import Block
from verify.core.certificate import BlockCertificate
from verify.core.domains import Domain
from verify.core.errors import InfeasibleError
from verify.core.feasibility import BlockFeasibility, equation_feasibility
from verify.core.interop import TorchSpec
from verify.core.numerics import residual_ratio
from verify.core.scale_equation import ScaleEquation, ScaleSolution
from verify.core.tolerances import residual_tolerance
from verify.core.validate import as_real
from verify.solvers.exact import solve_exact
from verify.solvers.registry import METHODS, solve_with

__all__ = [
    "APPROXIMATE",
    "APPROXIMATE_METHODS",
    "MODES",
    "SHIFTED_METHODS",
    "TunedBlock",
    "certify_block",
    "check_approximate_method",
    "check_options",
    "even_layer",
    "refuse_unmatched",
    "tune_block",
]

SHIFTED_METHODS = ("exact", "min_shift", "min_bound", "weighted")
"""Methods built on the bias shift: a paired block on a bounded domain keeps the shift for them (``min_bound``
and ``weighted`` weigh each neuron by the range its shift covers, `verify.solvers.min_bound`)."""


MODES = ("paper", "minimal")
"""``"paper"``: even-layer scales fixed to 1; ``"minimal"``: they are solved too (docs/design.md §2.6)."""
APPROXIMATE = "approximate"
"""The mode that also answers below the threshold with a certified error (docs/design.md §11): chains, Case 2 and
convolutional networks."""
APPROXIMATE_METHODS = ("auto", "lstsq", "l1")
"""Methods of ``mode="approximate"``: ``"auto"`` and ``"l1"`` solve a narrow block's weighted ℓ1 program
(cvxpy), ``"lstsq"`` its weighted least squares (the fast path); an exact block uses the method as in paper mode."""


def check_approximate_method(method: object) -> None:
    """ValueError unless ``method`` is one ``mode="approximate"`` takes (`APPROXIMATE_METHODS`)."""
    if method not in APPROXIMATE_METHODS:
        raise ValueError(
            f"mode='approximate' solves narrow blocks by a weighted ℓ1 program or its least-squares fast path: "
            f"method must be one of {APPROXIMATE_METHODS}, got {method!r}"
        )


def check_options(mode: object, method: object, samples: object, rtol: object, bound: object) -> None:
    """The options every construction takes (chain, convolutional, residual), refused by name when invalid."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if mode not in MODES and mode != APPROXIMATE:
        raise ValueError(f"mode must be one of {(*MODES, APPROXIMATE)}, got {mode!r}")
    if mode == APPROXIMATE:
        check_approximate_method(method)
    if mode == "minimal" and method not in ("auto", "lstsq"):
        raise ValueError(
            f"method {method!r} solves the paper-mode equation K γ = vec(W); mode='minimal' uses the SVD null "
            "space (method 'auto' or 'lstsq'). Use mode='paper' for this method"
        )
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise ValueError(f"samples must be an integer >= 1, got {samples!r}")
    as_real(rtol, "rtol", positive=True)  # refuses True, strings and NaN by name
    if bound is not None:
        as_real(bound, "bound", positive=True)  # checked whatever the method, so a typo is never ignored
        if method != "box":
            raise ValueError(
                f"bound={bound!r} is the |γ| <= C of method='box' only, and method {method!r} would ignore it; "
                "pass method='box' with it, or leave bound out"
            )


@dataclass(frozen=True)
class TunedBlock:
    """One block's part of the result: the per-neuron ``(s, t)`` of its odd and even layers, its
    certificate, for ``method="exact"`` the rational ``γ``, and the wall time of its solve (kept out of the
    certificate, which is bit-for-bit reproducible)."""

    odd: tuple[np.ndarray, np.ndarray]
    even: tuple[np.ndarray, np.ndarray]
    certificate: BlockCertificate
    rational: list | None = None
    seconds: float = 0.0


def tune_block(
    block: Block,
    frozen: Any,
    region: Domain | None,
    mode: str,
    method: str,
    bound: float | None,
    spec: TorchSpec | None,
    store: Callable[[int, np.ndarray], np.ndarray] | None = None,
) -> TunedBlock:
    """Block ``k`` of the construction: the odd and even layers' ``(s, t)`` and the block's certificate.

    A paired block (`Block.pairs`, on any domain, docs/design.md §3) solves on one half, uses the same
    ``γ`` on both and needs no shift, since ``A σ(γ⊙h) − A σ(−γ⊙h) = A diag(γ) h`` for every ``h``
    (``σ(t) − σ(−t) = t``); only the methods of `SHIFTED_METHODS`, which are built on the shift,
    keep a paired block on a bounded domain shifted. Any other block (``region`` given, §2) solves its
    equation, shifts its odd layer by `bias_shift` over the region's range and proves the margins.
    """
    paired = block.pairs is not None and (region is None or method not in SHIFTED_METHODS)
    equation = block.half_equation if paired else block.equation
    announce_pair(equation.n, equation.d_out, equation.d_in)  # the fit's progress bar, if one is open
    image = None if paired else block.odd_range(region)
    if not paired and mode == "paper" and not equation.full_pattern:
        refuse_unmatched(equation_feasibility(equation, mode, block=block.k))
    rational = None
    started = time.perf_counter()
    try:
        if mode == "minimal":
            mean = _odd_mean(frozen, block, equation.n)
            solution = solve_with("minimal", equation, block=block.k, image=image, mean=mean)
        elif method == "exact":  # the rationals are needed for the exact check, so not via the registry
            solution, rational = solve_exact(equation.a, equation.b, equation.w, block=block.k)
        else:
            device = None if paired else spec  # a paired block solves in numpy
            options = {"bound": bound, "image": image, "mean": _odd_mean(frozen, block, equation.n), "device": device}
            solution = solve_with(method, equation, block=block.k, **options)
    except InfeasibleError as error:
        if not paired:
            raise
        m = block.pairs  # report the layer as the user built it: 2m neurons, m independent scales
        raise InfeasibleError(
            f"block {block.k}: its {2 * m} odd neurons are {m} mirrored pairs ([B; -B], [A, -A]), which carry "
            f"{m} independent scales; solved on the halves: {error}",
            block=error.block,
            rank=m if error.rank is None else error.rank,  # the halves' rank, at most m
            needed=error.needed,
            width=2 * m,
            width_needed=None if error.width_needed is None else 2 * error.width_needed,
        ) from None
    seconds = time.perf_counter() - started  # reported in the result, beside the construction's own time
    gamma, row_scale = solution.scale, solution.row_scale
    if store is not None:  # rounded to the evaluation dtype before the shifts are computed from them
        gamma, row_scale = store(block.odd, gamma), store(block.even, row_scale)
    if paired:
        odd = (np.concatenate([gamma, gamma]), np.zeros(2 * block.pairs))
        carried = gamma * block.c_odd[: block.pairs]
        min_margin = float("inf")
    else:
        tau = bias_shift(gamma, image)
        odd = (gamma, tau)
        carried = gamma * block.c_odd + tau
        min_margin = float(np.min(activity_margin(gamma, tau, image)))
    even = even_layer(block, frozen, row_scale, equation.a, carried)
    certificate = certify_block(block.k, solution, equation, min_margin=min_margin, pairs=paired)
    return TunedBlock(odd, even, certificate, rational, seconds)


def _odd_mean(frozen: Any, block: Block, n: int) -> np.ndarray | None:
    """The odd layer's running mean, one entry per unknown of the block's equation (None if it has no such entry)."""
    means = getattr(frozen, "running_mean", None)
    if means is None:
        return None
    mean = np.asarray(means[block.odd], dtype=np.float64).reshape(-1)
    return mean if mean.shape == (n,) else None


def even_layer(
    block: Block, frozen: Any, row_scale: np.ndarray, a: np.ndarray, carried: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The even layer's per-neuron ``(s, t)``: the scales ``s'`` and the shift restoring the target's bias,

        t' = b_k − s' ⊙ (A (γ ⊙ c + τ) + c')      (``carried = γ ⊙ c + τ``: what the odd layer adds)

    on the ``d_k`` live rows; the extra neurons are switched off (``s = t = 0``)."""
    width = frozen.widths[block.even + 1]
    d_k = a.shape[0]
    s_even, t_even = np.zeros(width), np.zeros(width)
    s_even[:d_k] = row_scale
    t_even[:d_k] = block.bias - row_scale * (a @ carried + block.c_even)
    return s_even, t_even


def certify_block(
    k: int,
    solution: ScaleSolution,
    equation: ScaleEquation,
    *,
    min_margin: float,
    pairs: bool = False,
) -> BlockCertificate:
    """The block's figures: the scale-equation residual ``s' ⊙ (A diag(γ) B) − W`` and its ratio to
    the terms summed, the solver's rank, condition and diagnostics, and the activity margin. For a
    paired block the equation is on the halves and every figure counts both halves' neurons."""
    gamma, row_scale = solution.scale, solution.row_scale
    error, terms = equation.residual(gamma, row_scale)
    copies = 2 if pairs else 1
    return BlockCertificate(
        block=k,
        width=copies * equation.n,
        live_neurons=copies * int(np.count_nonzero(gamma)),
        rank=solution.rank,
        needed=solution.needed,
        condition=solution.condition,
        residual=float(np.max(np.abs(error))),
        residual_ratio=residual_ratio(error, terms),
        residual_tolerance=residual_tolerance(equation.n, equation.d_out, equation.d_in),
        min_margin=min_margin,
        solver=solution.method + (" (paired: σ(t) − σ(−t) = t, no shift)" if pairs else ""),
        diagnostics=solution.diagnostics,
        max_scale=float(max(np.abs(gamma).max(initial=0.0), np.abs(row_scale).max(initial=0.0))),
    )


def refuse_unmatched(decision: BlockFeasibility) -> None:
    """Raise InfeasibleError when the zero pattern alone rules the block out (docs/design.md §4)."""
    if decision.ok:
        return
    k = decision.block
    raise InfeasibleError(
        f"block {k}: the sparsity pattern of frozen layers {2 * k - 1}-{2 * k} allows rank at most {decision.rank} "
        f"(maximum matching between target entries and odd neurons) but mode '{decision.mode}' needs "
        f"{decision.needed}; {decision.unreachable} target entries are reached by no neuron. Use a denser or wider "
        f"frozen layer (verify.feasibility tells which pass)",
        block=k,
        rank=decision.rank,
        needed=decision.needed,
        width=decision.width,
    )
