"""Solve for the BatchNorm parameters of a torch module, load them, and check the module's own forward.

`fit_norm_layers` reads both modules (`verify.nn.modules`), calls `verify.reconstruct`
(docs/design.md §2–§6) and loads γ, β into the frozen module with `load_norm_params`;
`forward_error` compares the tuned module with the target through torch's forward.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from verify.construction.approximate import solve_approximate
from verify.construction.convolutional import reconstruct_convolutional
from verify.construction.progress import check_progress, fit_progress
from verify.construction.reconstruct import Reconstruction, reconstruct
from verify.construction.residual import reconstruct_residual
from verify.core.domains import Domain
from verify.core.errors import CertificateError, InfeasibleError
from verify.core.interop import TorchSpec, dtype_name
from verify.core.networks import FrozenNetwork, TargetNetwork, paper_width
from verify.core.threads import limited
from verify.core.tolerances import default_rtol
from verify.nn.frozen_like import chain_networks, refuse_train_norms, uses_structure
from verify.nn.grammar import NORM
from verify.nn.graph import GraphNode, ModelGraph, as_chain
from verify.nn.graph_fit import fit_graph
from verify.nn.graph_match import read_matched
from verify.nn.memory_plan import plan_fit
from verify.nn.modules import check_dense, check_precision, from_module, norm_layers, target_from_module
from verify.nn.residual import FrozenResidualMLP
from verify.solvers.registry import AUTO_LSTSQ_LIMIT

__all__ = ["DTYPE_POINTS", "MODES", "check_module_dtype", "fit_norm_layers", "forward_error", "load_norm_params"]


def load_norm_params(module: nn.Module, result: Reconstruction) -> None:
    """Write ``result.gamma`` / ``result.beta`` into the module's BatchNorm ``weight`` / ``bias``, in place
    (`verify.nn.modules.norm_layers` order; a graph's result lists them so).

    Nothing else changes: running statistics, eps, Linear weights and biases keep their values.
    """
    if not isinstance(module, nn.Module):
        raise ValueError(f"module must be a torch nn.Module holding the BatchNorm layers, got {type(module).__name__}")
    if not isinstance(result, Reconstruction):
        raise ValueError(f"result must be a verify.Reconstruction, got {type(result).__name__}")
    norms = norm_layers(module)
    if len(norms) != len(result.gamma):
        raise ValueError(f"the module has {len(norms)} BatchNorm layers but the result tunes {len(result.gamma)}")
    with torch.no_grad():
        for j, (bn, gamma, beta) in enumerate(zip(norms, result.gamma, result.beta, strict=True)):
            if bn.weight.shape[0] != len(gamma):
                raise ValueError(f"BatchNorm {j} has {bn.weight.shape[0]} features but the result has {len(gamma)}")
            for name, value in zip(NORM.tunes, (gamma, beta), strict=True):
                tensor = torch.as_tensor(np.asarray(value.cpu() if hasattr(value, "cpu") else value))
                getattr(bn, name).copy_(tensor)


MODES = ("auto", "paper", "minimal", "approximate")
"""The modes `fit_norm_layers` takes: ``"auto"`` (the default) picks ``"paper"`` or ``"minimal"`` from the widths;
``"approximate"`` answers below the threshold too (the routes of `APPROXIMATE_ROUTES`, docs/design.md §11)."""
APPROXIMATE_ROUTES = (
    "dense chains (nn.Sequential or a class read as one) of Linear → BatchNorm1d → ReLU",
    "convolutional chains (an nn.Sequential CNN, or a class read as one, built by verify.nn.frozen_like)",
    "Case 2 residual modules (verify.nn.FrozenResidualMLP)",
    "modules read as graphs (additions, concatenations, ResNets; verify.nn.graph_fit.fit_graph)",
)
"""What ``mode="approximate"`` reads among the torch routes of `fit_norm_layers`."""


def fit_norm_layers(frozen: nn.Module, target: nn.Module, domain: Domain | None, **options: object) -> Reconstruction:
    """Solve for the BatchNorm parameters of ``frozen`` that make it compute ``target`` on ``domain``.

    Both must be torch ``nn.Module``s (a ValueError otherwise; numpy networks such as `verify.FrozenNetwork` go
    to `verify.reconstruct` directly). Reads both modules, calls `verify.reconstruct` (``options``: ``mode``,
    ``method``, ``rtol``, …), loads the BN weight and bias into ``frozen`` in place and returns the
    `Reconstruction` (its certificate holds, docs/design.md §6). ``domain=None`` needs a paired frozen network (exact on
    all of R^d, docs/design.md §3). The result is certified in the modules' dtype (docs/design.md §6.5):
    ``error_bound <= rtol · f_max`` for the float32 (or float16) forward of the loaded module, ``f_max``
    the target's largest output on the certificate's sample points (a lower bound of its largest output
    on the domain, docs/design.md §6.8). Without ``rtol`` (or ``rtol=None``) the frozen module's dtype
    picks it (`verify.core.tolerances.DEFAULT_RTOL`): ``1e-6`` in float64, ``1e-3`` in float32, ``1e-1``
    in float16 and bfloat16. A float32 module on CUDA with TF32 allowed
    (``torch.backends.cuda.matmul.allow_tf32``, or ``torch.backends.cudnn.allow_tf32`` for convolutions)
    is refused with a ValueError naming the flag: the bound assumes IEEE float32 products.

    ``mode="auto"`` (the default) solves in ``"paper"`` mode when every frozen odd width is at least the
    paper width of its target layer (``d_out·d_in``; ``C_out·C_in·k_h·k_w`` for a convolution) and in
    ``"minimal"`` mode otherwise; ``result.mode`` says which was used. ``"paper"`` or ``"minimal"`` forces one.
    On a dense chain over a bounded domain whose odd layers are exactly at their paper widths and whose blocks
    have at most `AUTO_LSTSQ_LIMIT` equations each, ``"auto"`` with the default ``method`` solves in both modes
    and keeps the lower certified bound (minimal mode's null space at
    those widths chooses the even scales too, and spends fewer digits where the paper solution's scales are
    large: docs/design.md §6.5, *How tight the dense bound can be*).

    ``mode="approximate"`` (docs/design.md §11) answers below those widths too, on a bounded domain, for
    every route of `APPROXIMATE_ROUTES`: dense chains, convolutional chains, `verify.nn.FrozenResidualMLP`
    (Case 2) and graphs. The modules are read as for the other modes and the route's construction, called in
    the modules' dtypes, builds the approximating network (``method``: ``"auto"``, ``"l1"`` or ``"lstsq"``;
    `verify.construction.approximate.solve_approximate`); its BN weight and bias are loaded in place, and the
    result's `verify.core.approximate_certificate.ApproximateCertificate` carries ``exact`` (True at or above
    the paper width, where the result is paper mode's), ``error_bound`` (proved ``max |ĝ − f̂|`` over the
    domain for the module's own forward in its dtype, approximation and rounding together) and
    ``approximation_error``. A module that is not float64 is then sanity-checked by `check_module_dtype`.
    On a graph the result (a `verify.Reconstruction` as on every route) reads the same three fields: the
    pairs are solved in topological order, a narrow one approximated, every pair downstream of one solved
    for its input box enlarged by the graph bound of the error carried in, and the whole graph certified
    by the centred graph bound (docs/design.md §11).

    Both modules are traced with torch.fx, an ``nn.Sequential`` too, and read as graphs
    (`verify.nn.graph.read_graph`); the frozen graph is matched node by node against the target's
    (`verify.nn.graph_match.match`: a missing, extra or moved ReLU, a pool elsewhere, another stride,
    padding, padding mode or dilation are refused naming the node and its source module), and a frozen
    BatchNorm that ``.eval()`` would leave in train mode is refused, all before any solve. A target graph
    that is a chain of layers (an ``nn.Sequential``, or a class whose forward calls its layers one after the
    other, or returns ``self.net(x)``) is lowered into the numpy networks of its construction, dense or
    convolutional, so a class and its Sequential get the same γ, β and certificate. A target BatchNorm in
    train mode is refused on every route (call ``target.eval()``).

    A fit longer than about 2 s draws a progress bar per pair of layers (pair k of N, its size, LSMR's
    iteration and residual) when standard error is a terminal; ``progress=False`` silences it, and a
    ``rich.console.Console`` draws there instead (`verify.construction.progress`).

    Convolutional modules (``Conv1d``/``Conv2d``, pooling, a target BatchNorm to fold; docs/design.md §9) are
    lowered by `verify.nn.frozen_like.chain_networks` over the domain's input shape (a ``verify.Box`` with
    ``lo``/``hi`` shaped like one input, or ``shape=``), solved in float64 and certified in the frozen
    module's dtype: γ, β are rounded to it and the rigorous bound of `verify.core.graph_bound` is computed
    on the rounded values (``certificate.dtype``). Small float32 CNNs measured a bound of up to ``7.5e-3`` of
    ``f_max`` (claim ``certificate/routes``, which asks ``rtol=3e-2``: above the float32 default ``1e-3``,
    so pass a larger ``rtol`` for such modules or run them in float64); wide ones (hundreds of odd
    channels) reach ``1e2``–``4e3`` of the interval scale and are refused: use ``module.double()``. For a
    module that is not float64, its own forward on points of the domain must then stay within the bound
    (`check_module_dtype`, a sanity check of the bound).

    ``frozen`` is left in eval mode, the mode the construction is for: BatchNorm normalizes with its
    running statistics. One train-mode forward would normalize with batch statistics instead and,
    with torch's default momentum, overwrite those running statistics for good. To keep it in eval
    mode through code that calls ``.train()`` (a training loop, say), wrap it with
    ``verify.nn.norm_only(frozen, statistics="frozen")``.

    A `verify.nn.FrozenResidualMLP` (docs/design.md §8) is read with its ``to_network`` and reconstructed as a
    residual network (the target an ``nn.Sequential`` or a class whose graph is a chain), certified in the
    module's dtype by the rigorous bound of the one graph engine (`verify.core.graph_stage`; float32: at most
    ``3.5e-3`` of ``f_max`` over the three seeds of claim ``certificate/routes``' two-branch module, and
    ``3.1e-3`` for the README's three-stage, three-branch one; a module that is not float64 is then
    sanity-checked as a convolutional one is); ``mode="auto"`` tries ``"paper"`` and uses
    ``"minimal"`` when a branch is too narrow.

    Modules whose graphs are not chains (residual additions, concatenations, ResNets) are read as graphs
    and reconstructed node by node (`verify.nn.graph_fit.fit_graph`, docs/design.md §10); the result is the same
    `verify.Reconstruction`, its pairs in ``nodes`` and their figures the extras of its certificate's blocks.
    """
    _check_modules(frozen, target)
    check_dense(target, "target")
    check_dense(frozen, "frozen")
    check_precision(target, frozen)  # TF32 on CUDA is not the float32 the bound assumes
    mode = options.pop("mode", "auto")
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(
            f"mode must be one of {MODES} ('auto' picks paper or minimal from the widths; 'approximate' answers "
            f"below them with a certified error bound), got {mode!r}"
        )
    refuse_train_norms(target)
    # None, or no rtol: the frozen module's dtype's default (verify.core.tolerances.DEFAULT_RTOL).
    options["rtol"] = default_rtol(options.get("rtol"), _dtype_name(frozen))
    progress = options.pop("progress", True)
    check_progress(progress)  # before any solve, as every other argument
    # One progress for the whole fit, whatever the route: each pair's solve announces itself in it
    # (verify.construction.progress); the dense route's own `reconstruct` reuses it.
    with fit_progress(progress, _affine_layers(target)):
        return _fit(frozen, target, domain, mode, options, progress)


def _affine_layers(target: nn.Module) -> int:
    """How many affine layers ``target`` has: the pairs a fit announces (a Case-2 fit, one per branch, may
    announce more; the bar then counts them as they come)."""
    return sum(isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)) for m in target.modules())


def _fit(
    frozen: nn.Module, target: nn.Module, domain: Domain | None, mode: str, options: dict, progress: object
) -> Reconstruction:
    """`fit_norm_layers` past its argument checks, inside its progress."""
    # Every pair's solve fits (verify.core.memory), before the modules are copied; 'auto' is planned as paper,
    # the larger of the two.
    plan_fit(frozen, target, options | {"mode": "paper" if mode == "auto" else mode})
    if isinstance(frozen, FrozenResidualMLP):
        if not isinstance(target, nn.Sequential):  # a class whose graph is a chain
            target = as_chain(target, "target")
        networks = (target_from_module(target), frozen.to_network())
        dtypes = _dtypes(target, frozen)
        try:
            result = _in_dtypes(_residual, networks, domain, "paper" if mode == "auto" else mode, options, dtypes)
        except InfeasibleError as error:
            if mode != "auto" or error.width is None or error.width_needed is None:
                raise
            result = _residual(*networks, domain, "minimal", **options, **dtypes)
        check_module_dtype(frozen, result, "residual")
        load_norm_params(frozen, result)
        frozen.eval()
        return result
    chains = _dense_chains(target, frozen)
    if chains is not None:  # Linear -> ReLU chains: the dense construction (docs/design.md §2-§6)
        networks = (target_from_module(chains[0]), from_module(chains[1]))  # the MLP grammar words its refusals
    check_frozen_norms(frozen)
    target_graph, _, pairs = read_matched(target, frozen)
    chosen = _graph_mode(target_graph, pairs) if mode == "auto" else mode
    check = "approximate" if chosen == "approximate" else None  # a dense bound that is not exact is checked too
    if chains is None:
        networks = chain_networks(target_graph, pairs, domain)  # a chain of the convolutional construction (§9)
        if networks is None:  # branches, additions: the graph route (docs/design.md §10)
            both = mode == "auto" and chosen == "paper" and domain is not None
            if both and _graph_both_modes(target_graph, pairs, options):
                return _graph_lower_bound(frozen, target, domain, options)
            return dataclasses.replace(fit_graph(frozen, target, domain, mode=chosen, **options), mode=chosen)
        result = _in_dtypes(_convolutional, networks, domain, chosen, options, _dtypes(target, frozen))
        check = "convolutional"  # certified in the frozen module's dtype
    elif mode == "auto" and chosen == "paper" and domain is not None and _both_modes(*networks, options):
        result = _lower_bound(
            lambda: reconstruct(*networks, domain, "paper", **options, progress=progress),
            lambda: reconstruct(*networks, domain, "minimal", **options, progress=progress),
        )
    else:
        result = reconstruct(*networks, domain, chosen, **options, progress=progress)
    frozen_chain = as_chain(frozen, "frozen")  # the module's layers in the order they run (a chain: it matched)
    if check is not None:
        check_module_dtype(frozen_chain, result, check)
    load_norm_params(frozen_chain, result)
    frozen.eval()
    return result


def check_frozen_norms(frozen: nn.Module) -> None:
    """Refuse a frozen BatchNorm that normalizes with batch statistics after ``frozen.eval()``.

    ``frozen.eval()`` is run and every module's ``training`` flag is then put back as it was; a BatchNorm
    still in train mode (its class overrides ``eval``/``train``) or without running statistics
    (``track_running_stats=False``) raises ValueError naming it.
    """
    flags = [(module, module.training) for module in frozen.modules()]
    try:
        frozen.eval()
        for name, module in frozen.named_modules():
            if not isinstance(module, _BatchNorm):
                continue
            if not module.track_running_stats or module.running_mean is None:
                raise ValueError(
                    f"frozen BatchNorm '{name}' ({type(module).__name__}) has track_running_stats=False: it always "
                    "normalizes with batch statistics, which the construction does not model; build it with "
                    "track_running_stats=True (verify.nn.frozen_like does)"
                )
            if module.training:
                raise ValueError(
                    f"frozen BatchNorm '{name}' ({type(module).__name__}) stays in train mode after frozen.eval() "
                    "(its class overrides eval()/train()), so it would normalize with batch statistics; use a "
                    "BatchNorm whose eval() sets training=False"
                )
    finally:
        for module, training in flags:
            module.training = training


def _check_modules(frozen: object, target: object) -> None:
    """ValueError unless both are torch modules, saying that numpy networks go to `verify.reconstruct`."""
    for role, value in (("frozen", frozen), ("target", target)):
        if not isinstance(value, nn.Module):
            raise ValueError(
                f"fit_norm_layers tunes torch modules: {role} must be a torch nn.Module, got {type(value).__name__}. "
                "Pass torch modules (verify.nn.frozen_like builds a frozen one for a target), or, for numpy "
                "networks (verify.TargetNetwork, verify.FrozenNetwork, ...), call verify.reconstruct(target, "
                "frozen, domain) instead"
            )


def _in_dtypes(
    construct: Callable[..., Reconstruction],
    networks: tuple[object, object],
    domain: Domain | None,
    mode: str,
    options: dict,
    dtypes: dict[str, str],
) -> Reconstruction:
    """``construct`` (the convolutional or residual construction) certified in the modules' ``dtypes``;
    ``mode="approximate"`` through `solve_approximate`: paper mode's result where it is exact, else the narrow
    pairs approximated (both objectives for ``method="auto"``), every attempt in those dtypes."""
    if mode != "approximate":
        return construct(*networks, domain, mode, **options, **dtypes)
    rest = {key: value for key, value in options.items() if key != "method"}
    return solve_approximate(
        lambda m, method: construct(*networks, domain, m, method=method, **rest, **dtypes),
        options.get("method", "auto"),
    )


_convolutional = limited(reconstruct_convolutional)
_residual = limited(reconstruct_residual)


def _dtypes(target: nn.Module, frozen: nn.Module) -> dict[str, str]:
    """The evaluation dtypes of the two modules by name (of their first parameter; float64 without one)."""
    return {"dtype": _dtype_name(frozen), "target_dtype": _dtype_name(target)}


def _dtype_name(module: nn.Module) -> str:
    parameter = next(module.parameters(), None)
    return "float64" if parameter is None else dtype_name(TorchSpec(parameter.device, parameter.dtype))


def _dense_chains(target: nn.Module, frozen: nn.Module) -> tuple[nn.Sequential, nn.Sequential] | None:
    """Both modules as the ``nn.Sequential`` of the layers their forwards run when they are dense chains the MLP
    readers read (Linear, ReLU, a frozen BatchNorm1d), else None: the graph reader reads them then."""
    try:
        chains = as_chain(target, "target"), as_chain(frozen, "frozen")
    except ValueError:
        return None
    if uses_structure(*chains):  # convolutions, pooling, a target's BatchNorm
        return None
    try:
        target_from_module(chains[0])
    except ValueError:  # a layer only the graph reader reads (padding, a ReLU after a ReLU, ...)
        return None
    return chains


def _paper_allows(pairs: list[tuple[int, tuple[int, ...]]]) -> bool:
    """Whether every odd width ``n`` reaches the paper width of its target weight's shape ``(d_out, d_in, k…)``."""
    return all(n >= paper_width(shape[0], math.prod(shape[1:])) for n, shape in pairs)


