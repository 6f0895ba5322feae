"""The idioms of public model code, read as parameter-free maps of a graph (docs/design.md §10).

Public CIFAR model files write structure with more than modules: strided slicing and indexing
(``x[:, :, ::2, ::2]``), zero padding (``F.pad``, ``nn.ZeroPad2d``, channel padding
``F.pad(x, (0, 0, 0, 0, p, p))``), ``torch.flatten(x, 1)``, ``x.view(x.size(0), -1)``, ``reshape``,
``mean`` over dimensions, ``torch.stack``/``torch.cat``, and shape expressions (``x.size()[3]``,
``x.size(3)``, ``x.shape[-1]``) that feed pooling sizes and views. Each tensor map here selects,
copies, zero-pads, averages or reshapes the entries of its input: it is linear, has no parameters and
is monotone non-decreasing, so interval bounds pass through it exactly as ``[map(lo), map(hi)]`` and
error bounds as ``map(e)`` (selection, padding with zeros and reshaping are exact in floating point;
a mean is an average pool). Shape expressions are not tensors: they are evaluated at the domain's
input shape (`check_shapes`, torch.fx's shape propagation) and are constants there.

A map that mixes the rows of the batch (``torch.cat`` along dimension 0, ``x.view(-1)``, a transpose
of the batch dimension) is not a function of one input: `check_shapes` refuses it, naming the node.
"""

from __future__ import annotations

import builtins
import operator
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

ModelGraph = Any
"""A `verify.nn.graph.ModelGraph` (not imported: `verify.nn.graph` reads the node tables of this module)."""

__all__ = ["check_shapes", "idiom_reason", "is_idiom", "is_shape_expression", "node_values", "shape_error"]

FUNCTIONS = {
    operator.getitem: "indexing",
    F.pad: "F.pad",
    torch.stack: "torch.stack",
    torch.reshape: "torch.reshape",
    torch.mean: "torch.mean",
    torch.squeeze: "torch.squeeze",
    torch.unsqueeze: "torch.unsqueeze",
    torch.permute: "torch.permute",
    torch.transpose: "torch.transpose",
}
"""Parameter-free functions read as copied structure (with ``builtins.getattr`` of ``shape``)."""

METHODS = ("permute", "transpose", "squeeze", "unsqueeze", "clone")
"""Tensor methods read as copied structure, besides those `verify.nn.graph` copies."""

MODULES = (nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d, nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d)
"""Padding modules (zero padding only)."""

_PAD_VALUE_INDEX = 3  # F.pad(input, pad, mode, value)


ARITHMETIC = (operator.add, operator.sub, operator.mul, operator.floordiv, operator.truediv, operator.mod)
"""Arithmetic read on shape expressions (``x.size(1) // 2``), never on tensors."""


def is_shape_expression(node: fx.Node) -> bool:
    """Whether ``node`` computes a shape, not a tensor: ``x.size()``, ``x.size(3)``, ``x.dim()``, ``x.shape``,
    and indexing or arithmetic whose graph inputs are all shape expressions."""
    if node.op == "call_method":
        return node.target in ("size", "dim")
    if node.op != "call_function":
        return False
    if node.target is builtins.getattr:
        return len(node.args) == 2 and node.args[1] == "shape"
    inputs = node.all_input_nodes
    return node.target in (operator.getitem, *ARITHMETIC) and bool(inputs) and all(map(is_shape_expression, inputs))


def is_idiom(traced: fx.GraphModule, node: fx.Node) -> bool:
    """Whether ``node`` is one of the parameter-free idioms read here (a shape expression included)."""
    if is_shape_expression(node):
        return True
    if node.op == "call_module":
        return isinstance(traced.get_submodule(node.target), MODULES)
    if node.op == "call_function":
        if node.target is builtins.getattr:
            return len(node.args) == 2 and node.args[1] == "shape"
        return node.target in FUNCTIONS
    return node.op == "call_method" and node.target in METHODS


def idiom_reason(traced: fx.GraphModule, node: fx.Node) -> str | None:
    """None if the idiom ``node`` is read, else why it is refused (padding with a value other than zero:
    the padded entries would carry that value's error and magnitude, which the transfers do not count)."""
    value = None
    if node.op == "call_module":
        value = getattr(traced.get_submodule(node.target), "value", 0.0)
    elif node.target is F.pad:
        value = node.kwargs.get("value", node.args[_PAD_VALUE_INDEX] if len(node.args) > _PAD_VALUE_INDEX else None)
    if value not in (None, 0, 0.0):
        return f"only zero padding is read (got value={value!r}); pad with 0 or use a bias"
    return None


def _expected_input(graph: ModelGraph) -> tuple[str, str]:
    """The first layer reading the input (directly or through parameter-free nodes), and the input it expects."""
    layer = graph.layers[0] if graph.layers else None
    if layer is None:
        return "", "an input the forward accepts"
    module = layer.modules[0]
    if isinstance(module, nn.Conv2d):
        k_h, k_w = module.kernel_size
        return f"'{layer.name}' ({layer.source})", f"({module.in_channels}, H, W) with H >= {k_h}, W >= {k_w}"
    return f"'{layer.name}' ({layer.source})", f"({module.in_features},) (or a shape that flattens to it)"


class _Failed(Exception):
    """The forward failed at ``node`` with ``error``."""

    def __init__(self, node: fx.Node, error: Exception) -> None:
        super().__init__(node.name)
        self.node, self.error = node, error


