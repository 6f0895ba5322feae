"""A frozen module for a target graph (docs/design.md §10): the same graph, each Linear replaced by its frozen pair.

The pair of a target Linear ``W`` (``d_out × d_in``) is ``Linear(d_in, n) → BatchNorm1d → ReLU →
Linear(n, d_out) → BatchNorm1d`` with random frozen weights, drawn as
`verify.FrozenNetwork.for_target` draws a one-block network (``width``: ``"paper"`` gives
``n = d_out·d_in``, ``"minimal"``, an int, or a float multiple of ``"paper"``), registered at the
Linear's own path; a BatchNorm the target has after its Linear is folded into the Linear and has no
node of its own. Every other node (ReLU, additions, pooling, …) and its module is copied.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import torch
from torch import fx, nn

from verify.core.memory import check_build
from verify.core.networks import FrozenNetwork, TargetNetwork, dense_pairs
from verify.core.validate import as_seed
from verify.nn.export import to_module
from verify.nn.graph import LINEAR, GraphNode, read_graph
from verify.nn.mlp import FROZEN_EPS

__all__ = ["frozen_graph", "pair_modules"]


def frozen_graph(
    target: nn.Module, width: str | int | float = "paper", *, seed: int = 0, paired: bool = False
) -> fx.GraphModule:
    """The frozen module for ``target``: its graph with every Linear replaced by a frozen pair, in eval mode.

    ``target`` is read by `verify.nn.graph.read_graph` (refusals name the node, its source and why).
    Each pair is drawn with its own seed from ``seed`` (`numpy.random.SeedSequence`), in the dtype
    and on the device of the Linear it replaces; torch's global generator is left untouched. The
    result is a `torch.fx.GraphModule` whose forward runs the target's graph with the pairs.
    ``paired=True`` builds mirrored pairs ``[B; −B]``, ``[A, −A]`` (docs/design.md §3; ``width`` then
    counts the mirrored pairs): they need no bias shift, so their accuracy does not depend on how loose
    the interval bounds are.
    """
    graph = read_graph(target, "target")
    pairs = [
        replace(pair, name=f"node {node.name}")
        for node in graph.layers
        for pair in dense_pairs([node.weight[0].numel(), node.weight.shape[0]], width, paired=paired)
    ]
    # one pair's numpy network at a time (two copies and a draw), the parameters of every pair
    itemsize = max((node.weight.dtype.itemsize for node in graph.layers), default=8)
    check_build("frozen_like", pairs, (itemsize, 24 + itemsize))
    seeds = np.random.SeedSequence(as_seed(seed)).generate_state(max(1, len(graph.layers)))
    layer_seed = {node.name: int(s) for node, s in zip(graph.layers, seeds, strict=False)}
    built = fx.Graph()
    env: dict[str, fx.Node] = {}
    modules: dict[str, nn.Module] = {}
    for fx_node in graph.traced.graph.nodes:
        name = graph.aliases.get(fx_node.name, fx_node.name)
        if name != fx_node.name:  # a BatchNorm folded into the Linear before it: its value is the pair's output
            env[fx_node.name] = env[name]
            continue
        if fx_node.op == "call_module":
            module = graph.traced.get_submodule(fx_node.target)
            if graph.node(name).kind == LINEAR:
                modules[fx_node.target] = _pair(graph.node(name), width, layer_seed[name], paired)
            else:
                modules[fx_node.target] = copy.deepcopy(module)
        env[fx_node.name] = built.node_copy(fx_node, lambda n: env[n.name])
    return fx.GraphModule(modules, built, class_name=f"Frozen{type(target).__name__}").eval()


def _pair(layer: GraphNode, width: str | int | float, seed: int, paired: bool = False) -> nn.Sequential:
    """The frozen pair of a target layer, drawn as a one-block `verify.FrozenNetwork` for a ``d_out × d_in``
    target (a convolution's kernel flattened: ``d_in = C_in k_h k_w``, paper width the number of target
    weights, docs/design.md §10) and returned as torch modules in the layer's dtype and on its device."""
    weight = layer.weight
    one = TargetNetwork([np.zeros((weight.shape[0], weight[0].numel()))])
    frozen = FrozenNetwork.for_target(one, width=width, seed=seed, paired=paired)
    if not layer.is_conv:
        return _with_eps(to_module(frozen, dtype=weight.dtype, device=weight.device))
    b, a = frozen.weights
    pair = pair_modules(layer.modules[0], b.shape[0])
    with torch.no_grad():
        pair[0].weight.copy_(torch.tensor(b.reshape(pair[0].weight.shape)))
        pair[3].weight.copy_(torch.tensor(a.reshape(pair[3].weight.shape)))
    return _with_eps(pair.to(dtype=weight.dtype, device=weight.device).eval())


def pair_modules(layer: nn.Module, n: int, dtype: torch.dtype | None = None) -> nn.Sequential:
    """The frozen pair of a target Linear or convolution, ``affine(n) → BatchNorm → ReLU → affine → BatchNorm``, no
    biases: the first affine layer has ``layer``'s inputs and geometry (kernel, stride, padding, dilation, padding
    mode), the second is ``1×1`` with ``layer``'s outputs. Its weights are torch's initialization, drawn with the
    global generator left as it was: the caller writes its own."""
    with torch.random.fork_rng(devices=[]):
        if isinstance(layer, nn.Linear):
            norm: type[nn.Module] = nn.BatchNorm1d
            first = nn.Linear(layer.in_features, n, bias=False, dtype=dtype)
            second = nn.Linear(n, layer.out_features, bias=False, dtype=dtype)
        else:
            norm = nn.BatchNorm1d if isinstance(layer, nn.Conv1d) else nn.BatchNorm2d
            geometry = {key: getattr(layer, key) for key in ("stride", "padding", "dilation", "padding_mode")}
            first = type(layer)(layer.in_channels, n, layer.kernel_size, bias=False, dtype=dtype, **geometry)
            second = type(layer)(n, layer.out_channels, 1, bias=False, dtype=dtype)
    outputs = second.weight.shape[0]
    return nn.Sequential(first, norm(n, dtype=dtype), nn.ReLU(), second, norm(outputs, dtype=dtype))


def _with_eps(pair: nn.Sequential) -> nn.Sequential:
    """``pair`` with every BatchNorm's eps set to `FROZEN_EPS`, the eps of every ``frozen_like`` route."""
    for module in pair.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eps = FROZEN_EPS
    return pair