def _both_modes(target: TargetNetwork, frozen: FrozenNetwork, options: dict) -> bool:
    """Whether ``mode="auto"`` also solves a dense chain in minimal mode: the default ``method``, every odd layer
    exactly at its paper width (where paper mode's equation has one solution and minimal mode's null space
    chooses the even scales too), and every block's scale equation at most `AUTO_LSTSQ_LIMIT` equations
    (``d_k·d_{k−1}``), where minimal mode's SVD null space takes well under a second."""
    widths = target.widths
    return options.get("method", "auto") == "auto" and all(
        frozen.widths[2 * k - 1] == widths[k] * widths[k - 1] <= AUTO_LSTSQ_LIMIT for k in range(1, len(widths))
    )


def _lower_bound(paper_fit: Callable[[], Reconstruction], minimal_fit: Callable[[], Reconstruction]) -> Reconstruction:
    """``mode="auto"`` on paper-wide frozen layers (docs/design.md §6.5, *How tight the dense bound can be*): paper
    mode, and minimal mode at the same widths, whose null space holds a solution per choice of the even scales;
    the result whose certified ``error_bound`` is lower (paper mode's on a tie), or the one that certifies at all.
    When neither certifies, the refusal with the lower bound is raised (paper mode's on a tie, or when minimal
    mode is infeasible). ``paper_fit`` runs first."""
    try:
        paper = paper_fit()
    except CertificateError as refused:
        paper, refusal = None, refused
    try:
        minimal = minimal_fit()
    except InfeasibleError:
        minimal = None
    except CertificateError as refused:
        minimal = None
        if paper is None and refused.certificate.error_bound < refusal.certificate.error_bound:
            refusal = refused
    if paper is None and minimal is None:
        raise refusal
    if paper is None or (minimal is not None and minimal.certificate.error_bound < paper.certificate.error_bound):
        return minimal
    return paper


