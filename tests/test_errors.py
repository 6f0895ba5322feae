"""Every bad input gets a ValueError that names the argument and what would work."""

import numpy as np
import pytest

import verify

T = verify.TargetNetwork.random([3, 4, 2], seed=0)
F = verify.FrozenNetwork.for_target(T, seed=1)
F_MIN = verify.FrozenNetwork.for_target(T, width="minimal", seed=1)
NAN = np.array([[1.0, np.nan], [0.0, 1.0]])


def _reconstruct(**kwargs):
    args = {"target": T, "frozen": F, "domain": verify.Ball(1.0)} | kwargs
    return verify.reconstruct(args.pop("target"), args.pop("frozen"), args.pop("domain"), **args)


INVALID = [
    pytest.param(verify.TargetNetwork, {"weights": []}, "at least one layer", id="target-empty"),
    pytest.param(verify.TargetNetwork, {"weights": [np.ones(3)]}, r"weights\[0\] must have shape \(n, n\)", id="1d-W"),
    pytest.param(verify.TargetNetwork, {"weights": [NAN]}, r"weights\[0\] must be finite", id="target-nan"),
    pytest.param(verify.TargetNetwork, {"weights": [np.ones((2, 2)) * np.inf]}, "NaN or infinite", id="target-inf"),
    pytest.param(
        verify.TargetNetwork, {"weights": [np.ones((4, 3)), np.ones((2, 5))]}, r"expected shape \(2, 4\)", id="chain"
    ),
    pytest.param(
        verify.TargetNetwork,
        {"weights": [np.ones((4, 3))], "biases": [np.ones(3)]},
        r"biases\[0\] must have shape \(4,\)",
        id="bias-shape",
    ),
    pytest.param(
        verify.TargetNetwork, {"weights": [np.ones((4, 3))], "biases": []}, "biases must have 1 entries", id="bias-n"
    ),
    pytest.param(verify.TargetNetwork, {"weights": [np.zeros((0, 3))]}, "width must be >= 1", id="zero-width"),
    pytest.param(verify.TargetNetwork, {"weights": "abc"}, "weights must be a list", id="weights-str"),
    pytest.param(verify.TargetNetwork.random, {"widths": [3]}, "at least two entries", id="random-one-width"),
    pytest.param(verify.TargetNetwork.random, {"widths": [3, 0]}, "integers >= 1", id="random-zero"),
    pytest.param(verify.TargetNetwork.random, {"widths": [3, 2], "scale": -1.0}, "scale must be", id="scale"),
    pytest.param(verify.FrozenNetwork, {"weights": [np.ones((2, 2))]}, "even number", id="frozen-odd"),
    pytest.param(
        verify.FrozenNetwork,
        {"weights": [np.ones((2, 2)), np.ones((2, 2))], "eps": -1.0},
        "eps must be",
        id="eps-negative",
    ),
    pytest.param(
        verify.FrozenNetwork,
        {"weights": [np.ones((2, 2)), np.ones((2, 2))], "running_var": [np.zeros(2), np.ones(2)]},
        r"running_var\[0\] \+ eps must be positive",
        id="var-zero",
    ),
    pytest.param(
        verify.FrozenNetwork,
        {"weights": [np.ones((2, 2)), np.ones((2, 2))], "running_mean": [np.zeros(3), None]},
        r"running_mean\[0\] must have shape \(2,\)",
        id="mean-shape",
    ),
    pytest.param(verify.FrozenNetwork.for_target, {"target": T, "width": "wide"}, "width must be", id="width-str"),
    pytest.param(verify.FrozenNetwork.for_target, {"target": T, "width": 0}, "width must be >= 1", id="width-0"),
    pytest.param(verify.FrozenNetwork.for_target, {"target": T, "width": -1.5}, "positive and finite", id="w-neg"),
    pytest.param(verify.FrozenNetwork.for_target, {"target": T, "width": [3]}, "must have 2 entries", id="w-list"),
    pytest.param(
        verify.FrozenNetwork.for_target, {"target": T, "distribution": "cauchy"}, "distribution", id="distribution"
    ),
    pytest.param(verify.FrozenNetwork.for_target, {"target": "net"}, "TargetNetwork", id="target-type"),
    pytest.param(verify.Ball, {"radius": 0.0}, "radius must be a positive finite", id="radius-0"),
    pytest.param(verify.Ball, {"radius": -2.0}, "radius must be a positive finite", id="radius-neg"),
    pytest.param(verify.Ball, {"radius": float("nan")}, "radius must be a positive finite", id="radius-nan"),
    pytest.param(verify.Ball, {"radius": 1.0, "center": [np.inf]}, "center must be finite", id="center-inf"),
    pytest.param(verify.Box, {"lo": [0, 1], "hi": [1]}, r"hi must have shape \(2,\)", id="box-shape"),
    pytest.param(verify.Box, {"lo": [0, 2], "hi": [1, 1]}, r"lo\[1\] = 2.0 > hi\[1\] = 1.0", id="box-order"),
    pytest.param(_reconstruct, {"domain": verify.Ball(1.0, [0.0, 0.0])}, "dimension 2 .* d_0 = 3", id="dom-dim"),
    pytest.param(_reconstruct, {"domain": verify.Box([0, 0], [1, 1])}, "dimension 2 .* d_0 = 3", id="box-dim"),
    pytest.param(_reconstruct, {"domain": (0, 1)}, "domain must be a verify.Ball, a verify.Box or None", id="dom-type"),
    pytest.param(_reconstruct, {"mode": "exact"}, "mode must be one of", id="mode"),
    pytest.param(_reconstruct, {"samples": 0}, "samples must be an integer >= 1", id="samples"),
    pytest.param(_reconstruct, {"rtol": 0.0}, "rtol must be a positive finite number", id="rtol"),
    pytest.param(_reconstruct, {"target": "f"}, "target must be a verify.TargetNetwork", id="rec-target"),
    pytest.param(
        _reconstruct,
        {"frozen": verify.FrozenNetwork.for_target(verify.TargetNetwork.random([3, 4, 4, 2]))},
        "frozen has 6 layers but a target of depth L = 2 needs 2L = 4",
        id="depth",
    ),
    pytest.param(
        _reconstruct,
        {"frozen": verify.FrozenNetwork.for_target(verify.TargetNetwork.random([2, 4, 2]))},
        "n_0 = 2 must equal the target's d_0 = 3",
        id="input-width",
    ),
    pytest.param(
        _reconstruct,
        {"frozen": verify.FrozenNetwork.for_target(verify.TargetNetwork.random([3, 4, 3]))},
        "n_4 = 3 must equal the target's d_L = 2",
        id="output-width",
    ),
    pytest.param(
        lambda: F.forward(np.ones((2, 4)), [np.ones(n) for n in F.widths[1:]], [np.ones(n) for n in F.widths[1:]]),
        {},
        r"x must have shape \(n, 3\)",
        id="x-shape",
    ),
    pytest.param(lambda: T(np.full((1, 3), np.nan)), {}, "x must be finite", id="x-nan"),
    pytest.param(
        lambda: F.forward(np.ones((2, 3)), [np.ones(1)] * 4, [np.ones(1)] * 4), {}, r"gamma\[0\]", id="gamma-shape"
    ),
]


