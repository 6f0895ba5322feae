"""Below the threshold, the certified bound holds (docs/design.md §11).

For any width, ``max |ĝ(x) − f̂(x)|`` at fresh points (half on the boundary, box corners and a ball's
axis points included) is at most ``certificate.error_bound``, where ``ĝ`` is torch's own forward of
the frozen module with the result loaded (`verify.nn.export.to_module`, float64) and ``f̂`` the
target in float64. No tolerance: the bound covers float64 evaluation in any summation order. At
the paper width the result is exact. For nested widths (the narrower frozen network is the wider
one's first odd neurons: `FrozenNetwork.for_target` does not nest, since the even layer's draws
depend on the odd width) the weighted ℓ1 optimum of a one-block chain does not grow.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

import verify
from properties.strategies import seeds
from verify.construction.frontier import fresh_points

torch = pytest.importorskip("torch")
from properties.test_soundness import box_points, conv_targets  # noqa: E402  (after the torch check)
from verify.nn.export import to_module  # noqa: E402

FRESH = 512
L1_RELATIVE = 1e-7
"""Accuracy of the weighted ℓ1 optimum compared across widths: Clarabel stops at a relative gap of
1e-12 on objectives of size ~1 (the program is scaled to ``max |w| = 1``); the optimum is compared
to 1e-7 of its size, far above that gap and far below any real increase."""


@st.composite
def chains(draw: st.DrawFn, max_depth: int = 3, max_width: int = 5) -> tuple:
    """A target, its domain (a ball or a box) and a frozen seed."""
    depth = draw(st.integers(1, max_depth), label="L")
    widths = [draw(st.integers(2, max_width), label=f"d_{k}") for k in range(depth + 1)]
    target = verify.TargetNetwork.random(widths, seed=draw(seeds(), label="target seed"))
    d = widths[0]
    if draw(st.booleans(), label="ball"):
        domain = verify.Ball(draw(st.floats(0.1, 4.0), label="radius"), np.zeros(d))
    else:
        lo = np.array(draw(st.lists(st.floats(-3.0, 0.0), min_size=d, max_size=d), label="lo"))
        domain = verify.Box(lo, lo + np.array(draw(st.lists(st.floats(0.1, 3.0), min_size=d, max_size=d))))
    return target, domain, draw(seeds(), label="frozen seed")


def _points(domain: verify.Domain, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 21])
    domain = domain.resolve(dim)
    x = fresh_points(domain, FRESH, rng)
    if isinstance(domain, verify.Ball):
        x = np.concatenate([x, domain.center + domain.radius * np.concatenate([np.eye(dim), -np.eye(dim)])])
    return x


def _observed(result: verify.Reconstruction, x: np.ndarray) -> float:
    """``max |ĝ − f̂|`` with ``ĝ`` torch's forward of the module holding the result (float64)."""
    module = to_module(result.frozen, result, dtype=torch.float64)
    with torch.no_grad():
        g = module(torch.tensor(x, dtype=torch.float64)).numpy()
    return float(np.max(np.abs(g - result.target(x))))


DENSITIES = st.one_of(st.just(1.0), st.floats(0.1, 1.0))
"""Frozen masks: dense, or Bernoulli(p) (docs/design.md §4), below or above the matching threshold."""


@given(
    chain=chains(),
    fraction=st.floats(0.05, 1.0),
    density=DENSITIES,
    method=st.sampled_from(["auto", "l1", "lstsq"]),
)
@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_observed_error_within_bound(chain, fraction, density, method):
    """docs/design.md §11: at any width and density, torch's forward of the module errs by at most ``error_bound``."""
    target, domain, seed = chain
    frozen = verify.FrozenNetwork.for_target(target, width=fraction, density=density, seed=seed)
    result = verify.reconstruct(target, frozen, domain, mode="approximate", method=method)
    certificate = result.certificate
    observed = _observed(result, _points(domain, target.widths[0], seed))
    note(f"{target!r} {frozen!r} {domain!r} bound={certificate.error_bound} observed={observed}")
    assert certificate.holds
    assert observed <= certificate.error_bound
    assert certificate.approximation_error <= certificate.error_bound
    paper = all(n >= verify.paper_width(*wk.shape) for n, wk in zip(frozen.widths[1::2], target.weights, strict=True))
    if certificate.exact:
        assert certificate.approximation_error == 0.0
        assert verify.feasibility(target, frozen, "paper").ok, "exact although the mask's matching is too small"
    else:
        assert not (paper and density == 1), "a full-width dense block has rank d_k d_{k-1} almost surely"


