"""A fitted graph-route model lowered into the numpy core graph (docs/design.md §6.7, §10).

`lower_graph` turns a target graph read by `verify.nn.graph.read_graph`, the frozen pairs that
`verify.nn.graph_match.match` found for its layers (with the γ, β stored in their BatchNorm modules) and the
shape expressions' values at the domain's input shape into a `verify.core.graph.Graph`, which
`verify.core.graph_bound.graph_error_bound` bounds over the whole domain:

* a target Linear or convolution (a BatchNorm after it folded) and its frozen pair become a ``pair`` node:
  the target layer, the frozen ``affine → norm → ReLU → affine → norm`` read from the modules the
  frozen model runs, and, for a folded BatchNorm, the magnitude its roundings act on;
* ReLU and additions become ``relu`` and ``add``; max pooling (fixed or adaptive) a ``maxpool``;
* every other copied node (slicing and indexing, zero padding, reshape/flatten/view, stack and cat,
  mean, average pooling, eval-mode Dropout, Identity) is a linear map with nonnegative coefficients:
  a ``map`` node that runs the node itself (torch, float64) on one tensor per input, exact unless it
  averages (``k + 1`` roundings for a mean of at most ``k`` entries);
* shape expressions (``x.size(0)``) are the constants they are at the domain's input shape.

The frozen graph has the target's nodes (`match` checks it node by node), so lowering the target's
structure with the frozen pairs is lowering the frozen model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from verify.core.convolution import AffineLayer, Conv, Linear
from verify.core.domains import Domain
from verify.core.error_bound import _U64, ErrorBound, _gamma
from verify.core.graph import Graph, LinearMap, Node, Norm, Pair
from verify.core.graph_bound import Value, graph_error_bound
from verify.core.graph_ranges import GraphRanges, graph_ranges
from verify.nn.graph import ADD, INPUT, LINEAR, RELU, GraphNode, ModelGraph

__all__ = [
    "certified_bound",
    "interval_bounds",
    "lower_graph",
    "module_dtype",
    "numpy_layer",
    "run_node",
    "target_ranges",
]

_MAX_MODULES = (nn.MaxPool1d, nn.MaxPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)
_AVG_MODULES = (nn.AvgPool1d, nn.AvgPool2d)
_ADAPTIVE_AVG_MODULES = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)


def _array(value: torch.Tensor | None, like: torch.Tensor) -> np.ndarray:
    if value is None:
        return np.zeros(like.shape[0])
    return value.detach().double().cpu().numpy()


def numpy_layer(layer: nn.Module, weight: torch.Tensor | None = None, bias: Any = "own") -> AffineLayer:
    """The numpy layer of a torch Linear, Conv1d or Conv2d (its geometry), with its own or the given weight and
    bias."""
    w = layer.weight if weight is None else weight
    b = _array(layer.bias if isinstance(bias, str) else bias, w)
    w_np = w.detach().double().cpu().numpy()
    if isinstance(layer, nn.modules.conv._ConvNd):
        geometry = {key: getattr(layer, key) for key in ("stride", "padding", "dilation", "padding_mode")}
        return Conv.build(w_np, b, **geometry)
    return Linear(w_np, b)


def _norm(bn: nn.modules.batchnorm._BatchNorm) -> Norm:
    """The stored BatchNorm (the values its module holds, in its dtype) as the core's `Norm` (``γ = 1, β = 0``
    without an affine part: a target's)."""
    mean, var = (t.detach().double().cpu().numpy() for t in (bn.running_mean, bn.running_var))
    gamma = np.ones_like(var) if bn.weight is None else _array(bn.weight, bn.running_var)
    return Norm(gamma, _array(bn.bias, bn.running_var), mean, np.sqrt(var + float(bn.eps)), var, float(bn.eps))


