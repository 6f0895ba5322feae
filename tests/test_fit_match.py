"""One torch.fx reader for every module, and the frozen module matched node by node as it runs.

A class whose forward is a chain of layers is read as the ``nn.Sequential`` of those layers, so it
gets the same γ, β and certificate bit for bit; a frozen module that runs anything other than the
chain the construction assumes (a ReLU removed, appended or moved, a pool elsewhere, another
stride, padding mode or dilation, a BatchNorm stuck in train mode) is refused before any solve,
naming the node and its source module; a target BatchNorm in train mode is refused on every route.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import verify
from verify.job.route_models import Wrap
from verify.nn import fit_norm_layers, frozen_like
from verify.nn.fit import forward_error
from verify.nn.graph import read_graph
from verify.nn.graph_frozen import frozen_graph
from verify.nn.graph_match import match
from verify.nn.residual import frozen_residual_mlp

DOMAIN = verify.Box(-1, 1, shape=(2, 8, 8))


class Stepped(nn.Module):
    """The CNN written as a class calling its layers one after the other (F.relu, torch.flatten)."""

    def __init__(self, cnn: nn.Sequential) -> None:
        super().__init__()
        self.c1, self.c2, self.pool, self.head = cnn[0], cnn[2], cnn[4], cnn[6]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.c2(F.relu(self.c1(x)))))
        return self.head(torch.flatten(x, 1))


def _cnn() -> nn.Sequential:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Conv2d(2, 3, 3),
            nn.ReLU(),
            nn.Conv2d(3, 3, 3),
            nn.ReLU(),
            nn.AvgPool2d(2),
            nn.Flatten(),
            nn.Linear(12, 2),
        ).double()


def _norms(module: nn.Module) -> list[torch.Tensor]:
    return [
        p.detach().clone()
        for m in module.modules()
        if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d)
        for p in (m.weight, m.bias)
    ]


def _same(a: verify.Reconstruction, b: verify.Reconstruction) -> bool:
    arrays = [(x, y) for pair in ((a.gamma, b.gamma), (a.beta, b.beta)) for x, y in zip(*pair, strict=True)]
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in arrays)


@pytest.mark.parametrize("write", [Wrap, Stepped], ids=["Wrap", "Stepped"])
def test_a_class_and_its_sequential_get_the_same_result_bit_for_bit(write: Callable[[nn.Module], nn.Module]) -> None:
    # The example: one model, one proof, however it is written.
    cnn = _cnn()
    frozen = frozen_like(cnn, width="paper", seed=0)
    a = fit_norm_layers(copy.deepcopy(frozen), cnn, DOMAIN)
    b_frozen = write(copy.deepcopy(frozen)) if write is Wrap else Wrap(copy.deepcopy(frozen))
    b = fit_norm_layers(b_frozen, write(cnn), DOMAIN)
    assert isinstance(a, verify.Reconstruction) and isinstance(b, verify.Reconstruction)
    assert a.certificate.error_bound == b.certificate.error_bound and a.certificate.holds and b.certificate.holds
    assert a.certificate.error_bound < float("inf")  # the convolutional route's bound is rigorous (design §6.7)
    assert _same(a, b)
    # and the tuned class computes the target: float64 forwards, the result's own rtol (1e-6) of max |f|
    points = DOMAIN.sample(500, np.random.default_rng(3)).reshape(-1, 2, 8, 8)
    assert forward_error(b_frozen, write(cnn), points) <= 1e-6


def _edited(edit: str) -> nn.Sequential:
    """frozen_like(cnn) with one node changed (indices from its layout: pairs, ReLU, pool, Flatten, head pair)."""
    layers = list(frozen_like(_cnn(), width="paper", seed=0))
    assert [type(m).__name__ for m in layers[4:7]] == ["BatchNorm2d", "ReLU", "Conv2d"]
    assert isinstance(layers[11], nn.ReLU) and isinstance(layers[12], nn.AvgPool2d)
    if edit == "ReLU between two pairs removed":
        del layers[5]
    elif edit == "ReLU inside a pair removed":
        del layers[2]
    elif edit == "ReLU appended at the output":
        layers.append(nn.ReLU())
    elif edit == "ReLU added after the pool":
        layers.insert(13, nn.ReLU())
    elif edit == "ReLU moved after the AvgPool":
        layers[11], layers[12] = layers[12], layers[11]
    elif edit == "pool moved before the second pair":
        layers.insert(6, layers.pop(12))
    elif edit == "stride changed":
        layers[0].stride = (2, 2)
    elif edit == "dilation changed":
        layers[6].dilation = (2, 2)
    elif edit == "padding mode changed":
        layers[0].padding, layers[0].padding_mode = (1, 1), "reflect"
    elif edit == "a Tanh instead of a ReLU":
        layers[5] = nn.Tanh()
    return nn.Sequential(*layers)


EDITS = [
    (
        "ReLU between two pairs removed",
        r"frozen graph node '_4' \(0 \(Conv2d\)\) does not match target node '_1' \(1 \(ReLU\)\): expected a relu",
    ),
    ("ReLU inside a pair removed", r"graph node '_0' \(0 \(Conv2d\)\) .*every Linear \(Conv2d\) starts a pair"),
    (
        "ReLU appended at the output",
        r"frozen graph node '_19' \(19 \(ReLU\)\) does not match target node '_6' \(6 \(Linear\)\): expected a "
        r"frozen pair",
    ),
    ("ReLU added after the pool", r"frozen graph node '_13' \(13 \(ReLU\)\) does not match target node '_4' "),
    ("ReLU moved after the AvgPool", r"frozen graph node '_12' \(12 \(ReLU\)\) does not match target node '_4' "),
    ("pool moved before the second pair", r"frozen graph node '_12' \(12 \(ReLU\)\) does not match target node '_4' "),
    ("stride changed", r"frozen pair '_4' \(0 \(Conv2d\)\) does not fit .*'stride': \(2, 2\).*'stride': \(1, 1\)"),
    ("dilation changed", r"frozen pair '_10' \(6 \(Conv2d\)\) .*'dilation': \(2, 2\).*'dilation': \(1, 1\)"),
    ("padding mode changed", r"frozen pair '_4' .*'padding_mode': 'reflect'.*'padding_mode': 'zeros'"),
    ("a Tanh instead of a ReLU", r"graph node '_5' \(5 \(Tanh\)\) is not supported: the construction needs ReLU"),
]
"""Each edit and the refusal of the graph matcher (`verify.nn.graph_match.match`, walking back from the output)
or reader: the frozen node, its source module, and what the target has there."""


@pytest.mark.parametrize(("edit", "message"), EDITS, ids=[e for e, _ in EDITS])
def test_every_edit_of_the_frozen_chain_is_refused_naming_the_node(edit: str, message: str) -> None:
    # On main the first three rows were certified holds=True while torch's forward was off by
    # max |g - f| / max |f| = 0.997, 1.0 and 0.202 (this CNN, 2,000 domain points).
    frozen = _edited(edit)
    before = _norms(frozen)
    with pytest.raises(ValueError, match=message):
        fit_norm_layers(frozen, _cnn(), DOMAIN)
    assert all(torch.equal(x, y) for x, y in zip(before, _norms(frozen), strict=True))  # refused before any load


def test_the_module_is_read_as_its_forward_runs_it() -> None:
    # A Sequential whose forward skips its ReLU between the pairs: its layer list is right, what runs is not.
    class Skipping(nn.Sequential):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for i, layer in enumerate(self):
                if i != 5:
                    x = layer(x)
            return x

    frozen = Skipping(*frozen_like(_cnn(), width="paper", seed=0))
    with pytest.raises(ValueError, match=r"frozen graph node '_4' .*does not match target node '_1' \(1 \(ReLU\)\)"):
        fit_norm_layers(frozen, _cnn(), DOMAIN)
    target = read_graph(_cnn(), "target")
    pairs = match(target, read_graph(frozen_like(_cnn(), width="paper", seed=0), "frozen"))  # frozen_like's matches
    assert set(pairs) == {node.name for node in target.nodes}  # every target node has its frozen node
    assert all(pairs[node.name].kind == "pair" for node in target.layers)


def test_a_frozen_batchnorm_that_eval_leaves_in_train_mode_is_refused() -> None:
    class Stuck(nn.BatchNorm2d):
        def train(self, mode: bool = True) -> Stuck:
            return super().train(True)

    frozen = frozen_like(_cnn(), width="paper", seed=0)
    stuck = Stuck(frozen[1].num_features, dtype=torch.float64)
    frozen[1] = stuck
    frozen.train()
    with pytest.raises(ValueError, match=r"frozen BatchNorm '1' \(Stuck\) stays in train mode after frozen.eval\(\)"):
        fit_norm_layers(frozen, _cnn(), DOMAIN)
    assert all(m.training for m in frozen.modules())  # the training flags are put back as they were


def _mlp_bn() -> nn.Sequential:
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2)).double()


class ResidualBN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.bn, self.head = nn.Linear(3, 3), nn.BatchNorm1d(3), nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x + F.relu(self.bn(self.fc(x))))


def _route(route: str) -> tuple[nn.Module, nn.Module, verify.Box, str]:
    """A target with a BatchNorm (eval mode) and a frozen module for it, on each route; the BatchNorm's name."""
    if route == "mlp":
        target = _mlp_bn().eval()
        return target, frozen_like(target, seed=0), verify.Box(-np.ones(3), np.ones(3)), "1"
    if route == "conv":
        target = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Conv2d(3, 2, 1)).double().eval()
        return target, frozen_like(target, seed=0), DOMAIN, "1"
    if route == "graph":
        target = ResidualBN().double().eval()
        return target, frozen_graph(target, seed=0), verify.Box(-np.ones(3), np.ones(3)), "bn"
    target = _mlp_bn().eval()
    return target, frozen_residual_mlp([3, 4, 2], seed=0), verify.Ball(1.0), "1"


@pytest.mark.parametrize("route", ["mlp", "conv", "graph", "residual"])
def test_a_target_batchnorm_in_train_mode_is_refused_on_every_route(route: str) -> None:
    # Before, the Sequential routes folded it with its running statistics and the result held while
    # it differed from the target as passed (in train mode) by about 0.5 relative.
    target, frozen, domain, name = _route(route)
    target.train()
    with pytest.raises(ValueError, match=rf"target layer '{name}' \(BatchNorm[12]d\) .*call target.eval\(\)"):
        fit_norm_layers(frozen, target, domain)
