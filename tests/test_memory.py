"""Memory planning before allocation (verify.core.memory): every builder, and every solve, refuses a size that
does not fit with a ValueError before it allocates, naming the layer, the estimate, the memory available and
what would fit. A fake low `available_memory` keeps these tests small; one subprocess test uses a real
RLIMIT_AS."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import verify
from verify.core import memory
from verify.core.conv_networks import ConvTargetNetwork, conv_pairs, odd_widths
from verify.core.convolution import Conv, Flatten, Linear
from verify.core.networks import _odd_widths, dense_pairs
from verify.core.residual import residual_pairs
from verify.nn import frozen_like, frozen_mlp, frozen_residual_mlp, target_mlp

MIB = 2**20
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def low_memory(monkeypatch: pytest.MonkeyPatch) -> int:
    """Pretend only 4 MiB are available, for every caller of `verify.core.memory.available_memory`."""
    available = 4 * MIB
    monkeypatch.setattr(memory, "available_memory", lambda: available)
    return available


# --- the estimate against what the builders allocate -------------------------------------------------------

MEASURED = [
    ([20, 30, 10], {}),
    ([20, 30, 10], {"density": 0.5}),
    ([20, 30, 10], {"paired": True}),
    ([12, 40, 40, 6], {"biases": True}),
]


@pytest.mark.parametrize(("widths", "options"), MEASURED)
def test_the_numpy_estimate_bounds_the_measured_peak_within_a_factor_of_two(widths: list[int], options: dict) -> None:
    """`frozen_bytes` at `NUMPY_BUILD` is at least tracemalloc's peak of `FrozenNetwork.for_target` and at most
    twice it: the estimate counts every pair's bias and BatchNorm vectors (4 per neuron) and the widest pair's
    raw draw as alive together, which the builder only approaches (measured ratios 1.4-1.7)."""
    target = verify.TargetNetwork.random(widths, seed=0)
    pairs = dense_pairs(target.widths, "paper", paired=options.get("paired", False))
    tracemalloc.start()
    verify.FrozenNetwork.for_target(target, "paper", **options)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    estimate = memory.frozen_bytes(pairs)
    assert peak <= estimate <= 2 * peak, (peak, estimate)


def test_the_conv_estimate_bounds_the_measured_peak_within_a_factor_of_two() -> None:
    rng = np.random.default_rng(0)
    target = ConvTargetNetwork(
        [
            Conv.build(rng.standard_normal((3, 2, 3, 3))),
            Flatten(),
            Linear(rng.standard_normal((2, 3 * 4 * 4)), np.zeros(2)),
        ],
        (2, 6, 6),
    )
    pairs = conv_pairs(target.affine, odd_widths("paper", target.affine))
    tracemalloc.start()
    verify.ConvFrozenNetwork.for_target(target, "paper")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak <= memory.frozen_bytes(pairs) <= 2 * peak, (peak, memory.frozen_bytes(pairs))


# --- every builder refuses before allocating ---------------------------------------------------------------


def _refusal(build: object) -> str:
    tracemalloc.start()
    with pytest.raises(ValueError) as error:
        build()  # type: ignore[operator]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < MIB, f"the refusal allocated {peak} bytes first"
    return str(error.value)


def _check_message(message: str, what: str, available: int) -> None:
    assert message.startswith(what + ":"), message
    assert "needs an estimated" in message and any(w in message for w in ("block", "stage", "node")), message
    assert memory.format_bytes(available) in message, message
    assert "width=" in message and "would fit" in message, message


def test_dense_builders_refuse_a_width_that_cannot_fit(low_memory: int) -> None:
    target = verify.TargetNetwork.random([3, 4, 2])
    message = _refusal(lambda: verify.FrozenNetwork.for_target(target, 10**9))
    _check_message(message, "FrozenNetwork.for_target", low_memory)
    assert "3 -> 1000000000 -> 4" in message
    _check_message(_refusal(lambda: frozen_mlp([3, 10**9, 2])), "frozen_mlp", low_memory)
    _check_message(_refusal(lambda: frozen_like(target_mlp([3, 4, 2]), width=10**10)), "frozen_mlp", low_memory)


def test_residual_builders_refuse_a_width_that_cannot_fit(low_memory: int) -> None:
    target = verify.TargetNetwork.random([3, 4, 2])
    message = _refusal(lambda: verify.ResidualFrozenNetwork.for_target(target, 1, 10**9))
    _check_message(message, "ResidualFrozenNetwork.for_target", low_memory)
    assert "stage 1 branch 1" in message
    _check_message(_refusal(lambda: frozen_residual_mlp([3, 4, 2], width=10**9)), "frozen_residual_mlp", low_memory)


def test_conv_builders_refuse_a_width_that_cannot_fit(low_memory: int) -> None:
    rng = np.random.default_rng(0)
    target = ConvTargetNetwork([Conv.build(rng.standard_normal((3, 2, 3, 3)))], (2, 6, 6))
    message = _refusal(lambda: verify.ConvFrozenNetwork.for_target(target, 10**9))
    _check_message(message, "ConvFrozenNetwork.for_target", low_memory)
    assert "18 -> 1000000000 -> 3" in message  # fan_in = C_in * 3 * 3
    module = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    _check_message(_refusal(lambda: frozen_like(module, width=10**9)), "frozen_like", low_memory)


class _Residual(nn.Module):
    """A model written as a class: frozen_like reads its graph (docs/design.md §10)."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Linear(3, 3)
        self.head = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.inner(x)) + x)


