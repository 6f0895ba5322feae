"""The graph of numpy nodes (`verify.core.graph`) and its rigorous error bound (`verify.core.graph_bound`)."""

from __future__ import annotations

import numpy as np
import pytest

import verify
from verify.core.convolution import AvgPool, Flatten, MaxPool
from verify.core.graph import Graph, LinearMap, Node, conv_graph
from verify.core.graph_bound import graph_error_bound


def _structure_graph(shape: tuple[int, int, int]) -> Graph:
    """input → relu → add(input, relu) → concat(add, input) → avgpool → maxpool → flatten: no pairs."""
    c, h, w = shape
    return Graph(
        (
            Node("x", "input", (), None, shape),
            Node("r", "relu", ("x",), None, shape),
            Node("a", "add", ("x", "r"), None, shape),
            Node("c", "concat", ("a", "x"), None, (2 * c, h, w)),
            Node("p", "avgpool", ("c",), AvgPool((2, 2), (1, 1), (0, 0)), (2 * c, h - 1, w - 1)),
            Node("m", "maxpool", ("p",), MaxPool((2, 2), (1, 1), (0, 0), (1, 1)), (2 * c, h - 2, w - 2)),
            Node("f", "flatten", ("m",), Flatten(), (2 * c * (h - 2) * (w - 2),)),
        )
    )


def _evaluate(x: np.ndarray, dtype: type) -> np.ndarray:
    """The structure graph on a batch, every operation in ``dtype``."""
    x = x.astype(dtype)
    a = x + np.maximum(x, dtype(0))
    c = np.concatenate([a, x], axis=1)
    p = AvgPool((2, 2), (1, 1), (0, 0))(c).astype(dtype)
    return MaxPool((2, 2), (1, 1), (0, 0), (1, 1))(p).reshape(len(x), -1)


def test_structure_nodes_bound_a_float32_evaluation() -> None:
    """add, concat, avg/max pooling and flatten: the float32 evaluation stays within the float32 bound of the
    float64 one (whose own error, about 1e-16 of the scale, is far below the float32 bound, about 1e-7)."""
    shape = (2, 5, 5)
    rng = np.random.default_rng(0)
    lo = rng.uniform(-3, 0, shape)
    box = verify.Box(lo, lo + 3)
    bound = graph_error_bound(_structure_graph(shape), box, dtype="float32")
    x = rng.uniform(lo, lo + 3, (2000, *shape))
    x[:500] = np.where(rng.random((500, *shape)) < 0.5, lo, lo + 3)  # box corners
    error = np.abs(_evaluate(x, np.float32).astype(np.float64) - _evaluate(x, np.float64)).max()
    assert 0 < error <= bound.error_bound
    assert bound.error_bound <= 20 * 2.0**-24 * bound.scale  # a few roundings of the scale, not a loose bound
    exact = graph_error_bound(_structure_graph(shape), box)  # float64 only: its own rounding
    assert exact.error_bound < bound.error_bound * 1e-8


def test_graph_refuses_bad_nodes() -> None:
    shape = (1, 3, 3)
    with pytest.raises(ValueError, match="kind 'tanh'"):
        Graph((Node("x", "input", (), None, shape), Node("t", "tanh", ("x",), None, shape)))
    with pytest.raises(ValueError, match=r"reads \['y'\].*topological order"):
        Graph((Node("x", "input", (), None, shape), Node("r", "relu", ("y",), None, shape)))
    with pytest.raises(ValueError, match="two nodes named 'x'"):
        Graph((Node("x", "input", (), None, shape), Node("x", "relu", ("x",), None, shape)))
    with pytest.raises(ValueError, match="starts with its input"):
        Graph((Node("r", "relu", (), None, shape),))
    with pytest.raises(ValueError, match=r"needs a verify\.Ball or verify\.Box domain, got str"):
        graph_error_bound(_structure_graph((1, 4, 4)), "box")


