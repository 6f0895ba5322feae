"""Residual graphs reconstructed node by node (docs/design.md §10).

A drawn graph: a stem Linear, ``blocks`` residual blocks ``σ(x + BN(W₂ σ(BN(W₁ x))))`` (BatchNorm folded
when read) or, drawn instead, blocks whose two branches are joined by ``torch.cat``, then a head; widths,
depth and the input box drawn too. The property: the graph route (`verify.nn.graph_fit.fit_graph`; a drawn
chain would go to the Sequential route under `fit_norm_layers`) certifies it (or refuses with an honest
`verify.CertificateError` whose bound exceeds rtol), and torch's own forwards of target and
tuned frozen module on fresh points of the box (corners included) differ by no more than the
propagated bound the result derives, at the output.
"""

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import verify
from verify.nn.graph_fit import fit_graph
from verify.nn.graph_frozen import frozen_graph


class DrawnGraph(nn.Module):
    """Stem, residual or concatenating blocks, head."""

    def __init__(self, d_in: int, width: int, blocks: int, concat: bool, d_out: int) -> None:
        super().__init__()
        self.concat = concat
        self.stem = nn.Linear(d_in, width)
        half = max(1, width // 2)
        self.fc1 = nn.ModuleList(nn.Linear(width, half if concat else width) for _ in range(blocks))
        self.bn1 = nn.ModuleList(nn.BatchNorm1d(half if concat else width) for _ in range(blocks))
        self.fc2 = nn.ModuleList(nn.Linear(width, width - half if concat else width) for _ in range(blocks))
        self.head = nn.Linear(width, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        for fc1, bn1, fc2 in zip(self.fc1, self.bn1, self.fc2, strict=True):
            if self.concat:
                x = torch.cat([F.relu(bn1(fc1(x))), torch.relu(fc2(x))], dim=1)
            else:
                x = F.relu(fc2(F.relu(bn1(fc1(x)))) + x)
        return self.head(x)


@given(
    d_in=st.integers(1, 4),
    width=st.integers(2, 5),
    blocks=st.integers(0, 2),
    concat=st.booleans(),
    d_out=st.integers(1, 3),
    seed=st.integers(0, 2**16),
    centre=st.floats(-3, 3),
    half_width=st.floats(0.1, 2),
)
def test_drawn_graphs_agree_within_the_derived_bound(
    d_in: int, width: int, blocks: int, concat: bool, d_out: int, seed: int, centre: float, half_width: float
) -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        target = DrawnGraph(d_in, width, blocks, concat, d_out).double()
        for bn in target.bn1:
            with torch.no_grad():
                bn.running_mean.uniform_(-0.5, 0.5)
                bn.running_var.uniform_(0.5, 2.0)
    target.eval()
    domain = verify.Box(np.full(d_in, centre - half_width), np.full(d_in, centre + half_width))
    frozen = frozen_graph(target, seed=seed + 1)
    try:
        result = fit_graph(frozen, target, domain, samples=64)
    except verify.CertificateError as error:  # an accuracy refusal: the bound, not a sample, exceeds rtol
        assert "above rtol" in str(error) or "exceeds rtol" in str(error), str(error)
        return
    x = torch.tensor(domain.sample(256, np.random.default_rng(seed + 2)))
    with torch.no_grad():
        error = float((frozen(x) - target(x)).abs().max())
    assert error <= result.error_bound <= result.rtol * result.scale
