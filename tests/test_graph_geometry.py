"""The graph route reads every convolution geometry the chain route reads (docs/design.md §10): Conv1d and Conv2d
with reflect, circular and replicate padding and dilation, in a residual class (a graph, not a chain)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import verify
from verify.job.claims.routes import fresh_points
from verify.nn import fit_norm_layers, frozen_like
from verify.nn.graph import read_graph


class Residual(nn.Module):
    """Three convolutions of three padding modes (one dilated), a residual addition and a Linear head."""

    def __init__(self, spatial: int, size: int) -> None:
        super().__init__()
        conv = nn.Conv1d if spatial == 1 else nn.Conv2d
        self.a = conv(2, 2, 3, padding=1, padding_mode="reflect")
        self.b = conv(2, 2, 3, padding=1, padding_mode="circular")
        self.c = conv(2, 2, 3, padding=2, dilation=2, padding_mode="replicate")
        self.head = nn.Linear(2 * size**spatial, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.a(x))
        y = F.relu(self.c(F.relu(self.b(y))) + y)
        return self.head(torch.flatten(y, 1))


@pytest.mark.parametrize("spatial", [1, 2])
def test_padding_modes_and_dilation_in_a_graph_are_certified_and_hold_on_fresh_points(spatial: int) -> None:
    size = 6
    shape = (2, *(size,) * spatial)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        target = Residual(spatial, size).double().eval()
    frozen = frozen_like(target, width="paper", seed=0)
    kinds = {node.modules[0].padding_mode for node in read_graph(frozen, "frozen").layers if node.is_conv}
    assert kinds == {"reflect", "circular", "replicate"}  # each pair pads as its target layer does
    box = verify.Box(-np.ones(shape), np.ones(shape))
    result = fit_norm_layers(frozen, target, box)
    assert result.holds and 0 < result.error_bound < float("inf")
    points = fresh_points(box, 2000, np.random.default_rng(7))  # half uniform, half corners, both extremes
    with torch.no_grad():
        x = torch.tensor(points.reshape(-1, *shape))
        error = float((frozen(x) - target(x)).abs().max())
    assert error <= result.error_bound  # torch's own float64 forward, every point, within the rigorous bound
