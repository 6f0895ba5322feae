"""The models of the claim ``certificate/routes``, each in every writing its routes take.

A model is a target and its frozen network (paper width, seed ``1000 + s``, seeded BatchNorm statistics),
built from a short layer spec so that every writing holds the same values:

* ``numpy``: `verify.TargetNetwork` / `verify.FrozenNetwork` (float64 arrays, or torch tensors of the dtype),
  `verify.ConvTargetNetwork` / `verify.ConvFrozenNetwork` written layer by layer with `verify.Conv.build`,
  `verify.MaxPool`, … (a target BatchNorm folded into its convolution), or `verify.ResidualFrozenNetwork`;
  reconstructed by `verify.reconstruct`. Convolutional and residual numpy networks are float64;
* ``sequential``: the ``nn.Sequential`` modules (for Case 2, the frozen `verify.nn.FrozenResidualMLP` and the
  target Sequential), fitted by `verify.nn.fit_norm_layers`;
* ``wrap``: each module inside a class whose forward returns ``self.net(x)``;
* ``steps``: each module as a class holding its layers as attributes and calling them one after the other.

Models: ``mlp`` (4 → 6 → 3), ``cnn1d`` (Conv1d with reflect padding, average pooling, Linear head),
``cnn2d`` (Conv2d with circular padding and a target BatchNorm2d, max pooling, Conv2d with replicate
padding, Linear head), ``residual`` (a Case-2 residual MLP 4 → 4 → 3 of two branches per stage).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

import verify
from verify.nn import frozen_like, frozen_residual_mlp, target_mlp
from verify.nn.frozen_like import _fold

__all__ = ["MODELS", "WRITINGS", "Model", "Steps", "Wrap", "build_model", "numpy_networks"]

WRITINGS = ("numpy", "sequential", "wrap", "steps")
"""The ways a model is written, in the claim's order."""


class Wrap(nn.Module):
    """A module inside a class: ``forward(x)`` returns ``self.net(x)``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Steps(nn.Module):
    """A Sequential's layers held as attributes ``step0``, ``step1``, … and called one after the other."""

    def __init__(self, net: nn.Sequential) -> None:
        super().__init__()
        self.count = len(net)
        for i, layer in enumerate(net):
            self.add_module(f"step{i}", layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(self.count):
            x = getattr(self, f"step{i}")(x)
        return x


# A spec entry: ("conv", out_channels, kernel, geometry) | ("bn",) | ("relu",) | ("maxpool", k) | ("avgpool", k)
# | ("flatten",) | ("linear", out_features).
_SPECS: dict[str, tuple[tuple[int, ...], tuple[tuple, ...]]] = {
    "cnn1d": (
        (2, 8),
        (
            ("conv", 3, 3, {"padding": 1, "padding_mode": "reflect"}),
            ("relu",),
            ("avgpool", 2),
            ("flatten",),
            ("linear", 2),
        ),
    ),
    "cnn2d": (
        (2, 6, 6),
        (
            ("conv", 2, 3, {"padding": 1, "padding_mode": "circular"}),
            ("bn",),
            ("relu",),
            ("maxpool", 2),
            ("conv", 2, 3, {"padding": 1, "padding_mode": "replicate"}),
            ("relu",),
            ("flatten",),
            ("linear", 2),
        ),
    ),
}
MODELS = ("mlp", "cnn1d", "cnn2d", "residual")
"""The claim's models (see the module notes)."""
MLP, RESIDUAL = (4, 6, 3), (4, 4, 3)
BRANCHES = 2


@dataclass
class Model:
    """One model in float64: the target and frozen modules, the input shape and the box ``[-1, 1]^shape``."""

    name: str
    target: nn.Module
    frozen: nn.Module
    shape: tuple[int, ...]

    @property
    def domain(self) -> verify.Box:
        """The box ``[-1, 1]`` over one input."""
        return verify.Box(-np.ones(self.shape), np.ones(self.shape))

    def to(self, dtype: torch.dtype) -> Model:
        """A copy with both modules' values rounded to ``dtype``."""
        return Model(self.name, copy.deepcopy(self.target).to(dtype), copy.deepcopy(self.frozen).to(dtype), self.shape)

    def written(self, writing: str) -> tuple[nn.Module, nn.Module]:
        """Fresh copies of (frozen, target) as ``writing`` writes them (not ``numpy``)."""
        frozen, target = copy.deepcopy(self.frozen), copy.deepcopy(self.target)
        if writing == "sequential":
            return frozen, target
        wrap: Callable[[nn.Module], nn.Module] = Wrap if writing == "wrap" else Steps
        if self.name == "residual":  # the frozen residual module is its own class: the target is rewritten
            return frozen, wrap(target)
        return wrap(frozen), wrap(target)


def _seeded_norms(module: nn.Module, generator: torch.Generator) -> None:
    """Running statistics drawn for every BatchNorm of ``module`` (mean ``N(0, 0.1²)``, variance in [0.5, 2])."""
    with torch.no_grad():
        for bn in module.modules():
            if isinstance(bn, nn.modules.batchnorm._BatchNorm):
                n = bn.num_features
                dtype = bn.running_mean.dtype
                bn.running_mean.copy_(0.1 * torch.randn(n, generator=generator, dtype=dtype))
                bn.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=generator, dtype=dtype))


