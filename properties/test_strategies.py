"""The strategies themselves: invalid calls fail when built, and drawn objects honour their options."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import verify
from properties.strategies import (
    DOMAIN_KINDS,
    domains,
    frozen_networks,
    instances,
    target_widths,
    targets,
)

TARGET = verify.TargetNetwork.random([2, 3, 1], seed=0)

INVALID_CALLS = [
    pytest.param(target_widths, {"min_depth": 0}, "min_depth=0 is too small", id="min_depth-zero"),
    pytest.param(target_widths, {"min_depth": 3, "max_depth": 2}, "min_depth=3 is larger than max_depth=2", id="depth"),
    pytest.param(target_widths, {"min_width": 3, "max_width": 2}, "min_width=3 is larger than max_width=2", id="width"),
    pytest.param(target_widths, {"max_width": 2.5}, "max_width must be an integer", id="width-float"),
    pytest.param(target_widths, {"max_depth": True}, "max_depth must be an integer", id="depth-bool"),
    pytest.param(targets, {"min_scale": 0}, "min_scale=0 is not a positive", id="scale-zero"),
    pytest.param(targets, {"max_scale": math.inf}, "max_scale=inf is not a positive", id="scale-inf"),
    pytest.param(targets, {"min_scale": 10.0, "max_scale": 1.0}, "min_scale=10.0 is larger than max_scale", id="scale"),
    pytest.param(targets, {"min_depth": 2, "max_depth": 1}, "min_depth=2 is larger than max_depth=1", id="t-depth"),
    pytest.param(targets, {"biases": "yes"}, "biases must be None", id="biases-str"),
    pytest.param(targets, {"degenerate": 1}, "degenerate must be None", id="degenerate-int"),
    pytest.param(frozen_networks, {"target": [2, 3, 1]}, "target must be a verify.TargetNetwork", id="target"),
    pytest.param(frozen_networks, {"target": TARGET, "width": "huge"}, "width='huge' is not one of", id="width-rule"),
    pytest.param(frozen_networks, {"target": TARGET, "width": [6]}, "a list of 2 odd-layer widths", id="width-len"),
    pytest.param(frozen_networks, {"target": TARGET, "width": [6, 0]}, r"width\[1\]=0 is too small", id="width-0"),
    pytest.param(frozen_networks, {"target": TARGET, "width": 6}, "width must be one of", id="width-int"),
    pytest.param(frozen_networks, {"target": TARGET, "min_extra_odd": -1}, "min_extra_odd=-1", id="extra-odd"),
    pytest.param(
        frozen_networks,
        {"target": TARGET, "min_extra_even": 2, "max_extra_even": 1},
        "min_extra_even=2 is larger than max_extra_even=1",
        id="extra-even",
    ),
    pytest.param(frozen_networks, {"target": TARGET, "distribution": "cauchy"}, "'cauchy' is not one of", id="dist"),
    pytest.param(frozen_networks, {"target": TARGET, "distribution": []}, "distribution must be one of", id="dist-[]"),
    pytest.param(frozen_networks, {"target": TARGET, "statistics": "on"}, "statistics must be None", id="stats"),
    pytest.param(frozen_networks, {"target": TARGET, "biases": 0}, "biases must be None", id="frozen-biases"),
    pytest.param(frozen_networks, {"target": TARGET, "min_scale": -1.0}, "min_scale=-1.0", id="frozen-scale"),
    pytest.param(domains, {"dim": 0}, "dim=0 is too small", id="dim-0"),
    pytest.param(domains, {"dim": 2.0}, "dim must be an integer", id="dim-float"),
    pytest.param(domains, {"dim": 2, "kinds": "sphere"}, "kinds='sphere' is not one of", id="kind"),
    pytest.param(domains, {"dim": 2, "kinds": ["ball", "disc"]}, "kinds='disc' is not one of", id="kinds"),
    pytest.param(domains, {"dim": 2, "min_radius": 2.0, "max_radius": 1.0}, "min_radius=2.0 is larger", id="radius"),
    pytest.param(domains, {"dim": 2, "max_radius": 0.0}, "max_radius=0.0 is not a positive", id="radius-0"),
    pytest.param(domains, {"dim": 2, "max_center": -1.0}, "max_center=-1.0 is not a finite number >= 0", id="center"),
    pytest.param(domains, {"dim": 2, "max_center": math.nan}, "max_center=nan", id="center-nan"),
    pytest.param(domains, {"dim": 2, "flat": "x"}, "flat must be None", id="flat"),
    pytest.param(instances, {"target": 3}, "target must be None, a verify.TargetNetwork", id="inst-target"),
    pytest.param(instances, {"modes": "fast"}, "modes='fast' is not one of", id="inst-mode"),
    pytest.param(instances, {"modes": ()}, "modes must be one of", id="inst-modes-empty"),
    pytest.param(
        instances, {"min_extra_odd": 3, "max_extra_odd": 1}, "min_extra_odd=3 is larger than", id="inst-extra"
    ),
    pytest.param(instances, {"max_extra_even": -2}, "max_extra_even=-2 is too small", id="inst-extra-neg"),
    pytest.param(instances, {"kinds": []}, "kinds must be one of", id="inst-kinds"),
]


@pytest.mark.parametrize(("strategy", "kwargs", "message"), INVALID_CALLS)
def test_invalid_arguments_are_rejected_when_the_strategy_is_built(strategy, kwargs, message):
    """Every invalid call raises ValueError at once (not at the first draw), naming the argument and the value."""
    with pytest.raises(ValueError, match=message):
        strategy(**kwargs)


@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        pytest.param(domains(st.just(0)), "dim=0 is too small", id="dim"),
        pytest.param(domains(2, kinds=st.just("disc")), "kinds='disc' is not one of", id="kinds"),
        pytest.param(targets(biases=st.just(3)), "biases drew 3", id="biases"),
        pytest.param(frozen_networks(TARGET, width=st.just("wide")), "width='wide' is not one of", id="width"),
        pytest.param(instances(target=st.just(3)), "target drew 3", id="target"),
    ],
)
def test_invalid_values_drawn_from_argument_strategies_are_rejected(strategy, message):
    """Arguments given as strategies are checked when drawn, with the same kind of message."""

    @settings(max_examples=1, database=None)
    @given(strategy)
    def draw(value):
        """Draw once."""

    with pytest.raises(ValueError, match=message):
        draw()


@given(data=st.data())
def test_targets_honour_their_options(data):
    """`targets` draws shapes within its bounds, zero biases when told, and zero rows/columns iff degenerate."""
    min_depth = data.draw(st.integers(1, 3), label="min_depth")
    max_depth = data.draw(st.integers(min_depth, 3), label="max_depth")
    min_width = data.draw(st.integers(1, 4), label="min_width")
    max_width = data.draw(st.integers(min_width, 4), label="max_width")
    biases = data.draw(st.booleans(), label="biases")
    degenerate = data.draw(st.booleans(), label="degenerate")
    target = data.draw(
        targets(
            min_depth=min_depth,
            max_depth=max_depth,
            min_width=min_width,
            max_width=max_width,
            biases=biases,
            degenerate=degenerate,
        ),
        label="target",
    )
    assert isinstance(target, verify.TargetNetwork)
    assert min_depth <= target.depth <= max_depth
    assert all(min_width <= d <= max_width for d in target.widths)
    assert all(np.all(b != 0) if biases else np.all(b == 0) for b in target.biases)
    zero_lines = sum(np.count_nonzero(~w.any(axis=1)) + np.count_nonzero(~w.any(axis=0)) for w in target.weights)
    assert (zero_lines > 0) == degenerate
    assert all(np.all(np.isfinite(w)) for w in target.weights)


@given(data=st.data())
def test_frozen_networks_fit_their_target_and_honour_their_options(data):
    """`frozen_networks` draws ``2L`` layers with ``n_0 = d_0``, ``n_{2L} = d_L``, the rule's odd widths plus extras."""
    target = data.draw(targets(), label="target")
    d = target.widths
    rule = data.draw(st.sampled_from(["paper", "minimal"]), label="width")
    extra_odd = data.draw(st.integers(0, 2), label="max_extra_odd")
    extra_even = data.draw(st.integers(0, 2), label="max_extra_even")
    statistics = data.draw(st.booleans(), label="statistics")
    biases = data.draw(st.booleans(), label="biases")
    frozen = data.draw(
        frozen_networks(
            target,
            width=rule,
            max_extra_odd=extra_odd,
            min_extra_even=extra_even,
            max_extra_even=extra_even,
            statistics=statistics,
            biases=biases,
        ),
        label="frozen",
    )
    n = frozen.widths
    width_of = verify.paper_width if rule == "paper" else verify.minimal_width
    assert frozen.depth == target.depth
    assert n[0] == d[0]
    assert n[-1] == d[-1]
    for k in range(1, target.depth + 1):
        assert 0 <= n[2 * k - 1] - width_of(d[k], d[k - 1]) <= extra_odd
        assert n[2 * k] == d[k] + (extra_even if k < target.depth else 0)
    assert all(np.all(c != 0) if biases else np.all(c == 0) for c in frozen.biases)
    if statistics:
        assert frozen.eps > 0
        assert all(
            np.all(m != 0) and np.all(v != 1) for m, v in zip(frozen.running_mean, frozen.running_var, strict=True)
        )
    else:
        assert frozen.eps == 0
        assert all(
            np.all(m == 0) and np.all(v == 1) for m, v in zip(frozen.running_mean, frozen.running_var, strict=True)
        )


