"""Training only the BatchNorm parameters: the baseline the construction is compared with.

`norm_only` makes a module's BatchNorm weight and bias its only trainable parameters, with an
explicit policy for the running statistics; `train_norm_only` runs Adam on them (Frankle, Schwab,
Morcos 2021) and records a `TrainingCurve`.
"""

from __future__ import annotations

import time
import types
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from verify.core.domains import Domain
from verify.core.validate import as_count, as_real, as_seed
from verify.nn.grammar import NORM
from verify.nn.modules import norm_layers

__all__ = ["TrainingCurve", "norm_only", "train_norm_only"]


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
    for bn in norm_layers(module):
        if bn.weight is None:
            raise ValueError(f"{bn} has affine=False: nothing to train")
        for name in NORM.tunes:
            getattr(bn, name).requires_grad_(True)
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
    inputs: np.ndarray | None = None,
) -> TrainingCurve:
    """Baseline (Frankle, Schwab, Morcos 2021): Adam on the BatchNorm weight/bias only, MSE loss.

    Inputs are drawn from ``domain`` (half on its boundary), or, with ``inputs`` (an array of shape
    ``(m, d_0)``), batches of its rows drawn with replacement (a data set's training inputs: the target's
    outputs on them are the labels); ``frozen`` is trained in place under `norm_only` (statistics frozen).
    Stops after ``steps`` steps or ``time_budget`` seconds. Returns the curve of the relative error on
    1024 held-out points of the domain.
    """
    steps = as_count(steps, "steps")
    lr = as_real(lr, "lr", positive=True)
    batch = as_count(batch, "batch")
    evaluate_every = as_count(evaluate_every, "evaluate_every")
    seed = as_seed(seed)
    if time_budget is not None:
        time_budget = as_real(time_budget, "time_budget", positive=True)
    parameters = [getattr(bn, name) for bn in norm_layers(norm_only(frozen)) for name in NORM.tunes]
    first = next(frozen.parameters())
    device, dtype = first.device, first.dtype
    d0 = first.shape[1]
    dom = domain.resolve(d0)
    rng = np.random.default_rng(seed)
    if inputs is not None:
        inputs = np.asarray(inputs, dtype=np.float64)
        if inputs.ndim != 2 or inputs.shape[1] != d0 or len(inputs) == 0:
            raise ValueError(f"inputs must be a non-empty array of shape (m, {d0}), got shape {inputs.shape}")
    held_out = torch.tensor(dom.sample(1024, np.random.default_rng(seed + 1)), device=device, dtype=dtype)
    with torch.no_grad():
        expected = target(held_out)
    optimizer = torch.optim.Adam(parameters, lr=lr)
    curve = TrainingCurve()
    start = time.perf_counter()
    for step in range(1, steps + 1):
        drawn = dom.sample(batch, rng) if inputs is None else inputs[rng.integers(0, len(inputs), size=batch)]
        x = torch.tensor(drawn, device=device, dtype=dtype)
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
