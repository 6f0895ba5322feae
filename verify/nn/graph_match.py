"""A frozen graph matched node by node against a target graph (docs/design.md §10).

`match` walks both graphs (`verify.nn.graph.read_graph`) back from their outputs: a target layer
matches a frozen pair whose outer shapes (and, for a convolution, kernel, stride, padding, padding
mode and dilation) are the layer's, every other node a node of the same kind with the same constant
arguments. The first node that does not match is refused with a `ValueError` naming it, its source
and what was expected.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx, nn

from verify.nn.graph import ADD, COPY, INPUT, LINEAR, PAIR, RELU, GraphNode, ModelGraph, read_graph

__all__ = ["match", "read_matched"]


def _signature(graph: ModelGraph, node: GraphNode) -> tuple[Any, ...]:
    """What must be equal for a target node and a frozen node to match (their kind and every constant argument)."""
    if node.kind in (INPUT, LINEAR, PAIR, RELU, ADD):
        return (LINEAR if node.kind == PAIR else node.kind,)
    fx_node = node.node
    if _flattens(graph, fx_node):  # nn.Flatten(), torch.flatten(x, 1), x.flatten(1): one node
        return (COPY, "flatten")
    constants = fx.node.map_arg((fx_node.args, fx_node.kwargs), lambda n: None)
    if fx_node.op == "call_module":
        module = graph.traced.get_submodule(fx_node.target)
        return (COPY, type(module).__name__, module.extra_repr(), repr(constants))
    return (COPY, fx_node.op, fx_node.target, repr(constants))


_BUILD = (
    "; the frozen module must run the target's graph with every layer replaced by its pair: "
    "verify.nn.frozen_like(target) builds one"
)


def _pair_words(layer: GraphNode) -> str:
    """The pair a target layer needs, in words."""
    if not layer.is_conv:
        return "Linear -> BatchNorm1d -> ReLU -> Linear -> BatchNorm1d"
    name = type(layer.modules[0]).__name__
    norm = name.replace("Conv", "BatchNorm")
    return f"{name} -> {norm} -> ReLU -> {name} (1 × 1) -> {norm}"


def _flattens(graph: ModelGraph, node: fx.Node) -> bool:
    """Whether ``node`` flattens every dimension after the batch's, as a module, a function or a method."""
    if node.op == "call_module":
        module = graph.traced.get_submodule(node.target)
        return isinstance(module, nn.Flatten) and (module.start_dim, module.end_dim) == (1, -1)
    flatten = (node.op == "call_function" and node.target is torch.flatten) or (
        node.op == "call_method" and node.target == "flatten"
    )
    return flatten and not node.kwargs and tuple(node.args[1:]) in ((1,), (1, -1))


def _pair_mismatch(layer: GraphNode, pair: GraphNode) -> str | None:
    """Why ``pair`` cannot carry the target ``layer`` (None if it can): the outer shapes, and for a convolution
    the first layer's kernel, stride, padding and dilation and a 1 × 1 second layer."""
    first, second = pair.modules[0], pair.modules[2]
    d_out, d_in = layer.weight.shape[:2]
    if not layer.is_conv:
        if not isinstance(first, nn.Linear) or not isinstance(second, nn.Linear):
            return f"a Linear's pair is {_pair_words(layer)}"
        if (first.in_features, second.out_features) != (d_in, d_out):
            return f"it maps {first.in_features} -> {second.out_features} features, the target {d_in} -> {d_out}"
        return None
    kind = type(layer.modules[0])
    if type(first) is not kind or type(second) is not kind:
        return f"a {kind.__name__}'s pair is {_pair_words(layer)}"
    wanted = {"kernel_size": tuple(layer.weight.shape[2:]), **layer.options, "groups": 1}
    found = {key: getattr(first, key) for key in wanted}
    if found != wanted or (first.in_channels, second.out_channels) != (d_in, d_out):
        return (
            f"its first convolution has {first.in_channels} -> … channels and {found}; the target has {d_in} -> "
            f"{d_out} channels and {wanted}"
        )
    ones = (1,) * len(second.kernel_size)
    if (second.kernel_size, second.stride, second.dilation, second.groups) != (ones, ones, ones, 1) or any(
        second._reversed_padding_repeated_twice
    ):
        return "its second convolution must be 1 × 1 with stride 1, no padding"
    return None


def match(target: ModelGraph, frozen: ModelGraph) -> dict[str, GraphNode]:
    """Pair every node of the target graph with the node of the frozen graph that stands for it.

    Walks both graphs back from their outputs: a target layer matches a frozen pair whose outer
    shapes (and, for a convolution, kernel, stride, padding and dilation) are the layer's, every other
    node a node of the same kind with the same constant arguments, and inputs match in order. Raises
    `ValueError` naming the first frozen node that does not match and what was expected.
    """
    pairs: dict[str, GraphNode] = {}

    def visit(t: GraphNode, f: GraphNode) -> None:
        if t.name in pairs:
            if pairs[t.name].name != f.name:
                raise ValueError(
                    f"frozen graph node '{f.name}' ({f.source}) does not match: target node '{t.name}' ({t.source}) "
                    f"is already matched by frozen node '{pairs[t.name].name}'; the frozen graph must have the "
                    "target's shape (docs/design.md §10)"
                )
            return
        expected, found = _signature(target, t), _signature(frozen, f)
        if expected != found or (t.kind == LINEAR) != (f.kind == PAIR) or len(t.inputs) != len(f.inputs):
            what = f"a frozen pair {_pair_words(t)}" if t.kind == LINEAR else f"a {t.kind} node like the target's"
            raise ValueError(
                f"frozen graph node '{f.name}' ({f.source}) does not match target node '{t.name}' ({t.source}): "
                f"expected {what}, found a {f.kind} node {found[1:] if f.kind == COPY else ''}".rstrip()
                + _BUILD
            )
        if t.kind == LINEAR:
            why = _pair_mismatch(t, f)
            if why is not None:
                raise ValueError(
                    f"frozen pair '{f.name}' ({f.source}) does not fit target layer '{t.name}' ({t.source}): {why}"
                    + _BUILD
                )
        pairs[t.name] = f
        for ti, fi in zip(t.inputs, f.inputs, strict=True):
            visit(target.node(ti), frozen.node(fi))

    visit(target.node(target.output), frozen.node(frozen.output))
    missing = [n.name for n in target.nodes if n.name not in pairs and n.kind != COPY]
    if missing:
        raise ValueError(f"target graph nodes {missing} do not reach the output; remove them from the forward")
    return pairs


def read_matched(target: nn.Module, frozen: nn.Module) -> tuple[ModelGraph, ModelGraph, dict[str, GraphNode]]:
    """Both modules read as graphs (torch.fx, `verify.nn.graph.read_graph`; the frozen one as ``frozen.eval()``
    runs it, its training flags then put back, for a fit leaves it in eval mode) and the frozen graph matched
    node by node against the target's (`match`: a missing, extra or moved ReLU, a pool elsewhere, another
    stride, padding or dilation are refused naming the node, before any solve): the target graph, the frozen
    graph and the frozen pair of each target layer."""
    flags = [(module, module.training) for module in frozen.modules()]
    frozen.eval()
    try:
        target_graph, frozen_graph = read_graph(target, "target"), read_graph(frozen, "frozen")
    finally:
        for module, training in flags:
            module.training = training
    return target_graph, frozen_graph, match(target_graph, frozen_graph)
