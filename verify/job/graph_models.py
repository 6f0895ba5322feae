"""Small models written as users write them (docs/design.md §8): the targets of the ``graph/*`` claims.

MLP classes with functional ReLU, a Sequential wrapped in a class with a leading ``nn.Flatten()``,
a residual MLP (``σ(x + F(x))`` with BatchNorm after each Linear, folded when read) and a
two-branch MLP joined by ``torch.cat`` and max pooling. `build` makes one by name, seeded, in
float64 and eval mode, with non-trivial BatchNorm statistics; torch's global generator is left
untouched.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MODELS", "build"]


class FunctionalMLP(nn.Module):
    """Four Linear layers with ``F.relu``, ``torch.relu`` and ``x.relu()`` between them."""

    input_shape = (6,)

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3, self.fc4 = nn.Linear(6, 8), nn.Linear(8, 8), nn.Linear(8, 5), nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc4(self.fc3(x).relu())


class WrappedMLP(nn.Module):
    """An ``nn.Sequential`` starting with ``nn.Flatten()`` inside a class, then a Linear head."""

    input_shape = (8,)

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Flatten(), nn.Linear(8, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 6), nn.ReLU()
        )
        self.head = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class ResidualMLP(nn.Module):
    """A stem, two residual blocks ``σ(x + BN(fc2(σ(BN(fc1(x))))))`` and a head."""

    input_shape = (5,)

    def __init__(self, width: int = 6, blocks: int = 2) -> None:
        super().__init__()
        self.stem = nn.Linear(5, width)
        self.fc1 = nn.ModuleList(nn.Linear(width, width) for _ in range(blocks))
        self.bn1 = nn.ModuleList(nn.BatchNorm1d(width) for _ in range(blocks))
        self.fc2 = nn.ModuleList(nn.Linear(width, width) for _ in range(blocks))
        self.bn2 = nn.ModuleList(nn.BatchNorm1d(width) for _ in range(blocks))
        self.head = nn.Linear(width, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        for fc1, bn1, fc2, bn2 in zip(self.fc1, self.bn1, self.fc2, self.bn2, strict=True):
            x = F.relu(bn2(fc2(F.relu(bn1(fc1(x))))) + x)
        return self.head(x)


class BranchMLP(nn.Module):
    """Two branches joined by ``torch.cat``, max pooling over neighbouring features, a head."""

    input_shape = (6,)

    def __init__(self) -> None:
        super().__init__()
        self.left, self.right, self.head = nn.Linear(6, 6), nn.Linear(6, 4), nn.Linear(5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        joined = torch.cat([F.relu(self.left(x)), F.relu(self.right(x))], dim=1)
        pooled = F.max_pool1d(joined.view(joined.size(0), 1, -1), 2)
        return self.head(torch.flatten(pooled, 1))


MODELS: dict[str, type[nn.Module]] = {
    "functional-relu": FunctionalMLP,
    "wrapped-sequential": WrappedMLP,
    "residual": ResidualMLP,
    "cat-and-pool": BranchMLP,
}
"""The model classes by the name the claims and tables use."""


def build(name: str, seed: int) -> nn.Module:
    """The model ``name`` of `MODELS` in float64 and eval mode, its parameters and BatchNorm statistics seeded
    by ``seed`` (running means in [−0.5, 0.5], variances in [0.5, 2], BN weights in [0.5, 1.5])."""
    if name not in MODELS:
        raise ValueError(f"model must be one of {tuple(MODELS)}, got {name!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MODELS[name]().double()
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.running_mean.uniform_(-0.5, 0.5)
                    module.running_var.uniform_(0.5, 2.0)
                    module.weight.uniform_(0.5, 1.5)
                    module.bias.uniform_(-0.5, 0.5)
    return model.eval()
