"""Reconstruct a target graph node by node (docs/design.md §10) and certify the whole graph.

Every target Linear is a one-block problem: `verify.reconstruct` of ``TargetNetwork([W], [b])`` (its
BatchNorm folded) by its frozen pair, on the box of that node's input that the target graph's ranges give
(`verify.nn.graph_lower.target_ranges`: forward and backward linear bounds intersected with interval bounds,
docs/design.md §6.10; the graph bound is given the same ranges). A depth-1 target has no ReLU after its layer,
which is what a pair followed by an addition needs; a ReLU node after the pair is copied from the
target. With ``mode="approximate"`` (docs/design.md §11) a narrow pair is approximated and every pair
downstream of one is solved on its box enlarged by the graph bound of the error carried in (`_fit_nodes`);
the graph is then certified with the centred bound. Every pair is solved with `PAIR_RTOL`: its own
one-block certificate still checks its residual and its margins, but ``rtol`` judges the graph's bound only
(a pair's bound against its own largest output is not what the user asked, and in float32 an inner pair's
can exceed ``rtol`` while the graph's output is within it). The graph's figures:

* ``error_bound``: rigorous, over every point of the domain: the fitted model is lowered into the
  core graph (`verify.nn.graph_lower`, with the γ, β its BatchNorm modules hold) and bounded by
  `verify.core.graph_bound.graph_error_bound` (docs/design.md §6.7): per-position pair transfers with
  the residuals of the stored parameters, neurons that may leave their linear regime, every
  rounding of the frozen model in its dtype and of the target in its own (a folded BatchNorm's
  included), no first-order truncation. Certified when ``error_bound <= rtol · f_max``: ``f_max`` is
  the target module's largest output on the end-to-end check's points of the domain, each less the
  bound's own ``δ_f`` on the target's rounding there (cast of the input included), so a lower bound of
  the exact target's largest output on the domain (`verify.core.f_max`). ``scale`` (the target
  evaluated with absolute values over the domain) is kept as a figure;
* shifts with room for the carried error: when that bound counts a neuron of some pair as possibly
  leaving its linear regime (`verify.core.graph_bound.Value.parts`, its ``margin`` term: in float32 the
  carried error can exceed the shift's slack), every pair is solved again in topological order, each
  one that does not read the input on its box enlarged by the bound's ``δ`` there (`_fit_nodes` with
  ``carry``), and the graph is bounded once more (docs/design.md §10);
* ``margin_ratio`` per node: the error the bound carries into a pair, ``|s| |B| e_in``, against its
  activity margins; ``<= 1`` means no upstream error can take a shifted neuron out of its linear
  regime (where it can, the bound counts how far it leaves it);
* ``shift_ratio`` per node: the largest bias shift ``τ`` against the largest signal ``|s ⊙ (B z + c)|``
  the pair's odd layer carries on the first `CHECK_BATCH` sample points (a figure, not part of the proof:
  the frozen-width odd layer applied to every point was most of a ResNet-20 fit's time): how loose the
  bounds at that depth became (the even layer cancels ``A τ``, so about ``shift_ratio · ε`` relative
  precision is what it costs);
* the end-to-end check, a sanity check of the bound: both modules' own operations (their traced graphs
  run node by node) on fresh domain points (corners included), every node's observed error against its
  bound.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from verify.construction.reconstruct import Reconstruction, reconstruct
from verify.construction.tuning import APPROXIMATE
from verify.core.approximate_certificate import ApproximateCertificate
from verify.core.bias_shift import activity_margin
from verify.core.blocks import blocks
from verify.core.certificate import Certificate
from verify.core.domains import AffineRange, Box, Domain
from verify.core.error_bound import ErrorBound
from verify.core.errors import CertificateError
from verify.core.f_max import sampled_f_max
from verify.core.graph_bound import Value
from verify.core.networks import FrozenNetwork, TargetNetwork
from verify.core.numerics import residual_ratio
from verify.core.tolerances import default_rtol
from verify.nn.graph import INPUT, LINEAR, GraphNode, ModelGraph
from verify.nn.graph_idioms import check_shapes, node_values
from verify.nn.graph_lower import certified_bound, interval_bounds, module_dtype, target_ranges
from verify.nn.graph_match import read_matched
from verify.nn.graph_result import GraphReconstruction, NodeFit, graph_certificate
from verify.nn.modules import check_precision, from_module, frozen_from_layers, norm_layers

__all__ = ["GraphReconstruction", "NodeFit", "fit_graph"]

CHECK_BATCH = 16
"""Points per forward pass of the end-to-end check."""
PAIR_RTOL = 1e300
"""The ``rtol`` each pair's one-block reconstruction is judged at: any finite bound (module notes)."""