def _cnn(spec: tuple[tuple, ...], shape: tuple[int, ...], generator: torch.Generator) -> nn.Sequential:
    spatial = len(shape) - 1
    layers: list[nn.Module] = []
    channels = shape[0]
    for entry in spec:
        kind = entry[0]
        if kind == "conv":
            layers.append(getattr(nn, f"Conv{spatial}d")(channels, entry[1], entry[2], **entry[3]))
            channels = entry[1]
        elif kind == "bn":
            bn = getattr(nn, f"BatchNorm{spatial}d")(channels)
            with torch.no_grad():
                bn.weight.copy_(0.5 + torch.rand(channels, generator=generator))
                bn.bias.copy_(0.1 * torch.randn(channels, generator=generator))
            layers.append(bn)
        elif kind == "relu":
            layers.append(nn.ReLU())
        elif kind in ("maxpool", "avgpool"):
            layers.append(getattr(nn, f"{'Max' if kind == 'maxpool' else 'Avg'}Pool{spatial}d")(entry[1]))
        elif kind == "flatten":
            layers.append(nn.Flatten())
        else:
            size = math.prod(nn.Sequential(*layers)(torch.zeros(1, *shape)).shape[1:])
            layers.append(nn.Linear(size, entry[1]))
    return nn.Sequential(*layers)


def build_model(name: str, seed: int) -> Model:
    """The model ``name`` in float64: target seeded by ``seed``, frozen network by ``1000 + seed``."""
    generator = torch.Generator().manual_seed(seed)
    if name == "mlp":
        target = target_mlp(MLP, seed=seed, dtype=torch.float64)
        frozen = frozen_like(target, "paper", seed=1000 + seed)
        shape: tuple[int, ...] = (MLP[0],)
    elif name == "residual":
        target = target_mlp(RESIDUAL, seed=seed, dtype=torch.float64)
        frozen = frozen_residual_mlp(RESIDUAL, branches=BRANCHES, width="paper", seed=1000 + seed, dtype=torch.float64)
        shape = (RESIDUAL[0],)
    elif name in _SPECS:
        shape, spec = _SPECS[name]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            target = _cnn(spec, shape, generator).double()
        _seeded_norms(target, generator)
        frozen = frozen_like(target.eval(), "paper", seed=1000 + seed)
    else:
        raise ValueError(f"model must be one of {MODELS}, got {name!r}")
    _seeded_norms(frozen, generator)
    return Model(name, target.eval(), frozen.eval(), shape)


def _arrays(values: list[torch.Tensor], dtype: torch.dtype) -> list[Any]:
    """The values as numpy float64 arrays (float64), or as tensors of ``dtype`` (the dense route reads it)."""
    return [v.detach().clone() if dtype != torch.float64 else v.detach().numpy().copy() for v in values]