def _graph_both_modes(target: ModelGraph, pairs: dict[str, GraphNode], options: dict) -> bool:
    """Whether ``mode="auto"`` also fits a graph in minimal mode, as `_both_modes` asks of a dense chain: the default
    ``method``, every frozen pair's odd layer exactly at its target layer's paper width, and every pair's
    one-block scale equation (``C_out × C_in·k_h·k_w`` for a convolution) at most `AUTO_LSTSQ_LIMIT` equations."""
    return options.get("method", "auto") == "auto" and all(
        n == paper_width(shape[0], math.prod(shape[1:])) <= AUTO_LSTSQ_LIMIT for n, shape in _pair_widths(target, pairs)
    )


def _graph_lower_bound(frozen: nn.Module, target: nn.Module, domain: Domain, options: dict) -> Reconstruction:
    """`_lower_bound` on the graph route: `fit_graph` in paper and in minimal mode on the user's ``frozen``, which is
    left holding the chosen fit's γ, β (each fit writes its own on success; a refused one leaves them unchanged)."""
    held: dict[str, list] = {}

    def fit(mode: str) -> Reconstruction:
        result = dataclasses.replace(fit_graph(frozen, target, domain, mode=mode, **options), mode=mode)
        held[mode] = [(bn, bn.weight.detach().clone(), bn.bias.detach().clone()) for bn in norm_layers(frozen)]
        return result

    result = _lower_bound(lambda: fit("paper"), lambda: fit("minimal"))
    with torch.no_grad():  # the last fit's parameters are in place: put the chosen one's back
        for bn, weight, bias in held[result.mode]:
            bn.weight.copy_(weight)
            bn.bias.copy_(bias)
    return result