def _input_box(graph: ModelGraph, domain: Domain) -> tuple[Domain, tuple[int, ...]]:
    """The domain resolved for the graph's input, and the shape of one input."""
    if not isinstance(domain, Domain):
        raise ValueError(f"domain must be a verify.Ball or a verify.Box, got {type(domain).__name__}")
    if domain.dim is None:
        first = [n for n in graph.nodes if n.kind == LINEAR and graph.node(n.inputs[0]).kind == INPUT]
        if not first:
            raise ValueError(
                "the domain has no dimension and the input does not feed a Linear directly; give lo and hi "
                "(or the ball's center) as arrays shaped like one input"
            )
        domain = domain.resolve(first[0].weight.shape[1])
    shape = getattr(domain, "shape", None)  # a box over tensors (C, H, W) keeps its shape, its bounds flat
    return domain, tuple(shape) if shape else (domain.dim,)


def _pair_module(pair: GraphNode) -> nn.Sequential:
    """The pair's own modules (shared, not copied) as the Sequential `verify.nn.modules.from_module` reads."""
    first, norm1, second, norm2 = pair.modules
    return nn.Sequential(first, norm1, nn.ReLU(), second, norm2)


def _flat(value: torch.Tensor, node: GraphNode) -> torch.Tensor:
    if value.dim() != 2:
        raise ValueError(
            f"Linear node '{node.name}' ({node.source}) reads a tensor of shape {tuple(value.shape[1:])} per "
            "input; a Linear must read flat (batch, features) inputs here (flatten before it)"
        )
    return value


def _per_channel(node: GraphNode, values: torch.Tensor) -> torch.Tensor:
    """``values`` (one per output neuron or channel) shaped to broadcast against the node's output."""
    return values.reshape(1, -1, *[1] * (node.weight.dim() - 2))


@dataclass(frozen=True)
class _Regime:
    """A pair's odd layer as errors see it (docs/design.md §10).

    ``margin`` is each odd neuron's (channel's) activity margin over the node's input box
    (`verify.core.bias_shift.activity_margin`, the smallest over all output positions of a
    convolution), infinite for a mirrored pair solved without shift (docs/design.md §3: no input
    can take it out of its regime); `moved` how far an input error ``e`` moves each odd
    pre-activation, ``|s| (|B| e)`` (largest over positions).
    """

    node: GraphNode
    scale: np.ndarray
    bias: torch.Tensor | None
    odd_weight: torch.Tensor
    margin: np.ndarray

    @classmethod
    def of(cls, node: GraphNode, fitted: tuple[Reconstruction, Domain, nn.Sequential], box: tuple) -> _Regime:
        result, _, module = fitted
        s, tau = (np.asarray(v, dtype=np.float64) for v in (result.scales[0], result.shifts[0]))
        weight = module[0].weight.detach().double().cpu()
        c = None if module[0].bias is None else module[0].bias.detach().double().cpu()
        z_lo, z_hi = (v.detach().double().cpu() for v in box)
        mid, rad = (z_lo + z_hi) / 2, (z_hi - z_lo) / 2
        h_mid, h_rad = node.apply(mid, weight, c), node.apply(rad, weight.abs())
        h_size = node.apply(mid.abs(), weight.abs()) + h_rad + (0.0 if c is None else _per_channel(node, c.abs()))
        image = AffineRange(*(v.reshape(len(s), -1).numpy().T for v in (h_mid, h_rad, h_size)))
        margin = np.maximum(activity_margin(s, tau, image), 0.0).min(axis=0)
        if next(blocks(result.target, result.frozen)).pairs is not None and not np.any(tau):
            margin = np.full_like(margin, np.inf)  # mirrored halves, no shift: σ(t) − σ(−t) = t for any input (§3)
        return cls(node, s, c, weight, margin)

    def moved(self, e_in: torch.Tensor) -> np.ndarray:
        """How far an input error ``e_in`` can move each odd pre-activation (largest over positions)."""
        moved = self.node.apply(e_in.detach().double().cpu(), self.odd_weight.abs())
        return np.abs(self.scale) * moved.reshape(len(self.scale), -1).amax(dim=1).numpy()

    def signal(self, z: torch.Tensor) -> float:
        """``max |s ⊙ (B z + c)|`` over the points ``z`` and all positions."""
        h = self.node.apply(z.detach().double().cpu(), self.odd_weight, self.bias)
        return float((torch.as_tensor(self.scale).reshape(1, -1, *[1] * (h.dim() - 2)) * h).abs().max())