def test_the_graph_builder_refuses_a_width_that_cannot_fit(low_memory: int) -> None:
    message = _refusal(lambda: frozen_like(_Residual(), width=10**9))
    _check_message(message, "frozen_like", low_memory)
    assert "widest: node inner, 3 -> 1000000000 -> 3" in message, message
    assert isinstance(frozen_like(_Residual(), width="paper"), torch.fx.GraphModule)  # a small one is built


def test_the_suggested_widths_fit_and_one_more_does_not() -> None:
    """The widest int width and the widest paper fraction named in the message fit; the next int does not."""
    target = verify.TargetNetwork.random([10, 12, 5])
    available = 2 * MIB
    with pytest.raises(ValueError, match=r"width=(\d+) for every layer, or width=([0-9.e+-]+) \(times") as error:
        memory.check_build("x", dense_pairs(target.widths, [10**6, 10**6]), available=available)
    n, f = re.search(r"width=(\d+) for every layer, or width=([0-9.e+-]+) ", str(error.value)).groups()  # type: ignore[union-attr]
    assert memory.frozen_bytes(dense_pairs(target.widths, [int(n)] * 2)) <= available
    assert memory.frozen_bytes(dense_pairs(target.widths, [int(n) + 1] * 2)) > available
    fraction = float(f) * (1 - 1e-3)  # printed to 3 significant digits
    odd = _odd_widths(fraction, target.widths)
    assert memory.frozen_bytes(dense_pairs(target.widths, odd)) <= available
    memory.check_build("x", dense_pairs(target.widths, [int(n)] * 2), available=available)  # no error


