"""The construction (docs/design.md §2): solve every block, shift its odd layer, certify, return.

``reconstruct`` reads as the proof:

1. linear bounds through the target, intersected with interval bounds, give each block's input region
   (`verify.core.linear_bounds`);
2. the block's scale equation (`verify.core.scale_equation`) gives the odd-layer scales ``γ`` and
   even-layer scales ``s'``, solved by one of `verify.solvers.registry`;
3. the bias shift ``tau`` puts every odd neuron in its linear regime (`verify.core.bias_shift`);
4. the even layer's shift ``t' = b − s' ⊙ (A(γ ⊙ c + tau) + c')`` restores the target's bias;
5. ``(s, t)`` become BatchNorm ``(gamma, beta)`` and the certificate is checked (`verify.core.certificate`).

Everything is certified in the dtype the caller runs (docs/design.md §6.5): the scales are rounded
to the evaluation dtype *before* the shifts are computed from them, ``(gamma, beta)`` are stored in
that dtype, and the rigorous bound of `verify.core.error_bound` is computed from the stored values;
nothing is cast after certification.

A paired block (docs/design.md §3) is solved on its halves with no shift, on R^d or on a bounded domain.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, NoReturn

import numpy as np

from verify.construction.approximate import check_approximate_route, solve_approximate, tune_approximate
from verify.construction.convolutional import reconstruct_convolutional
from verify.construction.memory_plan import dense_sizes, plan_solves
from verify.construction.progress import active as progress_active
from verify.construction.progress import fit_progress
from verify.construction.residual import reconstruct_residual
from verify.construction.result import Reconstruction
from verify.construction.tuning import APPROXIMATE, MODES, SHIFTED_METHODS, check_options, tune_block
from verify.core.approximate_certificate import ApproximateCertificate
from verify.core.blocks import blocks, check_architecture
from verify.core.certificate import BlockCertificate, Certificate, SampledCheck
from verify.core.conv_networks import is_convolutional
from verify.core.domains import Ball, Domain
from verify.core.error_bound import ErrorBound, error_bound
from verify.core.errors import CertificateError
from verify.core.f_max import float64_allowance, sampled_f_max
from verify.core.f_max_ascent import ascended_f_max
from verify.core.interop import dtype_name, refuse_tf32, result_spec, round_to, to_caller
from verify.core.linear_bounds import linear_regions, target_bounds
from verify.core.networks import FrozenNetwork, TargetNetwork
from verify.core.numerics import residual_ratio
from verify.core.residual import ResidualFrozenNetwork
from verify.core.threads import limited
from verify.core.tolerances import default_rtol, evaluation_tolerance
from verify.core.validate import as_seed
from verify.core.zero_target import exact_zero_bound, is_zero_output, silence_last
from verify.solvers.exact import check_exact_reach, exact_check

__all__ = ["EXACT_POINTS", "MODES", "Reconstruction", "reconstruct"]

EXACT_POINTS = 32
"""Rational points at which ``method="exact"`` evaluates ``g`` and ``f`` exactly."""
PAIRED_RADII = (1.0, 1e6)
"""A paired reconstruction is checked on points of balls of these radii (half each): exactness on
all of R^d means far outside any ball too."""


def _timed(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` with its wall time stored in the `Reconstruction` it returns (``seconds``)."""

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        result = function(*args, **kwargs)
        if isinstance(result, Reconstruction):
            result = replace(result, seconds=time.perf_counter() - started)
        return result

    return run


