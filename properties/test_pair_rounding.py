"""A graph pair's sorted-leaves rounding bound holds at torch's computed layers (docs/design.md §6.7).

`verify.core.pair_rounding` bounds the odd and the even layer of every pair of a graph per output position from
figures over the pair's input box: per-leaf bounds (the inputs each position reads, ``fields``), the sum of the
leaves' sizes ``T``, the cap ``M >= max(P, N)``, ``H >= |M v + c|`` and ``Y >= |s (M v + c) + t|``. A drawn CNN
class (two convolutions of drawn kernel, stride, padding mode and dilation, a Linear head) is fitted by the graph
route (`verify.nn.graph_fit.fit_graph`, whose pairs are the frozen modules whole) in float32 or float64; every
figure recorded from the last bound of the fit must be at least its value at the inputs torch itself computes
for that layer (forward hooks on the fitted frozen module) at fresh points of the box: its two extreme corners,
random corners, mixed and inner points. Then torch's forward of the fitted module against the target's stays
within the certified bound at those points. ``Y`` is a float64 product and sum of those: compared with four
times that slack scaled by ``|s|``, plus ``8 · 2^-53`` of ``|s| T + |t|``.

The sampled figures are float64 sums of at most ``n + 1`` terms, compared with a slack of ``2 (n + 2) 2^-53``
of their terms' magnitude (Higham's ``γ_{n+1}``, doubled); the leaf bounds are compared exactly (a magnitude
of an input in the box is at most the box's, with no arithmetic).
"""

from __future__ import annotations

from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import given, note, settings
from hypothesis import strategies as st
from torch import nn

import verify
import verify.core.graph_bound as graph_bound
import verify.core.pair_rounding as pair_rounding
from properties._support import certified_or_discard
from properties.strategies import seeds
from properties.test_soundness import box_points

_GEOMETRY = st.tuples(
    st.sampled_from([1, 2, 3]),
    st.integers(1, 2),
    st.sampled_from(["zeros", "reflect", "replicate", "circular"]),
    st.integers(1, 2),
)
"""A convolution's kernel, stride, padding mode and dilation (padding ``dilation · (kernel // 2)``)."""


