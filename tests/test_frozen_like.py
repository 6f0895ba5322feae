"""`verify.nn.frozen_like` and `fit_norm_layers` on torch CNN and MLP targets (docs/design.md §9): the frozen
module's shape, determinism, what is refused and why, and torch's own forward after fitting."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import verify
from verify.nn import fit_norm_layers, frozen_like


def test_frozen_like_widths_and_mlp_targets() -> None:
    target = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16, 2)).double()
    frozen = frozen_like(target, width=2.0, seed=0)
    convs = [m for m in frozen if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [2 * 4 * 3 * 9, 4]
    assert [m.out_features for m in frozen if isinstance(m, nn.Linear)] == [2 * 2 * 16, 2]
    assert frozen_like(target, width="minimal")[0].out_channels == 4 * (27 - 1) + 1
    mlp = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4, 2)).double().eval()
    frozen_mlp = frozen_like(mlp, seed=1)
    assert [m.out_features for m in frozen_mlp if isinstance(m, nn.Linear)] == [12, 4, 8, 2]
    result = fit_norm_layers(frozen_mlp, mlp, verify.Ball(1.0))
    x = torch.randn(16, 3, dtype=torch.double)
    x = x / x.norm(dim=1, keepdim=True).clamp(min=1.0)  # inside the unit ball, the certified domain
    with torch.no_grad():
        assert result.certificate.holds and float((frozen_mlp(x) - mlp(x)).abs().max()) <= 1e-9


@pytest.mark.parametrize(
    ("target", "match"),
    [
        (nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.ReLU(), nn.Conv2d(4, 2, 1)), r"layer 0 .*groups=2"),
        (
            nn.Sequential(nn.Conv2d(2, 4, 3), nn.Tanh(), nn.Conv2d(4, 2, 1)),
            r"target layer 1 \(Tanh\(\)\) is not supported",
        ),
        (nn.Sequential(nn.Conv2d(2, 4, 3), nn.AvgPool2d(2), nn.ReLU(), nn.Conv2d(4, 2, 1)), "move the ReLU"),
        (
            nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True), nn.Conv2d(4, 2, 1)),
            "ceil_mode",
        ),
        (nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU()), "must end with a Conv or Linear"),
    ],
    ids=["groups", "tanh", "avgpool-before-relu", "ceil-mode", "trailing-relu"],
)
def test_unsupported_targets_are_refused_by_name(target: nn.Sequential, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        frozen_like(target)


def test_geometry_and_domain_mismatches_are_refused() -> None:
    target = nn.Sequential(nn.Conv2d(2, 3, 3, stride=2), nn.ReLU(), nn.Conv2d(3, 2, 1)).double().eval()
    other = nn.Sequential(nn.Conv2d(2, 3, 3, stride=1), nn.ReLU(), nn.Conv2d(3, 2, 1)).double().eval()
    frozen = frozen_like(other)
    with pytest.raises(
        ValueError, match=r"frozen pair .* does not fit target layer .*'stride': \(1, 1\).*'stride': \(2, 2\)"
    ):
        fit_norm_layers(frozen, target, verify.Box(0, 1, shape=(2, 8, 8)))
    frozen = frozen_like(target)
    with pytest.raises(ValueError, match=r"input shape \(3, 8, 8\) does not fit the target: target layer 0"):
        fit_norm_layers(frozen, target, verify.Box(0, 1, shape=(3, 8, 8)))
    with pytest.raises(ValueError, match=r"must give the shape of one input.*first layer is Conv"):
        fit_norm_layers(frozen, target, verify.Box(0, 1))
    with pytest.raises(ValueError, match=r"domain Box has shape \(2, 9, 9\) but the first layer takes inputs of shape"):
        numpy_target = verify.ConvTargetNetwork([verify.Conv.build(np.ones((2, 2, 3, 3)))], (2, 8, 8))
        numpy_frozen = verify.ConvFrozenNetwork.for_target(numpy_target)
        verify.reconstruct(numpy_target, numpy_frozen, verify.Box(np.zeros((2, 9, 9)), np.ones((2, 9, 9))))


def test_frozen_like_is_deterministic_and_leaves_the_target_alone() -> None:
    torch.manual_seed(0)
    target = nn.Sequential(nn.Conv1d(2, 3, 3, padding=1, padding_mode="reflect"), nn.ReLU(), nn.Conv1d(3, 2, 2))
    target = target.double().eval()
    before = copy.deepcopy(target.state_dict())
    state = torch.random.get_rng_state()
    one, two = frozen_like(target, seed=3), frozen_like(target, seed=3)
    assert torch.equal(state, torch.random.get_rng_state())  # torch's global generator untouched
    assert all(torch.equal(a, b) for a, b in zip(one.state_dict().values(), two.state_dict().values(), strict=True))
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())
    assert isinstance(one[0], nn.Conv1d) and one[0].padding_mode == "reflect" and isinstance(one[1], nn.BatchNorm1d)
    result = fit_norm_layers(one, target, verify.Box(-1, 1, shape=(2, 9)))
    x = torch.rand(16, 2, 9, dtype=torch.double) * 2 - 1
    with torch.no_grad():
        assert result.certificate.holds and float((one(x) - target(x)).abs().max()) <= 1e-9


def test_max_pool_before_the_relu_and_sparse_frozen_kernels() -> None:
    """MaxPool commutes with ReLU, so it may come first; a masked frozen network (density) still fits when wide."""
    torch.manual_seed(1)
    target = nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2), nn.ReLU(), nn.Dropout(0.3), nn.Conv2d(2, 2, 1))
    target = target.double().eval()
    frozen = frozen_like(target, width=3.0, seed=0, density=0.7)
    weights = [m.weight for m in frozen if isinstance(m, nn.Conv2d)]
    assert 0 < sum(int((w == 0).sum()) for w in weights) < sum(w.numel() for w in weights)
    result = fit_norm_layers(frozen, target, verify.Box(0, 1, shape=(1, 8, 8)))
    x = torch.rand(16, 1, 8, 8, dtype=torch.double)
    with torch.no_grad():
        assert result.certificate.holds and float((frozen(x) - target(x)).abs().max()) <= 1e-9
    with pytest.raises(ValueError, match="a train-mode Dropout is random"):
        frozen_like(target.train())


def test_the_issue_example_runs_as_written() -> None:
    """The README's example, verbatim but for the points x (random images of the domain)."""
    target = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(64, 10),
    ).double().eval()  # fmt: skip
    frozen = frozen_like(target, width="paper", seed=0)
    domain = verify.Box(np.zeros((3, 16, 16)), np.ones((3, 16, 16)))
    result = fit_norm_layers(frozen, target, domain)
    x = torch.rand(32, 3, 16, 16, dtype=torch.double, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        error = float((frozen.eval()(x) - target(x)).abs().max())
        size = float(target(x).abs().max())
    assert result.certificate.holds and [b.width for b in result.certificate.blocks] == [216, 1152, 640]
    assert error <= 1e-9 * size
