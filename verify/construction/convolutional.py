"""The construction for convolutional networks (docs/design.md §9), block by block as for dense ones.

`verify.reconstruct` hands a `verify.core.conv_networks.ConvTargetNetwork` /
`ConvFrozenNetwork` pair to `reconstruct_convolutional`. It reads as the dense proof does:

1. interval bounds through the target's convolutions, pooling and flatten give each block's input
   box, per position (`ConvTargetNetwork.input_regions`);
2. each block's scale equation is the dense one on flattened kernels, ``A diag(γ) B = W_flat``,
   solved by any solver (`verify.construction.tuning.tune_block`);
3. each odd channel's shift is the closed-form minimum over every output position (the hull of
   the positions' ranges, `verify.core.channels.ConvChannels`);
4. the certificate: per block the residual, rank, condition and smallest per-channel margin; the
   rigorous bound on ``|ĝ − f̂|`` over the whole domain, in the evaluation dtype and any summation
   order, of `verify.core.graph_bound` on the pair's graph (`verify.core.graph.conv_graph`), required
   ``<= rtol · f_max`` (the target's largest output on the sample points, `verify.core.f_max`); and a
   sampled check on domain points (corners included), evaluated in batches, a sanity check of that
   bound: every sampled ``|g − f|`` must lie within it.

The evaluation dtype is float64 unless the caller names another (`verify.nn.fit_norm_layers` passes
the dtype of the frozen module's parameters): γ and β are then rounded to it, and the bound is
computed on the rounded values, for the frozen weights and statistics as read (a float32 module's
values are float32 numbers, held exactly in float64), as docs/design.md §6.5 does for dense chains.
"""

from __future__ import annotations

import numpy as np

from verify.construction.approximate_conv import tune_conv_approximate
from verify.construction.memory_plan import conv_sizes, plan_solves
from verify.construction.result import Reconstruction
from verify.construction.tuning import APPROXIMATE, check_options, tune_block
from verify.core.approximate_certificate import ApproximateCertificate
from verify.core.certificate import BlockCertificate, Certificate, SampledCheck
from verify.core.conv_blocks import check_conv_architecture, conv_blocks
from verify.core.conv_networks import ConvFrozenNetwork, ConvTargetNetwork, resolve_domain
from verify.core.domains import Domain
from verify.core.error_bound import ErrorBound, unit_roundoff
from verify.core.errors import CertificateError
from verify.core.f_max import float64_allowance, sampled_f_max
from verify.core.graph import conv_graph
from verify.core.graph_bound import graph_error_bound
from verify.core.interop import round_to
from verify.core.numerics import residual_ratio
from verify.core.tolerances import default_rtol, evaluation_tolerance

__all__ = ["reconstruct_convolutional", "sampled_check"]


def reconstruct_convolutional(
    target: ConvTargetNetwork,
    frozen: ConvFrozenNetwork,
    domain: Domain | None,
    mode: str = "paper",
    *,
    method: str = "auto",
    bound: float | None = None,
    samples: int = 256,
    seed: int = 0,
    rtol: float | None = None,
    dtype: str = "float64",
    target_dtype: str = "float64",
) -> Reconstruction:
    """`verify.reconstruct` for convolutional networks (same arguments and result, see module notes).

    ``dtype`` is the frozen network's evaluation dtype (``"float64"``, ``"float32"``, ``"float16"`` or
    ``"bfloat16"``) and ``target_dtype`` the target's: γ and β come back rounded to ``dtype`` (as float64
    arrays) and ``certificate.dtype`` says which dtype they are certified in.

    ``domain`` is a `verify.Box` over the input tensor (``lo``/``hi`` shaped like one input, or numbers
    with ``shape=``) or a `verify.Ball` (its bounding box bounds the layers). ``gamma``/``beta`` come
    back one array per frozen affine layer (per channel: the BatchNorm2d of a convolution).

    ``mode="approximate"`` (docs/design.md §11) tunes a pair too narrow for its kernel's equations by the
    weighted ℓ1 objective per output channel (`verify.construction.approximate_conv`); the certificate is
    then an `ApproximateCertificate` whose bound is the graph bound with ``centred=True``.
    """
    check_conv_architecture(target, frozen)
    unit_roundoff(dtype), unit_roundoff(target_dtype)  # a ValueError naming the dtypes it takes
    rtol = default_rtol(rtol, dtype)  # None: the frozen dtype's default (verify.core.tolerances)
    check_options(mode, method, samples, rtol, bound)
    plan_solves(conv_sizes(target, frozen), method, mode)  # every pair fits before the first is solved
    if domain is None:
        raise ValueError(
            "domain=None (exact on all of R^d) needs paired dense layers; a convolutional network needs a bounded "
            "domain: verify.Box(lo, hi) with lo, hi shaped like one input, or verify.Ball"
        )
    domain = resolve_domain(domain, target.input_shape)
    approximate: tuple[int, ...] = ()
    if mode == APPROXIMATE:  # docs/design.md §11: narrow pairs approximated, later ones shifted for it
        tuned, approximate = tune_conv_approximate(target, frozen, domain, method)
    else:
        regions = target.input_regions(domain)
        tuned = [
            tune_block(block, frozen, regions[block.k - 1], mode, method, bound, None)
            for block in conv_blocks(target, frozen)
        ]
    scales = [layer[0] for t in tuned for layer in (t.odd, t.even)]
    shifts = [layer[1] for t in tuned for layer in (t.odd, t.even)]
    certificates = [t.certificate for t in tuned]
    gamma, beta = frozen.norm_params(scales, shifts)
    gamma, beta = [round_to(g, dtype) for g in gamma], [round_to(b, dtype) for b in beta]
    points = domain.sample(samples, np.random.default_rng(seed))
    graph = conv_graph(target, frozen, gamma, beta)
    centred = mode == APPROXIMATE
    certified = graph_error_bound(graph, domain, dtype=dtype, target_dtype=target_dtype, centred=centred)
    sampled = sampled_check(target, frozen, points, gamma, beta, certificates, rtol, certified, domain.contains(points))
    certificate = Certificate(
        mode=mode,
        domain=domain.to_dict(),
        blocks=tuple(certificates),
        sampled=sampled,
        method=method,
        bound=certified,
        rtol=rtol,
    )
    if centred:  # the same bound without evaluation roundings: the part due to the narrow pairs
        parameters = graph_error_bound(graph, domain, centred=True, rounding=False)
        certificate = ApproximateCertificate(False, certificate, parameters.error_bound, parameters.blocks, approximate)
    if not certificate.holds:
        raise CertificateError(
            "the reconstruction does not pass its certificate: " + "; ".join(certificate.failures()), certificate
        )
    solves = tuple(t.seconds for t in tuned)
    return Reconstruction(gamma, beta, scales, shifts, certificate, target, frozen, domain, mode, solve_seconds=solves)