@given(chain=chains(max_width=4))
@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_exact_at_paper_width(chain):
    """At the paper width ``mode="approximate"`` is the paper-mode result: exact, same parameters and bound."""
    target, domain, seed = chain
    frozen = verify.FrozenNetwork.for_target(target, "paper", seed=seed)
    approximate = verify.reconstruct(target, frozen, domain, mode="approximate")
    paper = verify.reconstruct(target, frozen, domain, mode="paper")
    assert approximate.certificate.exact
    assert approximate.certificate.error_bound == paper.certificate.error_bound
    for ours, theirs in zip(approximate.gamma + approximate.beta, paper.gamma + paper.beta, strict=True):
        np.testing.assert_array_equal(ours, theirs)


def _first_neurons(frozen: verify.FrozenNetwork, n: int) -> verify.FrozenNetwork:
    """The one-block frozen network made of ``frozen``'s first ``n`` odd neurons (a nested sub-network)."""
    (m1, m2), (c1, c2) = frozen.weights, frozen.biases
    return verify.FrozenNetwork(
        [m1[:n], m2[:, :n]],
        [c1[:n], c2],
        [frozen.running_mean[0][:n], frozen.running_mean[1]],
        [frozen.running_var[0][:n], frozen.running_var[1]],
        frozen.eps,
    )


@given(chain=chains(max_depth=1), cuts=st.lists(st.floats(0.05, 1.0), min_size=2, max_size=4), density=DENSITIES)
@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_objective_does_not_grow_with_nested_width(chain, cuts, density):
    """Nested widths (same frozen seed, dense or the same sparse mask): a wider block's weighted ℓ1 optimum is at
    most a narrower one's."""
    target, domain, seed = chain
    d_out, d_in = target.weights[0].shape
    wide = verify.FrozenNetwork.for_target(target, "paper", density=density, seed=seed)
    widths = sorted({max(1, int(c * (d_out * d_in - 1))) for c in cuts})  # all below the paper width
    objectives = []
    for n in widths:
        result = verify.reconstruct(target, _first_neurons(wide, n), domain, mode="approximate", method="l1")
        assert not result.certificate.exact
        objectives.append(result.certificate.blocks[0].diagnostics["objective"])
    note(f"widths {widths} objectives {objectives}")
    for narrow, wider in itertools.pairwise(objectives):
        assert wider <= narrow * (1 + L1_RELATIVE) + L1_RELATIVE


@st.composite
def residual_cases(draw: st.DrawFn, max_depth: int = 2, max_width: int = 4) -> tuple:
    """A target, its domain, a branch count the target allows and a frozen seed (Case 2, docs/design.md §8)."""
    target, domain, seed = draw(chains(max_depth=max_depth, max_width=max_width))
    most = min(max(a, b) for a, b in itertools.pairwise(target.widths))
    return target, domain, draw(st.integers(1, most), label="branches"), seed


@given(case=residual_cases(), fraction=st.floats(0.05, 1.0), method=st.sampled_from(["auto", "l1", "lstsq"]))
@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_residual_observed_error_within_bound(case, fraction, method):
    """docs/design.md §11 on Case 2 (§8): at any width, torch's forward of the residual module (the frozen network
    read from it, the result loaded back into it) errs by at most ``error_bound``; at the paper width it is exact."""
    from verify.nn import load_norm_params
    from verify.nn.residual import frozen_residual_mlp

    target, domain, branches, seed = case
    module = frozen_residual_mlp(target.widths, branches=branches, width=fraction, seed=seed, dtype=torch.float64)
    frozen = module.to_network()
    try:
        result = verify.reconstruct(target, frozen, domain, mode="approximate", method=method)
    except verify.InfeasibleError as error:  # a degenerate stream map (a singular leading block of W), as in §8
        note(str(error))
        assume(False)
    certificate = result.certificate
    load_norm_params(module, result)
    x = _points(domain, target.widths[0], seed)
    with torch.no_grad():
        g = module(torch.tensor(x, dtype=torch.float64)).numpy()
    observed = float(np.max(np.abs(g - target(x))))
    note(f"{target!r} widths {frozen.odd_widths} {domain!r} bound={certificate.error_bound} observed={observed}")
    assert certificate.holds
    assert observed <= certificate.error_bound
    assert certificate.approximation_error <= certificate.error_bound
    if fraction == 1.0:
        assert certificate.exact


def _first_branch_neurons(frozen: verify.ResidualFrozenNetwork, cut: float) -> verify.ResidualFrozenNetwork:
    """Every branch made of its first ``floor(cut · n)`` (at least 1) odd neurons: a nested sub-network."""
    stages = [[_first_neurons(net, max(1, int(cut * net.widths[1]))) for net in stage] for stage in frozen.stages]
    return verify.ResidualFrozenNetwork(stages, inputs=frozen.inputs, outputs=frozen.outputs)