def _conv_result() -> verify.Reconstruction:
    rng = np.random.default_rng(3)
    layers = [
        verify.Conv.build(rng.standard_normal((2, 1, 3, 3)) / 3, rng.standard_normal(2) / 4, padding=1),
        verify.AvgPool((2, 2), (2, 2), (0, 0)),
        verify.Conv.build(rng.standard_normal((2, 2, 2, 2)) / 3),
    ]
    target = verify.ConvTargetNetwork(layers, (1, 6, 6))
    frozen = verify.ConvFrozenNetwork.for_target(target, "paper", seed=2)
    return verify.reconstruct(target, frozen, verify.Box(0, 1, shape=(1, 6, 6)))


def test_conv_graph_is_the_certificates_bound_and_refuses_overflow() -> None:
    """The certificate's bound is the graph's; a float16 evaluation on a box far beyond 65504 / scale is refused."""
    result = _conv_result()
    graph = conv_graph(result.target, result.frozen, result.gamma, result.beta)
    assert [node.kind for node in graph.nodes] == ["input", "pair", "relu", "avgpool", "pair"]
    bound = graph_error_bound(graph, verify.Box(0, 1, shape=(1, 6, 6)))
    assert bound.error_bound == result.certificate.error_bound < np.inf
    assert len(bound.blocks) == 2
    huge = graph_error_bound(graph, verify.Box(0, 1e6, shape=(1, 6, 6)), dtype="float16")
    assert huge.error_bound == np.inf and "overflow" in huge.reason


def test_conv_graph_refuses_switched_on_extra_channels() -> None:
    """Even-layer channels beyond the target's must be switched off (γ = β = 0) to be exactly 0."""
    result = _conv_result()
    gamma = [g.copy() for g in result.gamma]
    frozen = result.frozen
    wide = verify.ConvFrozenNetwork(
        [
            frozen.affine[0],
            frozen.affine[1].like(np.concatenate([frozen.affine[1].weight, frozen.affine[1].weight[:1]])),
            *frozen.structure_before(1),
            verify.Conv.build(
                np.concatenate([frozen.affine[2].weight, np.ones((frozen.affine[2].out_channels, 1, 2, 2))], axis=1)
            ),
            frozen.affine[3],
        ],
        frozen.input_shape,
    )
    gamma[1] = np.concatenate([gamma[1], [0.5]])
    beta = [b.copy() for b in result.beta]
    beta[1] = np.concatenate([beta[1], [0.0]])
    with pytest.raises(ValueError, match="block 1: frozen layer 2 has channels beyond the target's 2"):
        conv_graph(result.target, wide, gamma, beta)
    gamma[1][-1] = 0.0
    assert conv_graph(result.target, wide, gamma, beta).pairs[0].switched_off is not None


def test_linear_map_nodes_bound_a_float32_evaluation() -> None:
    """The ``map`` kind (docs/design.md §6.7): a strided slice with zero channel padding (exact) and a mean over
    the spatial axes (``k = 16`` entries, ``k + 1`` roundings), with a stack of two inputs in between. The
    float32 evaluation stays within the float32 bound; the exact maps add nothing to the input's cast error,
    and the whole bound is a few roundings of the scale (the mean's γ_17 and the cast), not a loose one."""
    shape = (2, 8, 8)

    def shortcut(inputs):  # x[:, ::2, ::2] padded with one zero channel on each side
        return np.pad(inputs[0][:, ::2, ::2], ((1, 1), (0, 0), (0, 0)))

    def stack(inputs):
        return np.stack(inputs)

    def mean(inputs):
        return inputs[0].mean(axis=(-2, -1))

    graph = Graph(
        (
            Node("x", "input", (), None, shape),
            Node("s", "map", ("x",), LinearMap(shortcut), (4, 4, 4)),
            Node("t", "map", ("s", "s"), LinearMap(stack), (2, 4, 4, 4)),
            Node("m", "map", ("t",), LinearMap(mean, terms=17), (2, 4)),
        )
    )
    rng = np.random.default_rng(1)
    lo = rng.uniform(-2, 0, shape)
    box = verify.Box(lo, lo + 2)
    seen = {}
    bound = graph_error_bound(
        graph, box, dtype="float32", on_node=lambda node, value: seen.setdefault(node.name, value)
    )
    moved = shortcut([seen["x"].delta])  # selection, zero padding, stacking: exact, the errors only move
    assert np.array_equal(seen["t"].delta, np.stack([moved, moved])) and np.all(moved[[0, -1]] == 0)
    # The mean's own rounding on top of the errors it averages, Higham's γ_17 = 17u/(1 − 17u), u = 2^-24: with
    # the cast error dominating the sampled one, only this comparison would see it dropped.
    size = shortcut([np.maximum(np.abs(lo - seen["x"].delta), np.abs(lo + 2 + seen["x"].delta))])
    gamma = 17 * 2.0**-24 / (1 - 17 * 2.0**-24)
    assert np.all(seen["m"].delta >= mean([np.stack([moved, moved])]) + gamma * mean([np.stack([size, size])]))
    x = rng.uniform(lo, lo + 2, (2000, *shape))
    x[:500] = np.where(rng.random((500, *shape)) < 0.5, lo, lo + 2)  # box corners

    def evaluate(batch: np.ndarray, dtype: type) -> np.ndarray:
        s = np.pad(batch.astype(dtype)[:, :, ::2, ::2], ((0, 0), (1, 1), (0, 0), (0, 0)))
        return np.stack([s, s], axis=1).mean(axis=(-2, -1), dtype=dtype)

    error = np.abs(evaluate(x, np.float32).astype(np.float64) - evaluate(x, np.float64)).max()
    assert 0 < error <= bound.error_bound
    assert bound.error_bound <= 20 * 2.0**-24 * bound.scale


