"""Models read as graphs (docs/design.md §10): trace a module with torch.fx, classify every node, refuse the rest.

A *target* graph is built from Linear, Conv1d and Conv2d layers (any stride, padding, padding mode and
dilation, ``groups=1``; a BatchNorm right after one is folded into it), ReLU (the module, ``F.relu``,
``torch.relu`` or ``x.relu()``), additions of two tensors and parameter-free structure that is copied
unchanged: ``torch.cat``, pooling, ``flatten``/``view``/``reshape``, and the idioms of public model code
(slicing, zero padding, ``stack``, ``mean``, shape expressions: `verify.nn.graph_idioms`). Identity and
eval-mode Dropout modules have no node: they stand for the value they read. A *frozen* graph is the same
graph with every target layer replaced by its frozen pair ``Linear → BatchNorm1d → ReLU → Linear →
BatchNorm1d`` (``Conv → BatchNorm → ReLU → Conv 1×1 → BatchNorm`` for a convolution);
`verify.nn.graph_match.match` pairs the nodes of the two and says which one does not match.
Anything else is refused with a `ValueError` naming the graph node, the module it comes from and why. A model
that torch.fx cannot trace (data-dependent control flow) is refused with that reason and pointed to the
nn.Sequential route.

Every copied node is monotone non-decreasing in each of its tensor inputs (selection, averaging,
maximum, concatenation, reshaping, ReLU, addition): interval bounds and error bounds pass through it
by applying the node itself (`verify.nn.graph_lower.interval_bounds`, `verify.core.graph_bound`).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.nn.modules.batchnorm import _BatchNorm

from verify.nn.grammar import REFUSED
from verify.nn.graph_idioms import idiom_reason, is_idiom, is_shape_expression

__all__ = ["GraphNode", "ModelGraph", "as_chain", "chain_nodes", "read_graph"]

INPUT, LINEAR, PAIR, RELU, ADD, COPY = "input", "linear", "pair", "relu", "add", "copy"
"""Node kinds: the input, a target layer (Linear, Conv1d or Conv2d, BatchNorm folded), a frozen pair, ReLU, addition,
copied structure."""

_RELU_FUNCTIONS = (F.relu, torch.relu, torch.relu_, F.relu_)
_ADD_FUNCTIONS = (operator.add, operator.iadd, torch.add)
_COPY_FUNCTIONS = {torch.cat: "torch.cat", torch.concat: "torch.concat", torch.flatten: "torch.flatten"}
_POOL_FUNCTIONS = (
    "max_pool1d",
    "max_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
)
_COPY_METHODS = ("view", "reshape", "flatten", "size", "mean", "contiguous")
POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)
"""The pooling modules every reader takes (the graph route also copies adaptive max pooling)."""
_COPY_MODULES = (nn.Identity, nn.Flatten, nn.Dropout, *POOLS, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)
_UNDERSTOOD = (
    "only Linear (with its BatchNorm), ReLU, additions of two tensors, torch.cat/torch.stack, pooling, "
    "flatten/view/reshape, slicing and indexing, zero padding, mean, shape expressions (x.size(), x.shape), "
    "eval-mode Dropout and Identity are understood (docs/design.md §10)"
)


@dataclass(frozen=True)
class GraphNode:
    """One node of a read graph.

    Attributes
    ----------
    name : str
        The fx node's name (for a frozen pair: the name of its last BatchNorm node, the value it outputs).
    kind : str
        ``"input"``, ``"linear"`` (target), ``"pair"`` (frozen), ``"relu"``, ``"add"`` or ``"copy"``.
    inputs : tuple of str
        Names of the nodes whose values it reads, in argument order.
    source : str
        Where it comes from: the module path and class, or the function and the module whose forward calls it.
    node : torch.fx.Node
        The fx node whose value the node stands for (a pair's last BatchNorm, a folded BatchNorm); a
        copied node is run as this node.
    weight, bias : torch.Tensor or None
        A target Linear's weight and bias, with a following BatchNorm folded in.
    modules : tuple of nn.Module
        A frozen pair's ``(Linear, BatchNorm, Linear, BatchNorm)``; a target Linear's ``(Linear,)`` or
        ``(Linear, BatchNorm)``; a copied module node's module.
    paths : tuple of str
        The qualified names of ``modules`` in the module that was read.
    options : dict
        A target convolution's ``stride``, ``padding``, ``dilation`` and ``padding_mode`` (empty for a Linear).
    """

    name: str
    kind: str
    inputs: tuple[str, ...]
    source: str
    node: fx.Node
    weight: torch.Tensor | None = None
    bias: torch.Tensor | None = None
    modules: tuple[nn.Module, ...] = ()
    paths: tuple[str, ...] = ()
    options: dict = field(default_factory=dict)

    @property
    def is_conv(self) -> bool:
        """Whether this target layer (or the first layer of this pair) is a convolution."""
        first = self.modules[0] if self.modules else None
        return isinstance(first, nn.modules.conv._ConvNd)

    def padded(self, x: torch.Tensor) -> torch.Tensor:
        """A convolution's input padded as the convolution pads it (zeros, or its ``padding_mode``: reflect,
        replicate, circular), so that the convolution itself then runs without padding. Every padded entry is
        an input entry or a zero: a selection, which interval and error bounds pass through unchanged."""
        conv = self.modules[0]
        mode = self.options["padding_mode"]
        return F.pad(x, conv._reversed_padding_repeated_twice, mode="constant" if mode == "zeros" else mode)

    def apply(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """The layer's map with ``weight`` and ``bias`` (``|W|`` for bounds): ``F.linear``, or ``F.conv1d`` /
        ``F.conv2d`` with this node's stride, dilation and padding (`padded`)."""
        if self.is_conv:
            conv = F.conv1d if weight.dim() == 3 else F.conv2d
            return conv(self.padded(x), weight, bias, stride=self.options["stride"], dilation=self.options["dilation"])
        return F.linear(x, weight, bias)


