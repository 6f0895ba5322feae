"""The graph's linear ranges contain the target's true values (docs/design.md §6.10).

For drawn graphs (the residual and concatenating MLPs of `properties.test_graphs`, and small convolutional
ResNets with identity and projection shortcuts, folded BatchNorms and average pooling) and drawn input
boxes, every node's value by torch's own float64 forward of the target module (its traced graph run node by
node) at fresh points of the box (both extreme corners, random corners, inner points) lies in the node's
range, widened only by the engine's own bound ``δ_f`` on that float64 evaluation's rounding at the node
(the ranges enclose the exact values; torch's are within ``δ_f`` of them); and the ranges never exceed the
interval ones. The MLP graphs are drawn on balls too (points half inside, half on the sphere).
"""

import numpy as np
import torch
from hypothesis import given, note
from hypothesis import strategies as st

import verify
from properties.test_graphs import DrawnGraph, build_resnet
from verify.nn.graph_fit import _input_box
from verify.nn.graph_frozen import frozen_graph
from verify.nn.graph_idioms import check_shapes, node_values
from verify.nn.graph_lower import certified_bound, interval_bounds, target_ranges
from verify.nn.graph_match import read_matched

FRESH = 256


def _points(lo: np.ndarray, hi: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Both extreme corners, random corners (half) and uniform inner points of the box ``[lo, hi]``."""
    corners = np.where(rng.random((count // 2, *lo.shape)) < 0.5, lo, hi)
    inner = rng.uniform(lo, hi, (count - count // 2 - 2, *lo.shape))
    return np.concatenate([lo[None], hi[None], corners, inner])


@given(
    conv=st.booleans(),
    d_in=st.integers(1, 4),
    width=st.integers(2, 5),
    blocks=st.integers(0, 2),
    concat=st.booleans(),
    ball=st.booleans(),
    seed=st.integers(0, 2**16),
    centre=st.floats(-2, 2),
    half_width=st.floats(0.05, 2),
)
def test_graph_ranges_contain_the_true_node_values(
    conv: bool,
    d_in: int,
    width: int,
    blocks: int,
    concat: bool,
    ball: bool,
    seed: int,
    centre: float,
    half_width: float,
) -> None:
    if conv:
        target = build_resnet((2,) if blocks < 2 else (2, 3), 1, seed)
        shape = (3, 6, 6)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            target = DrawnGraph(d_in, width, blocks, concat, 2).double()
            for bn in target.bn1:
                with torch.no_grad():
                    bn.running_mean.uniform_(-0.5, 0.5)
                    bn.running_var.uniform_(0.5, 2.0)
        target.eval()
        shape = (d_in,)
    lo = np.full(shape, centre - half_width)
    domain = verify.Box(lo, lo + 2 * half_width, shape=shape if conv else None)
    if ball and not conv:  # a ball's linear bounds are concretized as a ball's
        domain = verify.Ball(half_width, np.full(d_in, centre))
    frozen = frozen_graph(target, seed=seed + 1)
    graph, _, pairs = read_matched(target, frozen)
    domain, shape = _input_box(graph, domain)
    constants = check_shapes(graph, shape, torch.float64, torch.device("cpu"))
    box = [torch.tensor(np.asarray(v, dtype=np.float64).reshape(1, *shape)) for v in domain.bounding_box()]
    ranges, bounds = target_ranges(graph, pairs, constants, interval_bounds(graph, *box), domain)
    values = certified_bound(graph, pairs, constants, bounds, domain, target, frozen, ranges=ranges)[1]
    rng = np.random.default_rng(seed)
    if isinstance(domain, verify.Ball):  # half inside, half on the sphere
        x = domain.sample(FRESH, rng).reshape(FRESH, *shape)
    else:
        x = _points(box[0][0].numpy(), box[1][0].numpy(), FRESH, rng)
    with torch.no_grad():
        computed = node_values(graph, torch.tensor(x), set(ranges.lo))
    for name in ranges.lo:
        v = computed[name].numpy()
        slack = values[name].delta_f  # torch's float64 rounding at this node, as the engine bounds it
        note(
            f"{name}: lowest slack {np.min(v - ranges.lo[name] + slack):.3g}, {np.min(ranges.hi[name] + slack - v):.3g}"
        )
        assert np.all(ranges.lo[name] - slack <= v) and np.all(v <= ranges.hi[name] + slack)
        assert np.all(ranges.lo[name] >= ranges.interval_lo[name])
        assert np.all(ranges.hi[name] <= ranges.interval_hi[name])
