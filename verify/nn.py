"""PyTorch modules in, tuned BatchNorm out (needs torch; ``pip install verify[torch]``).

::

    from verify.nn import frozen_mlp, from_module, load_norm_params, fit_norm_layers, norm_only

    frozen = frozen_mlp([4, 16, 4, 12, 3], seed=0)   # Linear -> BatchNorm1d -> ReLU ..., last Linear -> BatchNorm1d
    target = torch.nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 3))
    result = fit_norm_layers(frozen, target, verify.Ball(1.0))   # solves, loads BN weight/bias in place
    frozen.eval()(x)  ≈  target(x)                               # torch's own BatchNorm1d forward

Only ``nn.Sequential`` stacks of ``Linear``, ``BatchNorm1d`` and ``ReLU`` are read (``Dropout``
and ``Identity`` in eval mode are skipped as the identity). Anything else is refused with a
`ValueError` naming the layer, its index and why: LayerNorm's statistics depend on the input
(``LN(c·h) = LN(h)``, docs/design.md §7), other activations break the ReLU identities the construction
uses, convolutions and attention are not per-neuron affine maps of an MLP.
"""

from __future__ import annotations

import time
import types
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from verify.construction.reconstruct import Reconstruction, reconstruct
from verify.core.domains import Domain
from verify.core.networks import FrozenNetwork, TargetNetwork

__all__ = [
    "TrainingCurve",
    "fit_norm_layers",
    "from_module",
    "frozen_mlp",
    "load_norm_params",
    "norm_only",
    "target_from_module",
    "target_mlp",
    "train_norm_only",
]

_IDENTITY_IN_EVAL = (nn.Dropout, nn.Identity)
_WHY = {
    nn.LayerNorm: "LayerNorm normalizes with statistics of its own input (LN(c·h) = LN(h) for c > 0), so tuning "
    "it cannot reproduce a target that is not scale-invariant (docs/design.md §7); use BatchNorm1d",
    nn.GroupNorm: "GroupNorm normalizes with statistics of its own input (docs/design.md §7); use BatchNorm1d",
    nn.GELU: "the construction needs ReLU (σ(t) = t when active, σ(t) − σ(−t) = t); GELU is not piecewise linear",
    nn.Sigmoid: "the construction needs ReLU; Sigmoid is not piecewise linear",
    nn.Tanh: "the construction needs ReLU; Tanh is not piecewise linear",
}


def _refuse(index: int, layer: nn.Module, why: str) -> ValueError:
    return ValueError(f"layer {index} ({type(layer).__name__}) is not supported: {why}")


def _layers(module: nn.Module) -> list[tuple[int, nn.Module]]:
    if not isinstance(module, nn.Sequential):
        raise ValueError(
            f"expected an nn.Sequential of Linear / BatchNorm1d / ReLU layers, got {type(module).__name__}"
        )
    kept = []
    for index, layer in enumerate(module):
        if isinstance(layer, _IDENTITY_IN_EVAL):
            if layer.training and isinstance(layer, nn.Dropout) and layer.p > 0:
                raise _refuse(index, layer, "Dropout in train mode is random; call module.eval() first")
            continue
        if isinstance(layer, (nn.Linear, nn.ReLU, nn.BatchNorm1d)):
            kept.append((index, layer))
            continue
        why = next((w for kind, w in _WHY.items() if isinstance(layer, kind)), None)
        raise _refuse(index, layer, why or "only Linear, BatchNorm1d and ReLU (and eval-mode Dropout) are understood")
    return kept


