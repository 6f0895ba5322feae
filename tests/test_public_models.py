"""Models written as public CIFAR repositories write them, reconstructed as written (docs/design.md §10).

ResNet-20 style (option-A and option-B shortcuts), LeNet-5 (max and average pooling) and a VGG-style
stack (`models_cifar`), at small widths and inputs so that each takes about a second; then every idiom
of those files on its own (strided slicing, indexing, zero and channel padding, flatten/view/reshape,
mean, stack/cat along channels, shape expressions, ``+=``, Identity, LambdaLayer, in-place ReLU).

Every comparison with torch's forward of the tuned frozen module uses the bound the reconstruction
certifies (``GraphReconstruction.error_bound``), never a hand-picked tolerance; the interval transfers
of the idioms are compared for equality, since selection, zero padding and reshaping are exact.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from models_cifar import VGG, Around, LambdaLayer, LeNet, ResNet, seeded
from torch import nn

import verify
from verify.nn import fit_norm_layers, frozen_like
from verify.nn.graph import read_graph
from verify.nn.graph_idioms import check_shapes, node_values
from verify.nn.graph_lower import interval_bounds, lower_graph

FRESH = 48
"""Fresh uniform points of the end-to-end comparison (plus as many random corners and the two extreme ones)."""


def _fresh(shape: tuple[int, ...], seed: int = 7) -> torch.Tensor:
    """Points of the box [0, 1]^shape not used by the fit: uniform ones, random corners, all-0 and all-1."""
    rng = np.random.default_rng(seed)
    points = [rng.random((FRESH, *shape)), rng.integers(0, 2, (FRESH, *shape)), np.zeros((1, *shape))]
    return torch.tensor(np.concatenate([*points, np.ones((1, *shape))]), dtype=torch.float64)


def _fit_and_compare(
    target: nn.Module, shape: tuple[int, ...], width: float = 2.0, rtol: float = 1e-6
) -> verify.nn.GraphReconstruction:
    """``frozen_like`` + ``fit_norm_layers`` on [0, 1]^shape; the certificate holds, the target is unchanged,
    and torch's forward of the tuned frozen module is within the certified bound of the target's on fresh points."""
    before = {k: v.clone() for k, v in target.state_dict().items()}
    frozen = frozen_like(target, width=width, seed=1)
    result = fit_norm_layers(frozen, target, verify.Box(0, 1, shape=shape), rtol=rtol)
    if isinstance(result, verify.Reconstruction):  # a chain of Sequential layers: read as that Sequential
        return _compare_chain(result, frozen, target, shape, before)
    assert result.holds, result.failures()
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())
    x = _fresh(shape)
    with torch.no_grad():
        error = float((frozen(x) - target(x)).abs().max())
    assert error <= result.error_bound, (error, result.error_bound)
    return result


def _compare_chain(
    result: verify.Reconstruction, frozen: nn.Module, target: nn.Module, shape: tuple[int, ...], before: dict
) -> verify.Reconstruction:
    """`_fit_and_compare` for an idiom that leaves a plain chain (``torch.flatten``, say): the chain route's result."""
    assert result.certificate.holds, result.certificate.failures()
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())
    x = _fresh(shape)
    with torch.no_grad():
        error = float((frozen(x) - target(x)).abs().max())
    assert error <= result.certificate.error_bound, (error, result.certificate.error_bound)
    return result


MODELS = {
    "resnet-option-a": (lambda: ResNet((1, 1, 1), (2, 4, 8), 3, "A"), (3, 8, 8)),
    "resnet-option-b": (lambda: ResNet((1, 1, 1), (2, 4, 8), 3, "B"), (3, 8, 8)),
    "resnet-two-blocks": (lambda: ResNet((2, 1, 1), (2, 4, 8), 3, "A"), (3, 8, 8)),
    "lenet-max": (lambda: LeNet(2, 3, (6, 5), 3, "max", 16), (3, 16, 16)),
    "lenet-avg": (lambda: LeNet(2, 3, (6, 5), 3, "avg", 16), (3, 16, 16)),
    "vgg": (lambda: VGG((4, "M", 6, "M")), (3, 8, 8)),
}


