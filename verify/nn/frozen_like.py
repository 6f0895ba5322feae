"""A frozen network shaped for a torch target, and convolutional torch modules read into numpy (docs/design.md §9).

`frozen_like` builds the frozen ``nn.Sequential`` for a target ``nn.Sequential``:

* every ``Conv1d``/``Conv2d`` becomes ``Conv(k, same stride/padding/dilation/padding mode, n channels,
  no bias) -> BatchNorm -> ReLU -> Conv 1x1 (C_out channels, no bias) -> BatchNorm`` (then the
  target's ReLU);
* every ``Linear`` becomes ``Linear(n) -> BatchNorm1d -> ReLU -> Linear(d_out) -> BatchNorm1d``;
* the target's ReLUs, pooling (``MaxPool``, ``AvgPool``, ``AdaptiveAvgPool``) and ``Flatten`` are
  copied in the target's places (a ``MaxPool`` before its ReLU stays there); eval-mode ``Dropout``
  and ``Identity`` are dropped (the graph reader gives them no node); the target's own BatchNorm
  (eval mode) is folded into the layer before it when the target is read.

A target of ``Linear``/``ReLU`` only gets the MLP frozen network of `verify.nn.frozen_mlp`.

`chain_networks` lowers a target graph that is a chain (`verify.nn.graph.read_graph`) and the frozen
pairs matched to it (`verify.nn.graph_match.match`) into `verify.core.conv_networks.ConvTargetNetwork`
and `ConvFrozenNetwork` for an input shape (the domain's); `fit_norm_layers` uses it for every chain
with convolutions, pooling or a target BatchNorm, and `conv_networks` for two modules. A target layer
the construction does not read is refused with a ``ValueError`` naming the layer, its index and what
would work.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import fx, nn
from torch.nn.modules.batchnorm import _BatchNorm

from verify.core.conv_networks import ConvFrozenNetwork, ConvTargetNetwork, conv_pairs, odd_widths
from verify.core.convolution import AdaptiveAvgPool, AffineLayer, AvgPool, Conv, Flatten, Layer, Linear, MaxPool
from verify.core.domains import Ball, Box, Domain
from verify.core.memory import check_build
from verify.core.validate import as_seed
from verify.nn.graph import COPY, LINEAR, POOLS, RELU, GraphNode, ModelGraph, read_graph
from verify.nn.graph_frozen import frozen_graph, pair_modules
from verify.nn.graph_lower import numpy_layer
from verify.nn.graph_match import match
from verify.nn.mlp import frozen_mlp
from verify.nn.modules import check_dense

__all__ = ["conv_networks", "frozen_like", "read_target_layers", "refuse_train_norms", "uses_structure"]

_CONV = (nn.Conv1d, nn.Conv2d)
_STRUCTURE = (*POOLS, nn.Flatten)
_SKIPPED = (nn.Dropout, nn.Identity)
_WORKS = (
    "Conv1d, Conv2d (groups=1), Linear, ReLU, BatchNorm1d/2d (folded into the layer before it), MaxPool1d/2d, "
    "AvgPool1d/2d, AdaptiveAvgPool1d/2d, Flatten and eval-mode Dropout"
)


def _array(tensor: torch.Tensor | None) -> np.ndarray | None:
    return None if tensor is None else tensor.detach().cpu().double().numpy()


def _items(module: nn.Module, what: str) -> list[nn.Module]:
    """The layers of a Sequential, nested Sequentials unrolled."""
    if not isinstance(module, nn.Sequential):
        raise ValueError(f"{what} must be a torch nn.Sequential of {_WORKS}; got {type(module).__name__}")
    out = []
    for layer in module:
        out.extend(_items(layer, what) if isinstance(layer, nn.Sequential) else [layer])
    return out


def uses_structure(target: nn.Module, frozen: nn.Module) -> bool:
    """Whether the pair needs `conv_networks` (the MLP reader `verify.nn.from_module` does not read it): a
    convolution, pooling or Flatten in either module, or a BatchNorm in the target (to be folded)."""
    kinds = (*_CONV, *POOLS, nn.BatchNorm2d)
    return any(isinstance(m, kinds) for m in (*target.modules(), *frozen.modules())) or any(
        isinstance(m, _BatchNorm) for m in target.modules()
    )


def _affine(layer: nn.Module, index: int) -> AffineLayer:
    """A torch Linear or convolution as the numpy layer (float64; a missing bias as zeros); a grouped convolution
    refused naming the layer."""
    if not isinstance(layer, nn.Linear) and layer.groups != 1:
        raise ValueError(
            f"layer {index} ({layer}): groups={layer.groups} is not supported: a grouped convolution's kernel is "
            "block-diagonal over channels, which the construction's flattened kernels (one scale per frozen "
            "channel) do not model; use groups=1"
        )
    return numpy_layer(layer)


def _pair(value: object, spatial: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (int(value),) * spatial


def _structure(layer: nn.Module, index: int) -> Layer:
    name = f"layer {index} ({layer})"
    spatial = 1 if "1d" in type(layer).__name__ else 2
    if isinstance(layer, nn.Flatten):
        if layer.start_dim != 1 or layer.end_dim != -1:
            raise ValueError(f"{name}: only nn.Flatten() (start_dim=1, end_dim=-1) is supported")
        return Flatten()
    if isinstance(layer, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)):
        size = _pair(layer.output_size, spatial)
        if any(s is None for s in size):
            raise ValueError(f"{name}: an output size of None is not supported; give every size")
        return AdaptiveAvgPool(tuple(int(s) for s in size))
    if layer.ceil_mode:
        raise ValueError(f"{name}: ceil_mode=True is not supported; use ceil_mode=False")
    kernel = _pair(layer.kernel_size, spatial)
    stride = _pair(layer.stride if layer.stride is not None else layer.kernel_size, spatial) or kernel
    padding = _pair(layer.padding, spatial)
    if isinstance(layer, (nn.MaxPool1d, nn.MaxPool2d)):
        if layer.return_indices:
            raise ValueError(f"{name}: return_indices=True is not supported")
        return MaxPool(kernel, stride, padding, _pair(layer.dilation, spatial))
    if getattr(layer, "divisor_override", None) is not None:
        raise ValueError(f"{name}: divisor_override is not supported; leave it None")
    return AvgPool(kernel, stride, padding, bool(layer.count_include_pad))


def _fold(layer: AffineLayer, norm: _BatchNorm, name: str) -> AffineLayer:
    """``layer`` followed by the eval-mode BatchNorm ``norm``: one affine layer (per-channel scale and shift)."""
    if norm.running_mean is None or norm.running_var is None:
        raise ValueError(f"{name}: a BatchNorm without running statistics depends on the batch; use eval-mode stats")
    if norm.num_features != layer.out_channels:
        raise ValueError(f"{name}: {norm.num_features} features after a layer of {layer.out_channels} channels")
    weight = _array(norm.weight) if norm.affine else np.ones(norm.num_features)
    bias = _array(norm.bias) if norm.affine else np.zeros(norm.num_features)
    scale = weight / np.sqrt(_array(norm.running_var) + norm.eps)
    shift = bias - scale * _array(norm.running_mean)
    shape = (-1, *([1] * (layer.weight.ndim - 1)))
    new_weight, new_bias = layer.weight * scale.reshape(shape), scale * layer.bias + shift
    if isinstance(layer, Conv):
        return layer.like(new_weight, new_bias)
    return Linear(new_weight, new_bias)


def refuse_train_norms(target: nn.Module) -> None:
    """Refuse a target BatchNorm in train mode: it normalizes with each batch's statistics, not the running
    statistics that are folded in; ValueError naming the layer and ``target.eval()`` as the fix."""
    for name, module in target.named_modules():
        if isinstance(module, _BatchNorm) and (module.training or not module.track_running_stats):
            raise ValueError(
                f"target layer '{name or type(target).__name__}' ({type(module).__name__}) normalizes with batch "
                "statistics (train mode or track_running_stats=False), so the function the target computes depends "
                "on the batch; call target.eval() (on a BatchNorm with running statistics) to fit the target as it "
                "runs at inference"
            )


def read_target_layers(target: nn.Module) -> list[Layer]:
    """The target ``nn.Sequential`` as numpy layers: BatchNorm folded, a ReLU implied after every affine layer
    but the last (a ``MaxPool`` between a layer and its ReLU moves after the ReLU: they commute)."""
    layers: list[Layer] = []
    waiting: list[Layer] = []  # max pools seen between an affine layer and its ReLU
    needs_relu = False
    items = _items(target, "target")
    refuse_train_norms(target)
    for i, layer in enumerate(items):
        name = f"target layer {i} ({layer})"
        if isinstance(layer, _SKIPPED):
            if isinstance(layer, nn.Dropout) and layer.training and layer.p > 0:
                raise ValueError(f"{name}: a train-mode Dropout is random; call target.eval()")
            continue
        if isinstance(layer, (*_CONV, nn.Linear)):
            if needs_relu:
                raise ValueError(f"{name}: two affine layers without a ReLU between them; add an nn.ReLU()")
            layers.append(_affine(layer, i))
            needs_relu = True
        elif isinstance(layer, _BatchNorm) and not isinstance(layer, nn.SyncBatchNorm):
            if not layers or not isinstance(layers[-1], AffineLayer) or not needs_relu or waiting:
                raise ValueError(f"{name}: a target BatchNorm must follow a Conv or Linear directly (it is folded in)")
            layers[-1] = _fold(layers[-1], layer, name)
        elif isinstance(layer, nn.ReLU):
            if not needs_relu:
                raise ValueError(f"{name}: a ReLU must follow a Conv or Linear (and its BatchNorm)")
            needs_relu = False
            layers.extend(waiting)
            waiting = []
        elif isinstance(layer, _STRUCTURE):
            op = _structure(layer, i)
            if needs_relu and isinstance(op, MaxPool):
                waiting.append(op)
            elif needs_relu:
                raise ValueError(
                    f"{name}: {type(layer).__name__} between a layer and its ReLU; the construction needs the ReLU "
                    "right after each layer (max pooling may come first): move the ReLU before it"
                )
            else:
                layers.append(op)
        else:
            raise ValueError(f"{name} is not supported; supported layers: {_WORKS}")
    if not layers or not any(isinstance(layer, AffineLayer) for layer in layers):
        raise ValueError(f"target has no Conv or Linear layer; supported layers: {_WORKS}")
    if not needs_relu:
        raise ValueError(
            "target must end with a Conv or Linear (its output is linear: a ReLU or pooling after the last layer "
            "is not part of the construction); remove the trailing layers"
        )
    if waiting:
        raise ValueError("target ends with a MaxPool after its last layer; the last layer must be a Conv or Linear")
    return layers


def chain_layers(graph: ModelGraph) -> nn.Sequential | None:
    """A target graph whose nodes form a chain (each reads the one before, the last is the output) as the
    ``nn.Sequential`` of its layers, the module's own (a folded BatchNorm after its layer, ``F.relu`` as
    ``nn.ReLU()``, ``torch.flatten(x, 1)`` as ``nn.Flatten()``); None for any other graph."""
    modules: list[nn.Module] = []
    previous = graph.nodes[0].name
    for node in graph.nodes[1:]:
        if node.inputs != (previous,):
            return None
        fx_node = node.node
        if node.kind == LINEAR:
            modules += node.modules
        elif node.kind == RELU:
            modules.append(nn.ReLU())
        elif node.kind == COPY and len(node.modules) == 1 and isinstance(node.modules[0], _STRUCTURE):
            modules.append(node.modules[0])
        elif fx_node.op == "call_function" and fx_node.target is torch.flatten and fx_node.args[1:] in ((1,), (1, -1)):
            modules.append(nn.Flatten())
        else:
            return None
        previous = node.name
    return nn.Sequential(*modules) if graph.output == previous else None


def chain_networks(
    target: ModelGraph, pairs: dict[str, GraphNode], domain: Domain | None
) -> tuple[ConvTargetNetwork, ConvFrozenNetwork] | None:
    """The convolutional networks (float64) of a target graph and the frozen pairs `verify.nn.graph_match.match`
    found for it, over the domain's input shape; None when the target graph is not a chain of the convolutional
    construction (`chain_layers`, then `read_target_layers`): the graph route reads it then.

    The frozen network is the target's with every layer replaced by its pair's two affine layers, as the
    frozen module holds them, and the pair's BatchNorm statistics: `match` has checked that the frozen
    module runs that graph. ValueError when the domain's shape does not fit the first layer.
    """
    chain = chain_layers(target)
    if chain is None:
        return None
    try:
        target_layers = read_target_layers(chain)
    except ValueError:
        return None
    layers: list[Layer] = []
    norms: list[_BatchNorm] = []
    pair_modules_ = iter(pairs[node.name].modules for node in target.layers)
    for index, layer in enumerate(target_layers):
        if not isinstance(layer, AffineLayer):
            layers.append(layer)
            continue
        odd, odd_norm, even, even_norm = next(pair_modules_)
        layers += [_affine(odd, index), _affine(even, index)]
        norms += [odd_norm, even_norm]
    return _networks(target_layers, layers, norms, domain)


def _input_shape(domain: Domain | None, target_layers: Sequence[Layer]) -> tuple[int, ...]:
    """The shape of one input: the domain's ``shape``, or its dimension when the target starts with a Linear
    (or a Flatten), or the first Linear's input width for a domain of any dimension (``verify.Ball(1.0)``);
    ValueError naming the first layer and what would work otherwise."""
    first = target_layers[0]
    if isinstance(domain, Box) and domain.shape is not None:
        return domain.shape
    if isinstance(domain, (Box, Ball)) and domain.dim is not None and isinstance(first, (Linear, Flatten)):
        return (domain.dim,)
    if isinstance(domain, (Box, Ball)) and isinstance(first, Linear):  # an MLP: a domain of any dimension
        return (first.in_channels,)
    channels = next(layer for layer in target_layers if isinstance(layer, AffineLayer)).in_channels
    raise ValueError(
        f"the domain must give the shape of one input for a target whose first layer is {first.name}: "
        f"verify.Box(lo, hi) with lo, hi shaped like one input (e.g. ({channels}, H, W)), or "
        f"verify.Box(lo, hi, shape=({channels}, H, W)); got {domain!r}"
    )


def _networks(
    target_layers: list[Layer], frozen_layers: list[Layer], norms: list[_BatchNorm], domain: Domain | None
) -> tuple[ConvTargetNetwork, ConvFrozenNetwork]:
    shape = _input_shape(domain, target_layers)
    try:
        t = ConvTargetNetwork(target_layers, shape)
    except ValueError as error:
        raise ValueError(f"the domain's input shape {shape} does not fit the target: {error}") from None
    f = ConvFrozenNetwork(
        frozen_layers,
        shape,
        running_mean=[_array(bn.running_mean) for bn in norms],
        running_var=[_array(bn.running_var) for bn in norms],
        eps=[float(bn.eps) for bn in norms],
    )
    return t, f


def conv_networks(
    target: nn.Module, frozen: nn.Module, domain: Domain | None
) -> tuple[ConvTargetNetwork, ConvFrozenNetwork]:
    """Both modules read into numpy networks (float64) over the domain's input shape: traced by torch.fx
    (`verify.nn.graph.read_graph`), the frozen graph matched node by node against the target's
    (`verify.nn.graph_match.match`) and lowered by `chain_networks`. ValueError naming the node or layer when a
    module is not supported, the frozen module does not run the target's graph, the target is not a chain of
    the convolutional construction, or the domain's shape does not fit the first layer."""
    target_graph = read_graph(target, "target")
    networks = chain_networks(target_graph, match(target_graph, read_graph(frozen, "frozen")), domain)
    if networks is None:
        read_target_layers(chain_layers(target_graph) or target)  # names the layer the construction does not read
        raise ValueError(
            f"the target {type(target).__name__} is not a chain of convolutional layers: read it with "
            "verify.nn.fit_norm_layers, which reconstructs graphs (docs/design.md §10)"
        )
    return networks


