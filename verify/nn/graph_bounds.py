"""Values, interval bounds and error bounds through a read graph (docs/design.md §10).

Every node that is not a Linear is monotone non-decreasing in each tensor input (`verify.nn.graph`),
so an interval ``[lo, hi]`` passes through it as ``[node(lo), node(hi)]``: an addition's bound is the
sum of its inputs' bounds, ReLU, pooling, concatenation and reshaping act on each end. A Linear or
convolution ``W z + b`` takes the centre and radius: ``W mid + b ± |W| rad`` (for a convolution
``W ⋆ mid + b ± |W| ⋆ rad``, position by position). Non-negative quantities (error
bounds, magnitudes) pass through a copied node by running the node on them (an addition adds them;
ReLU and max-pooling are 1-Lipschitz in each entry; averaging and reshaping are themselves) and
through a Linear as ``|W| e`` plus that node's own term.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import fx

from verify.nn.graph import INPUT, LINEAR, ModelGraph

__all__ = ["interval_bounds", "node_values", "propagate", "run_node"]


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


def propagate(graph: ModelGraph, start: torch.Tensor, term: Callable[[str, torch.Tensor], Any]) -> dict[str, Any]:
    """A non-negative quantity through a target graph: ``|W| e + term(name, e)`` at each Linear (``e``: the
    value at its input), the node itself elsewhere, from ``start`` at the input."""
    values: dict[str, Any] = {}
    for node in graph.nodes:
        if node.kind == INPUT:
            values[node.name] = start
        elif node.kind == LINEAR:
            e = values[node.inputs[0]]
            values[node.name] = node.apply(e, node.weight.to(start.dtype).abs()) + term(node.name, e)
        else:
            values[node.name] = run_node(graph, node.node, values.__getitem__)
    return values


class _Recorder(fx.Interpreter):
    """An fx interpreter that keeps the values of some nodes (and frees the others as it goes)."""

    def __init__(self, module: fx.GraphModule, keep: set[fx.Node]) -> None:
        super().__init__(module)
        self.keep, self.kept = keep, {}

    def run_node(self, n: fx.Node) -> Any:
        value = super().run_node(n)
        if n in self.keep:  # a copy: an in-place node later (ReLU(inplace=True), +=) must not change it
            self.kept[n] = value.clone() if isinstance(value, torch.Tensor) else value
        return value


def node_values(graph: ModelGraph, x: torch.Tensor, names: set[str] | None = None) -> dict[str, Any]:
    """The value of every node of ``graph`` (or of those in ``names``) on ``x``, computed by the traced
    module's own forward (torch's modules and functions, node by node)."""
    wanted = [node for node in graph.nodes if names is None or node.name in names]
    recorder = _Recorder(graph.traced, {node.node for node in wanted})
    with torch.no_grad():
        recorder.run(x)
    return {node.name: recorder.kept[node.node] for node in wanted}