RTOL = {"resnet-two-blocks": 1e-5}
"""The accuracy asked where the default 1e-6 is not met: the two-block ResNet's float64 bound is 5.6e-6 of its
f_max (its interval scale, 5.6e6, is six million times its largest output, 0.97: judged against that scale the
bound looked like 1e-12)."""


@pytest.mark.parametrize("name", MODELS)
def test_a_public_style_model_reconstructs_as_written(name: str) -> None:
    make, shape = MODELS[name]
    result = _fit_and_compare(seeded(make(), 0), shape, rtol=RTOL.get(name, 1e-6))
    assert len(result.nodes) == sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in make().modules())


def test_lenet_at_full_size_reads_its_cifar_input_shape() -> None:
    """LeNet-5 as written (3 × 32 × 32, 6 and 16 channels, heads 120/84/10): the graph route reads it and
    checks its shapes at the domain's input; the head's input is 16 · 5 · 5 = 400 features."""
    target = seeded(LeNet(), 0)
    graph = read_graph(target)
    check_shapes(graph, (3, 32, 32), torch.float64, "cpu")
    assert [tuple(n.weight.shape) for n in graph.layers if not n.is_conv] == [(120, 400), (84, 120), (10, 84)]


IDIOMS = {
    "strided-slice": lambda: LambdaLayer(lambda x: x[:, :, ::2, ::2]),
    "channel-slice": lambda: LambdaLayer(lambda x: x[:, 1:3]),
    "integer-index": lambda: LambdaLayer(lambda x: x[:, 0]),
    "ellipsis-index": lambda: LambdaLayer(lambda x: x[..., 1:, :-1]),
    "F.pad": lambda: LambdaLayer(lambda x: F.pad(x, (1, 1, 2, 0))),
    "channel-pad": lambda: LambdaLayer(lambda x: F.pad(x, (0, 0, 0, 0, 2, 2), "constant", 0)),
    "ZeroPad2d": lambda: nn.ZeroPad2d(1),
    "torch.flatten": lambda: LambdaLayer(lambda x: torch.flatten(x, 1)),
    "view-size0": lambda: LambdaLayer(lambda x: x.view(x.size(0), -1)),
    "reshape": lambda: LambdaLayer(lambda x: x.reshape(x.shape[0], 2, -1)),
    "mean-method": lambda: LambdaLayer(lambda x: x.mean(dim=(2, 3))),
    "torch.mean": lambda: LambdaLayer(lambda x: torch.mean(x, -1, keepdim=True)),
    "torch.stack": lambda: LambdaLayer(lambda x: torch.stack([x[:, :2], x[:, 2:]], dim=1)),
    "torch.cat-channels": lambda: LambdaLayer(lambda x: torch.cat([x, x[:, :1]], dim=1)),
    "size-getitem": lambda: LambdaLayer(lambda x: F.avg_pool2d(x, x.size()[3])),
    "size-dim": lambda: LambdaLayer(lambda x: F.avg_pool2d(x, x.size(3))),
    "shape-last": lambda: LambdaLayer(lambda x: F.max_pool2d(x, x.shape[-1])),
    "ConstantPad2d-zero": lambda: nn.ConstantPad2d((0, 1, 1, 0), 0.0),
    "permute": lambda: LambdaLayer(lambda x: x.permute(0, 1, 3, 2)),
    "transpose": lambda: LambdaLayer(lambda x: torch.transpose(x, 2, 3)),
    "unsqueeze-squeeze": lambda: LambdaLayer(lambda x: torch.unsqueeze(x, 2).squeeze(2)),
    "clone": lambda: LambdaLayer(lambda x: x.clone()),
    "Identity": lambda: nn.Identity(),
    "relu-inplace": lambda: LambdaLayer(lambda x: F.relu(x, inplace=True)),
    "ReLU-inplace-module": lambda: nn.ReLU(inplace=True),
}


@pytest.mark.parametrize("name", IDIOMS)
def test_an_idiom_is_read_and_reconstructed(name: str) -> None:
    _fit_and_compare(seeded(Around(IDIOMS[name]()), 0), (3, 6, 6))