def frozen_like(
    target: nn.Module, width: str | int | float | Sequence[int] = "paper", *, seed: int = 0, density: float = 1.0
) -> nn.Sequential | fx.GraphModule:
    """A random frozen ``nn.Sequential`` (eval mode, the target's dtype and device) that can be tuned to ``target``.

    A target that is not an ``nn.Sequential`` (a model written as a class, a ResNet) gets the same graph
    with each Linear/Conv2d replaced by its frozen pair (`verify.nn.graph_frozen.frozen_graph`, docs/design.md §10).

    Parameters
    ----------
    target : nn.Sequential
        Conv1d/Conv2d (``groups=1``), Linear, ReLU, BatchNorm1d/2d (folded), MaxPool, AvgPool,
        AdaptiveAvgPool, Flatten, eval-mode Dropout; it ends with a Conv or Linear.
    width : "paper", "minimal", int, float or sequence of int
        Odd channels ``n`` per target layer: ``"paper"`` is ``C_out·C_in·k_h·k_w`` (``d_out·d_in`` for a
        Linear), ``"minimal"`` is ``C_out(C_in·k_h·k_w − 1) + 1``, an int the same for every layer, a
        float a multiple of ``"paper"``, a sequence one per layer.
    seed : int
        Seeds the frozen weights ``N(0, 1/fan_in)`` (a generator of its own; torch's global one is untouched).
    density : float
        Keep each frozen weight with this probability (Bernoulli mask, kept weights scaled by
        ``1/sqrt(density)``, docs/design.md §4); 1 is dense.

    Returns
    -------
    nn.Sequential
        Conv pairs ``Conv(k×k) -> BatchNormNd -> ReLU -> Conv(1×1) -> BatchNormNd`` and Linear pairs
        with BatchNorm1d, the target's ReLUs, pooling and Flatten in place; frozen biases are absent,
        BatchNorm starts at weight 1, bias 0, running mean 0, variance 1 (``eps = 1e-5``).
    """
    check_dense(target, "target")
    if not isinstance(target, nn.Sequential):  # a model written as a class: its graph (docs/design.md §10)
        if density != 1:
            raise ValueError(f"density={density!r}: sparse frozen pairs are built for nn.Sequential targets only")
        return frozen_graph(target, width, seed=seed)
    layers = read_target_layers(target)
    affine = [layer for layer in layers if isinstance(layer, AffineLayer)]
    widths = odd_widths(width, affine)
    if isinstance(density, bool) or not isinstance(density, (int, float)) or not 0 < density <= 1:
        raise ValueError(f"density must be a number in (0, 1], got {density!r}")
    parameter = next(target.parameters())
    dtype, device = parameter.dtype, parameter.device
    seed = as_seed(seed)
    if all(isinstance(layer, Linear) for layer in layers) and density == 1:  # an MLP: frozen_mlp's stack
        dims = [affine[0].in_channels]
        for layer, n in zip(affine, widths, strict=True):
            dims += [n, layer.out_channels]
        return frozen_mlp(dims, seed=seed, dtype=dtype, device=device)
    # each parameter once, plus the widest pair's float64 draw, mask, masked and cast copies while they are copied in
    check_build("frozen_like", conv_pairs(affine, widths), (dtype.itemsize, 3 * 8 + dtype.itemsize))
    generator = torch.Generator().manual_seed(seed)

    def draw(shape: tuple[int, ...]) -> torch.Tensor:
        values = torch.randn(shape, generator=generator, dtype=torch.float64) / math.sqrt(math.prod(shape[1:]))
        if density < 1:
            keep = torch.rand(shape, generator=generator, dtype=torch.float64) < density
            values = torch.where(keep, values / math.sqrt(density), torch.zeros_like(values))
        return values.to(dtype)

    modules: list[nn.Module] = []
    position = 0
    for original in _items(target, "target"):  # the target's order (read_target_layers has checked it)
        if isinstance(original, (*_CONV, nn.Linear)):
            pair = pair_modules(original, widths[position], dtype)
            with torch.no_grad():
                pair[0].weight.copy_(draw(tuple(pair[0].weight.shape)))
                pair[3].weight.copy_(draw(tuple(pair[3].weight.shape)))
            modules += list(pair)
            position += 1
        elif isinstance(original, nn.ReLU):
            modules.append(nn.ReLU())
        elif isinstance(original, _STRUCTURE):
            modules.append(copy.deepcopy(original))
    return nn.Sequential(*modules).to(device).eval()