def test_signed_sums_refuse_bad_input() -> None:
    """`verify.core.signed_sums`: boxes of two shapes, a negative fan-in or a unit roundoff outside [0, 1) raise."""
    from verify.core.signed_sums import signed_rounding, signed_terms

    w = np.ones((2, 3))
    with pytest.raises(ValueError, match="one shape"):
        signed_terms(lambda x, m: m @ x, w, np.zeros(3), np.ones(2))
    one = np.ones(2)
    with pytest.raises(ValueError, match="fan_in"):
        signed_rounding(one, one, one, one, one, one, -1, 2.0**-24, 0.0, 1.0)
    with pytest.raises(ValueError, match="fan_in"):
        signed_rounding(one, one, one, one, one, one, 3, 1.5, 0.0, 1.0)


def test_signed_terms_split_a_box_by_sign() -> None:
    """``P = M⁺ h⁺ + M⁻ l⁻``, ``N = M⁺ l⁻ + M⁻ h⁺`` (docs/design.md §6.7), written out for one row."""
    from verify.core.signed_sums import signed_terms

    w = np.array([[2.0, -3.0, 1.0]])
    lo, hi = np.array([-1.0, 0.0, 0.5]), np.array([2.0, 1.0, 4.0])
    positive, negative = signed_terms(lambda x, m: m @ x, w, lo, hi)
    assert positive[0] == 2.0 * 2.0 + 0.0 + 1.0 * 4.0  # the largest positive terms: 2·2, (−3)·0, 1·4
    assert negative[0] == 2.0 * 1.0 + 3.0 * 1.0  # the most negative: 2·(−1), (−3)·1


def test_float32_graph_pairs_get_room_for_the_carried_error() -> None:
    """docs/design.md §10: a float32 CNN class whose first bound counts a neuron past its margin (its head, by
    16× on the interval shifts) is solved again with every shift covering the error carried in: the final
    bound has no margin term, and every pair's margin_ratio is at most 1."""
    import torch

    from verify.job.graph_models import build, domain_of
    from verify.nn import fit_norm_layers, frozen_like

    target = build("cnn", 0).float()
    lo, hi, shape = domain_of("cnn")
    frozen = frozen_like(target, width="paper", seed=1000)
    result = fit_norm_layers(frozen, target, verify.Box(lo, hi, shape=shape), rtol=1e12, progress=False)
    assert all(node.margin_ratio <= 1.0 for node in result.nodes), [n.margin_ratio for n in result.nodes]
    x = torch.tensor(np.random.default_rng(0).uniform(lo, hi, (256, *shape)), dtype=torch.float32)
    with torch.no_grad():
        error = float((frozen(x).double() - target.double()(x.double())).abs().max())
    assert error <= result.error_bound
