"""Convolutional targets (docs/design.md §9): layers against torch, bounds against the dense matrix of the
convolution, the per-channel shift, every solver on conv blocks, sparse masks, and the errors.

Floating-point tolerances: a layer's output differs from torch's by rounding only, at most
``(terms + 2)·ε`` times the layer evaluated with absolute values (``terms``: its fan-in plus the
bias), so each comparison below is made against that magnitude.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import verify
from verify.core.channels import ConvChannels
from verify.core.conv_blocks import conv_blocks
from verify.core.domains import AffineRange
from verify.core.feasibility import equation_feasibility
from verify.core.tolerances import EPS
from verify.nn import fit_norm_layers, frozen_like

GEOMETRIES = [  # (kernel, stride, padding, dilation, padding_mode)
    (1, 1, 0, 1, "zeros"),
    (2, 1, "same", 1, "zeros"),
    (3, 1, 1, 1, "zeros"),
    (3, 2, 0, 1, "zeros"),
    (3, 2, 1, 2, "circular"),
    (4, 2, 1, 1, "replicate"),
    (5, 1, "same", 2, "reflect"),
    (5, 2, 2, 1, "zeros"),
]


def _conv(c_in: int, c_out: int, geometry: tuple, seed: int) -> nn.Conv2d:
    kernel, stride, padding, dilation, mode = geometry
    torch.manual_seed(seed)
    return nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, dilation=dilation, padding_mode=mode).double()


def _numpy_conv(layer: nn.Conv2d) -> verify.Conv:
    return verify.Conv.build(
        layer.weight.detach().numpy(),
        layer.bias.detach().numpy(),
        stride=layer.stride,
        padding=layer.padding,
        dilation=layer.dilation,
        padding_mode=layer.padding_mode,
    )


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_conv_agrees_with_torch(geometry: tuple) -> None:
    layer = _conv(3, 4, geometry, seed=0)
    conv = _numpy_conv(layer)
    x = torch.rand(3, 3, 11, 10, dtype=torch.double)
    with torch.no_grad():
        expected = layer(x).numpy()
    got = conv(x.numpy())
    magnitude = conv.magnitude(x.numpy())
    assert got.shape == expected.shape
    assert np.all(np.abs(got - expected) <= (conv.terms((3, 11, 10)) + 2) * EPS * magnitude)


def test_pooling_and_conv1d_agree_with_torch() -> None:
    torch.manual_seed(1)
    x = torch.randn(2, 3, 9, 11, dtype=torch.double)
    pairs = [
        (nn.MaxPool2d(3, 2, padding=1), verify.MaxPool((3, 3), (2, 2), (1, 1), (1, 1))),
        (nn.MaxPool2d(2, dilation=2), verify.MaxPool((2, 2), (2, 2), (0, 0), (2, 2))),
        (nn.AvgPool2d(3, 2, padding=1, count_include_pad=False), verify.AvgPool((3, 3), (2, 2), (1, 1), False)),
        (nn.AvgPool2d(2), verify.AvgPool((2, 2), (2, 2), (0, 0), True)),
        (nn.AdaptiveAvgPool2d((4, 3)), verify.AdaptiveAvgPool((4, 3))),
    ]
    for module, layer in pairs:
        expected = module(x).numpy()
        assert np.allclose(layer(x.numpy()), expected, rtol=0, atol=16 * EPS * np.abs(x.numpy()).max()), module
    conv1 = nn.Conv1d(2, 3, 3, stride=2, padding=1, dilation=2).double()
    x1 = torch.randn(4, 2, 13, dtype=torch.double)
    layer1 = verify.Conv.build(conv1.weight.detach(), conv1.bias.detach(), stride=2, padding=1, dilation=2)
    with torch.no_grad():
        assert np.allclose(layer1(x1.numpy()), conv1(x1).numpy(), rtol=0, atol=1e-14)


def _dense_matrix(conv: verify.Conv, shape: tuple[int, ...]) -> np.ndarray:
    """The convolution without bias as a dense matrix (outputs × inputs), one unit input at a time."""
    size = int(np.prod(shape))
    basis = np.eye(size).reshape(size, *shape)
    return conv.linear(basis, conv.weight).reshape(size, -1).T


@pytest.mark.parametrize("geometry", GEOMETRIES[2:6], ids=str)
def test_conv_range_is_the_exact_range_of_its_dense_matrix(geometry: tuple) -> None:
    """§9: each output position's range over a box is that of its dot product: mid = M c + b, rad = |M| r;
    with reflect/replicate/circular padding an entry and its padded copy count apart, so rad is an outer bound."""
    conv = _numpy_conv(_conv(2, 3, geometry, seed=2))
    shape = (2, 7, 6)
    rng = np.random.default_rng(0)
    lo = rng.uniform(-1, 0, shape)
    hi = lo + rng.uniform(0, 2, shape)
    image = conv.range(lo, hi, conv.weight, conv.bias)
    m = _dense_matrix(conv, shape)
    centre, half = ((lo + hi) / 2).reshape(-1), ((hi - lo) / 2).reshape(-1)
    mid = (m @ centre).reshape(3, -1) + conv.bias[:, None]
    rad = (np.abs(m) @ half).reshape(3, -1)
    tolerance = 4 * m.shape[1] * EPS * ((np.abs(m) @ np.abs(centre)).reshape(3, -1) + rad + 1)
    assert np.all(np.abs(image.mid - mid) <= tolerance)
    if conv.padding_mode == "zeros":
        assert np.all(np.abs(image.rad - rad) <= tolerance)
    else:
        assert np.all(image.rad >= rad - tolerance)


def test_channel_shift_is_the_largest_over_positions() -> None:
    """§9: the shift of a channel over the hull of its positions is the largest of the positions' shifts."""
    rng = np.random.default_rng(3)
    mid, rad = rng.standard_normal((4, 9)), rng.uniform(0, 1, (4, 9))
    hull = ConvChannels(4, 9).reduce_range(AffineRange(mid, rad, np.zeros((4, 9))))
    for gamma in (rng.standard_normal(4), -np.abs(rng.standard_normal(4))):
        per_position = np.abs(gamma)[:, None] * rad - gamma[:, None] * mid
        shift = np.abs(gamma) * hull.rad - gamma * hull.mid
        assert np.allclose(shift, per_position.max(axis=1), rtol=0, atol=8 * EPS * (np.abs(mid) + rad).max())