@pytest.mark.parametrize("name", [n for n in IDIOMS if "inplace" not in n])
def test_an_idiom_transfers_intervals_and_errors_exactly(name: str) -> None:
    """On its own, an idiom is a selection, zero padding, average or reshape: the interval bound at its
    output is ``[idiom(lo), idiom(hi)]`` (attained at the box's two corners, so no tighter bound exists),
    and a non-negative error ``e`` maps to ``idiom(e)``: zero in padded entries, the entries themselves
    where selected."""
    idiom = IDIOMS[name]().double()
    graph = read_graph(idiom)
    rng = np.random.default_rng(3)
    lo = torch.tensor(rng.uniform(-1, 0, (1, 4, 6, 6)))
    hi = lo + torch.tensor(rng.uniform(0, 1, (1, 4, 6, 6)))
    bounds = interval_bounds(graph, lo, hi)[graph.output]
    assert torch.equal(bounds[0], idiom(lo)) and torch.equal(bounds[1], idiom(hi))
    inside = lo + (hi - lo) * torch.tensor(rng.random((16, 4, 6, 6)))
    assert bool(((bounds[0] <= idiom(inside)) & (idiom(inside) <= bounds[1])).all())
    # The lowered idiom's nodes (verify.nn.graph_lower), as the core graph engine maps an error e through them.
    lowered = lower_graph(
        graph, {}, check_shapes(graph, (4, 6, 6), torch.float64, "cpu"), interval_bounds(graph, lo, hi)
    )
    error = (hi - lo)[0].numpy()
    mapped: dict[str, np.ndarray] = {}
    for node in lowered.nodes:
        ins = [mapped[name] for name in node.inputs]
        mapped[node.name] = (
            error if node.kind == "input" else node.op(ins[0][None])[0] if node.kind == "maxpool" else node.op(*ins)
        )
    assert np.array_equal(mapped[lowered.output.name], idiom(torch.tensor(error[None]))[0].numpy())


def test_shape_expressions_are_evaluated_at_the_domains_input_shape() -> None:
    """``x.size()[3]``, ``x.size(3)`` and ``x.shape[-1]`` are constants at the domain's shape (the width),
    and so is arithmetic on them (``(x.size(3) + x.shape[-1]) // 2``)."""
    module = LambdaLayer(lambda x: F.avg_pool2d(x, x.size()[3]) + F.avg_pool2d(x, (x.size(3) + x.shape[-1]) // 2))
    graph = read_graph(nn.Sequential(nn.Conv2d(3, 2, 1), module).double())
    for side in (5, 7):
        constants = check_shapes(graph, (3, side, side), torch.float64, "cpu")
        assert sorted(v for v in constants.values() if isinstance(v, int)) == sorted([side] * 4 + [2 * side])


class InPlace(nn.Module):
    """``F.relu(h, inplace=True)`` overwrites ``h``, which the reader keeps as the Linear's value."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(3, 4), nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x), inplace=True))


def test_an_in_place_relu_does_not_overwrite_the_values_the_reader_keeps() -> None:
    """The Linear's interval bound and its recorded value keep their negative entries after the in-place ReLU."""
    target = seeded(InPlace(), 0)
    graph = read_graph(target)
    lo, hi = -torch.ones(1, 3, dtype=torch.float64), torch.ones(1, 3, dtype=torch.float64)
    weight, bias = target.fc1.weight.detach(), target.fc1.bias.detach()
    expected_lo = bias - weight.abs().sum(dim=1)
    # the bound is W·0 + b − |W|·1, summed in another order: at most 4 roundings of sums below |b| + Σ|W|
    atol = 4 * torch.finfo(torch.float64).eps * float((bias.abs() + weight.abs().sum(dim=1)).max())
    assert torch.allclose(interval_bounds(graph, lo, hi)["fc1"][0][0], expected_lo, rtol=0, atol=atol)
    x = torch.tensor(np.random.default_rng(0).uniform(-1, 1, (64, 3)))
    assert torch.equal(node_values(graph, x, {"fc1"})["fc1"], target.fc1(x).detach())
    assert bool((expected_lo < 0).any())  # the check above would see the ReLU's output if it were overwritten
    _fit_and_compare(target, (3,))


class IAdd(nn.Module):
    """``out += y`` on a convolution's output, as BasicBlock writes its shortcut."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 2, 3, padding=1), nn.Conv2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.a(x)
        out += self.b(x)
        return F.relu(out)


def test_in_place_addition_is_read_as_an_addition() -> None:
    _fit_and_compare(seeded(IAdd(), 0), (3, 5, 5))
