"""Every route returns one `verify.Reconstruction` whose certificate is one `verify.Certificate` (issue 19, item 5).

Dense, convolutional and Case-2 numpy networks through `verify.reconstruct`; an MLP and a CNN as
``nn.Sequential`` and a CNN as a class through `verify.nn.fit_norm_layers`; a ResNet read by torch.fx as a
graph. Each result's certificate holds, ``result.error_bound`` is ``result.certificate.error_bound``, and
torch's (or numpy's) own forward of the tuned frozen network stays within it at fresh points of the domain,
corners included: the bound is the whole network's, not a pair's.
"""

from __future__ import annotations

import copy
import functools

import numpy as np
import pytest
import torch

import verify
from verify.core.error_bound import ErrorBound
from verify.job.claims.routes import fresh_points
from verify.job.graph_models import RESNET_INPUT, build
from verify.job.route_models import build_model, numpy_networks
from verify.nn import fit_norm_layers, frozen_like, load_norm_params
from verify.nn.graph import read_graph
from verify.nn.graph_fit import GraphReconstruction
from verify.nn.graph_idioms import check_shapes
from verify.nn.graph_lower import certified_bound, interval_bounds, target_ranges
from verify.nn.graph_match import match

POINTS = 200


def _numpy(name: str) -> tuple[verify.Reconstruction, float]:
    """``verify.reconstruct`` of the model's numpy networks, and the largest ``|g − f|`` on fresh points."""
    model = build_model(name, 0)
    target, frozen = numpy_networks(model, torch.float64)
    result = verify.reconstruct(target, frozen, model.domain)
    x = fresh_points(model.domain, POINTS, np.random.default_rng(1))
    return result, float(np.max(np.abs(result.network(x) - target(x))))


def _torch(name: str, writing: str) -> tuple[verify.Reconstruction, float]:
    """`fit_norm_layers` of the model as ``writing`` writes it, and torch's largest ``|g − f|`` on fresh points."""
    model = build_model(name, 0)
    frozen, target = model.written(writing)
    result = fit_norm_layers(frozen, target, model.domain)
    return result, _module_error(frozen, target, model.domain, model.shape)


def _resnet() -> tuple[verify.Reconstruction, float]:
    target = build("resnet-1x1-c4", 0)
    frozen = frozen_like(target, width="paper", seed=1)
    domain = verify.Box(0, 1, shape=RESNET_INPUT)
    result = fit_norm_layers(frozen, target, domain, samples=64)
    return result, _module_error(frozen, target, domain, RESNET_INPUT)


def _module_error(frozen: torch.nn.Module, target: torch.nn.Module, domain: verify.Box, shape: tuple) -> float:
    x = torch.tensor(fresh_points(domain, POINTS, np.random.default_rng(1)).reshape(POINTS, *shape))
    with torch.no_grad():
        return float((frozen(x) - target(x)).abs().max())


ROUTES = {
    "dense-numpy": lambda: _numpy("mlp"),
    "conv-numpy": lambda: _numpy("cnn2d"),
    "case2-numpy": lambda: _numpy("residual"),
    "case2-torch": lambda: _torch("residual", "sequential"),
    "mlp-sequential": lambda: _torch("mlp", "sequential"),
    "cnn-sequential": lambda: _torch("cnn2d", "sequential"),
    "cnn-class": lambda: _torch("cnn2d", "wrap"),
    "resnet-graph": _resnet,
}


@functools.cache
def _fitted(route: str) -> tuple[verify.Reconstruction, float]:
    return ROUTES[route]()


@pytest.mark.parametrize("route", ROUTES)
def test_every_route_returns_a_reconstruction(route):
    result, observed = _fitted(route)
    assert isinstance(result, verify.Reconstruction)
    assert result.holds and result.error_bound == result.certificate.error_bound < np.inf
    # float64 throughout: the bound covers the network's own forward at every point of the domain
    assert observed <= result.certificate.error_bound


@pytest.mark.parametrize("route", ROUTES)
def test_every_route_certificate_is_a_certificate(route):
    assert type(_fitted(route)[0].certificate) is verify.Certificate


def _graph_bound(frozen: torch.nn.Module, target: torch.nn.Module, domain: verify.Box) -> ErrorBound:
    """`verify.nn.graph_lower.certified_bound` of the fitted modules over ``domain``, read afresh (with the
    target's graph ranges, `verify.nn.graph_lower.target_ranges`, as `fit_graph` computes them)."""
    target_graph = read_graph(target, "target")
    pairs = match(target_graph, read_graph(frozen, "frozen"))
    constants = check_shapes(target_graph, RESNET_INPUT, torch.float64, torch.device("cpu"))
    lo, hi = (torch.tensor(v.reshape(1, *RESNET_INPUT)) for v in domain.bounding_box())
    ranges, bounds = target_ranges(target_graph, pairs, constants, interval_bounds(target_graph, lo, hi), domain)
    return certified_bound(target_graph, pairs, constants, bounds, domain, target, frozen, ranges=ranges)[0]


def test_a_graph_result_is_a_reconstruction_with_its_pairs_as_blocks():
    """The ResNet's pairs are the certificate's blocks, numbered in topological order, their figures the blocks'
    extras; the result's figures are the certificate's, and its γ, β load into a copy of the frozen module."""
    target = build("resnet-1x1-c4", 0)
    untuned = frozen_like(target, width="paper", seed=1)
    frozen = copy.deepcopy(untuned)
    domain = verify.Box(0, 1, shape=RESNET_INPUT)
    result = fit_norm_layers(frozen, target, domain, samples=64)
    certificate = result.certificate
    assert isinstance(result, GraphReconstruction) and GraphReconstruction is verify.Reconstruction
    assert [b.block for b in certificate.blocks] == list(range(1, len(result.nodes) + 1))
    assert [n.name for n in result.nodes] == [b.extras["name"] for b in certificate.blocks]
    assert all(n.block is b for n, b in zip(result.nodes, certificate.blocks, strict=True))
    assert result.by_depth() == certificate.by_depth() == certificate.to_dict()["by_depth"]
    assert result.depth == max(row["depth"] for row in result.by_depth()) > 1
    assert result.f_max == certificate.sampled.f_max and result.error_ratio == certificate.sampled.bound_ratio <= 1
    assert all(n.error_ratio <= 1 for n in result.nodes)
    # the certificate's bound is the whole graph's: the graph engine run again on the fitted modules gives it
    assert certificate.error_bound == _graph_bound(frozen, target, domain).error_bound
    load_norm_params(untuned, result)
    loaded, tuned = untuned.state_dict(), frozen.state_dict()
    assert loaded.keys() == tuned.keys() and all(torch.equal(loaded[key], tuned[key]) for key in tuned)
    with pytest.raises(ValueError, match=r"result\.frozen\(x\)"):
        result.network(np.zeros((1, 3 * 8 * 8)))