def _one_block(
    node: GraphNode, module: nn.Sequential, box: tuple, domain: Domain, reads_input: bool
) -> tuple[TargetNetwork, FrozenNetwork, Domain]:
    """The node's one-block problem: the target layer, its frozen pair and the region of its input.

    A convolution is solved on its patches (docs/design.md §10): every output position applies the same
    kernel to one ``C_in·k_h·k_w`` patch of the input, so the pair is the one-block problem of the
    flattened kernel ``W (C_out × C_in k_h k_w)``, ``B (n × C_in k_h k_w)``, ``A (C_out × n)`` on a box
    containing every patch: the smallest and largest value each patch entry takes over all positions of
    the input box (zero padding included as the zeros it is).
    """
    if not node.is_conv:
        z_lo, z_hi = (_flat(v, node)[0].numpy() for v in box)
        region = domain if reads_input and domain.dim == z_lo.shape[0] else Box(z_lo, z_hi)
        return TargetNetwork([node.weight], [node.bias]), from_module(module), region
    patches = [_patches(node, v.double()) for v in box]  # (C_in k_h k_w, positions)
    region = Box(patches[0].amin(dim=1).numpy(), patches[1].amax(dim=1).numpy())
    frozen = frozen_from_layers((module[0], module[3]), (module[1], module[4]))
    return TargetNetwork([node.weight.flatten(1)], [node.bias]), frozen, region


def _patches(node: GraphNode, x: torch.Tensor) -> torch.Tensor:
    """Every patch a convolution node reads from ``x`` (a batch of one), one column per output position: its input
    padded as it pads it (`GraphNode.padded`), then unfolded (a Conv1d's as a one-row Conv2d's)."""
    padded = node.padded(x)
    geometry = (node.weight.shape[2:], node.options["stride"], node.options["dilation"])
    kernel, stride, dilation = (tuple(v) for v in geometry)
    if len(kernel) == 1:
        padded, kernel, stride, dilation = padded[:, :, None], (1, *kernel), (1, *stride), (1, *dilation)
    return F.unfold(padded, kernel, dilation=dilation, stride=stride)[0]