def shape_error(graph: ModelGraph, shape: tuple[int, ...], failed: _Failed) -> ValueError:
    """The `ValueError` for a domain whose input shape the model's forward does not accept: where it failed,
    the first layer and the input shape that layer expects."""
    layer, expected = _expected_input(graph)
    name = graph.aliases.get(failed.node.name, failed.node.name)
    where = next((f"'{n.name}' ({n.source})" for n in graph.nodes if n.name == name), f"'{name}'")
    message = str(failed.error).splitlines()[0] if str(failed.error) else ""
    return ValueError(
        f"the target {type(graph.module).__name__}'s forward does not run on the domain's input shape {shape}: it "
        f"fails at graph node {where} ({type(failed.error).__name__}: {message}); its first layer {layer} expects "
        f"inputs shaped {expected}; give a domain shaped like one input (verify.Box(lo, hi, shape=...))"
    )


def _run(graph: ModelGraph, x: torch.Tensor, values: dict[str, Any], keep: set[str] | None = None) -> None:
    """Every node's value on ``x`` (or of the fx nodes named in ``keep``) into ``values``, by fx node name (tensors
    cloned, so that in-place operations later do not change them), shapes recorded in ``node.meta`` by torch.fx's
    shape propagation; `_Failed` names the node that fails (``values`` then holds the nodes before it)."""

    class _Keep(ShapeProp):
        def run_node(self, n: fx.Node) -> Any:
            try:
                value = super().run_node(n)
            except Exception as error:  # ShapeProp wraps the error of torch's conv2d/linear/view in a RuntimeError
                raise _Failed(n, error.__cause__ or error) from None
            if keep is None or n.name in keep:
                values[n.name] = value.clone() if isinstance(value, torch.Tensor) else value
            return value

    with torch.no_grad():
        _Keep(graph.traced).propagate(x)


def node_values(graph: ModelGraph, x: torch.Tensor, names: set[str] | None = None) -> dict[str, Any]:
    """The value of every node of ``graph`` (or of those in ``names``) on ``x``, by graph node name, computed by the
    traced module's own forward (torch's modules and functions, node by node); the others are freed as it goes."""
    wanted = [node for node in graph.nodes if names is None or node.name in names]
    values: dict[str, Any] = {}
    _run(graph, x, values, {node.node.name for node in wanted})
    return {node.name: values[node.node.name] for node in wanted}


def _mixing(values: list[Any], single: torch.Tensor, tolerance: float) -> str | None:
    """Why the tensor node with ``values`` on batches of 2 and 3 (None where it failed) and ``single`` on the
    first input of the second batch alone mixes the rows of the batch, or None."""
    if any(v is None for v in values):
        return "it fails on a batch of inputs although it runs on one input alone"
    found = f"shapes {tuple(values[0].shape)} and {tuple(values[1].shape)} for batches of 2 and 3"
    if [v.shape[0] if v.dim() else None for v in values] != [2, 3] or values[0].shape[1:] != values[1].shape[1:]:
        return f"the batch is not its first dimension ({found})"
    first = values[1][:1].double()
    scale = float(first.abs().max()) if first.numel() else 0.0
    if first.shape != single.shape or bool((first - single.double()).abs().max() > tolerance * scale):
        return "a row of its output on a batch differs from its output on that row's input alone"
    return None


def check_shapes(graph: ModelGraph, shape: tuple[int, ...], dtype: torch.dtype, device: Any) -> dict[str, Any]:
    """Run the target graph at the domain's input ``shape`` and return every shape expression's value there.

    Raises `ValueError` when the forward refuses one input of that shape (naming where it fails, the first
    layer and the shape it expects), and when a node mixes the rows of the batch: every tensor node must
    run on batches of 2 and 3, have the batch as its first dimension and give each row the value it gives
    that input alone (up to ``sqrt(eps)`` of the node's largest entry: batched kernels may sum in another
    order, a mixed row is off by the entries' own size).
    """
    generator = torch.Generator(device="cpu").manual_seed(0)
    batches = {b: torch.rand((b, *shape), generator=generator, dtype=torch.float64).to(dtype) for b in (2, 3)}
    alone: dict[str, Any] = {}
    try:
        _run(graph, batches[3][:1].to(device), alone)
    except _Failed as failed:
        raise shape_error(graph, shape, failed) from None
    runs: dict[int, dict[str, Any]] = {2: {}, 3: {}}
    for b, x in batches.items():
        try:
            _run(graph, x.to(device), runs[b])
        except _Failed:
            pass  # the first node without a value is refused below
    tolerance = float(torch.finfo(dtype).eps) ** 0.5
    constants: dict[str, Any] = {}
    for node in graph.nodes:
        name = node.node.name
        if not isinstance(alone[name], torch.Tensor):
            constants[name] = alone[name]
            continue
        why = _mixing([runs[b].get(name) for b in (2, 3)], alone[name], tolerance)
        if why is not None:  # the message of `verify.nn.graph`'s refusals
            raise ValueError(
                f"graph node '{node.name}' ({node.source}) is not supported: it mixes the rows of the batch ({why}): "
                "only maps of each input on its own are read; concatenate or stack along a non-batch dimension "
                "(dim=1), and keep the batch dimension first (x.view(x.size(0), -1))"
            )
    return constants