def _terms(network: ConvTargetNetwork | ConvFrozenNetwork) -> list[int]:
    """Terms summed per output by each layer (affine and structure), in order: the rounding-error counts."""
    counts, shape = [], network.input_shape
    for j, layer in enumerate(network.affine):
        frozen = isinstance(network, ConvFrozenNetwork)
        structure = network.structure_before(j // 2 if frozen else j) if not frozen or j % 2 == 0 else ()
        for op in structure:
            counts.append(op.terms(shape))
            shape = op.output_shape(shape)
        counts.append(layer.terms(shape))
        shape = layer.output_shape(shape)
    return counts


def sampled_check(
    target: ConvTargetNetwork,
    frozen: ConvFrozenNetwork,
    points: np.ndarray,
    gamma: list[np.ndarray],
    beta: list[np.ndarray],
    blocks: list[BlockCertificate],
    rtol: float,
    certified: ErrorBound,
    inside: np.ndarray | None = None,
) -> SampledCheck:
    """``g`` against ``f`` at ``points`` (flat, ``(count, prod(input_shape))``), every network evaluated in batches.

    ``tolerance`` is `verify.core.tolerances.evaluation_tolerance` with each layer's terms
    (``C_in·prod(kernel) + 1`` for a convolution, the window for a pooling) in place of the dense
    fan-ins (reported); ``bound_ratio = max |g − f| / error_bound`` must be ``<= 1``: the sanity check
    of the certified bound. ``f_max`` (`verify.core.f_max`) is the target's largest output on the points
    flagged ``inside`` (those that provably lie in the domain; all when None), less the rounding of its
    float64 evaluation (``Σ (terms + 2)`` roundings over the layers).
    """
    count = points.shape[0]
    f = target(points).reshape(count, -1)
    g, smallest = frozen.run(points, gamma, beta)
    g = g.reshape(count, -1)
    target_size = target.magnitude(points).reshape(count, -1)
    scale = frozen.magnitude(points, gamma, beta).reshape(count, -1) + target_size
    difference = np.abs(g - f)
    tolerance = evaluation_tolerance([*_terms(frozen), 0], [*_terms(target), 0], [b.residual_ratio for b in blocks])
    size = float(target_size.max())
    ratio = residual_ratio(difference, scale)
    return SampledCheck(
        points=count,
        max_abs_error=float(difference.max()),
        max_relative_error=float(difference.max()) / size if size > 0 else 0.0,
        error_ratio=ratio,
        tolerance=tolerance,
        min_odd_preactivation=smallest,
        rtol=rtol,
        bound_ratio=residual_ratio(difference, np.full_like(difference, certified.error_bound)),
        f_max=sampled_f_max(f, float64_allowance(target_size, sum(t + 2 for t in _terms(target))), inside),
    )