def fit_graph(frozen: nn.Module, target: nn.Module, domain: Domain, **options: Any) -> Reconstruction:
    """Solve for the BatchNorm parameters of every frozen pair of ``frozen`` so that it computes ``target``.

    ``target`` is read as a graph (`verify.nn.graph.read_graph`), ``frozen`` must have the same graph
    with every target Linear replaced by its pair (`verify.nn.graph_match.match` says which node does not).
    ``options`` go to every pair's `verify.reconstruct` (``mode``, ``method``, ``rtol``, ``samples``,
    ``seed``). The BatchNorm weights and biases are loaded into ``frozen`` only once the graph's
    certificate holds (else `verify.CertificateError`, and ``frozen`` is unchanged); ``frozen`` is
    left in eval mode.
    """
    check_precision(target, frozen)  # TF32 on CUDA is not the float32 the bound assumes
    options = {
        **options,
        "rtol": default_rtol(options.get("rtol"), module_dtype(frozen)),
    }  # None: the frozen dtype's default
    target_graph, frozen_graph, pairs = read_matched(target, frozen)  # the frozen one as eval() runs it
    domain, shape = _input_box(target_graph, domain)
    constants = check_shapes(target_graph, shape, next(target.parameters()).dtype, next(target.parameters()).device)
    lo, hi = (torch.tensor(np.asarray(v, dtype=np.float64).reshape(1, *shape)) for v in domain.bounding_box())
    approximate, started = options.get("mode") == APPROXIMATE, time.perf_counter()
    # every node's range: forward linear bounds ∩ interval bounds (docs/design.md §6.10), for the shifts and the bound
    ranges, bounds = target_ranges(target_graph, pairs, constants, interval_bounds(target_graph, lo, hi), domain)
    saved = [(bn, bn.weight.detach().clone(), bn.bias.detach().clone()) for bn in _pair_norms(target_graph, pairs)]
    was_training = frozen.training
    frozen.eval()
    try:
        results, seconds, approximated = _fit_nodes(
            target_graph, pairs, constants, bounds, domain, target, frozen, options, ranges=ranges
        )
        _write(_norms(results))
        centred = bool(approximated)  # exact pairs keep today's bound, so at the paper width it is paper mode's
        bound, values = certified_bound(
            target_graph, pairs, constants, bounds, domain, target, frozen, centred=centred, ranges=ranges
        )
        if not approximated and _leaves_regime(values):  # shifts with room for the error carried in (module notes)
            results, seconds, _ = _fit_nodes(
                target_graph, pairs, constants, bounds, domain, target, frozen, options, carry=True, ranges=ranges
            )
            _write(_norms(results))
            bound, values = certified_bound(
                target_graph, pairs, constants, bounds, domain, target, frozen, ranges=ranges
            )
        # margins over the target's own box: an enlarged pair's shift covers the error carried in, margin_ratio <= 1
        regimes = {n.name: _Regime.of(n, results[n.name], bounds[n.inputs[0]]) for n in target_graph.layers}
        certificate, nodes = _certify(
            target_graph, frozen_graph, pairs, results, seconds, regimes, bound, values, domain, shape, options
        )
        if approximate:  # docs/design.md §11: what the approximated pairs prove (none approximated: paper mode's)
            chosen = tuple(k for k, n in enumerate(nodes, start=1) if n.name in approximated)
            mismatch, errors = 0.0, (0.0,) * len(nodes)
            if approximated:  # the parameters' own error in exact arithmetic: what the narrow pairs' mismatch costs
                own = certified_bound(
                    target_graph,
                    pairs,
                    constants,
                    bounds,
                    domain,
                    target,
                    frozen,
                    centred=True,
                    rounding=False,
                    ranges=ranges,
                )[0]
                mismatch, errors = own.error_bound, own.blocks
            certificate = ApproximateCertificate(not approximated, certificate, mismatch, errors, chosen)
        if not certificate.holds:
            raise CertificateError(
                "the graph reconstruction does not pass its certificate: " + "; ".join(certificate.failures()),
                certificate,
            )
    except BaseException:  # frozen is left as it was
        with torch.no_grad():
            for bn, weight, bias in saved:
                bn.weight.copy_(weight)
                bn.bias.copy_(bias)
        frozen.train(was_training)
        raise
    mode = options.get("mode", "paper")
    elapsed = time.perf_counter() - started
    result = _result(certificate, nodes, results, (target, frozen), domain, mode, elapsed)
    timings = {"linear_bounds": ranges.seconds, "construction": elapsed - ranges.seconds}
    return replace(result, ranges=ranges.widths(), timings=timings)