@given(case=residual_cases(max_depth=1), cuts=st.lists(st.floats(0.05, 0.95), min_size=2, max_size=4))
@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_residual_first_branch_objective_does_not_grow_with_nested_width(case, cuts):
    """Nested branch widths (one stage, same frozen seed): the first branch's weighted ℓ1 optimum is at most the
    narrower network's (its program, on the stream ``[z; 0]`` and the domain's radii, has every narrower solution).
    Later branches are solved on the stream as the earlier ones wrote it (docs/design.md §11), so their programs
    change with the earlier branches' widths and no such order holds for them (measured in docs/design.md §11)."""
    target, domain, branches, seed = case
    wide = verify.ResidualFrozenNetwork.for_target(target, branches=branches, width="paper", seed=seed)
    objectives = []
    for cut in sorted(set(cuts)):
        try:
            result = verify.reconstruct(
                target, _first_branch_neurons(wide, cut), domain, mode="approximate", method="l1"
            )
        except verify.InfeasibleError as error:
            note(str(error))
            assume(False)
        first = result.certificate.blocks[0]
        assert 1 in result.certificate.approximate_blocks
        objectives.append(first.diagnostics["objective"])
    note(f"cuts {sorted(set(cuts))} objectives {objectives}")
    for narrow, wider in itertools.pairwise(objectives):
        assert wider <= narrow * (1 + L1_RELATIVE) + L1_RELATIVE


@given(
    case=conv_targets(), fraction=st.floats(0.05, 1.0), method=st.sampled_from(["auto", "l1", "lstsq"]), seed=seeds()
)
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much], deadline=None)
def test_conv_observed_error_within_bound(case, fraction, method, seed):
    """docs/design.md §11 on convolutions (§9): for a torch CNN target and its frozen module (`verify.nn.frozen_like`
    at a fraction of the paper width, read by `conv_networks`), torch's own forward of the frozen module with the
    result loaded errs from the target module by at most ``error_bound`` at fresh points and corners of the box
    (any padding mode, pooling, a linear head); at the paper width the result is exact."""
    from verify.nn import frozen_like, load_norm_params
    from verify.nn.frozen_like import conv_networks

    target_module, box = case
    frozen_module = frozen_like(target_module, fraction, seed=seed)
    target, frozen = conv_networks(target_module, frozen_module, box)
    result = verify.reconstruct(target, frozen, box, mode="approximate", method=method)
    certificate = result.certificate
    load_norm_params(frozen_module, result)
    x = box_points(box, FRESH, np.random.default_rng(seed))
    with torch.no_grad():
        inputs = torch.tensor(x.reshape(-1, *box.shape), dtype=torch.float64)
        g = frozen_module(inputs).reshape(len(x), -1).numpy()
        f = target_module(inputs).reshape(len(x), -1).numpy()
    observed = float(np.max(np.abs(g - f)))
    note(f"{target_module} widths {frozen.widths} bound={certificate.error_bound} observed={observed}")
    assert certificate.holds
    assert observed <= certificate.error_bound
    assert certificate.approximation_error <= certificate.error_bound
    if fraction == 1.0:
        assert certificate.exact


def _first_channels(frozen: verify.ConvFrozenNetwork, n: int) -> verify.ConvFrozenNetwork:
    """The one-pair frozen convolution made of ``frozen``'s first ``n`` odd channels (a nested sub-network)."""
    odd, even = frozen.affine
    return verify.ConvFrozenNetwork(
        [odd.like(odd.weight[:n], odd.bias[:n]), even.like(even.weight[:, :n], even.bias)],
        frozen.input_shape,
        [frozen.running_mean[0][:n], frozen.running_mean[1]],
        [frozen.running_var[0][:n], frozen.running_var[1]],
        frozen.layer_eps,
    )


@given(
    kernel=st.integers(1, 3),
    padding=st.integers(0, 1),
    channels=st.integers(1, 2),
    cuts=st.lists(st.floats(0.05, 0.95), min_size=2, max_size=4),
    seed=seeds(),
)
@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_conv_objective_does_not_grow_with_nested_width(kernel, padding, channels, cuts, seed):
    """Nested channel counts of one frozen convolution (same seed): the weighted ℓ1 optimum on the patches' hull
    does not grow (the wider program has every narrower solution, with the extra channels' scales at 0)."""
    rng = np.random.default_rng(seed)
    conv = verify.Conv.build(
        rng.standard_normal((2, channels, kernel, kernel)), rng.standard_normal(2), padding=padding
    )
    target = verify.ConvTargetNetwork([conv], (channels, 5, 5))
    box = verify.Box(-1, 1, shape=(channels, 5, 5))
    wide = verify.ConvFrozenNetwork.for_target(target, "paper", seed=seed)
    paper = wide.widths[1]
    objectives = []
    for n in sorted({max(1, int(c * (paper - 1))) for c in cuts}):
        result = verify.reconstruct(target, _first_channels(wide, n), box, mode="approximate", method="l1")
        assert not result.certificate.exact
        objectives.append(result.certificate.blocks[0].diagnostics["objective"])
    note(f"objectives {objectives}")
    for narrow, wider in itertools.pairwise(objectives):
        assert wider <= narrow * (1 + L1_RELATIVE) + L1_RELATIVE