def _target(geometry: tuple, seed: int, *, norm: bool, head: str) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [_conv(2, 3, geometry, seed)]
    if norm:
        bn = nn.BatchNorm2d(3).double()
        with torch.no_grad():
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
        layers.append(bn)
    layers.append(nn.ReLU())
    if head == "pool":
        layers += [nn.MaxPool2d(2), nn.Conv2d(3, 2, 3, padding=1).double(), nn.ReLU(), nn.AdaptiveAvgPool2d(2)]
        layers += [nn.Flatten(), nn.Linear(8, 3).double()]
    else:
        layers.append(nn.Conv2d(3, 2, 1).double())
    return nn.Sequential(*layers).eval()


@pytest.mark.parametrize(
    ("geometry", "norm", "head"),
    [
        (GEOMETRIES[2], True, "pool"),
        (GEOMETRIES[3], False, "pool"),
        (GEOMETRIES[4], True, "conv"),
        (GEOMETRIES[6], False, "conv"),
        (GEOMETRIES[1], False, "pool"),
        (GEOMETRIES[0], True, "pool"),
    ],
    ids=str,
)
def test_fit_norm_layers_makes_torch_forward_equal_the_target(geometry: tuple, norm: bool, head: str) -> None:
    target = _target(geometry, seed=4, norm=norm, head=head)
    frozen = frozen_like(target, width="paper", seed=0)
    domain = verify.Box(0, 1, shape=(2, 10, 10))
    result = fit_norm_layers(frozen, target, domain)
    assert result.certificate.holds and result.certificate.min_margin >= 0
    x = torch.rand(32, 2, 10, 10, dtype=torch.double, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        f, g = target(x), frozen(x)
    # Rounding of g's terms: the certificate's evaluation tolerance times the magnitude of both networks.
    points = x.numpy().reshape(32, -1)
    scale = result.frozen.magnitude(points, result.gamma, result.beta).reshape(32, -1)
    scale = scale + result.target.magnitude(points).reshape(32, -1)
    assert np.all(
        np.abs(g.numpy().reshape(32, -1) - f.numpy().reshape(32, -1)) <= result.certificate.sampled.tolerance * scale
    )
    assert float((g - f).abs().max()) <= 1e-9 * float(f.abs().max())


@pytest.mark.parametrize("method", ["direct", "lstsq", "iterative", "l1", "exact"])
def test_every_solver_on_a_conv_block(method: str) -> None:
    """One conv layer on a box over its input tensor (the single-layer entry point), no ReLU after it."""
    rng = np.random.default_rng(6)
    conv = verify.Conv.build(rng.standard_normal((2, 2, 2, 2)) / 3, rng.standard_normal(2), stride=2, padding=1)
    target = verify.ConvTargetNetwork([conv], (2, 5, 5))
    frozen = verify.ConvFrozenNetwork.for_target(target, "paper" if method in ("direct", "exact") else 1.5, seed=1)
    lo = rng.uniform(-1, 0, (2, 5, 5))
    result = verify.reconstruct(target, frozen, verify.Box(lo, lo + 1), method=method)
    assert result.certificate.holds and not result.certificate.sampled_only and result.certificate.error_bound < np.inf
    assert [g.shape for g in result.gamma] == [(frozen.widths[1],), (2,)]
    x = lo + rng.uniform(0, 1, (9, 2, 5, 5))
    assert np.max(np.abs(result.network(x) - target(x))) <= 1e-10 * np.max(np.abs(target.magnitude(x)))


def test_minimal_mode_on_conv_blocks() -> None:
    rng = np.random.default_rng(7)
    layers = [
        verify.Conv.build(rng.standard_normal((3, 2, 3, 3)) / 4, rng.standard_normal(3), padding=1),
        verify.AvgPool((2, 2), (2, 2), (0, 0)),
        verify.Conv.build(rng.standard_normal((2, 3, 3, 3)) / 5, rng.standard_normal(2), stride=2),
    ]
    target = verify.ConvTargetNetwork(layers, (2, 10, 10))
    frozen = verify.ConvFrozenNetwork.for_target(target, "minimal", seed=2)
    assert frozen.widths[1] == 3 * (2 * 9 - 1) + 1
    result = verify.reconstruct(target, frozen, verify.Box(-1, 1, shape=(2, 10, 10)), mode="minimal")
    assert result.certificate.holds


def test_one_channel_below_the_paper_width_is_infeasible() -> None:
    rng = np.random.default_rng(8)
    conv = verify.Conv.build(rng.standard_normal((2, 2, 3, 3)), padding="same")
    target = verify.ConvTargetNetwork([conv], (2, 6, 6))
    frozen = verify.ConvFrozenNetwork.for_target(target, 2 * 2 * 9 - 1, seed=3)
    with pytest.raises(verify.InfeasibleError, match="block 1"):
        verify.reconstruct(target, frozen, verify.Box(0, 1, shape=(2, 6, 6)))


@pytest.mark.parametrize("density", [0.2, 0.35, 0.6])
def test_sparse_conv_matching_equals_numerical_rank(density: float) -> None:
    """§4 on flattened kernels: the matching size of the masked block equals the rank of its K."""
    rng = np.random.default_rng(9)
    conv = verify.Conv.build(rng.standard_normal((2, 2, 2, 2)), stride=2)
    target = verify.ConvTargetNetwork([conv], (2, 6, 6))
    for seed in range(4):
        frozen = verify.ConvFrozenNetwork.for_target(target, 2.0, seed=seed, density=density)
        block = next(conv_blocks(target, frozen))
        decision = equation_feasibility(block.equation, "paper", block=1)
        assert decision.rank == np.linalg.matrix_rank(block.equation.k)
        assert verify.feasibility(target, frozen).blocks[0].rank == decision.rank


def test_box_over_tensors() -> None:
    box = verify.Box(0, 1, shape=(3, 4, 4))
    assert box.shape == (3, 4, 4) and box.dim == 48 and box.to_dict()["shape"] == [3, 4, 4]
    shaped = verify.Box(np.zeros((3, 4, 4)), np.ones((3, 4, 4)))
    assert shaped.shape == (3, 4, 4) and np.array_equal(shaped.lo, np.zeros(48))
    with pytest.raises(ValueError, match=r"hi must have shape \(3, 4, 4\)"):
        verify.Box(np.zeros((3, 4, 4)), np.ones((3, 4, 5)))
    with pytest.raises(ValueError, match="shape must be a tuple of integers"):
        verify.Box(0, 1, shape=(3, 0))


def test_forward_batches_stay_bounded_and_give_the_same_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The forward evaluates fewer inputs at once when a layer is large; the outputs do not depend on it."""
    import verify.core.conv_networks as conv_networks

    rng = np.random.default_rng(10)
    target = verify.ConvTargetNetwork(
        [
            verify.Conv.build(rng.standard_normal((6, 2, 3, 3)), padding=1),
            verify.Conv.build(rng.standard_normal((2, 6, 1, 1))),
        ],
        (2, 8, 8),
    )
    x = rng.uniform(size=(20, 2, 8, 8))
    assert target.batch == 16
    whole = target(x)
    monkeypatch.setattr(conv_networks, "BATCH_ENTRIES", 6 * 64 * 3)  # three inputs' largest layer output
    assert target.batch == 3
    assert np.array_equal(target(x), whole)


def test_a_mask_too_sparse_for_its_conv_block_is_refused_by_matching() -> None:
    """§4 on flattened kernels: reconstruct refuses from the pattern alone, with the matching size."""
    rng = np.random.default_rng(11)
    target = verify.ConvTargetNetwork([verify.Conv.build(rng.standard_normal((2, 2, 2, 2)))], (2, 5, 5))
    frozen = verify.ConvFrozenNetwork.for_target(target, 2.0, seed=0, density=0.15)
    report = verify.feasibility(target, frozen)
    assert not report.ok
    with pytest.raises(verify.InfeasibleError, match=rf"allows rank at most {report.blocks[0].rank} "):
        verify.reconstruct(target, frozen, verify.Box(0, 1, shape=(2, 5, 5)))
