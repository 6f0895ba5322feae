"""Frozen modules with one node changed are refused before any solve, naming the node.

A drawn convolutional target (one or two Conv2d layers with drawn channels, kernel, stride and
padding, an optional max or average pool, Flatten, a Linear head), its frozen module from
`verify.nn.frozen_like`, and one drawn edit of that frozen module: a ReLU removed, added or moved,
the pool moved, a convolution's stride changed. The property: `fit_norm_layers` refuses every
edited module with a ``ValueError`` from the node-by-node match (it names the frozen node and its
source module), and the unedited module matches.
"""

import copy
import itertools

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from torch import nn

import verify
from verify.nn import fit_norm_layers, frozen_like
from verify.nn.graph import read_graph
from verify.nn.graph_match import match

REFUSED = (
    r"^(frozen graph node '.*' \(.*\) does not match |frozen pair '.*' \(.*\) does not fit "
    r"|graph node '.*' \(.*\) is not supported)"
)
"""The refusals of the graph matcher (`verify.nn.graph_match.match`) and of the frozen graph's reader: each names
the frozen node and its source module."""
SIZE = 9
"""Input height and width: large enough for two stride-2 kernels of 3 and a pool of 2."""


@st.composite
def targets(draw: st.DrawFn) -> tuple[nn.Sequential, int]:
    """A small CNN target and its input channels."""
    channels = [draw(st.integers(1, 2)) for _ in range(draw(st.integers(1, 2)) + 1)]
    layers: list[nn.Module] = []
    size = SIZE
    for c_in, c_out in itertools.pairwise(channels):
        kernel, stride, padding = draw(st.integers(2, 3)), draw(st.integers(1, 2)), draw(st.integers(0, 1))
        layers += [nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding), nn.ReLU()]
        size = (size + 2 * padding - kernel) // stride + 1
    pool = draw(st.sampled_from([None, nn.MaxPool2d, nn.AvgPool2d]))
    if pool is not None and size >= 2:
        layers.append(pool(2))
        size //= 2
    layers += [nn.Flatten(), nn.Linear(channels[-1] * size * size, 2)]
    seed = draw(st.integers(0, 2**16))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(*layers).double().eval(), channels[0]


def _edit(draw: st.DrawFn, layers: list[nn.Module]) -> tuple[str, list[nn.Module]]:
    """One node of the frozen chain changed: a ReLU removed, added or moved, the pool moved, a stride changed."""
    relus = [i for i, m in enumerate(layers) if isinstance(m, nn.ReLU)]
    pools = [i for i, m in enumerate(layers) if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d))]
    convs = [i for i, m in enumerate(layers) if isinstance(m, nn.Conv2d)]
    kinds = ["remove ReLU", "add ReLU", "move ReLU", "change stride"] + (["move pool"] if pools else [])
    kind = draw(st.sampled_from(kinds))
    edited = copy.deepcopy(layers)
    if kind == "add ReLU":
        edited.insert(draw(st.integers(0, len(edited))), nn.ReLU())
    elif kind == "change stride":
        conv = edited[draw(st.sampled_from(convs))]
        conv.stride = (conv.stride[0] % 2 + 1,) * 2  # 1 <-> 2
    else:
        moved = edited.pop(draw(st.sampled_from(relus if "ReLU" in kind else pools)))
        if kind != "remove ReLU":
            edited.insert(draw(st.integers(0, len(edited))), moved)
    assume([type(m) for m in edited] != [type(m) for m in layers] or kind == "change stride")
    return kind, edited


@given(targets(), st.data())
def test_a_frozen_module_with_one_node_changed_is_refused(
    drawn: tuple[nn.Sequential, int], data: st.DataObject
) -> None:
    target, channels = drawn
    frozen = frozen_like(target, width="paper", seed=0)
    match(read_graph(target, "target"), read_graph(frozen, "frozen"))  # frozen_like's module runs the target's graph
    kind, edited = _edit(data.draw, list(frozen))
    module = nn.Sequential(*edited)
    state = copy.deepcopy(module.state_dict())
    with pytest.raises(ValueError, match=REFUSED) as refused:
        fit_norm_layers(module, target, verify.Box(-1, 1, shape=(channels, SIZE, SIZE)))
    assert not isinstance(refused.value, verify.InfeasibleError), kind
    assert all(torch.equal(state[k], v) for k, v in module.state_dict().items())  # refused before any load
