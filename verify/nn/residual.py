"""A frozen residual MLP in torch (docs/design.md §8, Case 2): its structure, and its reading into numpy.

The module `frozen_residual_mlp` returns, printed by torch as it is built::

    FrozenResidualMLP(inputs=d_0, outputs=d_L, stream=D)      x = [input; 0]  (zero-padded to the stream width D)
      stages: ModuleList                                       one stage per target layer k = 1 … L
        ResidualStage                                          x ← x + branch_1(x) + … (one after another), then
          branches: ModuleList                                 ReLU on the stream (Identity after the last stage)
            ResidualBranch                                     branch(x) = even_norm(even(relu(odd_norm(odd(x)))))
              odd:       Linear(D, n)        B_j, c_j
              odd_norm:  BatchNorm1d(n)      N_j   (tuned)
              relu:      ReLU
              even:      Linear(n, D)        A_j, c'_j
              even_norm: BatchNorm1d(D)      N'_j  (tuned; rows the branch does not write get γ = β = 0)
          relu:     ReLU | Identity
    output = x[:, :d_L]

Branches run one after another: each reads the stream its predecessors wrote. Only the BatchNorm
weight and bias are tuned; `verify.nn.fit_norm_layers`, `verify.nn.load_norm_params` and
`verify.nn.norm_only` work on it (its BatchNorms are, in module order, each branch's odd then even one).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from verify.core.memory import check_build
from verify.core.networks import TargetNetwork
from verify.core.residual import ResidualFrozenNetwork, residual_pairs
from verify.core.validate import as_count, as_real, as_sequence
from verify.nn.modules import frozen_from_layers

__all__ = ["FrozenResidualMLP", "ResidualBranch", "ResidualStage", "frozen_residual_mlp"]


class ResidualBranch(nn.Module):
    """One branch ``x ↦ N'(A σ(N(B x + c)) + c')``: ``odd`` (Linear D → n), ``odd_norm``, ``relu``, ``even`` (Linear
    n → D), ``even_norm``. Its output is added to the stream by the stage."""

    def __init__(self, stream: int, width: int, *, biases: bool, eps: float, dtype: torch.dtype) -> None:
        super().__init__()
        self.odd = nn.Linear(stream, width, bias=biases, dtype=dtype)
        self.odd_norm = nn.BatchNorm1d(width, eps=eps, dtype=dtype)
        self.relu = nn.ReLU()
        self.even = nn.Linear(width, stream, bias=biases, dtype=dtype)
        self.even_norm = nn.BatchNorm1d(stream, eps=eps, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The branch's contribution to the stream."""
        return self.even_norm(self.even(self.relu(self.odd_norm(self.odd(x)))))


class ResidualStage(nn.Module):
    """``branches`` applied one after another, each added to the stream, then ``relu`` (``Identity`` after the
    last stage)."""

    def __init__(self, branches: Sequence[ResidualBranch], last: bool) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.relu: nn.Module = nn.Identity() if last else nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x ← x + branch(x)`` for each branch in turn, then the stage's ReLU."""
        for branch in self.branches:
            x = x + branch(x)
        return self.relu(x)


class FrozenResidualMLP(nn.Module):
    """The frozen residual network of the module notes: a stream of width ``stream``, ``stages``, output rows."""

    def __init__(self, stages: Sequence[ResidualStage], *, inputs: int, outputs: int, stream: int) -> None:
        super().__init__()
        self.inputs, self.outputs, self.stream = inputs, outputs, stream
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, d_0) -> (batch, d_L)``: pad to the stream, run the stages, read the first ``d_L`` rows."""
        x = nn.functional.pad(x, (0, self.stream - self.inputs))
        for stage in self.stages:
            x = stage(x)
        return x[:, : self.outputs]

    def extra_repr(self) -> str:
        return f"inputs={self.inputs}, outputs={self.outputs}, stream={self.stream}"

    def to_network(self) -> ResidualFrozenNetwork:
        """The frozen weights, biases and BatchNorm statistics as a `verify.ResidualFrozenNetwork` (float64 copies)."""

        def array(tensor: torch.Tensor) -> np.ndarray:
            return tensor.detach().cpu().double().numpy()

        stages = [
            [frozen_from_layers((b.odd, b.even), (b.odd_norm, b.even_norm), array) for b in stage.branches]
            for stage in self.stages
        ]
        return ResidualFrozenNetwork(stages, inputs=self.inputs, outputs=self.outputs)


def frozen_residual_mlp(
    widths: Sequence[int],
    *,
    branches: int = 1,
    width: str | int | float | Sequence[Sequence[int]] = "paper",
    seed: int = 0,
    biases: bool = False,
    eps: float = 1e-5,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> FrozenResidualMLP:
    """A random frozen residual MLP for a target of widths ``d_0 … d_L`` (module notes), in eval mode.

    Parameters
    ----------
    widths : sequence of int
        The target's widths ``d_0 … d_L``: they fix the stream width ``max d_k``, the stages and what each
        branch must write.
    branches, width
        As in `verify.ResidualFrozenNetwork.for_target` (odd widths ``"paper"``, ``"minimal"``, an int, a
        float multiple of the paper width, or ``width[k][j]``).
    seed : int
        The frozen weights are `verify.ResidualFrozenNetwork.for_target`'s for this seed (``N(0, 1/fan_in)``);
        torch's global generator is left untouched.
    biases, eps, dtype, device
        Frozen Linear biases (default none), BatchNorm ``eps``, the dtype (default torch's default dtype) and
        device. BatchNorm starts at weight 1, bias 0, running mean 0, variance 1. The construction is solved
        in float64 and `verify.nn.fit_norm_layers` certifies it in the module's dtype; ``dtype=torch.float64``
        keeps its accuracy (in float32 the rigorous bound at d = 6, m = 3, L = 3 is ``1e4`` of the scale: the
        scales and shifts cancel, and such a module is refused).
    """
    dims = [as_count(w, f"widths[{j}]") for j, w in enumerate(as_sequence(widths, "widths"))]
    if len(dims) < 2:
        raise ValueError(f"widths must list d_0 … d_L (at least two integers >= 1), got {dims!r}")
    eps = as_real(eps, "eps", minimum=0.0)
    dtype = torch.get_default_dtype() if dtype is None else dtype
    # the numpy network and the parameters together, plus the widest branch's draws and its tensor copy
    check_build(
        "frozen_residual_mlp", residual_pairs(dims, width, as_count(branches, "branches")), (8 + dtype.itemsize, 16)
    )
    shape = TargetNetwork([np.zeros((b, a)) for a, b in itertools.pairwise(dims)])
    network = ResidualFrozenNetwork.for_target(shape, branches=branches, width=width, seed=seed, biases=biases)
    stream = network.stream_width
    stages = []
    for k, nets in enumerate(network.stages):
        built = []
        for net in nets:
            with torch.random.fork_rng(devices=[]):  # nn.Linear's own initialization draws from the global generator
                branch = ResidualBranch(stream, net.widths[1], biases=biases, eps=eps, dtype=dtype)
            with torch.no_grad():
                for linear, weight, bias in zip((branch.odd, branch.even), net.weights, net.biases, strict=True):
                    linear.weight.copy_(torch.tensor(weight))
                    if biases:
                        linear.bias.copy_(torch.tensor(bias))
            built.append(branch)
        stages.append(ResidualStage(built, last=k == len(network.stages) - 1))
    module = FrozenResidualMLP(stages, inputs=dims[0], outputs=dims[-1], stream=stream)
    if device is not None:
        module = module.to(device)
    return module.eval()