def _fit_nodes(
    target_graph: ModelGraph,
    pairs: dict[str, GraphNode],
    constants: dict[str, Any],
    bounds: dict[str, Any],
    domain: Domain,
    target: nn.Module,
    frozen: nn.Module,
    options: dict[str, Any],
    carry: bool = False,
    ranges: Any = None,
) -> tuple[dict, dict[str, float], tuple[str, ...]]:
    """Every pair's one-block reconstruction in topological order: results, seconds and the pairs
    ``mode="approximate"`` could not solve exactly (docs/design.md §11).

    A pair is solved on the target's range (linear ∩ interval) of its input, unless an approximated pair lies
    upstream, or ``carry`` asks it of every pair that does not read the input: then the box is enlarged by the rigorous
    bound ``δ`` of the error carried to that input, the graph bound (``centred=True`` below an approximated
    pair) of the prefix as now tuned (the frozen module holds the tuned pairs' γ, β; a node's value depends on
    its ancestors only), so the pair's odd layer is shifted for what it really receives.
    """
    ancestors: dict[str, set[str]] = {}
    for graph_node in target_graph.nodes:
        ancestors[graph_node.name] = set().union(*({i} | ancestors.get(i, set()) for i in graph_node.inputs))
    results: dict[str, tuple[Reconstruction, Domain, nn.Sequential]] = {}
    seconds: dict[str, float] = {}
    approximated: list[str] = []
    for node in target_graph.layers:
        source = target_graph.node(node.inputs[0])
        box, centred = bounds[source.name], any(name in ancestors[node.name] for name in approximated)
        enlarged = centred or (carry and source.kind != INPUT)
        if enlarged:
            _write(_norms(results))
            values = certified_bound(
                target_graph, pairs, constants, bounds, domain, target, frozen, centred=centred, ranges=ranges
            )[1]
            delta = torch.as_tensor(values[target_graph.aliases.get(source.name, source.name)].delta)
            delta = delta.reshape(box[0].shape).to(box[0].dtype)
            box = (box[0] - delta, box[1] + delta)
        module = _pair_module(pairs[node.name])
        one, pair, region = _one_block(node, module, box, domain, source.kind == INPUT and not enlarged)
        started = time.perf_counter()
        results[node.name] = (reconstruct(one, pair, region, **{**options, "rtol": PAIR_RTOL}), region, module)
        seconds[node.name] = time.perf_counter() - started
        if options.get("mode") == APPROXIMATE and not results[node.name][0].certificate.exact:
            approximated.append(node.name)
    return results, seconds, tuple(approximated)


def _leaves_regime(values: dict[str, Value]) -> bool:
    """Whether the bound counts a pair's neuron as possibly leaving its linear regime (its ``margin`` term)."""
    return any(v.parts is not None and v.parts["margin"] > 0 for v in values.values())


def _pair_norms(target_graph: ModelGraph, pairs: dict[str, GraphNode]) -> list[nn.Module]:
    """Every frozen pair's two BatchNorm modules."""
    return [bn for node in target_graph.layers for bn in pairs[node.name].modules[1::2]]


def _node_bound(value: Value) -> float:
    """``max (δ + δ_f)``: the bound on ``|ĝ − f̂|`` at one node."""
    return float(np.max(value.delta + value.delta_f, initial=0.0))


def _write(values: Any) -> None:
    """Copy each ``(bn, weight, bias)`` of ``values`` into that BatchNorm module (in its dtype, on its device)."""
    with torch.no_grad():
        for bn, weight, bias in values:
            bn.weight.copy_(torch.as_tensor(weight, dtype=bn.weight.dtype, device=bn.weight.device))
            bn.bias.copy_(torch.as_tensor(bias, dtype=bn.bias.dtype, device=bn.bias.device))


def _norms(results: dict[str, tuple[Reconstruction, Domain, nn.Sequential]]) -> list[Any]:
    """Every pair's two BatchNorm modules (the frozen module's own) with the γ, β its result tunes them to."""
    return [
        (bn, gamma, beta)
        for result, _, module in results.values()
        for bn, gamma, beta in zip((module[1], module[4]), result.gamma, result.beta, strict=True)
    ]


def _largest(value: torch.Tensor) -> float:
    return float(value.abs().max()) if value.numel() else 0.0