def from_module(module: nn.Sequential) -> FrozenNetwork:
    """Read a frozen ``Linear -> BatchNorm1d (-> ReLU)`` stack into a `verify.FrozenNetwork`.

    Frozen Linear biases, BN running statistics and eps are read; BN weight/bias are what will be
    tuned. Every Linear must be followed by a BatchNorm1d with running statistics and an affine
    part, and every BatchNorm1d but the last by a ReLU. The result remembers the module's device
    and dtype, so reconstructions give tensors back there.
    """
    layers = _layers(module)
    weights, biases, means, variances, eps = [], [], [], [], None
    position = 0
    while position < len(layers):
        index, layer = layers[position]
        if not isinstance(layer, nn.Linear):
            raise _refuse(index, layer, "expected a Linear here (the pattern is Linear -> BatchNorm1d -> ReLU)")
        if position + 1 >= len(layers) or not isinstance(layers[position + 1][1], nn.BatchNorm1d):
            raise _refuse(index, layer, "every Linear must be followed by a BatchNorm1d (its γ, β are what is tuned)")
        bn_index, bn = layers[position + 1]
        if not bn.track_running_stats or bn.running_mean is None:
            raise _refuse(bn_index, bn, "BatchNorm1d without running statistics normalizes with batch statistics")
        if not bn.affine:
            raise _refuse(bn_index, bn, "BatchNorm1d with affine=False has no weight and bias to tune")
        if eps is not None and bn.eps != eps:
            raise _refuse(bn_index, bn, f"every BatchNorm1d must share one eps (found {bn.eps} and {eps})")
        eps = bn.eps
        weights.append(layer.weight.detach())
        biases.append(None if layer.bias is None else layer.bias.detach())
        means.append(bn.running_mean.detach())
        variances.append(bn.running_var.detach())
        position += 2
        last = position >= len(layers)
        if not last:
            relu_index, relu = layers[position]
            if not isinstance(relu, nn.ReLU):
                raise _refuse(relu_index, relu, "expected a ReLU after each BatchNorm1d but the last")
            position += 1
    return FrozenNetwork(weights, biases, means, variances, eps=float(eps))


def target_from_module(module: nn.Sequential) -> TargetNetwork:
    """Read a target ``Linear -> ReLU -> … -> Linear`` stack into a `verify.TargetNetwork`."""
    layers = _layers(module)
    weights, biases = [], []
    for position, (index, layer) in enumerate(layers):
        expect_linear = position % 2 == 0
        if expect_linear != isinstance(layer, nn.Linear) or isinstance(layer, nn.BatchNorm1d):
            raise _refuse(index, layer, "a target is Linear -> ReLU -> … -> Linear")
        if expect_linear:
            weights.append(layer.weight.detach())
            biases.append(None if layer.bias is None else layer.bias.detach())
    if not layers or not isinstance(layers[-1][1], nn.Linear):
        raise ValueError("a target must end with a Linear layer")
    return TargetNetwork(weights, biases)


def _norm_layers(module: nn.Module) -> list[_BatchNorm]:
    return [m for m in module.modules() if isinstance(m, _BatchNorm)]


def load_norm_params(module: nn.Module, result: Reconstruction) -> None:
    """Write ``result.gamma`` / ``result.beta`` into the module's BatchNorm ``weight`` / ``bias``, in place.

    Nothing else changes: running statistics, eps, Linear weights and biases keep their values.
    """
    norms = _norm_layers(module)
    if len(norms) != len(result.gamma):
        raise ValueError(f"the module has {len(norms)} BatchNorm layers but the result tunes {len(result.gamma)}")
    with torch.no_grad():
        for j, (bn, gamma, beta) in enumerate(zip(norms, result.gamma, result.beta, strict=True)):
            if bn.weight.shape[0] != len(gamma):
                raise ValueError(f"BatchNorm {j} has {bn.weight.shape[0]} features but the result has {len(gamma)}")
            bn.weight.copy_(torch.as_tensor(np.asarray(gamma.cpu() if hasattr(gamma, "cpu") else gamma)))
            bn.bias.copy_(torch.as_tensor(np.asarray(beta.cpu() if hasattr(beta, "cpu") else beta)))


def fit_norm_layers(
    frozen: nn.Sequential, target: nn.Sequential, domain: Domain | None, **options: object
) -> Reconstruction:
    """Solve for the BatchNorm parameters of ``frozen`` that make it compute ``target`` on ``domain``.

    Reads both modules, calls `verify.reconstruct` (``options``: ``mode``, ``method``, …), loads
    the BN weight and bias into ``frozen`` in place and returns the `Reconstruction` (its
    certificate holds). ``domain=None`` needs a paired frozen network (exact on all of R^d).
    """
    result = reconstruct(target_from_module(target), from_module(frozen), domain, **options)
    load_norm_params(frozen, result)
    return result


