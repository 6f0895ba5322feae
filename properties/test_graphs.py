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
from verify.job.graph_models import ResNet
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
    assert error <= result.error_bound <= result.rtol * result.f_max


def build_resnet(channels: tuple[int, ...], blocks: int, seed: int) -> nn.Module:
    """`verify.job.graph_models.ResNet` in float64 and eval mode, its BatchNorms' statistics and parameters
    drawn from ``seed`` (torch's global generator untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ResNet(channels, blocks, classes=3).double()
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.running_mean.uniform_(-0.5, 0.5)
                    module.running_var.uniform_(0.5, 2.0)
                    module.weight.uniform_(0.5, 1.5)
                    module.bias.uniform_(-0.5, 0.5)
    return model.eval()


@given(
    channels=st.sampled_from([(2,), (2, 3)]),
    blocks=st.integers(1, 2),
    dtype=st.sampled_from([torch.float64, torch.float32]),
    seed=st.integers(0, 2**16),
    lo=st.floats(-1, 0.5),
    width=st.floats(0.1, 1.5),
)
def test_fitted_resnets_stay_within_the_rigorous_graph_bound(
    channels: tuple[int, ...], blocks: int, dtype: torch.dtype, seed: int, lo: float, width: float
) -> None:
    # docs/design.md §6.7: the graph route's error_bound bounds |ĝ(x) − f̂(x)| for every x of the domain
    # (verify.core.graph_bound over the lowered model, verify.nn.graph_lower). Checked with torch's own forward
    # of the fitted frozen module (identity and projection shortcuts, folded BatchNorms, adaptive average
    # pooling) and of the target, in the drawn dtype, at fresh points of the box: its two extreme corners,
    # random corners, faces and inner points. The bound is checked whether or not it is within 1e-6 of the
    # scale: rtol is 1 in float64 and 1e6 in float32 (where the bound of these nets can exceed their scale,
    # and grows past 1e12 of it at depth 6: float32 draws keep one stage of one block), so that the fit
    # returns its bound instead of refusing it.
    if dtype == torch.float32:  # deeper float32 ResNets have bounds orders of magnitude above their scale
        channels, blocks = (2,), 1
    model = build_resnet(channels, blocks, seed).to(dtype)
    shape = (3, 6, 6)
    domain = verify.Box(np.full(shape, lo), np.full(shape, lo + width))
    frozen = frozen_graph(model, seed=seed + 1)
    result = fit_graph(frozen, model, domain, samples=32, rtol=1.0 if dtype == torch.float64 else 1e6)
    assert np.isfinite(result.error_bound) and result.error_bound > 0
    points = domain.sample(254, np.random.default_rng(seed + 2)).reshape(254, *shape)
    corners = np.stack([np.full(shape, lo), np.full(shape, lo + width)])
    x = torch.tensor(np.concatenate([corners, points]), dtype=dtype)
    with torch.no_grad():
        error = float((frozen(x).double() - model(x).double()).abs().max())
    assert error <= result.error_bound, (error, result.error_bound)


class PaddedResidual(nn.Module):
    """A convolution, a residual block of two convolutions of drawn geometry (kernel, padding, padding mode,
    dilation; each keeps the size), a Linear head: Conv1d or Conv2d."""

    def __init__(self, spatial: int, channels: int, size: int, geometry: list[tuple[int, int, str]]) -> None:
        super().__init__()
        conv = nn.Conv1d if spatial == 1 else nn.Conv2d
        self.convs = nn.ModuleList(
            conv(channels, channels, kernel, padding=dilation * (kernel // 2), dilation=dilation, padding_mode=mode)
            for kernel, dilation, mode in geometry
        )
        self.head = nn.Linear(channels * size**spatial, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.convs[0](x))
        y = F.relu(self.convs[2](F.relu(self.convs[1](y))) + y)
        return self.head(torch.flatten(y, 1))


_GEOMETRY = st.tuples(
    st.sampled_from([1, 3]), st.integers(1, 2), st.sampled_from(["zeros", "reflect", "replicate", "circular"])
)


@given(
    spatial=st.sampled_from([1, 2]),
    channels=st.integers(1, 2),
    geometry=st.lists(_GEOMETRY, min_size=3, max_size=3),
    seed=st.integers(0, 2**16),
    lo=st.floats(-1, 0.5),
    width=st.floats(0.1, 1.5),
)
def test_padding_modes_and_dilation_in_graphs_stay_within_the_rigorous_bound(
    spatial: int, channels: int, geometry: list[tuple[int, int, str]], seed: int, lo: float, width: float
) -> None:
    # The graph route reads Conv1d and Conv2d with every padding mode and dilation (a padded input is a selection
    # of its entries, docs/design.md §10): torch's own forward of the fitted frozen module stays within the
    # rigorous bound at fresh points of the box, its two extreme corners, random corners and inner points.
    size = 5
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        target = PaddedResidual(spatial, channels, size, geometry).double().eval()
    shape = (channels, *(size,) * spatial)
    domain = verify.Box(np.full(shape, lo), np.full(shape, lo + width))
    frozen = frozen_graph(target, seed=seed + 1)
    result = fit_graph(frozen, target, domain, samples=32, rtol=1.0)
    assert np.isfinite(result.error_bound) and result.error_bound > 0
    rng = np.random.default_rng(seed + 2)
    corners = np.where(rng.random((126, *shape)) < 0.5, lo, lo + width)
    points = domain.sample(126, rng).reshape(126, *shape)
    x = torch.tensor(np.concatenate([np.full((1, *shape), lo), np.full((1, *shape), lo + width), corners, points]))
    with torch.no_grad():
        error = float((frozen(x) - target(x)).abs().max())
    assert error <= result.error_bound, (error, result.error_bound)
