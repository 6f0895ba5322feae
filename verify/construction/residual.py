"""The construction for frozen residual networks (docs/design.md §8, Case 2 of the theorem).

``reconstruct_residual`` reads as the proof:

1. interval bounds through the target give each stage's input box (`verify.core.bounds`);
2. the stream bookkeeping ``x = T z + c`` turns every branch into a Case-1 block on the stage input
   (`verify.core.residual.branch_systems`): scale equation ``A_R diag(γ) (B_j T) = W_R − T_R``;
3. each block is tuned exactly as a Case-1 block (`verify.construction.reconstruct`: solver registry,
   bias shift over the range of ``B_j T z + B_j c + c_j``, even-layer shift restoring ``b_R − c_R``), and
   the even layer's rows outside ``R`` are switched off;
4. ``(s, t)`` become BatchNorm ``(gamma, beta)``; each branch is certified, the network is lowered into the
   core graph (`verify.core.graph_stage.residual_graph`) and gets the rigorous bound of the one graph engine
   (`verify.core.graph_bound.graph_error_bound`) over the domain, and samples check that bound
   (`verify.core.residual_certificate`). A failing certificate is a `CertificateError`.

Results are certified in float64 (numpy arrays) unless the caller names another evaluation dtype
(`verify.nn.fit_norm_layers` passes the frozen module's): γ and β are then rounded to it and the bound is
computed on the rounded values.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from verify.construction.approximate_residual import tune_residual_approximate
from verify.construction.memory_plan import plan_solves, residual_sizes
from verify.construction.result import Reconstruction
from verify.construction.tuning import APPROXIMATE, check_options, tune_block
from verify.core.approximate_certificate import ApproximateCertificate
from verify.core.bounds import block_input_regions
from verify.core.certificate import BlockCertificate, Certificate, SampledCheck
from verify.core.domains import Domain
from verify.core.error_bound import ErrorBound, unit_roundoff
from verify.core.errors import CertificateError, InfeasibleError
from verify.core.f_max import float64_allowance, sampled_f_max
from verify.core.f_max_ascent import ascended_f_max
from verify.core.graph_bound import graph_error_bound
from verify.core.graph_stage import residual_graph
from verify.core.interop import round_to
from verify.core.networks import TargetNetwork, minimal_width, paper_width
from verify.core.numerics import residual_ratio
from verify.core.residual import BranchSystem, ResidualFrozenNetwork, branch_systems, check_residual_architecture
from verify.core.residual_certificate import residual_tolerance_of
from verify.core.tolerances import default_rtol
from verify.core.validate import as_real

__all__ = ["ResidualReconstruction", "reconstruct_residual"]


ResidualReconstruction = Reconstruction
"""A residual reconstruction is a `verify.Reconstruction` (its ``certificate`` a `verify.Certificate` with one
block per branch, its ``frozen`` a `ResidualFrozenNetwork`, ``gamma``/``beta`` one array per each of the
``2 m L`` layers in network order); the name stays importable for one release."""


def reconstruct_residual(
    target: TargetNetwork,
    frozen: ResidualFrozenNetwork,
    domain: Domain,
    mode: str = "paper",
    *,
    method: str = "auto",
    bound: float | None = None,
    samples: int = 256,
    seed: int = 0,
    rtol: float | None = None,
    dtype: str = "float64",
    target_dtype: str = "float64",
) -> ResidualReconstruction:
    """Choose a frozen residual network's normalization parameters so that it computes ``target`` on ``domain``.

    `verify.reconstruct` calls this for a `ResidualFrozenNetwork`; the arguments mean what they mean there.

    Parameters
    ----------
    target : TargetNetwork
    frozen : ResidualFrozenNetwork
        ``L`` stages of ``m`` branches; branch ``j`` of stage ``k`` writes the rows of
        `verify.core.residual.stage_rows` and needs the odd width of `verify.core.residual.branch_needs`.
    domain : Ball or Box
        A bounded domain (residual networks have no paired, all-of-R^d form).
    mode : "paper", "minimal" or "approximate"
    method : str
        Any method of `verify.reconstruct`, used for every branch (minimal mode: ``"auto"``/``"lstsq"``;
        approximate mode: ``"l1"`` or ``"lstsq"``, docs/design.md §11, by
        `verify.construction.approximate_residual`: its certificate is then an `ApproximateCertificate`
        wrapping the `Certificate`).
    bound, samples, seed
        As in `verify.reconstruct`.
    rtol : float
        Accuracy demanded of the certified bound: ``error_bound <= rtol · f_max`` (docs/design.md §6.8), with
        ``f_max`` the target's largest output on the sample points (a lower bound of its largest output on
        the domain).
    dtype, target_dtype : str
        The frozen network's and the target's evaluation dtypes (``"float64"`` … ``"bfloat16"``): ``gamma``,
        ``beta`` come back rounded to ``dtype`` (as float64 arrays), certified in it (``certificate.dtype``).

    Returns
    -------
    Reconstruction
        Its certificate a `verify.Certificate`: one `BlockCertificate` per branch in network order, the branch's
        ``stage``, ``branch``, ``rows``, ``stream_rank``, ``stream_condition`` (``cond(T)``) and ``error_bound``
        (the bound on the stream's error after it, approximate mode: plus its distance to the planned stream)
        in its ``extras``.

    Raises
    ------
    InfeasibleError
        A branch is narrower than ``mode`` needs, or its system is rank-deficient; the message names the
        stage, the branch, the width found and the width needed (also as ``.stage``, ``.branch``,
        ``.width``, ``.width_needed``).
    CertificateError
        The certificate fails (never returned as a result).
    ValueError
        Mismatched architectures, a domain that is not a bounded `Domain`, an unknown mode or method.
    """
    check_residual_architecture(target, frozen)
    unit_roundoff(dtype), unit_roundoff(target_dtype)  # a ValueError naming the dtypes it takes
    rtol = default_rtol(rtol, dtype)  # None: the frozen dtype's default (verify.core.tolerances)
    check_options(mode, method, samples, rtol, bound)
    plan_solves(residual_sizes(frozen), method, mode)  # every pair fits before the first is solved
    if not isinstance(domain, Domain):
        raise ValueError(
            f"a residual network is reconstructed on a bounded domain (verify.Ball or verify.Box), got {domain!r}"
        )
    rtol = as_real(rtol, "rtol", positive=True)
    domain = domain.resolve(target.widths[0])
    regions = block_input_regions(target, domain)
    scales: list[np.ndarray] = []
    shifts: list[np.ndarray] = []
    branches: list[BlockCertificate] = []
    approximate: tuple[int, ...] = ()
    with np.errstate(over="ignore", invalid="ignore"):
        if mode == APPROXIMATE:  # docs/design.md §11: narrow branches approximated, later ones shifted for it
            solved, approximate = tune_residual_approximate(target, frozen, domain, method)
        else:
            solved = []
            for system in branch_systems(target, frozen):
                _check_width(system, mode)
                try:
                    region = regions[system.stage - 1]
                    solved.append((system, tune_block(system.block, system.network, region, mode, method, bound, None)))
                except InfeasibleError as error:
                    raise _located(error, system) from None
        for system, tuned in solved:
            rows, stream = system.rows, frozen.stream_width
            s_even, t_even = np.zeros(stream), np.zeros(stream)
            s_even[rows], t_even[rows] = tuned.even[0][: len(rows)], tuned.even[1][: len(rows)]
            scales += [tuned.odd[0], s_even]
            shifts += [tuned.odd[1], t_even]
            extras = {
                "stage": system.stage,
                "branch": system.branch,
                "rows": tuple(int(r) for r in rows),
                "stream_rank": system.rank,
                "stream_condition": system.stream_condition,
            }
            branches.append(replace(tuned.certificate, block=system.index + 1, extras=extras))
    gamma, beta = frozen.norm_params(scales, shifts)
    gamma, beta = [round_to(g, dtype) for g in gamma], [round_to(b, dtype) for b in beta]
    centred = mode == APPROXIMATE
    graph = residual_graph(target, frozen, gamma, beta)
    bound = graph_error_bound(graph, domain, dtype, target_dtype, centred=centred)
    sampled = _sampled_check(target, frozen, domain, gamma, beta, branches, samples, seed, rtol, bound)
    if len(bound.blocks) == len(branches):  # each branch's figure of the bound: the stream's error after it
        branches = [
            replace(b, extras=b.extras | {"error_bound": e}) for b, e in zip(branches, bound.blocks, strict=True)
        ]
    certificate = Certificate(mode, domain.to_dict(), tuple(branches), sampled, method, bound=bound, rtol=rtol)
    if centred:  # the same bound without evaluation roundings: the part due to the narrow branches
        parameters = graph_error_bound(graph, domain, centred=True, rounding=False)
        certificate = ApproximateCertificate(False, certificate, parameters.error_bound, parameters.blocks, approximate)
    if not certificate.holds:
        raise CertificateError(
            "the residual reconstruction does not pass its certificate: " + "; ".join(certificate.failures()),
            certificate,
        )
    solves = tuple(tuned.seconds for _, tuned in solved)
    return Reconstruction(gamma, beta, scales, shifts, certificate, target, frozen, domain, mode, solve_seconds=solves)


def _need(system: BranchSystem, mode: str) -> int:
    """The odd width the branch needs in ``mode``: ``|R|·r`` (paper) or ``|R'|(r − 1) + 1`` over its ``|R'|``
    non-zero rows (minimal)."""
    equation = system.block.equation
    if mode == "paper":
        return paper_width(equation.d_out, equation.d_in)
    live = int(np.count_nonzero(np.any(equation.w != 0, axis=1)))
    return minimal_width(live, equation.d_in) if live else 0


def _check_width(system: BranchSystem, mode: str) -> None:
    """InfeasibleError naming the stage, the branch, the width found and the width needed when it is too narrow."""
    width, need = system.block.equation.n, _need(system, mode)
    if width < need:
        rows, rank = len(system.rows), system.rank
        rule = f"{rows}*{rank}" if mode == "paper" else f"{rows}*({rank} - 1) + 1"
        raise _tagged(
            InfeasibleError(
                f"stage {system.stage}, branch {system.branch}: odd width {width} is below the {need} that mode "
                f"'{mode}' needs (|R| = {rows} stream rows written x rank {rank} of the stream map: {rule}); use "
                f"width >= {need} for this branch",
                block=system.index + 1,
                needed=paper_width(rows, rank),
                width=width,
                width_needed=need,
            ),
            system,
        )


def _located(error: InfeasibleError, system: BranchSystem) -> InfeasibleError:
    """``error`` of the branch's Case-1 block, reworded with its stage and branch."""
    message = str(error).removeprefix("block 1: ").replace("frozen layers 1-2", "the branch's two layers")
    return _tagged(
        InfeasibleError(
            f"stage {system.stage}, branch {system.branch} (width {system.block.equation.n}): {message}",
            block=system.index + 1,
            rank=error.rank,
            needed=error.needed,
            width=system.block.equation.n,
            width_needed=error.width_needed,
        ),
        system,
    )


def _tagged(error: InfeasibleError, system: BranchSystem) -> InfeasibleError:
    """``error`` with ``.stage`` and ``.branch`` set."""
    error.stage, error.branch = system.stage, system.branch
    return error


def _sampled_check(
    target: TargetNetwork,
    frozen: ResidualFrozenNetwork,
    domain: Domain,
    gamma: list[np.ndarray],
    beta: list[np.ndarray],
    branches: list[BlockCertificate],
    samples: int,
    seed: int,
    rtol: float,
    bound: ErrorBound,
) -> SampledCheck:
    """``g`` against ``f`` on ``samples`` points of the domain: within the certified ``bound``, the figures
    of the first-order rounding model (`residual_tolerance_of`), and ``f_max`` (`verify.core.f_max`: the
    target's largest output on the points, less the rounding of its float64 evaluation). The odd layers'
    pre-activations are not evaluated (``min_odd_preactivation`` NaN): the margins are the proof."""
    x = domain.sample(samples, np.random.default_rng(seed))
    f, g = target(x), frozen.forward(x, gamma, beta)
    size = target.magnitude(x)
    difference = np.abs(g - f)
    largest = float(size.max())
    fan_ins = [w for stage in frozen.odd_widths for n in stage for w in (frozen.stream_width, n + 1)]
    tolerance = residual_tolerance_of(
        fan_ins,
        target.widths,
        [b.residual_ratio for b in branches],
        [b.extras["stream_condition"] for b in branches],
    )
    return SampledCheck(
        points=samples,
        max_abs_error=float(difference.max()),
        max_relative_error=float(difference.max()) / largest if largest > 0 else 0.0,
        error_ratio=residual_ratio(difference, frozen.magnitude(x, gamma, beta) + size),
        tolerance=tolerance,
        min_odd_preactivation=float("nan"),
        rtol=rtol,
        bound_ratio=_over(float(difference.max()), bound.error_bound),
        f_max=max(
            sampled_f_max(f, float64_allowance(size, sum(d + 2 for d in target.widths[:-1])), domain.contains(x)),
            ascended_f_max(target, domain, x, f),
        ),
    )


def _over(error: float, bound: float) -> float:
    """``error / bound``, with ``0/0`` read as 0 (an exact result under a zero bound)."""
    if error == 0:
        return 0.0
    return error / bound if bound > 0 else float("inf")
