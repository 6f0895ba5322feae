"""Small models written as users write them (docs/design.md §10): the targets of the ``graph/*`` claims.

MLP classes with functional ReLU, a Sequential wrapped in a class with a leading ``nn.Flatten()``,
a residual MLP (``σ(x + F(x))`` with BatchNorm after each Linear, folded when read), a
two-branch MLP joined by ``torch.cat`` and max pooling, a small CNN class, and ResNets of
`BasicBlock` s (`ResNet`, `RESNETS`). `build` makes one by name, seeded, in
float64 and eval mode, with non-trivial BatchNorm statistics; torch's global generator is left
untouched.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MODELS", "RESNETS", "BasicBlock", "ResNet", "build", "domain_of"]


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


class BasicBlock(nn.Module):
    """A ResNet basic block, written as users write it: ``σ(BN(conv(σ(BN(conv(x))))) + shortcut(x))``, the
    shortcut the identity or, when the stride or the channels change, a 1 × 1 convolution with BatchNorm."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """A stem convolution ``3 → channels[0]`` with BatchNorm and ReLU, one stage of ``blocks`` BasicBlocks per
    entry of ``channels`` (stride 2 at the start of every stage but the first), global average pooling
    and a Linear head to ``classes``. ``ResNet((16, 32, 64), 1)`` is ResNet-8-shaped."""

    def __init__(self, channels: tuple[int, ...], blocks: int = 1, classes: int = 10, c_in: int = 3) -> None:
        super().__init__()
        self.stem = nn.Conv2d(c_in, channels[0], 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(channels[0])
        layers, previous = [], channels[0]
        for stage, width in enumerate(channels):
            for block in range(blocks):
                layers.append(BasicBlock(previous, width, 2 if stage > 0 and block == 0 else 1))
                previous = width
        self.stages = nn.Sequential(*layers)
        self.head = nn.Linear(previous, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(F.relu(self.bn(self.stem(x))))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class SmallCNN(nn.Module):
    """A CNN class taking flat inputs it views as ``2 × 6 × 6`` images: functional ReLU, a folded BatchNorm2d,
    max pooling, a strided convolution and ``view`` before a Linear head."""

    input_shape = (72,)

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3)
        self.conv2 = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.fc = nn.Linear(4 * 2 * 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(x.size(0), 2, 6, 6)
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = torch.relu(self.conv2(x))
        return self.fc(x.view(x.size(0), -1))


RESNETS: dict[str, tuple[tuple[int, ...], int]] = {
    "resnet-1x1-c4": ((4,), 1),
    "resnet-1x2-c8": ((8,), 2),
    "resnet-2x1-c4-8": ((4, 8), 1),
    "resnet-3x1-c4-8-16": ((4, 8, 16), 1),
}
"""ResNet-style targets of the ``graph/resnet`` claim: ``(channels per stage, blocks per stage)``, on
``[0, 1]^{3×8×8}`` with 4 classes; identity shortcuts in every block but the first of stages 2 and 3
(projections)."""

RESNET_INPUT = (3, 8, 8)


MODELS: dict[str, type[nn.Module]] = {
    "functional-relu": FunctionalMLP,
    "wrapped-sequential": WrappedMLP,
    "residual": ResidualMLP,
    "cat-and-pool": BranchMLP,
    "cnn": SmallCNN,
}
"""The model classes by the name the claims and tables use."""


def _make(name: str) -> nn.Module:
    if name in RESNETS:
        channels, blocks = RESNETS[name]
        return ResNet(channels, blocks, classes=4)
    if name not in MODELS:
        raise ValueError(f"model must be one of {tuple(MODELS) + tuple(RESNETS)}, got {name!r}")
    return MODELS[name]()


def domain_of(name: str) -> tuple[float, float, tuple[int, ...]]:
    """``(lo, hi, shape)`` of the box the model ``name`` is checked on: images in ``[0, 1]``, vectors in ``[-1, 1]``."""
    if name in RESNETS:
        return 0.0, 1.0, RESNET_INPUT
    shape = MODELS[name].input_shape
    return (0.0, 1.0, shape) if len(shape) > 1 else (-1.0, 1.0, shape)


def build(name: str, seed: int) -> nn.Module:
    """The model ``name`` (of `MODELS` or `RESNETS`) in float64 and eval mode, its parameters and BatchNorm
    statistics seeded by ``seed`` (running means in [−0.5, 0.5], variances in [0.5, 2], BN weights in
    [0.5, 1.5], BN biases in [−0.5, 0.5]); torch's global generator is left untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _make(name).double()
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.running_mean.uniform_(-0.5, 0.5)
                    module.running_var.uniform_(0.5, 2.0)
                    module.weight.uniform_(0.5, 1.5)
                    module.bias.uniform_(-0.5, 0.5)
    return model.eval()