@_timed
@limited
def reconstruct(
    target: TargetNetwork,
    frozen: FrozenNetwork,
    domain: Domain | None,
    mode: str = "paper",
    *,
    method: str = "auto",
    bound: float | None = None,
    samples: int = 256,
    seed: int = 0,
    rtol: float | None = None,
    progress: Any = True,
) -> Reconstruction:
    """Choose the frozen network's normalization parameters so that it computes ``target`` on ``domain``.

    Parameters
    ----------
    target : TargetNetwork or ConvTargetNetwork
        ``f``, depth ``L``, widths ``d_0 … d_L`` (a convolutional target: see Notes).
    frozen : FrozenNetwork, ConvFrozenNetwork or ResidualFrozenNetwork
        ``g``, ``2L`` layers, ``n_0 = d_0``, ``n_{2L} = d_L``, even widths ``n_{2k} >= d_k``. A
        `verify.ResidualFrozenNetwork` (docs/design.md §8) is reconstructed branch by branch by
        `verify.construction.residual.reconstruct_residual` (same arguments; a bounded domain).
    domain : Ball, Box or None
        Bounded input domain of dimension ``d_0`` (a ``Ball`` without centre is centred at 0).
        ``None`` for a paired frozen network (docs/design.md §3): exact on all of R^d, no bias shift.
        A paired block is solved on its halves with no shift on a bounded domain too.
    mode : "paper", "minimal" or "approximate"
        ``"paper"`` fixes the even-layer scales to 1 (needs ``n_{2k-1} >= d_k d_{k-1}``);
        ``"minimal"`` also solves them (needs ``n_{2k-1} >= d_k (d_{k-1} - 1) + 1``).
        ``"approximate"`` (docs/design.md §11: dense and sparse chains, Case 2 residual and convolutional
        networks, on a bounded domain) answers at every width:
        the paper-mode result where it is exact (``certificate.exact`` True, the same parameters and
        bound), else every too-narrow block gets the scales minimizing its worst-case error and the
        `verify.core.approximate_certificate.ApproximateCertificate` proves ``error_bound`` (approximation
        plus rounding) over the whole domain; ``method`` is then ``"auto"``/``"l1"`` (weighted ℓ1, cvxpy)
        or ``"lstsq"`` (weighted least squares).
    method : str
        How the paper-mode scale equation is solved (docs/design.md §5): ``"auto"`` (default: ``direct`` at
        the exact width, ``lstsq`` up to 1024 equations per block, else ``iterative``; wider than the exact
        width a shifted block runs that method as ``"weighted"``), ``"direct"``, ``"lstsq"``, ``"iterative"``
        (matrix-free LSMR; in torch on the tensors' device for networks built from tensors; both the plain
        minimum norm), ``"weighted"`` (the minimum weighted norm whose certified bound is smaller),
        ``"l1"``, ``"linf"``, ``"box"``, ``"min_shift"``, ``"min_bound"`` (cvxpy programs; ``min_bound``
        minimizes the bound's proxy exactly) or ``"exact"`` (rational arithmetic; the certificate then carries
        an exact check). Minimal mode has one solver (the SVD null space): ``"auto"`` or ``"lstsq"``.
    bound : float, optional
        ``C`` for ``method="box"`` (``|γ| <= C``).
    samples : int
        Number of domain points (half on the boundary) in the certificate's sampled check.
    seed : int
        Seed of the sample points.
    rtol : float, optional
        Accuracy demanded of the certified bound: ``error_bound <= rtol * f_max``, where
        ``error_bound`` bounds ``|ĝ(x) - f̂(x)|`` over the whole domain in the evaluation dtype and
        ``f_max`` is the target's largest output on the certificate's sample points, a lower bound of
        its largest output on the domain (docs/design.md §6.8; on ``R^d`` the unit cube and the slope).
        The target's absolute-value evaluation over the domain, ``scale``, is reported beside it.
        Well-conditioned float64 instances reach ~1e-12; the default 1e-6 rejects solutions whose
        huge, cancelling scales make ``g`` inaccurate although it is exact in exact arithmetic. None (the
        default) asks the dtype's `verify.core.tolerances.DEFAULT_RTOL`: ``1e-6`` in float64, ``1e-3`` for
        networks of float32 tensors, ``1e-1`` in float16 and bfloat16.
    progress : bool or rich.console.Console
        A fit longer than about 2 s shows a progress bar per pair of layers (pair k of N, its size,
        LSMR's iteration and residual) on standard error when it is a terminal; ``False`` silences it,
        a ``rich.console.Console`` draws on that console instead (`verify.construction.progress`).

    Returns
    -------
    Reconstruction
        ``gamma``, ``beta`` per frozen layer, ``network(x)`` and a ``certificate`` that holds.

    Raises
    ------
    InfeasibleError
        A block's width is below what ``mode`` needs, or its system is rank-deficient.
    CertificateError
        The solve finished but its certificate fails (never returned as a result).
    ValueError
        Mismatched architectures, a domain of the wrong dimension, or an unknown mode.

    Notes
    -----
    **Convolutional networks** (docs/design.md §9): ``target`` a `verify.ConvTargetNetwork` and ``frozen`` a
    `verify.ConvFrozenNetwork` are handed to `verify.construction.convolutional.reconstruct_convolutional`
    (same arguments and result). ``domain`` is then a ``verify.Box(lo, hi)`` with ``lo``, ``hi`` shaped like
    one input tensor, ``(C, H, W)`` say (or numbers with ``shape=``), or a ``verify.Ball`` (bounded through
    its bounding box). A network of one layer is allowed: the single-layer form, for tuning a graph of
    layers one node at a time, is ::

        target = verify.ConvTargetNetwork([verify.Conv.build(W, b, stride=s, padding=p, dilation=d)], (C, H, W))
        frozen = verify.ConvFrozenNetwork.for_target(target, "paper", seed=1)   # k×k conv, then 1×1 conv
        result = verify.reconstruct(target, frozen, verify.Box(lo, hi))          # lo, hi of shape (C, H, W)

    where ``target``'s output has no ReLU after it, and ``result.gamma``, ``result.beta`` hold two
    arrays: the weight and bias of the BatchNorm2d after the ``k×k`` convolution (``n`` channels) and
    after the 1×1 convolution (``C_out`` channels). The certificate of a convolutional network carries
    the rigorous bound of its graph (`verify.core.graph_bound`), computed in float64 (`verify.nn.fit_norm_layers`
    certifies a torch module in its own dtype).

    The evaluation dtype is the torch floating dtype of the networks' tensors (``frozen`` first),
    float64 for numpy arrays and for integer or bool tensors; ``gamma`` and ``beta`` come back in
    it, and are certified in it. Even-layer neurons beyond the first ``d_k`` are switched off
    (``s = t = 0``), and so are odd neurons with ``γ_i = 0``. Nothing passed in is modified.

    References
    ----------
    A. Giannou, S. Rajput, D. Papailiopoulos, "The Expressive Power of Tuning Only the
    Normalization Layers", COLT 2023 (the construction of the main theorem, width ``d²``).
    """
    seed = as_seed(seed)  # the one seed validator, before any route draws from it
    if rtol is None:  # the dtype the networks' tensors are evaluated in (numpy: float64)
        rtol = default_rtol(
            None, dtype_name(result_spec(getattr(frozen, "torch", None) or getattr(target, "torch", None)))
        )
    if not progress_active():  # the bars of this fit (verify.construction.progress), then the fit itself
        with fit_progress(progress, _pair_count(target, frozen)):
            options = {"method": method, "bound": bound, "samples": samples, "seed": seed, "rtol": rtol}
            return reconstruct(target, frozen, domain, mode, **options, progress=progress)
    if mode == APPROXIMATE:
        check_approximate_route(frozen, domain)
        if isinstance(frozen, FrozenNetwork):
            _check_arguments(target, frozen, domain, mode, samples, rtol, method, bound)
        else:  # the residual route checks its architecture itself
            check_options(mode, method, samples, rtol, bound)
        options = {"bound": bound, "samples": samples, "seed": seed, "rtol": rtol}
        return solve_approximate(  # paper mode where it is exact, else both objectives (docs/design.md §11)
            lambda m, meth: _solve(target, frozen, domain, m, method=meth, **options), method
        )
    return _solve(target, frozen, domain, mode, method=method, bound=bound, samples=samples, seed=seed, rtol=rtol)