@pytest.mark.parametrize(("function", "kwargs", "message"), INVALID)
def test_invalid_calls_raise_value_error(function, kwargs, message):
    with pytest.raises(ValueError, match=message):
        function(**kwargs)


@pytest.mark.parametrize(
    ("mode", "odd", "block", "needed"),
    [("paper", [11, 8], 1, 12), ("paper", [12, 7], 2, 8), ("minimal", [8, 6], 1, 9), ("minimal", [9, 4], 2, 7)],
)
def test_width_below_mode_is_infeasible(mode, odd, block, needed):
    frozen = verify.FrozenNetwork.for_target(T, width=odd, seed=1)
    with pytest.raises(verify.InfeasibleError, match=f"block {block}: mode '{mode}' needs") as info:
        verify.reconstruct(T, frozen, verify.Ball(1.0), mode=mode)
    assert isinstance(info.value, ValueError)
    assert (info.value.block, info.value.width, info.value.width_needed) == (block, odd[block - 1], needed)
    assert f"width >= {needed}" in str(info.value)


def test_rank_deficient_frozen_layer_is_infeasible():
    """Duplicated frozen neurons: width is enough, rank is not (docs/design.md §7: non-generic weights)."""
    ms = list(F.weights)
    ms[0] = ms[0].copy()
    ms[0][1] = ms[0][0]
    ms[1] = ms[1].copy()
    ms[1][:, 1] = ms[1][:, 0]
    with pytest.raises(verify.InfeasibleError, match="has rank 11, but mode 'paper' needs full rank 12") as info:
        verify.reconstruct(T, verify.FrozenNetwork(ms), verify.Ball(1.0))
    assert (info.value.rank, info.value.needed, info.value.block) == (11, 12, 1)


def test_minimal_mode_refuses_when_every_solution_switches_rows_off():
    """Regression: solutions existed only with ρ = 0 (Aγ = 0); the dead-row test was relative to
    the tiny ρ part itself and let them through, so reconstruct failed later instead of saying why."""
    ms = list(F_MIN.weights)
    ms[0] = ms[0].copy()
    ms[0][:] = ms[0][0]  # every odd neuron sees the same input direction
    with pytest.raises(verify.InfeasibleError, match=r"block 1: every solution .* switches off target row\(s\)"):
        verify.reconstruct(T, verify.FrozenNetwork(ms), verify.Ball(1.0), mode="minimal")


def test_even_layer_narrower_than_target_is_infeasible():
    ms = list(F.weights)
    ms[1] = ms[1][:3]
    ms[2] = ms[2][:, :3]
    with pytest.raises(verify.InfeasibleError, match="even frozen layer 2 has 3 neurons but must carry d_1 = 4"):
        verify.reconstruct(T, verify.FrozenNetwork(ms), verify.Ball(1.0))
