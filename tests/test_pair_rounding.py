"""`verify.core.pair_rounding` in the graph bound: the fields it reads, and what it gains (docs/design.md §6.7).

The graph bound keeps, per pair layer, the smaller of `layer_rounding`, the signed sums and the sorted-leaves
bound, so with the sorted leaves it is never above the bound without them; on the float32 CNN class of the
tightness claim it is strictly below (the even layers' rounding dominates there). The bound without them is
the same walk with `odd_rounding` and `even_rounding` answering ``inf`` (no bound), so only the new term moves.
"""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
import torch

import verify
import verify.core.graph_bound as graph_bound
from verify.core.convolution import Conv, Linear
from verify.job import tightness_cases


def _no_odd(layer, norm, lo, hi, total, *rest):
    """The odd layer's sorted-leaves bound switched off: ``inf`` for every channel and position."""
    return np.full(np.shape(total), np.inf)


def _no_even(pair, lo, hi, largest, rho_odd, slack, mag_odd, total, *rest):
    """The even layer's sorted-leaves bound switched off."""
    return np.full(np.shape(total), np.inf)


def _graph_bounds(make) -> list[tuple[float, float]]:
    """Fit ``make()``'s model as a user does and bound every graph the fit bounds twice: (with, without) the tree."""
    from verify.nn import fit_norm_layers

    calls = []
    original = graph_bound.graph_error_bound

    def both(*args, **kwargs):
        with_tree = original(*args, **kwargs)
        with (
            mock.patch.object(graph_bound, "odd_rounding", _no_odd),
            mock.patch.object(graph_bound, "even_rounding", _no_even),
        ):
            without = original(*args, **{k: v for k, v in kwargs.items() if k != "on_node"})
        calls.append((with_tree.error_bound, without.error_bound))
        return with_tree

    frozen, target, domain, _ = make()
    with mock.patch("verify.nn.graph_lower.graph_error_bound", both):
        fit_norm_layers(frozen, target, domain, rtol=tightness_cases.LOOSE_RTOL, progress=False)
    assert calls, "the fit bounded no graph"
    return calls


def test_the_cnn_class_in_float32_is_bounded_below_its_bound_without_the_sorted_leaves():
    calls = _graph_bounds(tightness_cases._cnn)
    for with_tree, without in calls:
        assert with_tree <= without
    final, before = calls[-1]
    assert final < before  # the even layers' sums of 108 terms: the sorted leaves charge them less
    # More than a rounding-level change: the even layers' rounding is most of this bound, and with leaves of one
    # size the sorted leaves charge about 3/4 of the signed sums' m max(P, N) (docs/design.md §6.7); measured 0.62.
    assert final / before < 0.9


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_small_resnet_is_never_bounded_above_its_bound_without_the_sorted_leaves(dtype):
    calls = _graph_bounds(tightness_cases._small_resnet(dtype))
    for with_tree, without in calls:
        assert with_tree <= without
    assert calls[-1][0] < calls[-1][1]


@pytest.mark.parametrize(
    "layer",
    [
        Conv.build(np.arange(2 * 3 * 3 * 3.0).reshape(2, 3, 3, 3) - 20, stride=2, padding=1),
        Conv.build(np.arange(2 * 3 * 2 * 3.0).reshape(2, 3, 2, 3) - 9, padding=2, dilation=2, padding_mode="reflect"),
        Conv.build(np.arange(2 * 3 * 3.0).reshape(2, 3, 3) + 1, padding=1, padding_mode="circular"),
        Linear(np.arange(12.0).reshape(4, 3) - 5, np.zeros(4)),
    ],
    ids=["conv2d-stride", "conv2d-reflect-dilated", "conv1d-circular", "linear"],
)
def test_receptive_fields_give_the_layer_position_by_position(layer):
    """``flat_weight @ fields(x)[q]`` is output position ``q`` of ``weight ⋆ x`` (integers: exact in float64)."""
    shape = (3, 6, 7) if isinstance(layer, Conv) and layer.spatial == 2 else (3, 8) if isinstance(layer, Conv) else (3,)
    x = np.random.default_rng(0).integers(-4, 5, size=shape).astype(np.float64)
    fields = layer.fields(x)
    expected = layer.linear(x[None], layer.weight)[0].reshape(layer.out_channels, -1)
    assert fields.shape == (expected.shape[1], layer.flat_weight.shape[1])
    assert np.array_equal(layer.flat_weight @ fields.T, expected)


def test_the_cnn_class_in_float32_stays_within_the_bound_at_fresh_points_and_corners():
    """torch's own float32 forward of the fitted CNN class against the target's own, at fresh points of its box
    (half uniform, half corners, both extreme corners), within the bound that now uses the sorted leaves."""
    from verify.job.claims.routes import fresh_points
    from verify.nn import fit_norm_layers

    frozen, target, domain, shape = tightness_cases._cnn()
    result = fit_norm_layers(frozen, target, domain, rtol=tightness_cases.LOOSE_RTOL, progress=False)
    x = torch.tensor(fresh_points(domain, 512, np.random.default_rng(1)).reshape(-1, *shape), dtype=torch.float32)
    with torch.no_grad():
        error = float((frozen(x) - target(x)).double().abs().max())
    assert isinstance(domain, verify.Box) and 0 < error <= result.certificate.error_bound