def _solve(
    target: Any,
    frozen: Any,
    domain: Domain | None,
    mode: str,
    *,
    method: str,
    bound: float | None,
    samples: int,
    seed: int,
    rtol: float,
) -> Reconstruction:
    """`reconstruct` on its route (residual, convolutional, or dense and sparse chains) in ``mode``, with the
    arguments already read (for ``mode="approximate"``: its narrow blocks approximated, `solve_approximate`)."""
    if isinstance(frozen, ResidualFrozenNetwork):  # docs/design.md §8
        return reconstruct_residual(
            target, frozen, domain, mode, method=method, bound=bound, samples=samples, seed=seed, rtol=rtol
        )
    if is_convolutional(target) or is_convolutional(frozen):  # docs/design.md §9
        return reconstruct_convolutional(
            target, frozen, domain, mode, method=method, bound=bound, samples=samples, seed=seed, rtol=rtol
        )
    _check_arguments(target, frozen, domain, mode, samples, rtol, method, bound)
    plan_solves(dense_sizes(target, frozen), method, mode)  # every pair fits before the first is solved
    spec = result_spec(frozen.torch or target.torch)
    dtype = dtype_name(spec)
    if spec is not None:  # networks of CUDA float32 tensors are run there: TF32 products are not float32
        refuse_tf32(spec.device, dtype)
    if domain is None:  # paired (docs/design.md §3): exact on all of R^d, checked far out too
        regions = linear = None
        rng = np.random.default_rng(seed)
        dim = target.widths[0]
        points = np.concatenate(
            [Ball(radius, np.zeros(dim)).sample(max(1, samples // len(PAIRED_RADII)), rng) for radius in PAIRED_RADII]
        )
        described = {"kind": "R^d", "checked_on_balls_of_radius": list(PAIRED_RADII)}
    else:
        domain = domain.resolve(target.widths[0])
        linear = target_bounds(target, domain)  # linear ∩ interval ranges of every block's input (§6.9)
        setup = linear.seconds  # spent before the construction starts; block queries are added inside it
        regions = linear_regions(linear)
        points = domain.sample(samples, np.random.default_rng(seed))
        described = domain.to_dict()
    store = _storage(frozen, dtype)
    approximate: tuple[int, ...] = ()
    started = time.perf_counter()
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused below, not warned about
            if mode == APPROXIMATE:
                tuned, approximate = tune_approximate(target, frozen, domain, method, spec, store)
            else:
                tuned = [
                    tune_block(
                        block,
                        frozen,
                        None if regions is None else regions[block.k - 1],
                        mode,
                        method,
                        bound,
                        spec,
                        store,
                    )
                    for block in blocks(target, frozen)
                ]
    except _Overflow as overflow:
        _refuse_overflow(target, described, mode, method, rtol, dtype, [], str(overflow))
    scales = [layer[0] for t in tuned for layer in (t.odd, t.even)]
    shifts = [layer[1] for t in tuned for layer in (t.odd, t.even)]
    certificates = [t.certificate for t in tuned]

    zero = is_zero_output(target.weights, target.biases)  # f = 0: the last normalization is switched off
    if zero:
        scales, shifts = silence_last(scales), silence_last(shifts)
    gamma_bn, beta_bn = frozen.norm_params(scales, shifts)
    gamma_bn = [round_to(g, dtype) for g in gamma_bn]
    beta_bn = [round_to(b, dtype) for b in beta_bn]
    if not all(np.all(np.isfinite(v)) for v in (*gamma_bn, *beta_bn)):
        _refuse_overflow(target, described, mode, method, rtol, dtype, certificates, "the BatchNorm parameters")
    if dtype != "float64":  # the stored values are the result: report their affine maps
        scales, shifts = frozen.affine_maps(gamma_bn, beta_bn)
    centred = mode == APPROXIMATE
    bounding = time.perf_counter()
    certified = error_bound(
        target, frozen, gamma_bn, beta_bn, domain, dtype=dtype, target_dtype=dtype_name(target.torch), centred=centred
    )
    timings = {"construction": bounding - started, "error_bound": time.perf_counter() - bounding}
    if linear is not None:  # the shifts' linear bounds (the error bound computes its own, inside its time)
        timings["linear_bounds"] = linear.seconds
        timings["construction"] -= linear.seconds - setup
    if zero and np.isfinite(certified.error_bound):  # g = f = 0 exactly wherever nothing overflows
        certified = exact_zero_bound(certified)
    sampled = _sampled_check(target, frozen, points, gamma_bn, beta_bn, certificates, rtol, certified, domain)
    exact = None
    if method == "exact":
        points = domain.sample(min(samples, EXACT_POINTS), np.random.default_rng(seed))
        exact = exact_check(target, frozen, domain, [t.rational for t in tuned], points)
    certificate = Certificate(
        mode=mode,
        domain=described,
        blocks=tuple(certificates),
        sampled=sampled,
        method=method,
        exact=exact,
        bound=certified,
        rtol=rtol,
    )
    if mode == APPROXIMATE:  # the same engine without evaluation roundings: the weight mismatch's part
        parameters = error_bound(target, frozen, gamma_bn, beta_bn, domain, centred=True, rounding=False)
        certificate = ApproximateCertificate(False, certificate, parameters.error_bound, parameters.blocks, approximate)
    if not certificate.holds:
        raise CertificateError(
            "the reconstruction does not pass its certificate: " + "; ".join(certificate.failures()), certificate
        )
    solves = tuple(t.seconds for t in tuned)
    return Reconstruction(
        to_caller(gamma_bn, spec),
        to_caller(beta_bn, spec),
        scales,
        shifts,
        certificate,
        target,
        frozen,
        domain,
        mode,
        ranges=() if linear is None else linear.widths(),
        timings=timings,
        solve_seconds=solves,
    )


def _pair_count(target: Any, frozen: Any) -> int:
    """How many pairs of layers the fit solves: every branch of a residual network, else every block."""
    if isinstance(frozen, ResidualFrozenNetwork):
        return sum(len(stage) for stage in frozen.stages)
    depth = getattr(target, "depth", 1)
    return depth if isinstance(depth, int) else 1


def _storage(frozen: FrozenNetwork, dtype: str) -> Callable[[int, np.ndarray], np.ndarray]:
    """``store(j, s)``: the per-neuron scales ``s`` of layer ``j`` as they will be stored, i.e. with the
    BatchNorm weight ``s·√(v+ε)`` rounded to ``dtype`` (the identity in float64). The shifts are then
    computed from these values, so that the margins and residuals are those of what is returned."""
    if dtype == "float64":
        return lambda j, s: s
    std = list(frozen.norm_std)

    def store(j: int, s: np.ndarray) -> np.ndarray:
        stored = round_to(s * std[j][: len(s)], dtype)
        if not np.all(np.isfinite(stored)):
            raise _Overflow(f"the scales of layer {j + 1}")
        return stored / std[j][: len(s)]

    return store


class _Overflow(ArithmeticError):
    """A scale rounded to the evaluation dtype overflowed it."""


def _refuse_overflow(
    target: TargetNetwork,
    described: dict,
    mode: str,
    method: str,
    rtol: float,
    dtype: str,
    certificates: list[BlockCertificate],
    what: str,
) -> NoReturn:
    """Raise the CertificateError of a result whose parameters do not fit ``dtype``."""
    overflow = ErrorBound(float("inf"), float("nan"), dtype, dtype_name(target.torch), reason=f"overflow in {dtype}")
    certificate = Certificate(mode, described, tuple(certificates), _no_samples(rtol), method, None, overflow, rtol)
    if dtype == "float64":
        fix = (
            f"the domain ({described.get('kind', 'R^d')}) or the weights are too large for float64; use a "
            "smaller domain or rescale the inputs"
        )
    else:
        fix = "use float64 networks"
    raise CertificateError(f"{what} overflow {dtype}: {fix}", certificate)


def _no_samples(rtol: float) -> SampledCheck:
    """The sampled check of a result that was not evaluated (its parameters overflow the dtype)."""
    nan = float("nan")
    return SampledCheck(0, nan, nan, nan, nan, nan, rtol, bound_ratio=0.0)


def _sampled_check(
    target: TargetNetwork,
    frozen: FrozenNetwork,
    x: np.ndarray,
    gamma: list[np.ndarray],
    beta: list[np.ndarray],
    block_certificates: list[BlockCertificate],
    rtol: float,
    certified: ErrorBound,
    domain: Domain | None,
) -> SampledCheck:
    """The certificate's sampled check of ``g`` against ``f`` at the points ``x`` (docs/design.md §6): a
    sanity check of the certified bound, which every sampled ``|g − f|`` must respect; and ``f_max``, the
    target's largest output on the points of ``domain`` among them (on ``R^d``, ``domain=None``: those with
    ``‖x‖_∞ <= 1``), less the rounding of its float64 evaluation (`verify.core.f_max`)."""
    samples = x.shape[0]
    f = target(x)
    pre = frozen.preactivations(x, gamma, beta)
    g = pre[-1]
    target_size = target.magnitude(x)
    scale = frozen.magnitude(x, gamma, beta) + target_size
    difference = np.abs(g - f)
    # Relative to the size of f's own terms (|f| evaluated with absolute values): well defined where
    # f vanishes on the domain but its terms do not; a target whose terms all vanish has no scale,
    # and then only the rounding check applies.
    size = float(target_size.max())
    relative = float(difference.max()) / size if size > 0 else 0.0
    live_odd = [p[:, gamma[j] != 0] for j, p in enumerate(pre) if j % 2 == 0]
    allowed = np.broadcast_to(certified.at(x)[:, None], difference.shape)
    inside = np.max(np.abs(x), axis=1) <= 1 if domain is None else domain.contains(x)
    roundings = sum(d + 2 for d in target.widths[:-1])  # fan-in, product and bias of every layer
    return SampledCheck(
        points=samples,
        max_abs_error=float(difference.max()),
        max_relative_error=relative,
        error_ratio=residual_ratio(difference, scale),
        tolerance=evaluation_tolerance(frozen.widths, target.widths, [b.residual_ratio for b in block_certificates]),
        min_odd_preactivation=float(min((p.min(initial=np.inf) for p in live_odd), default=np.inf)),
        rtol=rtol,
        bound_ratio=residual_ratio(difference, allowed),
        f_max=max(
            sampled_f_max(f, float64_allowance(target_size, roundings), inside), ascended_f_max(target, domain, x, f)
        ),
    )


def _check_arguments(
    target: object,
    frozen: object,
    domain: object,
    mode: object,
    samples: object,
    rtol: object,
    method: object,
    bound: object = None,
) -> None:
    check_architecture(target, frozen)
    check_options(mode, method, samples, rtol, bound)
    if domain is None:
        unpaired = [block.k for block in blocks(target, frozen) if block.pairs is None]
        if unpaired:
            raise ValueError(
                f"domain=None (exact on all of R^d) needs a paired frozen network (docs/design.md §3), but block(s) "
                f"{unpaired} are not mirrored [B; -B], [A, -A]; give a bounded domain (verify.Ball or verify.Box) "
                "or build the network with FrozenNetwork.for_target(..., paired=True)"
            )
        if method in SHIFTED_METHODS:
            raise ValueError(f"method {method!r} needs a bounded domain; a paired network on R^d has no bias shift")
    elif not isinstance(domain, Domain):
        raise ValueError(f"domain must be a verify.Ball, a verify.Box or None, got {type(domain).__name__}")
    if method == "exact":  # refused before any block is solved, with the time estimate
        check_exact_reach(target.widths)
