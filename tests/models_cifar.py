"""Model classes written the way public CIFAR repositories write them, read as written by the graph route.

`ResNet` follows the common ResNet-20/32/56 file for CIFAR-10: a `BasicBlock` whose shortcut is
option A (a `LambdaLayer` that subsamples with ``x[:, :, ::2, ::2]`` and zero-pads the new channels
with ``F.pad(..., (0, 0, 0, 0, planes // 4, planes // 4))``) or option B (a 1 × 1 strided Conv2d and
its BatchNorm), ``out += self.shortcut(x)``, in-place ``F.relu``, and the head
``F.avg_pool2d(out, out.size()[3])``, ``out.view(out.size(0), -1)``. `LeNet` is LeNet-5 on 3 × 32 × 32
(6 and 16 channels, heads 120/84/10, max or average pooling); `VGG` a small stack of
``Conv2d → BatchNorm2d → ReLU(inplace=True)`` and ``MaxPool2d`` with ``torch.flatten(x, 1)``. Sizes are
arguments so that tests can build them small.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["VGG", "Around", "BasicBlock", "LambdaLayer", "LeNet", "ResNet", "seeded"]


class LambdaLayer(nn.Module):
    """A module around a function, as the public ResNet-20 file writes its option-A shortcut."""

    def __init__(self, lambd) -> None:
        super().__init__()
        self.lambd = lambd

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lambd(x)


class BasicBlock(nn.Module):
    """Two 3 × 3 convolutions with BatchNorm, the shortcut added with ``+=``, then ReLU."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, option: str = "A") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            if option == "A":
                pad = planes // 4
                self.shortcut = LambdaLayer(lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad), "constant", 0))
            elif option == "B":
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_planes, self.expansion * planes, kernel_size=1, stride=stride, bias=False),
                    nn.BatchNorm2d(self.expansion * planes),
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        out = F.relu(out)
        return out


class ResNet(nn.Module):
    """ResNet for CIFAR: a 3 × 3 stem, three stages of `BasicBlock` (the 2nd and 3rd halve the size), the
    global average pool written with ``out.size()[3]`` and a Linear head."""

    def __init__(
        self, num_blocks: tuple[int, int, int] = (3, 3, 3), widths=(16, 32, 64), num_classes: int = 10, option="A"
    ) -> None:
        super().__init__()
        self.in_planes = widths[0]
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.layer1 = self._make_layer(widths[0], num_blocks[0], 1, option)
        self.layer2 = self._make_layer(widths[1], num_blocks[1], 2, option)
        self.layer3 = self._make_layer(widths[2], num_blocks[2], 2, option)
        self.linear = nn.Linear(widths[2], num_classes)

    def _make_layer(self, planes: int, num_blocks: int, stride: int, option: str) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (num_blocks - 1):
            layers.append(BasicBlock(self.in_planes, planes, s, option))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer1(out)
        out = self.layer2(out)
        out = self.layer3(out)
        out = F.avg_pool2d(out, out.size()[3])
        out = out.view(out.size(0), -1)
        out = self.linear(out)
        return out


class LeNet(nn.Module):
    """LeNet-5 for CIFAR: conv 5 × 5 (``c1`` channels), pool, conv 5 × 5 (``c2``), pool, heads 120/84/10."""

    def __init__(self, c1: int = 6, c2: int = 16, heads=(120, 84), num_classes: int = 10, pool: str = "max", size=32):
        super().__init__()
        self.conv1 = nn.Conv2d(3, c1, 5)
        self.conv2 = nn.Conv2d(c1, c2, 5)
        side = ((size - 4) // 2 - 4) // 2
        self.fc1 = nn.Linear(c2 * side * side, heads[0])
        self.fc2 = nn.Linear(heads[0], heads[1])
        self.fc3 = nn.Linear(heads[1], num_classes)
        self.pool = F.max_pool2d if pool == "max" else F.avg_pool2d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pool(F.relu(self.conv1(x)), 2)
        out = self.pool(F.relu(self.conv2(out)), 2)
        out = torch.flatten(out, 1)
        out = F.relu(self.fc1(out))
        out = F.relu(self.fc2(out))
        return self.fc3(out)


class VGG(nn.Module):
    """A VGG-style stack from a configuration list (numbers: 3 × 3 convolutions, ``"M"``: max pooling)."""

    def __init__(self, cfg=(4, "M", 6, "M"), num_classes: int = 3, side: int = 8) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for v in cfg:
            if v == "M":
                layers += [nn.MaxPool2d(kernel_size=2, stride=2)]
                side //= 2
            else:
                layers += [nn.Conv2d(channels, v, kernel_size=3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                channels = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels * side * side, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.features(x)
        out = out.view(out.size(0), -1)
        return self.classifier(out)


def seeded(model: nn.Module, seed: int) -> nn.Module:
    """``model`` in float64 and eval mode with its parameters and BatchNorm statistics drawn from ``seed``
    (torch's global generator left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for parameter in model.parameters():
            with torch.no_grad():
                parameter.uniform_(-0.5, 0.5)
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                with torch.no_grad():
                    module.running_mean.uniform_(-0.5, 0.5)
                    module.running_var.uniform_(0.5, 2.0)
                    module.weight.uniform_(0.5, 1.5)
    return model.double().eval()


class Around(nn.Module):
    """``fc(flatten(idiom(relu(conv(x)))))``: one idiom between a 3 × 3 convolution and a Linear head.

    ``idiom`` is a module (a `LambdaLayer` around a function, or a torch module such as ``nn.ZeroPad2d``);
    the head's width is the idiom's output size on one ``shape`` input.
    """

    def __init__(self, idiom: nn.Module, shape: tuple[int, int, int] = (3, 6, 6), channels: int = 4) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            self.conv = nn.Conv2d(shape[0], channels, 3, padding=1)
            self.idiom = idiom
            with torch.no_grad():
                features = torch.flatten(idiom(self.conv(torch.zeros(1, *shape))), 1).shape[1]
            self.fc = nn.Linear(features, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.idiom(F.relu(self.conv(x))), 1))