def _certify(
    target_graph: ModelGraph,
    frozen_graph: ModelGraph,
    pairs: dict[str, GraphNode],
    results: dict[str, tuple[Reconstruction, Domain, nn.Sequential]],
    seconds: dict[str, float],
    regimes: dict[str, _Regime],
    bound: ErrorBound,
    values: dict[str, Value],
    domain: Domain,
    shape: tuple[int, ...],
    options: dict[str, Any],
) -> tuple[Certificate, tuple[NodeFit, ...]]:
    """The graph's certificate and its pairs, with the end-to-end check on fresh points (``seed + 1``): both
    modules' own operations, node by node (their traced graphs run by torch.fx's interpreter), every layer and
    the output."""
    target, frozen = target_graph.module, frozen_graph.module
    samples, seed = options.get("samples", 256), options.get("seed", 0)
    points = domain.sample(samples, np.random.default_rng(seed + 1)).reshape(samples, *shape)
    t_param, f_param = next(target.parameters()), next(frozen.parameters())
    layers = target_graph.layers
    t_keep = {n.name for n in layers} | {n.inputs[0] for n in layers} | {target_graph.output}
    f_keep = {pairs[n.name].name for n in layers} | {frozen_graph.output}
    observed = dict.fromkeys(t_keep, 0.0)
    signal = dict.fromkeys(t_keep, 0.0)
    inside = domain.contains(points.reshape(samples, -1))
    output = values[target_graph.aliases.get(target_graph.output, target_graph.output)]
    size = error = f_max = 0.0
    for start in range(0, samples, CHECK_BATCH):  # batches: a wide pair's odd layer is large per point
        chunk = points[start : start + CHECK_BATCH]
        x_t = torch.tensor(chunk, dtype=t_param.dtype, device=t_param.device)
        x_f = torch.tensor(chunk, dtype=f_param.dtype, device=f_param.device)
        t_values, f_values = node_values(target_graph, x_t, t_keep), node_values(frozen_graph, x_f, f_keep)
        for node in layers:
            difference = f_values[pairs[node.name].name].double() - t_values[node.name].double()
            observed[node.name] = max(observed[node.name], _largest(difference))
            if start == 0:  # a figure: the first batch gives it (the wide odd layer per point is costly)
                signal[node.name] = regimes[node.name].signal(t_values[node.inputs[0]])
        f, g = t_values[target_graph.output].double(), f_values[frozen_graph.output].double()
        size, error = max(size, _largest(f)), max(error, _largest(g - f))
        delta_f = np.broadcast_to(output.delta_f.reshape(f.shape[1:]), f.shape)  # per output entry, every point
        f_max = max(f_max, sampled_f_max(f.cpu().numpy(), delta_f, inside[start : start + CHECK_BATCH]))
    depths = target_graph.depths()

    figures = []
    for node in layers:
        result = results[node.name][0]
        carried = torch.as_tensor(values[target_graph.aliases.get(node.inputs[0], node.inputs[0])].delta)[None]
        largest_shift = np.array(float(np.max(np.asarray(result.shifts[0], dtype=np.float64), initial=0.0)))
        extras = {
            "name": node.name,
            "source": node.source,
            "depth": depths[node.name],
            "shift_ratio": residual_ratio(largest_shift, np.array(signal[node.name])),
            "margin_ratio": residual_ratio(regimes[node.name].moved(carried), regimes[node.name].margin),
            "error_bound": _node_bound(values[node.name]),
            "observed_error": observed[node.name],
            "scale": float(np.max(values[node.name].terms)),
        }
        figures.append((result.certificate.blocks[0], extras))
    certificate = graph_certificate(
        figures,
        bound,
        domain,
        points=samples,
        error=error,
        size=size,
        f_max=f_max,
        mode=options.get("mode", "paper"),
        method=options.get("method", "auto"),
        rtol=options["rtol"],
    )
    nodes = tuple(
        NodeFit(results[node.name][0], results[node.name][1], block, seconds[node.name])
        for node, block in zip(layers, certificate.blocks, strict=True)
    )
    return certificate, nodes


def _result(
    certificate: Certificate | ApproximateCertificate,
    nodes: tuple[NodeFit, ...],
    results: dict[str, tuple[Reconstruction, Domain, nn.Sequential]],
    modules: tuple[nn.Module, nn.Module],
    domain: Domain,
    mode: str,
    seconds: float,
) -> Reconstruction:
    """The graph's `verify.Reconstruction`: γ, β as the frozen module's BatchNorm layers now hold them, in
    `verify.nn.modules.norm_layers` order (so `verify.nn.load_norm_params` loads them), each with its pair's
    per-neuron map ``(s, t)``."""
    target, frozen = modules
    maps = {
        id(bn): (scale, shift)
        for result, _, module in results.values()
        for bn, scale, shift in zip((module[1], module[4]), result.scales, result.shifts, strict=True)
    }
    norms = [bn for bn in norm_layers(frozen) if id(bn) in maps]
    gamma = [bn.weight.detach().double().cpu().numpy() for bn in norms]
    beta = [bn.bias.detach().double().cpu().numpy() for bn in norms]
    scales, shifts = ([maps[id(bn)][i] for bn in norms] for i in (0, 1))
    solves = tuple(t for n in nodes for t in n.result.solve_seconds)
    parts = (gamma, beta, scales, shifts, certificate, target, frozen, domain, mode)
    return Reconstruction(*parts, solve_seconds=solves, seconds=seconds, nodes=nodes)