def _stay_in_eval(self: nn.Module, mode: bool = True) -> nn.Module:
    return nn.Module.train(self, False)


def norm_only(module: nn.Module, *, statistics: str = "frozen") -> nn.Module:
    """Make only the BatchNorm affine parameters trainable; return the module.

    Layers are selected by type (every ``nn.modules.batchnorm._BatchNorm``), never by parameter
    name. ``requires_grad=False`` alone does not stop BatchNorm from updating its running
    mean/variance in train mode, and a later ``.train()`` silently turns that back on, so the
    statistics policy is explicit:

    * ``"frozen"`` (default): every BatchNorm stays in eval mode for good (its ``train()`` is
      overridden), so it always normalizes with its running statistics, which never change. This
      is the network the construction tunes.
    * ``"batch"``: BatchNorm normalizes with batch statistics in train mode (torch's default), but
      ``momentum = 0`` keeps the running statistics from drifting.
    """
    if statistics not in ("frozen", "batch"):
        raise ValueError(f"statistics must be 'frozen' or 'batch', got {statistics!r}")
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    for bn in _norm_layers(module):
        if bn.weight is None:
            raise ValueError(f"{bn} has affine=False: nothing to train")
        bn.weight.requires_grad_(True)
        bn.bias.requires_grad_(True)
        if statistics == "frozen":
            bn.train = types.MethodType(_stay_in_eval, bn)
            bn.train(False)
        else:
            bn.momentum = 0.0
    return module


@dataclass
class TrainingCurve:
    """Relative error ``max |g − f| / max |f|`` on held-out domain points over training."""

    steps: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    relative_error: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        """Smallest relative error reached."""
        return min(self.relative_error, default=float("inf"))


def train_norm_only(
    frozen: nn.Sequential,
    target: nn.Sequential,
    domain: Domain,
    steps: int,
    lr: float,
    *,
    batch: int = 256,
    seed: int = 0,
    time_budget: float | None = None,
    evaluate_every: int = 10,
) -> TrainingCurve:
    """Baseline (Frankle, Schwab, Morcos 2021): Adam on the BatchNorm weight/bias only, MSE loss.

    Inputs are drawn from ``domain`` (half on its boundary); ``frozen`` is trained in place under
    `norm_only` (statistics frozen). Stops after ``steps`` steps or ``time_budget`` seconds.
    Returns the curve of the relative error on 1024 held-out points of the domain.
    """
    if steps < 1 or lr <= 0:
        raise ValueError(f"steps must be >= 1 and lr > 0, got steps={steps!r}, lr={lr!r}")
    parameters = [p for bn in _norm_layers(norm_only(frozen)) for p in (bn.weight, bn.bias)]
    first = next(frozen.parameters())
    device, dtype = first.device, first.dtype
    d0 = first.shape[1]
    dom = domain.resolve(d0)
    rng = np.random.default_rng(seed)
    held_out = torch.tensor(dom.sample(1024, np.random.default_rng(seed + 1)), device=device, dtype=dtype)
    with torch.no_grad():
        expected = target(held_out)
    optimizer = torch.optim.Adam(parameters, lr=lr)
    curve = TrainingCurve()
    start = time.perf_counter()
    for step in range(1, steps + 1):
        x = torch.tensor(dom.sample(batch, rng), device=device, dtype=dtype)
        with torch.no_grad():
            y = target(x)
        optimizer.zero_grad()
        loss = torch.mean((frozen(x) - y) ** 2)
        loss.backward()
        optimizer.step()
        elapsed = time.perf_counter() - start
        if step % evaluate_every == 0 or step == steps or (time_budget is not None and elapsed > time_budget):
            with torch.no_grad():
                error = float((frozen(held_out) - expected).abs().max() / expected.abs().max())
            curve.steps.append(step)
            curve.seconds.append(time.perf_counter() - start)
            curve.relative_error.append(error)
            curve.loss.append(float(loss.detach()))
        if time_budget is not None and elapsed > time_budget:
            break
    return curve