class DrawnCNN(nn.Module):
    """Two convolutions of drawn geometry with ReLUs (the first of stride 1), flatten, a Linear head."""

    def __init__(self, channels: tuple[int, int, int], size: int, geometry: list, d_out: int) -> None:
        super().__init__()
        convs, shape = [], size
        for k, ((kernel, stride, mode, dilation), c_in, c_out) in enumerate(
            zip(geometry, channels[:-1], channels[1:], strict=True)
        ):
            pad, stride = dilation * (kernel // 2), stride if k else 1  # reflect padding needs the size it pads
            convs.append(nn.Conv2d(c_in, c_out, kernel, stride, pad, dilation, padding_mode=mode))
            shape = (shape + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1
        self.convs = nn.ModuleList(convs)
        self.head = nn.Linear(channels[-1] * shape * shape, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = F.relu(conv(x))
        return self.head(torch.flatten(x, 1))


def _record() -> tuple[list, dict]:
    """Patches recording, per bound of a graph, every pair layer's figures (layer, norm, weight, fields, leaves, T,
    cap, H, Y), in the walk's order."""
    calls: list = []
    current: dict = {}
    sum_figures, dot_rounding, tight, summation = (
        pair_rounding.sum_figures,
        pair_rounding._dot_rounding,
        pair_rounding.tight_rounding,
        pair_rounding.summation_rounding,
    )
    odd_rounding, even_rounding, walk = graph_bound.odd_rounding, graph_bound.even_rounding, graph_bound._Walk

    def figures(total, above, below, positive=None, negative=None):
        cap, value = sum_figures(total, above, below, positive, negative)
        current["figures"][-1].update(total=np.array(total), cap=np.array(cap), value=np.array(value))
        return cap, value

    def dot(weight, bias, fields, total, cap, u, tiny):
        current["figures"][-1].update(weight=np.array(weight), bias=np.array(bias), fields=np.array(fields), leaves=[])
        return dot_rounding(weight, bias, fields, total, cap, u, tiny)

    def summation_rounding(leaves, total, cap, u, tiny):  # the leaves sorted, in blocks of rows
        current["figures"][-1]["leaves"].append(np.array(leaves))
        return summation(leaves, total, cap, u, tiny)

    def tight_rounding(dot, value, scale, mean, beta, u, tiny, inflate, output=None, shift=None):
        current["figures"][-1]["output"] = None if output is None else np.array(output)
        return tight(dot, value, scale, mean, beta, u, tiny, inflate, output, shift)

    def odd(layer, norm, *args):
        current["figures"].append({"layer": layer, "norm": norm})
        return odd_rounding(layer, norm, *args)

    def even(pair, *args):
        current["figures"].append({"layer": pair.even, "norm": pair.even_norm})
        return even_rounding(pair, *args)

    class Walk(walk):  # one per bound computed: a new list of figures
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            current["figures"] = []
            calls.append(current["figures"])

    patches = [
        mock.patch.object(pair_rounding, "sum_figures", figures),
        mock.patch.object(pair_rounding, "_dot_rounding", dot),
        mock.patch.object(pair_rounding, "tight_rounding", tight_rounding),
        mock.patch.object(pair_rounding, "summation_rounding", summation_rounding),
        mock.patch.object(graph_bound, "odd_rounding", odd),
        mock.patch.object(graph_bound, "even_rounding", even),
        mock.patch.object(graph_bound, "_Walk", Walk),
    ]
    return calls, {"patches": patches}


def _check(record: dict, inputs: np.ndarray) -> None:
    """Every figure of one layer against its computed inputs ``(points, *shape)`` (module notes)."""
    layer, weight, bias = record["layer"], record["weight"], record["bias"]
    n = weight.shape[1]
    norm = record["norm"]
    leaves = np.vstack(record["leaves"])  # per row and position, or one row per channel for every position
    rows, positions = weight.shape[0], record["fields"].shape[0]
    per_position = leaves.shape[0] == rows * positions
    leaves = leaves.reshape(rows, positions, n + 1) if per_position else leaves[:, None, :]
    assert np.all(np.abs(bias)[:, None] <= leaves[:, :, n]), "the bias leaf is below |c|"
    for v in inputs:
        fields = layer.fields(v)  # (positions, inputs): what each output position reads
        assert np.all(np.abs(fields) <= record["fields"]), "a leaf bound is below a computed input"
        terms = np.abs(fields)[None, :, :] * np.abs(weight)[:, None, :]  # (rows, positions, inputs)
        # each a float64 product, as the leaf bounds are: within 2^-52 of one another where the inputs are the box's
        assert np.all(terms <= leaves[:, :, :n] * (1 + 2.0**-52)), "a leaf bound is below a computed product"
        size = terms.sum(axis=2) + np.abs(bias)[:, None]
        slack = 2 * (n + 2) * 2.0**-53 * size
        products = fields[None, :, :] * weight[:, None, :]
        positive = np.maximum(products, 0).sum(axis=2) + np.maximum(bias, 0)[:, None]
        negative = np.maximum(-products, 0).sum(axis=2) + np.maximum(-bias, 0)[:, None]
        h = products.sum(axis=2) + bias[:, None]
        assert np.all(size - slack <= record["total"]), "T is below the sum of the leaves' sizes"
        assert np.all(np.maximum(positive, negative) - slack <= record["cap"]), "M is below max(P, N)"
        assert np.all(np.abs(h) - slack <= record["value"]), "H is below |M v + c|"
        if record["output"] is not None:
            s, t = norm.scale[:, None], norm.shift[:, None]
            reach = 4 * slack * np.abs(s) + 8 * 2.0**-53 * (np.abs(s) * size + np.abs(t))
            assert np.all(np.abs(s * h + t) - reach <= record["output"].reshape(h.shape)), "Y is below the output"


@given(
    budget=st.sampled_from([pair_rounding.LEAF_ENTRIES, 40]),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    channels=st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 2)),
    size=st.integers(4, 6),
    geometry=st.lists(_GEOMETRY, min_size=2, max_size=2),
    d_out=st.integers(1, 2),
    mode=st.sampled_from(["paper", "minimal"]),
    lo=st.floats(-1, 0.5),
    width=st.floats(0.1, 1.5),
    seed=seeds(),
)
@settings(deadline=None)
def test_pair_figures_bound_the_computed_layers(budget, dtype, channels, size, geometry, d_out, mode, lo, width, seed):
    """Every pair layer's figures at torch's computed inputs, and torch's output within the bound (module notes);
    with the leaves per position, and with one row per channel for all positions (a budget of 40 leaves, in blocks
    of rows)."""
    from verify.nn.graph_fit import fit_graph
    from verify.nn.graph_frozen import frozen_graph

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        target = DrawnCNN(channels, size, geometry, d_out).to(dtype).eval()
    shape = (channels[0], size, size)
    domain = verify.Box(np.full(shape, lo), np.full(shape, lo + width))
    frozen = frozen_graph(target, seed=seed + 1)  # the graph route: every pair holds its frozen modules whole
    calls, state = _record()
    state["patches"].append(mock.patch.object(pair_rounding, "LEAF_ENTRIES", budget))
    for patch in state["patches"]:
        patch.start()
    try:
        result = certified_or_discard(lambda: fit_graph(frozen, target, domain, mode=mode, samples=32, rtol=1e12))
    finally:
        for patch in state["patches"]:
            patch.stop()
    records = calls[-1]
    assert len(records) == 2 * 3  # both layers of every pair (two convolutions and the head)
    x = torch.tensor(box_points(domain, 96, np.random.default_rng(seed)).reshape(-1, *shape), dtype=dtype)
    seen: list[tuple[nn.Module, np.ndarray]] = []  # (the layer's norm, its computed inputs), in execution order

    def hook(norm: nn.Module):
        return lambda _, args, __: seen.append((norm, args[0].double().numpy()))

    pairs = [m for m in frozen.modules() if isinstance(m, nn.Sequential)]
    hooks = [pair[i].register_forward_hook(hook(pair[i + 1])) for pair in pairs for i in (0, 3)]
    with torch.no_grad():
        computed = frozen.eval()(x).double()
        expected = target(x).double()
    for handle in hooks:
        handle.remove()
    assert len(seen) == len(records)  # a chain: the walk's order is the execution order
    for record, (norm, v) in zip(records, seen, strict=True):
        # the figures of the parameters the module holds, at the inputs torch computed for that layer
        assert np.array_equal(record["norm"].gamma, norm.weight.detach().double().numpy())
        note(f"{type(record['layer']).__name__}: T up to {record['total'].max():.3g}")
        _check(record, v)
    assert float((computed - expected).abs().max()) <= result.error_bound
