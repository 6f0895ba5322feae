"""``fit_norm_layers(mode="approximate")`` on modules read as graphs (docs/design.md §11): below the paper width
the narrow pairs are approximated, every later pair is solved for its input box enlarged by the graph bound of
the error carried in, and the whole graph is certified by the centred graph bound.

Soundness is judged by torch's own forward of the tuned frozen module on fresh domain points (the box's
corners among them) against the certified ``error_bound``, never a hand-picked tolerance; at the paper width
the result must be paper mode's, bit for bit.
"""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch
from torch import nn

import verify
from verify.nn import fit_norm_layers
from verify.nn.graph_fit import GraphReconstruction
from verify.nn.graph_frozen import frozen_graph

POINTS = 2000


class SkipMLP(nn.Module):
    """A stem, one residual step ``x + F(x)`` and a head: an addition the error of ``F``'s pair enters."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.fc, self.head = nn.Linear(3, 4), nn.Linear(4, 4), nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        return self.head(x + torch.relu(self.fc(x)))


class SkipCNN(nn.Module):
    """Two 3×3 convolutions with a skip around the second, flattened into a Linear head (4×4 inputs given flat)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(2, 2, 3, padding=1)
        self.head = nn.Linear(2 * 4 * 4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x.view(x.size(0), 1, 4, 4)))
        x = torch.relu(x + self.conv2(x))
        return self.head(x.flatten(1))


DIMS = {SkipMLP: 3, SkipCNN: 16}


def _case(cls: type[nn.Module], dtype: torch.dtype, width: str | float) -> tuple[nn.Module, nn.Module, verify.Box]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        target = cls().to(dtype).eval()
    dim = DIMS[cls]
    return target, frozen_graph(target, width=width, seed=1), verify.Box(-np.ones(dim), np.ones(dim))


def _fresh(domain: verify.Box, dtype: torch.dtype) -> torch.Tensor:
    """``POINTS`` fresh points of the box (half on its boundary), the first of them its corners (at most 256)."""
    corners = np.array(list(itertools.islice(itertools.product((-1.0, 1.0), repeat=domain.dim), 256)))
    points = domain.sample(POINTS - len(corners), np.random.default_rng(2026))
    return torch.tensor(np.concatenate([corners, points]), dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("cls", [SkipMLP, SkipCNN], ids=lambda c: c.__name__)
def test_a_graph_below_the_paper_width_is_certified_against_its_own_forward(cls: type, dtype: torch.dtype) -> None:
    target, frozen, domain = _case(cls, dtype, 0.5)
    with pytest.raises(verify.InfeasibleError):  # paper mode cannot reproduce a half-width pair
        fit_norm_layers(copy.deepcopy(frozen), target, domain, mode="paper")
    result = fit_norm_layers(frozen, target, domain, mode="approximate")
    assert isinstance(result, GraphReconstruction) and result.mode == "approximate"
    assert not result.exact and result.approximated and result.holds
    assert np.isfinite(result.error_bound) and 0 < result.approximation_error <= result.error_bound
    assert all(not n.result.certificate.exact for n in result.nodes if n.name in result.approximated)
    x = _fresh(domain, dtype)
    with torch.no_grad():  # torch's own forward of the tuned frozen module against the target's, in their dtype
        observed = float((frozen(x).double() - target(x).double()).abs().max())
    assert 0 < observed <= result.error_bound
    assert result.error_ratio <= 1  # the end-to-end check of every node, on the route's own sample points


@pytest.mark.parametrize("cls", [SkipMLP, SkipCNN], ids=lambda c: c.__name__)
def test_at_the_paper_width_approximate_is_paper_mode(cls: type) -> None:
    target, frozen, domain = _case(cls, torch.float64, "paper")
    paper_frozen = copy.deepcopy(frozen)
    result = fit_norm_layers(frozen, target, domain, mode="approximate")
    paper = fit_norm_layers(paper_frozen, target, domain, mode="paper")
    assert result.exact and result.approximated == () and result.approximation_error == 0.0 and result.holds
    assert result.error_bound == paper.error_bound and result.f_max == paper.f_max
    state, paper_state = frozen.state_dict(), paper_frozen.state_dict()
    assert all(torch.equal(state[k], paper_state[k]) for k in state)


def test_later_pairs_are_solved_for_the_error_carried_in() -> None:
    # The pair after the approximated stem reads a box the graph bound enlarged: its region is wider than
    # the target's own interval box there, by the bound of the error at its input.
    target, frozen, domain = _case(SkipMLP, torch.float64, 0.5)
    result = fit_norm_layers(frozen, target, domain, mode="approximate")
    nodes = {n.name: n for n in result.nodes}
    assert result.approximated[0] == "stem"
    reference = fit_norm_layers(frozen_graph(target, width="paper", seed=1), target, domain, mode="paper")
    wide = {n.name: n for n in reference.nodes}
    for name in ("fc", "head"):
        enlarged, own = nodes[name].region, wide[name].region
        assert np.all(enlarged.lo < own.lo) and np.all(enlarged.hi > own.hi)
        # at least the stem's sampled error |ĝ − f̂|, less the target's own rounding there (fan-in 3, its bias
        # and a fold: γ_5 of the stem's scale), which the carried δ ≥ |ĝ − f| does not include
        u = np.finfo(np.float64).eps / 2
        rounding = 5 * u / (1 - 5 * u) * nodes["stem"].scale
        assert np.max(own.lo - enlarged.lo) >= nodes["stem"].observed_error - rounding


def test_a_graph_without_a_bounded_domain_is_refused() -> None:
    target, frozen, _ = _case(SkipMLP, torch.float64, 0.5)
    before = copy.deepcopy(frozen.state_dict())
    with pytest.raises(ValueError, match=r"domain must be a verify\.Ball or a verify\.Box"):
        fit_norm_layers(frozen, target, None, mode="approximate")
    assert all(torch.equal(frozen.state_dict()[k], v) for k, v in before.items())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_a_wide_pair_after_narrow_ones_stays_linear_on_what_it_receives(dtype: torch.dtype) -> None:
    # 10 odd neurons per pair: the stem (paper width 12) and fc (16) are approximated, the head (8) is wide.
    # Shifted for its input box enlarged by the carried bound, every later pair's margins over the target's
    # own box cover the error carried in (margin_ratio <= 1), so the bound needs no neuron off its regime.
    target, frozen, domain = _case(SkipMLP, dtype, 10)
    result = fit_norm_layers(frozen, target, domain, mode="approximate", rtol=1e-3)  # rtol: the wide head's own
    nodes = {n.name: n for n in result.nodes}
    assert result.approximated == ("stem", "fc") and nodes["head"].result.certificate.exact and not result.exact
    assert all(nodes[name].margin_ratio <= 1 for name in ("fc", "head"))
    x = _fresh(domain, dtype)
    with torch.no_grad():
        assert float((frozen(x).double() - target(x).double()).abs().max()) <= result.error_bound