def target_mlp(
    widths: Sequence[int], *, seed: int = 0, dtype: torch.dtype | None = None, device: torch.device | str | None = None
) -> nn.Sequential:
    """A random target ``Linear -> ReLU -> … -> Linear`` with widths ``d_0 … d_L`` (torch's default
    ``nn.Linear`` initialization, seeded by ``seed`` without touching the global generator)."""
    dims = [int(w) for w in widths]
    if len(dims) < 2 or any(w < 1 for w in dims):
        raise ValueError(f"widths must list d_0 … d_L (at least two integers >= 1), got {list(widths)!r}")
    layers: list[nn.Module] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for j in range(1, len(dims)):
            layers.append(nn.Linear(dims[j - 1], dims[j], dtype=dtype))
            if j < len(dims) - 1:
                layers.append(nn.ReLU())
    module = nn.Sequential(*layers)
    return module if device is None else module.to(device)


def frozen_mlp(
    widths: Sequence[int],
    *,
    seed: int = 0,
    paired: bool = False,
    biases: bool = False,
    eps: float = 1e-5,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> nn.Sequential:
    """A random frozen ``Linear -> BatchNorm1d -> ReLU`` stack with widths ``n_0 … n_{2L}``, in eval mode.

    Linear weights are ``N(0, 1/fan_in)`` (torch generator seeded by ``seed``); BatchNorm starts at
    weight 1, bias 0, running mean 0, variance 1. ``dtype`` defaults to torch's default dtype (so
    the module takes the same inputs as an ``nn.Linear`` built next to it); the construction is
    solved in float64 either way, and ``dtype=torch.float64`` keeps its full accuracy in the module.
    ``paired=True`` builds the looks-linear network of docs/design.md §3: every odd layer is ``[B; −B]``
    (its width must be even) and the next layer's columns are ``[A, −A]``, so `verify.reconstruct`
    with ``domain=None`` is exact on all of R^d.
    """
    dims = [int(w) for w in widths]
    if len(dims) < 3 or len(dims) % 2 == 0 or any(w < 1 for w in dims):
        raise ValueError(f"widths must list n_0 … n_2L (an odd number >= 3 of integers >= 1), got {list(widths)!r}")
    if paired and any(dims[j] % 2 for j in range(1, len(dims), 2)):
        raise ValueError(f"paired=True needs even odd-layer widths n_1, n_3, …, got {dims[1::2]}")
    dtype = torch.get_default_dtype() if dtype is None else dtype
    generator = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    previous_half = None
    for j in range(1, len(dims)):
        n_in, n_out = dims[j - 1], dims[j]
        odd = j % 2 == 1
        linear = nn.Linear(n_in, n_out, bias=biases, dtype=dtype)
        with torch.no_grad():
            if paired and odd:
                half = torch.randn(n_out // 2, n_in, generator=generator, dtype=dtype) / n_in**0.5
                linear.weight.copy_(torch.cat([half, -half]))
                if biases:
                    c = torch.randn(n_out // 2, generator=generator, dtype=dtype)
                    linear.bias.copy_(torch.cat([c, -c]))
            elif paired and previous_half is not None:
                half = torch.randn(n_out, previous_half, generator=generator, dtype=dtype) / n_in**0.5
                linear.weight.copy_(torch.cat([half, -half], dim=1))
                if biases:
                    linear.bias.copy_(torch.randn(n_out, generator=generator, dtype=dtype))
            else:
                linear.weight.copy_(torch.randn(n_out, n_in, generator=generator, dtype=dtype) / n_in**0.5)
                if biases:
                    linear.bias.copy_(torch.randn(n_out, generator=generator, dtype=dtype))
        previous_half = n_out // 2 if (paired and odd) else None
        layers += [linear, nn.BatchNorm1d(n_out, eps=eps, dtype=dtype)]
        if j < len(dims) - 1:
            layers.append(nn.ReLU())
    module = nn.Sequential(*layers)
    if device is not None:
        module = module.to(device)
    return module.eval()