@given(data=st.data())
def test_domains_honour_their_options(data):
    """`domains` draws the requested kind and dimension, sizes within bounds, centres within ``max_center``."""
    dim = data.draw(st.integers(1, 5), label="dim")
    kind = data.draw(st.sampled_from(DOMAIN_KINDS), label="kind")
    flat = data.draw(st.booleans(), label="flat")
    domain = data.draw(domains(dim, kinds=kind, min_radius=0.5, max_radius=2.0, max_center=10.0, flat=flat))
    if kind == "ball":
        assert isinstance(domain, verify.Ball)
        assert 0.5 <= domain.radius <= 2.0
        centre = np.zeros(dim) if domain.center is None else domain.center
    else:
        assert isinstance(domain, verify.Box)
        half = (domain.hi - domain.lo) / 2
        assert np.all(half <= 2.0 * (1 + 1e-12))
        assert np.max(half) >= 0.5 * (1 - 1e-12)
        assert np.any(half == 0) == (flat and dim > 1)
        centre = (domain.lo + domain.hi) / 2
    assert domain.resolve(dim).bounding_box()[0].shape == (dim,)
    assert np.linalg.norm(centre) <= 10.0 * (1 + 1e-12)


@given(data=st.data())
def test_instances_are_feasible_for_their_mode(data):
    """`instances` draws the requested mode with a frozen network wide enough for it (docs/design.md §2)."""
    modes = data.draw(st.sampled_from([("paper",), ("minimal",), verify.MODES]), label="modes")
    target, frozen, domain, mode = data.draw(instances(modes=modes), label="instance")
    assert mode in modes
    d, n = target.widths, frozen.widths
    needed = verify.paper_width if mode == "paper" else verify.minimal_width
    assert all(n[2 * k - 1] >= needed(d[k], d[k - 1]) for k in range(1, target.depth + 1))
    assert domain.resolve(d[0]).bounding_box()[0].shape == (d[0],)