@dataclass(frozen=True)
class ModelGraph:
    """A module read as a graph: its traced `fx.GraphModule` and the classified nodes in topological order.

    ``output`` is the name of the node whose value the module returns; ``aliases`` maps the fx node
    of a folded BatchNorm (or of a pair's inner nodes) to the graph node that stands for it.
    """

    module: nn.Module
    traced: fx.GraphModule
    nodes: tuple[GraphNode, ...]
    output: str
    aliases: dict[str, str] = field(default_factory=dict)

    def node(self, name: str) -> GraphNode:
        """The graph node called ``name`` (an alias is followed)."""
        name = self.aliases.get(name, name)
        return next(n for n in self.nodes if n.name == name)

    @property
    def layers(self) -> tuple[GraphNode, ...]:
        """The Linear nodes of a target graph (the pairs of a frozen one), in topological order."""
        return tuple(n for n in self.nodes if n.kind in (LINEAR, PAIR))

    def depths(self) -> dict[str, int]:
        """For every node, the largest number of Linear nodes (pairs) on a path from the input up to it."""
        depth: dict[str, int] = {}
        for n in self.nodes:
            upstream = max((depth[i] for i in n.inputs), default=0)
            depth[n.name] = upstream + (n.kind in (LINEAR, PAIR))
        return depth