def numpy_networks(model: Model, dtype: torch.dtype) -> tuple[Any, Any] | None:
    """The model written as numpy networks (the dense ones from tensors of ``dtype``), or None where none
    exists: convolutional and residual numpy networks are float64."""
    if model.name == "mlp":
        t_lin = [m for m in model.target if isinstance(m, nn.Linear)]
        f_lin = [m for m in model.frozen if isinstance(m, nn.Linear)]
        norms = [m for m in model.frozen if isinstance(m, nn.BatchNorm1d)]
        target = verify.TargetNetwork(
            _arrays([m.weight for m in t_lin], dtype), _arrays([m.bias for m in t_lin], dtype)
        )
        zeros = [torch.zeros(m.out_features, dtype=dtype) for m in f_lin]
        frozen = verify.FrozenNetwork(
            _arrays([m.weight for m in f_lin], dtype),
            _arrays(zeros, dtype),
            _arrays([bn.running_mean for bn in norms], dtype),
            _arrays([bn.running_var for bn in norms], dtype),
            eps=[bn.eps for bn in norms],
        )
        return target, frozen
    if dtype != torch.float64:
        return None
    if model.name == "residual":
        t_lin = [m for m in model.target if isinstance(m, nn.Linear)]
        target = verify.TargetNetwork(
            [m.weight.detach().numpy() for m in t_lin], [m.bias.detach().numpy() for m in t_lin]
        )
        return target, model.frozen.to_network()
    return _conv_networks(model)


def _host(tensor: torch.Tensor | None) -> np.ndarray | None:
    return None if tensor is None else tensor.detach().numpy().copy()


def _conv_networks(model: Model) -> tuple[verify.ConvTargetNetwork, verify.ConvFrozenNetwork]:
    """The CNN written with `verify.Conv.build`, `verify.Linear` and the pooling layers, from its spec."""
    _, spec = _SPECS[model.name]
    spatial = len(model.shape) - 1
    target_modules, frozen_modules = iter(model.target), iter(m for m in model.frozen if not isinstance(m, nn.ReLU))
    target_layers: list[Any] = []
    frozen_layers: list[Any] = []
    norms: list[nn.Module] = []

    def affine(module: nn.Module, entry: tuple) -> Any:
        if entry[0] == "linear":
            bias = _host(module.bias)
            return verify.Linear(_host(module.weight), np.zeros(module.out_features) if bias is None else bias)
        geometry = entry[3] if module.kernel_size[0] == entry[2] else {}  # the even layer of a pair is 1×1
        return verify.Conv.build(_host(module.weight), _host(module.bias), **geometry)

    for entry in spec:
        kind = entry[0]
        module = next(target_modules)
        if kind in ("conv", "linear"):
            target_layers.append(affine(module, entry))
            for _ in range(2):  # the frozen pair: odd layer and BatchNorm, even layer and BatchNorm
                frozen_layers.append(affine(next(frozen_modules), entry))
                norms.append(next(frozen_modules))
        elif kind == "bn":
            target_layers[-1] = _fold(target_layers[-1], module, "target BatchNorm")
        elif kind in ("maxpool", "avgpool", "flatten"):
            if kind == "flatten":
                op: Any = verify.Flatten()
            elif kind == "maxpool":
                op = verify.MaxPool((entry[1],) * spatial, (entry[1],) * spatial, (0,) * spatial, (1,) * spatial)
            else:
                op = verify.AvgPool((entry[1],) * spatial, (entry[1],) * spatial, (0,) * spatial, True)
            target_layers.append(op)
            frozen_layers.append(op)
            next(frozen_modules)
    target = verify.ConvTargetNetwork(target_layers, model.shape)
    frozen = verify.ConvFrozenNetwork(
        frozen_layers,
        model.shape,
        running_mean=[_host(bn.running_mean) for bn in norms],
        running_var=[_host(bn.running_var) for bn in norms],
        eps=[float(bn.eps) for bn in norms],
    )
    return target, frozen