def test_below_the_paper_width_the_message_names_the_width_exact_reconstruction_needs() -> None:
    pairs = dense_pairs([30, 30, 30], [900, 900])
    budget = memory.frozen_bytes(dense_pairs([30, 30, 30], [880, 880]))  # between minimal (871) and paper (900)
    with pytest.raises(
        ValueError, match=r"below the paper width 900 .*mode='minimal' and at least the minimal width 871$"
    ):
        memory.check_build("x", pairs, available=budget)
    with pytest.raises(ValueError, match="cannot be reconstructed exactly in this memory"):
        memory.check_build("x", pairs, available=budget // 4)


def test_a_paired_network_is_counted_in_pairs() -> None:
    """``width`` of a paired network counts mirrored pairs: twice the neurons, and the width that fits is in pairs."""
    d = [10, 12, 5]
    single, paired = dense_pairs(d, [200, 200]), dense_pairs(d, [100, 100], paired=True)
    assert memory.frozen_bytes(single) == memory.frozen_bytes(paired)
    available = memory.frozen_bytes(dense_pairs(d, [150, 150])) + 1
    with pytest.raises(ValueError, match=r"width=75 for every layer"):
        memory.check_build("x", paired, available=available)


def test_residual_pairs_name_each_branch_with_its_own_needs() -> None:
    pairs = residual_pairs([4, 4, 2], "paper", 2)
    assert [p.name for p in pairs] == ["stage 1 branch 1", "stage 1 branch 2", "stage 2 branch 1", "stage 2 branch 2"]
    assert all(p.fan_in == p.fan_out == 4 for p in pairs)
    assert [p.n for p in pairs] == [p.paper for p in pairs]


# --- available_memory ---------------------------------------------------------------------------------------


def test_available_memory_is_the_least_of_its_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_meminfo_available", lambda: 10 * MIB)
    monkeypatch.setattr(memory, "_rlimit_headroom", lambda: [7 * MIB, 9 * MIB])
    monkeypatch.setattr(memory, "_cgroup_headroom", lambda: [8 * MIB])
    assert memory.available_memory() == 7 * MIB
    monkeypatch.setattr(memory, "_rlimit_headroom", list)
    monkeypatch.setattr(memory, "_cgroup_headroom", list)
    assert memory.available_memory() == 10 * MIB
    monkeypatch.setattr(memory, "_meminfo_available", lambda: None)
    assert memory.available_memory() is None
    memory.require_memory(10**15, "anything", "")  # nothing known: nothing refused


def test_available_memory_sees_rlimit_as() -> None:
    code = textwrap.dedent(
        """
        import resource
        from verify.core import memory
        before = memory.available_memory()
        in_use = memory._status_bytes("VmSize")
        resource.setrlimit(resource.RLIMIT_AS, (in_use + 64 * 2**20, resource.RLIM_INFINITY))
        after = memory.available_memory()
        assert after <= 64 * 2**20 < before, (before, after)
        print("ok")
        """
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr


def test_a_huge_width_under_rlimit_as_is_a_value_error_not_a_memory_error() -> None:
    """Under a real 1 GiB address-space limit (above what the interpreter and torch use), the builders refuse
    with ValueError where they used to raise MemoryError / RuntimeError."""
    code = textwrap.dedent(
        """
        import resource
        import verify
        from verify.core import memory
        from verify.nn import frozen_like, frozen_mlp, target_mlp
        in_use = memory._status_bytes("VmSize")
        resource.setrlimit(resource.RLIMIT_AS, (in_use + 2**30, resource.RLIM_INFINITY))
        target = verify.TargetNetwork.random([3, 4, 2])
        builds = (
            lambda: verify.FrozenNetwork.for_target(target, 10**9),
            lambda: frozen_mlp([3, 10**9, 2]),
            lambda: verify.ResidualFrozenNetwork.for_target(target, 1, 10**9),
            lambda: frozen_like(target_mlp([3, 4, 2]), width=10**10),
        )
        for build in builds:
            try:
                build()
            except ValueError as error:
                print(type(error).__name__, str(error).split(":")[0])
        """
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n")[:4] == [
        "ValueError FrozenNetwork.for_target",
        "ValueError frozen_mlp",
        "ValueError ResidualFrozenNetwork.for_target",
        "ValueError frozen_mlp",  # frozen_like of an MLP is frozen_mlp's stack
    ], run.stdout


# --- every pair's solve is planned before the first is solved ----------------------------------------------


def _no_solve(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any block solve fail loudly, so that a refusal is seen to come before the first solve."""
    import verify.construction.tuning as tuning

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a block was solved before the memory plan refused")

    monkeypatch.setattr(tuning, "solve_with", refuse)
    monkeypatch.setattr(tuning, "solve_exact", refuse)


def test_reconstruct_refuses_a_pair_that_does_not_fit_before_solving(monkeypatch: pytest.MonkeyPatch) -> None:
    """Block 1 is small, block 2 does not fit: the ValueError names block 2 before block 1 is solved."""
    target = verify.TargetNetwork.random([2, 3, 30], seed=0)
    frozen = verify.FrozenNetwork.for_target(target, "paper", seed=1)
    _no_solve(monkeypatch)
    monkeypatch.setattr(memory, "available_memory", lambda: 256 * 2**10)  # block 2's lstsq needs ~0.5 MiB
    with pytest.raises(ValueError, match=r"^block 2 \(layer 3\): solving 30x3 weights with 90 neurons by method "):
        verify.reconstruct(target, frozen, verify.Box(-1.0, 1.0), method="lstsq", rtol=1e-6)
    monkeypatch.setattr(memory, "available_memory", lambda: 64 * 2**10)  # 64 KiB: even iterative is refused
    with pytest.raises(ValueError, match=r"iterative.*workspace.*minimal width 61 for this pair"):
        verify.reconstruct(target, frozen, verify.Box(-1.0, 1.0), method="auto")


def test_the_message_points_to_iterative_when_it_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    from verify.solvers.registry import memory_estimate

    target = verify.TargetNetwork.random([12, 12], seed=0)
    frozen = verify.FrozenNetwork.for_target(target, "paper", seed=1)
    lean, explicit = memory_estimate("iterative", 144, 12, 12), memory_estimate("lstsq", 144, 12, 12)
    monkeypatch.setattr(memory, "available_memory", lambda: (lean + explicit) // 2)
    _no_solve(monkeypatch)
    with pytest.raises(ValueError, match=r"method 'lstsq' \(operator .*use method='iterative'"):
        verify.reconstruct(target, frozen, verify.Box(-1.0, 1.0), method="lstsq")


def test_conv_and_residual_reconstructions_are_planned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "available_memory", lambda: 2**10)
    _no_solve(monkeypatch)
    rng = np.random.default_rng(0)
    conv = ConvTargetNetwork([Conv.build(rng.standard_normal((2, 1, 2, 2)))], (1, 3, 3))
    monkeypatch.setattr(memory, "available_memory", lambda: 10**9)
    conv_frozen = verify.ConvFrozenNetwork.for_target(conv, "paper")
    target = verify.TargetNetwork.random([3, 3], seed=0)
    residual = verify.ResidualFrozenNetwork.for_target(target, 1, "paper")
    monkeypatch.setattr(memory, "available_memory", lambda: 2**10)
    with pytest.raises(ValueError, match=r"^block 1 \(Conv\): solving 2x4 weights with 8 neurons"):
        verify.reconstruct(conv, conv_frozen, verify.Box(-1.0, 1.0, shape=(1, 3, 3)))
    with pytest.raises(ValueError, match=r"^stage 1 branch 1: solving 3x3 weights"):
        verify.reconstruct(target, residual, verify.Box(-1.0, 1.0))


def test_fit_norm_layers_refuses_before_copying_or_solving(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plan counts the float64 copies of both modules; the frozen module is left unchanged."""
    from verify.nn import fit_norm_layers

    target = target_mlp([4, 6, 3], seed=0).double()
    frozen = frozen_like(target, "paper", seed=1)
    before = {k: v.clone() for k, v in frozen.state_dict().items()}
    residual = frozen_residual_mlp([3, 3], dtype=torch.float64)
    monkeypatch.setattr(memory, "available_memory", lambda: 2**10)
    _no_solve(monkeypatch)
    import verify.nn.fit as fit

    monkeypatch.setattr(fit, "from_module", lambda *a: pytest.fail("the module was copied before the plan"))
    with pytest.raises(ValueError, match=r"^layer 1 \(Linear\): solving 6x4 weights with 24 neurons .*frozen weights"):
        fit_norm_layers(frozen, target, verify.Box(-1.0, 1.0))
    assert all(torch.equal(before[k], v) for k, v in frozen.state_dict().items())
    with pytest.raises(ValueError, match=r"^branch 1: solving 3x3 weights"):
        fit_norm_layers(residual, target_mlp([3, 3]).double(), verify.Box(-1.0, 1.0))


def test_fit_norm_layers_plans_a_convolutional_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Conv2d target with a BatchNorm to fold: the pairs are read from the modules, kernels flattened."""
    from verify.nn import fit_norm_layers
    from verify.nn.memory_plan import solve_sizes

    target = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(48, 2))
    target = target.double().eval()
    frozen = frozen_like(target, "paper")
    sizes = solve_sizes(frozen, target)
    assert [(s.name, s.n, s.d_out, s.d_in) for s in sizes] == [
        ("layer 1 (Conv2d)", 54, 3, 18),
        ("layer 2 (Linear)", 96, 2, 48),
    ]
    monkeypatch.setattr(memory, "available_memory", lambda: 2**16)
    _no_solve(monkeypatch)
    with pytest.raises(ValueError, match=r"^layer 1 \(Conv2d\): .*minimal width 52 for this pair$"):
        fit_norm_layers(frozen, target, verify.Box(-1.0, 1.0, shape=(2, 6, 6)))