class _Tracer(fx.Tracer):
    """torch.fx's tracer, keeping subclasses of torch's layers (a BatchNorm subclass, say) as leaves too."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, _LEAVES) or super().is_leaf_module(m, module_qualified_name)


_LEAVES = (nn.Linear, nn.modules.conv._ConvNd, _BatchNorm, nn.ReLU, nn.Dropout, nn.Identity, *_COPY_MODULES)


def _trace(module: nn.Module, role: str) -> fx.GraphModule:
    if not isinstance(module, nn.Module):
        raise ValueError(f"the {role} must be a torch nn.Module, got {type(module).__name__}")
    if _Tracer().is_leaf_module(module, ""):  # one torch layer (nn.Linear): its graph is that layer
        module = nn.Sequential(module)
    try:
        tracer = _Tracer()
        graph = tracer.trace(module)
        return fx.GraphModule(tracer.root, graph, type(module).__name__)
    except Exception as error:  # torch.fx raises TraceError, TypeError, NotImplementedError, …
        raise ValueError(
            f"the {role} {type(module).__name__} cannot be traced by torch.fx ({type(error).__name__}: {error}); "
            "a forward with data-dependent control flow (an if or a loop on tensor values) has no fixed graph. "
            "Write the model as an nn.Sequential (Linear -> ReLU -> … -> Linear), which verify.nn reads layer by layer"
        ) from None


def _source(traced: fx.GraphModule, node: fx.Node) -> str:
    if node.op == "call_module":
        return f"{node.target} ({type(traced.get_submodule(node.target)).__name__})"
    stack = node.meta.get("nn_module_stack") or {}
    where = f"the forward of {next(reversed(stack.values()))[0]}" if stack else "the top-level forward"
    what = node.target if node.op == "call_method" else getattr(node.target, "__name__", str(node.target))
    return f"{'method ' if node.op == 'call_method' else ''}{what} in {where}"


def _refuse(traced: fx.GraphModule, node: fx.Node, why: str) -> ValueError:
    return ValueError(f"graph node '{node.name}' ({_source(traced, node)}) is not supported: {why}")


def _tensor_inputs(node: fx.Node) -> tuple[str, ...]:
    found: list[str] = []
    fx.node.map_arg((node.args, node.kwargs), lambda n: found.append(n.name) or n)
    return tuple(found)


def _is_relu(traced: fx.GraphModule, node: fx.Node) -> bool:
    if node.op == "call_module":
        return isinstance(traced.get_submodule(node.target), nn.ReLU)
    if node.op == "call_function":
        return node.target in _RELU_FUNCTIONS
    return node.op == "call_method" and node.target in ("relu", "relu_")


def _is_identity(traced: fx.GraphModule, node: fx.Node) -> bool:
    """Whether ``node`` runs an ``nn.Identity`` or an ``nn.Dropout`` that is the identity (eval mode, or ``p = 0``):
    such a node has no node of its own, it stands for the value it reads (a frozen module built without it has
    the same graph)."""
    module = _as_module(traced, (nn.Identity, nn.Dropout), node)
    if module is None or node.kwargs or len(node.args) != 1:
        return False
    return isinstance(module, nn.Identity) or not module.training or module.p == 0


def _copy_reason(traced: fx.GraphModule, node: fx.Node) -> str | None:
    """None if ``node`` is parameter-free monotone structure to copy, why it is refused if it is such structure
    in a form that is not read (train-mode Dropout, pooling indices, padding values), `_UNDERSTOOD` otherwise."""
    if is_idiom(traced, node):
        return idiom_reason(traced, node)
    if node.op == "call_module":
        module = traced.get_submodule(node.target)
        if not isinstance(module, _COPY_MODULES):
            return _UNDERSTOOD
        if isinstance(module, nn.Dropout) and module.training and module.p > 0:
            return "Dropout in train mode is random; call module.eval() first"
        if getattr(module, "return_indices", False):
            return "pooling with return_indices=True returns indices, not values"
        return None
    if node.op == "call_function":
        name = getattr(node.target, "__name__", "")
        if node.target in _COPY_FUNCTIONS or name in _POOL_FUNCTIONS:
            return (
                "pooling with return_indices=True returns indices, not values"
                if node.kwargs.get("return_indices")
                else None
            )
        if node.target in (F.dropout, torch.dropout):
            training = node.kwargs.get("training", node.args[2] if len(node.args) > 2 else True)
            return "dropout in train mode is random; call module.eval() first" if training else None
    return None if node.op == "call_method" and node.target in _COPY_METHODS else _UNDERSTOOD


def _module_refusal(module: nn.Module) -> str:
    name = type(module).__name__
    if name in REFUSED:
        return REFUSED[name]
    if isinstance(module, nn.modules.conv._ConvNd):
        return "of the convolutions only Conv1d and Conv2d are read in graphs (docs/design.md §10)"
    return _UNDERSTOOD


def _only_user(node: fx.Node) -> fx.Node | None:
    users = list(node.users)
    return users[0] if len(users) == 1 else None


def _folded(layer: nn.Module, bn: _BatchNorm | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's ``(W, b)``, with an eval-mode BatchNorm ``y ↦ γ (y − μ)/√(v+ε) + β`` after it folded in
    (per output neuron or channel)."""
    weight = layer.weight.detach()
    bias = torch.zeros_like(weight.flatten(1)[:, 0]) if layer.bias is None else layer.bias.detach()
    if bn is None:
        return weight.clone(), bias.clone()
    gamma = torch.ones_like(bias) if bn.weight is None else bn.weight.detach()  # affine=False: γ = 1, β = 0
    beta = torch.zeros_like(bias) if bn.bias is None else bn.bias.detach()
    scale = gamma / torch.sqrt(bn.running_var.detach() + bn.eps)
    per_out = scale.reshape(-1, *[1] * (weight.dim() - 1))
    return weight * per_out, scale * (bias - bn.running_mean.detach()) + beta


def _conv_options(traced: fx.GraphModule, node: fx.Node, conv: nn.Module) -> dict:
    """The convolution's ``stride``, ``padding``, ``dilation`` and ``padding_mode``; refused unless ``groups = 1``."""
    if conv.groups != 1:
        raise _refuse(
            traced,
            node,
            f"groups={conv.groups} is not supported: a grouped convolution's kernel is block-diagonal over channels, "
            "which the construction's flattened kernels (one scale per frozen channel) do not model; use groups=1",
        )
    return {key: getattr(conv, key) for key in ("stride", "padding", "dilation", "padding_mode")}