def _mirrored(odd: AffineLayer, norm: Norm, even: AffineLayer) -> bool:
    """Whether the odd rows come in exact mirrored halves (`verify.core.graph.Pair`): row ``i + n/2`` is row
    ``i`` negated (weight, bias, β, μ), with the same γ and σ, and the even columns are opposite."""
    n = odd.out_channels
    if n % 2:
        return False
    h = n // 2
    b, a = odd.flat_weight, even.flat_weight
    same = [(norm.gamma[h:], norm.gamma[:h]), (norm.std[h:], norm.std[:h])]
    opposite = [(b[h:], b[:h]), (odd.bias[h:], odd.bias[:h]), (norm.beta[h:], norm.beta[:h])]
    opposite += [(norm.mean[h:], norm.mean[:h]), (a[:, h:], a[:, :h])]
    return all(np.array_equal(x, y) for x, y in same) and all(np.array_equal(x, -y) for x, y in opposite)


def _target_norm(node: GraphNode) -> np.ndarray | None:
    """``|s|(|b| + |μ|) + |β|`` per output channel of the BatchNorm folded into a target layer (None without)."""
    if len(node.modules) != 2:
        return None
    layer, norm = node.modules[0], _norm(node.modules[1])
    bias = np.abs(_array(layer.bias, layer.weight))
    return (np.abs(norm.scale) * (bias + np.abs(norm.mean)) + np.abs(norm.beta)) * (1 + _gamma(8, _U64))


def _pair(layer: GraphNode, frozen: GraphNode, in_shape: tuple[int, ...]) -> Pair:
    first, norm1, second, norm2 = frozen.modules
    odd, even = numpy_layer(first), numpy_layer(second)
    odd_norm = _norm(norm1)
    return Pair(
        target=numpy_layer(layer.modules[0], layer.weight, layer.bias),
        odd=odd,
        odd_norm=odd_norm,
        even=even,
        even_norm=_norm(norm2),
        odd_terms=odd.terms(in_shape),
        even_terms=even.terms(odd.output_shape(in_shape)),
        mirrored=_mirrored(odd, odd_norm, even),
        target_norm=_target_norm(layer),
    )


def run_node(graph: ModelGraph, node: fx.Node, value: Callable[[str], Any]) -> Any:
    """Run one copied (or ReLU, or addition) fx node on the values ``value(name)`` of the nodes it reads.

    Tensors are passed as copies: an in-place node (``F.relu(x, inplace=True)``, ``nn.ReLU(inplace=True)``,
    ``out += y``) must not change the values the caller keeps for the nodes it reads."""

    def read(n: fx.Node) -> Any:
        v = value(graph.aliases.get(n.name, n.name))
        return v.clone() if isinstance(v, torch.Tensor) else v

    args, kwargs = fx.node.map_arg((node.args, node.kwargs), read)
    if node.op == "call_module":
        return graph.traced.get_submodule(node.target)(*args, **kwargs)
    if node.op == "call_function":
        return node.target(*args, **kwargs)
    return getattr(args[0], node.target)(*args[1:], **kwargs)


def _end(value: Any, index: int) -> Any:
    """One end of a tensor node's ``(lo, hi)``; a shape expression's value (``x.size()``, a tuple too) is itself."""
    is_pair = isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, torch.Tensor) for v in value)
    return value[index] if is_pair else value


def interval_bounds(graph: ModelGraph, lo: torch.Tensor, hi: torch.Tensor) -> dict[str, Any]:
    """``(lo, hi)`` for every node of a target graph, from the input box ``[lo, hi]`` (a batch of one).

    Non-tensor values (``x.size(0)``) are kept as they are. Computed in the dtype of ``lo``
    (float64 here), rounded to nearest: the bias shift's slack and the error margins absorb that
    rounding (docs/design.md §10).
    """
    bounds: dict[str, Any] = {}
    for node in graph.nodes:
        if node.kind == INPUT:
            bounds[node.name] = (lo, hi)
        elif node.kind == LINEAR:
            z_lo, z_hi = bounds[node.inputs[0]]
            w, b = node.weight.to(lo.dtype), node.bias.to(lo.dtype)
            mid, rad = node.apply((z_lo + z_hi) / 2, w, b), node.apply((z_hi - z_lo) / 2, w.abs())
            bounds[node.name] = (mid - rad, mid + rad)
        else:
            ends = [run_node(graph, node.node, lambda name, i=i: _end(bounds[name], i)) for i in (0, 1)]
            bounds[node.name] = tuple(ends) if isinstance(ends[0], torch.Tensor) else ends[0]
    return bounds