def _graph_mode(target: ModelGraph, pairs: dict[str, GraphNode]) -> str:
    """``"paper"`` where every frozen pair is paper-wide for its target layer, else ``"minimal"``."""
    return "paper" if _paper_allows(_pair_widths(target, pairs)) else "minimal"


def _pair_widths(target: ModelGraph, pairs: dict[str, GraphNode]) -> list[tuple[int, tuple[int, ...]]]:
    """Per target layer: its frozen pair's odd width and the layer's weight shape."""
    return [(int(pairs[layer.name].modules[0].weight.shape[0]), tuple(layer.weight.shape)) for layer in target.layers]


DTYPE_POINTS = 256
"""Points of the domain on which `check_module_dtype` runs a non-float64 module's own forward."""


def check_module_dtype(frozen: nn.Module, result: Reconstruction, kind: str) -> None:
    """The sanity check of a result certified in a module's dtype: its own forward stays within the bound.

    The convolutional and residual constructions certify ``|ĝ − f|`` over the whole domain in the dtype
    of the frozen module's parameters (docs/design.md §6.6, §6.7). For a module that is not float64, a copy
    of it with the result loaded runs its own forward on `DTYPE_POINTS` points of the domain (about half on
    its boundary) and is compared with the float64 target: every ``|g − f|`` must lie within
    ``certificate.error_bound``. This never fails for a sound bound; if it does, the bound is wrong (a bug),
    `verify.CertificateError` is raised, and ``frozen`` is left as it was.
    """
    dtype = next(frozen.parameters()).dtype
    if dtype == torch.float64:
        return
    trial = copy.deepcopy(frozen)
    load_norm_params(trial, result)
    points = result.domain.sample(DTYPE_POINTS, np.random.default_rng(0))
    f = np.asarray(result.target(points)).reshape(len(points), -1)
    shape = getattr(result.target, "input_shape", (points.shape[1],))
    with torch.no_grad():
        g = trial.eval()(torch.tensor(points.reshape(len(points), *shape), dtype=dtype)).double().numpy()
    error = float(np.abs(g.reshape(len(points), -1) - f).max())
    bound = result.certificate.error_bound
    if not error <= bound:
        raise CertificateError(
            f"the {kind} result is certified in {result.certificate.dtype} with |g − f| <= {bound:.3g} over the "
            f"domain, but this {str(dtype).removeprefix('torch.')} module's own forward with the result loaded is "
            f"{error:.3g} off on {DTYPE_POINTS} points of the domain: the certified bound is wrong (a bug in "
            "verify; please report it with the modules). The module was not changed",
            result.certificate,
        )


def forward_error(frozen: nn.Module, target: nn.Module, points: np.ndarray) -> float:
    """``max |g − f| / max |f|`` of the modules' own forwards on ``points`` (``max |g − f|`` if ``f = 0``).

    Each module gets the points in the dtype of its parameters; both outputs are compared in float64.
    """
    dtypes = (next(target.parameters()).dtype, next(frozen.parameters()).dtype)
    with torch.no_grad():
        f = target(torch.tensor(points, dtype=dtypes[0])).double()
        g = frozen(torch.tensor(points, dtype=dtypes[1])).double()
    error, size = float((g - f).abs().max()), float(f.abs().max())
    return error / size if size > 0 else error