def _check_norm(traced: fx.GraphModule, node: fx.Node, bn: _BatchNorm) -> None:
    if bn.training or not bn.track_running_stats or bn.running_mean is None:
        raise _refuse(
            traced,
            node,
            "BatchNorm normalizes with batch statistics (train mode or no running statistics); "
            "call module.eval() on a module with running statistics",
        )


def _as_module(traced: fx.GraphModule, kinds: type | tuple[type, ...], node: fx.Node | None) -> Any:
    """The module a ``call_module`` node runs if it is one of ``kinds``, else None."""
    if node is None or node.op != "call_module":
        return None
    module = traced.get_submodule(node.target)
    return module if isinstance(module, kinds) else None


_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)


def _pair_chain(traced: fx.GraphModule, node: fx.Node) -> list[fx.Node] | None:
    """The five nodes ``Linear → BatchNorm → ReLU → Linear → BatchNorm`` starting at ``node``, each the only user
    of the one before, or None."""
    chain = [node]
    tests: list[Callable[[fx.Node | None], bool]] = [
        lambda n: _as_module(traced, _BatchNorm, n) is not None,
        lambda n: n is not None and _is_relu(traced, n),
        lambda n: _as_module(traced, _LAYERS, n) is not None,
        lambda n: _as_module(traced, _BatchNorm, n) is not None,
    ]
    for test in tests:
        following = _only_user(chain[-1])
        if not test(following):
            return None
        chain.append(following)
    return chain