class _Run:
    """One copied fx node run by torch in float64 on one tensor per tensor input (no batch axis), the shape
    expressions it reads at their constant values; ``batched`` takes and returns a batch of one instead."""

    def __init__(self, graph: ModelGraph, node: GraphNode, inputs: tuple[str, ...], constants: dict, batched: bool):
        self.graph, self.node, self.inputs, self.constants, self.batched = graph, node, inputs, constants, batched

    def __call__(self, *arrays: np.ndarray) -> np.ndarray:
        given = dict(zip(self.inputs, arrays, strict=True))

        def value(name: str) -> Any:
            if name not in given:
                return self.constants[name]
            x = torch.tensor(given[name], dtype=torch.float64)
            return x if self.batched else x[None]

        with torch.no_grad():
            out = run_node(self.graph, self.node.node, value)
        out = out.detach().cpu().numpy()
        return out if self.batched else out[0]


def _pool_terms(
    graph: ModelGraph, node: GraphNode, constants: dict, shape_in: tuple[int, ...], shape_out: tuple[int, ...]
) -> int:
    """Roundings of one output entry of an averaging node (0 if it does not average): ``k + 1`` for a mean of at
    most ``k`` entries (a pool's kernel, an adaptive pool's widest bin, a mean's reduced entries)."""
    fx_node = node.node
    args, kwargs = fx.node.map_arg((fx_node.args, fx_node.kwargs), lambda n: constants.get(n.name))
    name = ""
    module = graph.traced.get_submodule(fx_node.target) if fx_node.op == "call_module" else None
    if fx_node.op == "call_function":
        name = getattr(fx_node.target, "__name__", "")
    if isinstance(module, _AVG_MODULES) or ("avg_pool" in name and "adaptive" not in name):
        kernel = module.kernel_size if module is not None else kwargs.get("kernel_size", args[1])
        spatial = len(shape_in) - 1
        kernel = (kernel,) * spatial if isinstance(kernel, int) else tuple(kernel)
        return math.prod(kernel) + 1
    if isinstance(module, _ADAPTIVE_AVG_MODULES) or "adaptive_avg_pool" in name:
        bins = [min(-(-size // out) + 1, size) for size, out in zip(shape_in[1:], shape_out[1:], strict=True)]
        return math.prod(bins) + 1
    if (fx_node.op == "call_method" and fx_node.target == "mean") or fx_node.target is torch.mean:
        return math.prod(shape_in) // max(1, math.prod(shape_out)) + 1
    return 0


def _is_max(graph: ModelGraph, node: GraphNode) -> bool:
    fx_node = node.node
    if fx_node.op == "call_module":
        return isinstance(graph.traced.get_submodule(fx_node.target), _MAX_MODULES)
    return fx_node.op == "call_function" and "max_pool" in getattr(fx_node.target, "__name__", "")


def lower_graph(
    graph: ModelGraph, pairs: dict[str, GraphNode], constants: dict[str, Any], bounds: dict[str, Any]
) -> Graph:
    """The core `Graph` of a target graph with its frozen pairs (``pairs``: `verify.nn.graph_match.match`'s map).

    ``constants``: the shape expressions' values at the domain's input shape
    (`verify.nn.graph_idioms.check_shapes`); ``bounds``: the target's ``(lo, hi)`` per node on a batch of one
    (`interval_bounds`), read here for the shape of each node's output.
    """
    nodes: list[Node] = []
    tensors: set[str] = set()

    def shape(name: str) -> tuple[int, ...]:
        return tuple(bounds[name][0].shape[1:])

    for node in graph.nodes:
        value = bounds.get(node.name)
        if node.name in constants or not (isinstance(value, tuple) and isinstance(value[0], torch.Tensor)):
            continue  # a shape expression: a constant at this input shape
        inputs = tuple(name for name in (graph.aliases.get(i, i) for i in node.inputs) if name in tensors)
        out = shape(node.name)
        if node.kind == INPUT:
            nodes.append(Node(node.name, "input", (), None, out))
        elif node.kind == LINEAR:
            pair = _pair(node, pairs[node.name], shape(inputs[0]))
            nodes.append(Node(node.name, "pair", inputs, pair, out))
        elif node.kind == RELU:
            nodes.append(Node(node.name, "relu", inputs, None, out))
        elif node.kind == ADD:
            nodes.append(Node(node.name, "add", inputs, None, out))
        elif _is_max(graph, node):
            nodes.append(Node(node.name, "maxpool", inputs, _Run(graph, node, inputs, constants, True), out))
        else:
            terms = _pool_terms(graph, node, constants, shape(inputs[0]), out) if inputs else 0
            run = _Run(graph, node, inputs, constants, False)
            fn = lambda arrays, run=run: run(*arrays)  # noqa: E731
            nodes.append(Node(node.name, "map", inputs, LinearMap(fn, terms, node.source), out))
        tensors.add(node.name)
    output = graph.aliases.get(graph.output, graph.output)
    if nodes[-1].name != output:  # the output last (nodes after it do not reach it: `match` refuses them)
        raise ValueError(f"graph output '{output}' is not the last tensor node; remove the nodes after it")
    return Graph(tuple(nodes))


def module_dtype(module: nn.Module) -> str:
    """The dtype of ``module``'s first parameter by torch's name (``"float32"``, ``"float64"``, …)."""
    return str(next(module.parameters()).dtype).removeprefix("torch.")


def certified_bound(
    graph: ModelGraph,
    pairs: dict[str, GraphNode],
    constants: dict[str, Any],
    bounds: dict[str, Any],
    domain: Domain,
    target: nn.Module,
    frozen: nn.Module,
    *,
    centred: bool = False,
    rounding: bool = True,
    ranges: Any = None,
) -> tuple[ErrorBound, dict[str, Value]]:
    """The rigorous bound (`verify.core.graph_bound.graph_error_bound`) of the frozen model, as its modules now
    hold γ and β and in its dtype, against the target in its own, over ``domain``; and every node's
    `verify.core.graph_bound.Value`, by name. ``centred`` and ``rounding`` go to the engine (an approximate
    construction, docs/design.md §11); ``ranges`` the target's `verify.core.graph_ranges.GraphRanges` over
    ``domain`` (`target_ranges`), which the engine checks against the graph it lowers and intersects every
    node's range with."""
    values: dict[str, Value] = {}
    lowered = lower_graph(graph, pairs, constants, bounds)
    bound = graph_error_bound(
        lowered,
        domain,
        module_dtype(frozen),
        module_dtype(target),
        on_node=lambda node, value: values.__setitem__(node.name, value),
        centred=centred,
        rounding=rounding,
        ranges=ranges,
    )
    return bound, values


def target_ranges(
    graph: ModelGraph, pairs: dict[str, GraphNode], constants: dict[str, Any], bounds: dict[str, Any], domain: Domain
) -> tuple[GraphRanges, dict[str, Any]]:
    """The target's linear ∩ interval ranges of every node over ``domain`` (`verify.core.graph_ranges`, on the
    lowered graph: only its target layers and parameter-free nodes are read), and ``bounds`` (`interval_bounds`)
    with every tensor node's box replaced by that range (a batch of one, float64), aliases included."""
    ranges = graph_ranges(lower_graph(graph, pairs, constants, bounds), domain)
    tight = dict(bounds)
    for name, value in bounds.items():
        resolved = graph.aliases.get(name, name)
        if resolved in ranges.lo and isinstance(value, tuple) and isinstance(value[0], torch.Tensor):
            tight[name] = tuple(
                torch.as_tensor(ends[resolved], dtype=torch.float64).reshape(value[0].shape)
                for ends in (ranges.lo, ranges.hi)
            )
    return ranges, tight