def read_graph(module: nn.Module, role: str = "target") -> ModelGraph:
    """Trace ``module`` with torch.fx and classify its nodes as a ``role`` (``"target"`` or ``"frozen"``) graph.

    Raises `ValueError` naming the first node that is not understood, its source and why; a module
    that does not trace is refused with the tracer's reason.
    """
    if role not in ("target", "frozen"):
        raise ValueError(f"role must be 'target' or 'frozen', got {role!r}")
    traced = _trace(module, role)
    nodes: list[GraphNode] = []
    aliases: dict[str, str] = {}
    output = None
    inputs = [n for n in traced.graph.nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise ValueError(
            f"the {role} {type(module).__name__}'s forward takes {len(inputs)} inputs; one input tensor is understood"
        )
    for node in traced.graph.nodes:
        if node.name in aliases:
            continue
        reads = tuple(aliases.get(name, name) for name in _tensor_inputs(node))
        source = _source(traced, node) if node.op != "placeholder" else "the input"
        if node.op == "placeholder":
            nodes.append(GraphNode(node.name, INPUT, (), source, node))
        elif node.op == "output":
            if not isinstance(node.args[0], fx.Node):
                raise ValueError(f"the {role} {type(module).__name__} must return one tensor, got {node.args[0]!r}")
            output = aliases.get(node.args[0].name, node.args[0].name)
        elif node.op == "get_attr":
            raise _refuse(
                traced,
                node,
                "a parameter or buffer used in the forward itself (F.linear(x, self.weight), say); "
                "write the layer as an nn.Linear module so it can be replaced by its frozen pair",
            )
        elif _as_module(traced, _LAYERS, node) is not None and role == "frozen":
            chain = _pair_chain(traced, node)
            if chain is None:
                raise _refuse(
                    traced,
                    node,
                    "in a frozen graph every Linear (Conv2d) starts a pair Linear -> BatchNorm1d -> ReLU -> "
                    "Linear -> BatchNorm1d (Conv2d -> BatchNorm2d -> ReLU -> Conv2d 1x1 -> BatchNorm2d), each node the "
                    "only user of the one before (docs/design.md §10)",
                )
            for n in chain:
                aliases[n.name] = chain[-1].name
            mods = tuple(traced.get_submodule(n.target) for n in chain if n.op == "call_module" and n is not chain[2])
            for n, bn in ((chain[1], mods[1]), (chain[4], mods[3])):
                _check_norm(traced, n, bn)
                if not bn.affine:
                    raise _refuse(traced, n, "a frozen BatchNorm with affine=False has no weight and bias to tune")
            paths = tuple(n.target for n in chain if n.op == "call_module" and n is not chain[2])
            nodes.append(
                GraphNode(chain[-1].name, PAIR, reads, _source(traced, node), chain[-1], modules=mods, paths=paths)
            )
        elif _as_module(traced, _LAYERS, node) is not None:
            linear = traced.get_submodule(node.target)
            options = _conv_options(traced, node, linear) if not isinstance(linear, nn.Linear) else {}
            following = _only_user(node)
            bn = _as_module(traced, _BatchNorm, following)
            if bn is not None:
                _check_norm(traced, following, bn)
                aliases[following.name] = node.name
            weight, bias = _folded(linear, bn)
            nodes.append(
                GraphNode(
                    node.name,
                    LINEAR,
                    reads,
                    _source(traced, node),
                    node if bn is None else following,
                    weight,
                    bias,
                    (linear,) if bn is None else (linear, bn),
                    (node.target,) if bn is None else (node.target, following.target),
                    options,
                )
            )
        elif _is_identity(traced, node) and len(reads) == 1:  # Identity, eval-mode Dropout: the value it reads
            aliases[node.name] = reads[0]
        elif _is_relu(traced, node):
            nodes.append(GraphNode(node.name, RELU, reads, source, node))
        elif is_shape_expression(node):  # x.size(3) + 1: copied as it is, not a tensor addition
            nodes.append(GraphNode(node.name, COPY, reads, source, node))
        elif (node.op == "call_function" and node.target in _ADD_FUNCTIONS) or (
            node.op == "call_method" and node.target in ("add", "add_")
        ):
            if len(reads) != 2 or len(node.args) != 2 or node.kwargs:
                raise _refuse(traced, node, "only additions of two tensors of the graph are understood")
            nodes.append(GraphNode(node.name, ADD, reads, source, node))
        elif (why := _copy_reason(traced, node)) is not _UNDERSTOOD:
            if why is not None:
                raise _refuse(traced, node, why)
            modules = (traced.get_submodule(node.target),) if node.op == "call_module" else ()
            nodes.append(GraphNode(node.name, COPY, reads, source, node, modules=modules))
        elif node.op == "call_module":
            module_ = traced.get_submodule(node.target)
            if isinstance(module_, _BatchNorm):
                raise _refuse(
                    traced,
                    node,
                    "a BatchNorm is folded into the Linear right before it; this one follows no "
                    "Linear (or that Linear has other users), so it cannot be folded",
                )
            raise _refuse(traced, node, _module_refusal(module_))
        else:
            raise _refuse(traced, node, _UNDERSTOOD)
    return ModelGraph(module, traced, tuple(nodes), output, aliases)


def chain_nodes(module: nn.Module, role: str) -> list[tuple[str, str, nn.Module]]:
    """The layers of a module whose traced graph is a chain (each node reads the one before), in the order its
    forward runs them: ``(fx node name, source, layer)`` for each.

    ``F.relu``/``torch.relu`` give ``nn.ReLU()`` and ``torch.flatten(x, 1)`` ``nn.Flatten()``; the layers
    themselves are the module's own (shared, not copied). A graph with branches, additions or other functions
    is refused naming the node: `verify.nn.fit_norm_layers` reads such modules as graphs.
    """
    traced = _trace(module, role)
    layers: list[tuple[str, str, nn.Module]] = []
    previous = None
    for node in traced.graph.nodes:
        if node.op == "placeholder":
            previous = node
            continue
        if node.op == "output":
            if node.args[0] is not previous:
                raise ValueError(f"the {role} {type(module).__name__} does not return its last layer's output")
            break
        if _tensor_inputs(node) != (previous.name,) or len(previous.users) != 1:
            raise _refuse(
                traced,
                node,
                "this reader takes a chain of layers (each reading the one before); the module has "
                "branches or additions: use verify.nn.fit_norm_layers, which reads graphs (docs/design.md §10)",
            )
        if node.op == "call_module":
            layer = traced.get_submodule(node.target)
        elif _is_relu(traced, node):
            layer = nn.ReLU()
        elif node.op == "call_function" and node.target is torch.flatten and node.args[1:] in ((1,), (1, -1)):
            layer = nn.Flatten()
        else:
            raise _refuse(traced, node, "as a chain of layers only modules, ReLU and torch.flatten(x, 1) are read")
        layers.append((node.name, _source(traced, node), layer))
        previous = node
    return layers


def as_chain(module: nn.Module, role: str) -> nn.Sequential:
    """A module whose graph is a chain (`chain_nodes`) as the ``nn.Sequential`` of its layers, in forward order."""
    return nn.Sequential(*(layer for _, _, layer in chain_nodes(module, role)))
