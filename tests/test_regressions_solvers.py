"""Regression tests for the solvers' robustness (docs/design.md §5), one per bug found, each naming the bug."""

from __future__ import annotations

import numpy as np
import pytest

import verify


def test_iterative_solves_in_float64_for_a_float32_frozen_network() -> None:
    """Bug: ``iterative`` moved its operands to the caller's torch dtype before widening them to
    float64, so a float64 target with a float32 frozen network was solved with ``W`` rounded to
    float32: residual ratio ~5e-9 against a tolerance of ~2e-14, a `CertificateError`, although
    ``lstsq`` certifies the same instance. The solve now always runs in float64."""
    torch = pytest.importorskip("torch")
    target = verify.TargetNetwork.random([3, 4, 2], seed=0)
    frozen = verify.FrozenNetwork.for_target(target, "paper", seed=1)
    frozen32 = verify.FrozenNetwork([torch.tensor(w, dtype=torch.float32) for w in frozen.weights])
    for method in ("lstsq", "iterative"):
        # rtol 1e-3: the result is certified for evaluation in float32 (its proved bound is 1.6e-5 of
        # the target's scale here), which the default rtol = 1e-6 refuses.
        result = verify.reconstruct(target, frozen32, verify.Ball(1.0), method=method, rtol=1e-3)
        assert result.certificate.holds
        assert result.gamma[0].dtype == torch.float32  # results go back in the caller's dtype
        assert all(b.residual_ratio <= b.residual_tolerance for b in result.certificate.blocks)


def test_solve_tensor_keeps_float64_digits() -> None:
    """Bug (same): `TorchSpec.solve_tensor` rounded through the spec's dtype on its way to float64."""
    torch = pytest.importorskip("torch")
    from verify.core.interop import TorchSpec

    spec = TorchSpec(torch.device("cpu"), torch.float32)
    value = np.array([1 + 2**-40, np.pi])
    assert np.array_equal(spec.solve_tensor(value).numpy(), value)
    assert spec.solve_tensor(torch.tensor(value)).dtype == torch.float64


def _finishes(call, seconds: float):
    """``call()``'s result, or a failure if it has not returned after ``seconds`` (it runs in a daemon thread)."""
    import threading

    out: dict = {}

    def run() -> None:
        try:
            out["value"] = call()
        except BaseException as error:  # re-raised in the test's thread
            out["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"did not return within {seconds} s"
    if "error" in out:
        raise out["error"]
    return out["value"]


@pytest.mark.parametrize("radius", [1e-320, 1e-300, 1e300])
def test_exact_terminates_when_radius_times_row_norm_underflows(radius: float) -> None:
    """Bug: ``method="exact"`` never returned on ``Ball(1e-320)``: ``_ball_radius_bound`` started from the
    float ``radius·‖row‖₂``, which underflows to 0, and multiplied it by ``1 + 2⁻³⁰`` until its square
    exceeded the exact ``radius²·Σ row²`` (0 times anything stays 0). The bound is now the exact radius
    times an integer-square-root bound of the norm: no loop."""
    target = verify.TargetNetwork.random([3, 4, 2], seed=0)
    frozen = verify.FrozenNetwork.for_target(target, "paper", seed=1)
    result = _finishes(lambda: verify.reconstruct(target, frozen, verify.Ball(radius), method="exact"), 60)
    assert result.certificate.holds and result.certificate.exact.holds


def test_sqrt_upper_bounds_the_root_tightly_at_every_magnitude() -> None:
    """The rational norm bound behind the fix above: ``q >= sqrt(S)`` exactly, and within 2⁻⁶⁰ relative."""
    import flint

    from verify.solvers.exact import _sqrt_upper

    rng = np.random.default_rng(0)
    values = [5e-324, 1e-320, 1e-300, 1.0, 2.0, 1e300, *(rng.uniform(1, 2, 20) * 2.0 ** rng.integers(-1070, 1020, 20))]
    assert _sqrt_upper(flint.fmpq(0)) == 0
    for v in values:
        for square in (flint.fmpq(*float(v).as_integer_ratio()), flint.fmpq(*float(v).as_integer_ratio()) ** 2):
            root = _sqrt_upper(square)
            assert root * root >= square
            assert root * root <= square * flint.fmpq(2**58 + 1, 2**58)


def test_exact_refuses_targets_beyond_its_reach_before_starting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bug: ``method="exact"`` at ``d = 32`` ran for minutes with no word (its cost grows like
    ``(d_k·d_{k-1})³``). It now refuses a block beyond ``EXACT_MAX_EQUATIONS`` before any work,
    with the estimated time."""
    import verify.construction.tuning as construction  # where each block is solved
    from verify.solvers import exact

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the exact solve started")

    monkeypatch.setattr(construction, "solve_exact", never)
    target = verify.TargetNetwork.random([4, 32, 32, 2], seed=0)
    frozen = verify.FrozenNetwork.for_target(target, "paper", seed=1)
    with pytest.raises(ValueError, match=r"block 2 has 32\*32 = 1024: estimated 7 min") as error:
        verify.reconstruct(target, frozen, verify.Ball(1.0), method="exact")
    assert "method 'direct' or 'lstsq'" in str(error.value)
    exact.check_exact_reach([16, 16])  # d = 16, the documented reach, is accepted
    with pytest.raises(ValueError, match="limited to"):
        exact.check_exact_reach([17, 16])
    with pytest.raises(ValueError, match="limited to"):  # also when a solver is called directly
        exact.solve_exact(np.ones((17, 289)), np.ones((289, 17)), np.ones((17, 17)), block=1)


@pytest.mark.parametrize("method", ["l1", "min_shift"])
@pytest.mark.parametrize(("scale", "seeds"), [(1e3, range(3)), (1e4, range(10))])
def test_convex_methods_solve_targets_of_large_scale(method: str, scale: float, seeds: range) -> None:
    """Bug: ``min_shift`` (and ``l1``) raised a bare ``ArithmeticError`` ("cvxpy/Clarabel returned status
    'infeasible'") on feasible instances: targets of ``scale=1000``, and most seeds at ``scale=1e4``,
    whose later blocks have ranges ~1e8 beside weights ~1. Clarabel's absolute tolerances then
    misjudge the program. Fixed by solving on normalized magnitudes (powers of two, exact), with a
    second and third solver (SciPy's HiGHS, SCS) behind Clarabel."""
    for seed in seeds:
        target = verify.TargetNetwork.random([2, 5, 3, 2], seed=seed, scale=scale)
        frozen = verify.FrozenNetwork.for_target(target, "paper", seed=1)
        result = verify.reconstruct(target, frozen, verify.Ball(1.0), method=method)
        assert result.certificate.holds


def _convex_instance() -> tuple[verify.TargetNetwork, verify.FrozenNetwork]:
    target = verify.TargetNetwork.random([2, 3, 2], seed=0)
    return target, verify.FrozenNetwork.for_target(target, 1.5, seed=1)


def test_a_failed_convex_solve_is_retried_with_another_solver(monkeypatch: pytest.MonkeyPatch, capfd) -> None:
    """Clarabel stopped after one iteration (status 'user_limit') is followed by SciPy's HiGHS, silently."""
    from verify.solvers import convex

    monkeypatch.setitem(convex._SOLVER_OPTIONS, "CLARABEL", {"max_iter": 1})
    target, frozen = _convex_instance()
    result = verify.reconstruct(target, frozen, verify.Ball(1.0), method="l1")
    block = result.certificate.blocks[0]
    assert block.diagnostics["failed_solvers"] == ["CLARABEL: status 'user_limit'"]
    assert block.diagnostics["solver"] == "cvxpy/SCIPY" and "SCIPY" in block.solver
    assert capfd.readouterr().out == ""


def test_convex_failure_of_every_solver_is_a_documented_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """When every installed solver fails the error is a `ConvexSolverError` (a ValueError) naming each
    solver's status and what to try, never a bare ``ArithmeticError``."""
    from verify.solvers import convex

    monkeypatch.setattr(convex, "CONVEX_SOLVERS", ("CLARABEL", "NO_SUCH_SOLVER"))
    monkeypatch.setitem(convex._SOLVER_OPTIONS, "CLARABEL", {"max_iter": 1})
    target, frozen = _convex_instance()
    expected = r"block 1: the min_shift program failed .*'user_limit'.*'lstsq'"
    with pytest.raises(convex.ConvexSolverError, match=expected):
        verify.reconstruct(target, frozen, verify.Ball(1.0), method="min_shift")
    assert issubclass(convex.ConvexSolverError, ValueError)
    assert not issubclass(convex.ConvexSolverError, ArithmeticError)


@pytest.mark.parametrize("method", ["l1", "linf", "box", "min_shift"])
@pytest.mark.parametrize("zero", ["only layer", "last layer"])
def test_convex_methods_accept_an_all_zero_target_layer(method: str, zero: str) -> None:
    """Bug: ``box`` on an all-zero target layer (paper width) raised `CertificateError` (residual ratio
    0.2): its ``min ‖γ‖₂`` returned ``γ ~ 1e-26`` instead of 0, whose product does not cancel
    componentwise. ``γ = 0`` solves ``K γ = 0`` and is optimal for every convex program; it is now
    returned as such, and the block's neurons are switched off."""
    rng = np.random.default_rng(0)
    if zero == "only layer":
        target = verify.TargetNetwork([np.zeros((2, 3))], [[1.0, 2.0]])
    else:
        weights = [rng.standard_normal((3, 2)), np.zeros((2, 3))]
        target = verify.TargetNetwork(weights, [rng.standard_normal(3), [1.0, -1.0]])
    frozen = verify.FrozenNetwork.for_target(target, "paper", seed=1)
    result = verify.reconstruct(target, frozen, verify.Ball(1.0), method=method, bound=1e3 if method == "box" else None)
    assert result.certificate.holds
    assert not np.any(result.scales[-2])


def test_memory_is_checked_before_an_explicit_method_allocates() -> None:
    """Bug: at ``d = 128`` (``n = 2d²``) ``lstsq``, ``direct`` and ``auto`` allocated the explicit 4 GiB
    ``K`` (and more for its factorization) and died in a raw ``MemoryError``. The estimate is now
    compared with the available memory first; here with a fake figure, nothing large is allocated."""
    from verify.solvers.registry import check_memory, choose, memory_estimate

    d, n = 128, 2 * 128**2
    assert memory_estimate("lstsq", n, d, d) > 16 * 2**30  # K alone is 4 GiB
    assert memory_estimate("iterative", n, d, d) < 2**30
    available = 3 * 2**30
    for method in ("lstsq", "direct", "l1", "linf", "box", "min_shift", "minimal"):
        with pytest.raises(
            ValueError, match=r"block 2: method '\w+' needs about [\d.]+ GiB .* only 3 GiB.*'iterative'"
        ):
            check_memory(method, n, d, d, block=2, available=available)
    check_memory("iterative", n, d, d, block=2, available=available)
    with pytest.raises(ValueError, match="even method 'iterative' needs about"):
        check_memory("lstsq", n, d, d, block=1, available=2**20)
    assert choose(d * d, d * d, d_out=d, d_in=d, available=available) == "iterative"  # not direct
    assert choose(2 * 24**2, 24**2, d_out=24, d_in=24, available=available) == "lstsq"  # fits: unchanged
    assert choose(24**2, 24**2, d_out=24, d_in=24, available=available) == "direct"


def test_reconstruct_refuses_a_method_that_does_not_fit_and_auto_avoids_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same through `verify.reconstruct`, with the available memory faked to 1 MiB: ``lstsq`` is
    refused before it builds ``K``, and ``auto`` picks ``iterative`` instead of ``direct``."""
    from verify.solvers import registry

    monkeypatch.setattr(registry, "available_memory", lambda: 2**20)
    target = verify.TargetNetwork.random([16, 16], seed=0)
    frozen = verify.FrozenNetwork.for_target(target, "paper", seed=1)
    with pytest.raises(ValueError, match=r"block 1: method 'direct' needs about .* use method='iterative'"):
        verify.reconstruct(target, frozen, verify.Ball(1.0), method="direct")
    result = verify.reconstruct(target, frozen, verify.Ball(1.0))
    assert result.certificate.blocks[0].solver.startswith("auto -> iterative")


def test_available_memory_reads_meminfo_without_psutil(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without psutil the figure comes from ``/proc/meminfo`` (Linux), and it is a positive number of bytes."""
    import sys

    from verify.solvers.registry import available_memory

    with_psutil = available_memory()
    monkeypatch.setitem(sys.modules, "psutil", None)  # `import psutil` now raises ImportError
    without = available_memory()
    if sys.platform.startswith("linux"):
        assert without is not None and without > 0 and with_psutil is not None
        assert abs(without - with_psutil) < max(without, with_psutil) / 2


PAPER_METHODS = ("auto", "direct", "lstsq", "iterative", "l1", "linf", "box", "min_shift", "exact")


def _duplicated(target: verify.TargetNetwork, block: int, factor_b: float, factor_a: float) -> verify.FrozenNetwork:
    """``target``'s paper-width frozen network with odd neuron 3 of ``block`` made proportional to neuron 0."""
    frozen = verify.FrozenNetwork.for_target(target, "paper", seed=1)
    weights = [np.array(w) for w in frozen.weights]
    odd, even = 2 * block - 2, 2 * block - 1
    weights[odd][3] = factor_b * weights[odd][0]
    weights[even][:, 3] = factor_a * weights[even][:, 0]
    return verify.FrozenNetwork(weights)


@pytest.mark.parametrize("method", PAPER_METHODS)
@pytest.mark.parametrize(("block", "factors"), [(1, (1.0, 1.0)), (2, (-2.0, 1.5)), (1, (0.3, -7.0))])
def test_duplicated_frozen_neurons_are_infeasible_with_every_method(method: str, block: int, factors: tuple) -> None:
    """Bug: two odd neurons with proportional ``(a_i, b_i)`` make ``K`` rank-deficient; every method said
    `InfeasibleError` except ``iterative`` (LSMR computes no rank: `CertificateError`, residual ratio
    0.02) and ``exact`` (proportional only up to rounding, so exactly solvable with ``γ ~ 1e16``: a
    `CertificateError` from the sampled check). ``iterative`` now counts distinct neurons first, ``exact``
    checks the numerical rank of its square system; the error names the block, the rank and the width."""
    target = verify.TargetNetwork.random([3, 4, 2], seed=0)
    frozen = _duplicated(target, block, *factors)
    width = frozen.widths[2 * block - 1]
    with pytest.raises(verify.InfeasibleError, match=rf"block {block}: .*rank .*{width}") as error:
        verify.reconstruct(target, frozen, verify.Ball(1.0), method=method, bound=1e6 if method == "box" else None)
    assert (error.value.block, error.value.width, error.value.needed) == (block, width, width)
    assert error.value.rank is not None and error.value.rank < width


def test_distinct_neurons_counts_proportional_and_dead_columns_once() -> None:
    """The pre-check behind ``iterative``'s refusal: proportional pairs count once, dead neurons not at all."""
    from verify.core.scale_equation import distinct_neurons

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 40)), rng.standard_normal((40, 4))
    assert distinct_neurons(a, b) == 40
    a[:, 5], b[5] = -3 * a[:, 7], 0.1 * b[7]  # proportional to neuron 7
    a[:, 9], b[9] = a[:, 2], -b[2]  # the same column up to sign
    a[:, 11] = 0.0  # dead: its column of K is zero
    b[12] = 0.0
    assert distinct_neurons(a, b) == 36
    assert distinct_neurons(a * 2.0**-60, b * 2.0**60) == 36


def test_iterative_verdict_does_not_depend_on_the_frozen_weights_scale() -> None:
    """Bug: ``iterative`` failed (`CertificateError`, residual ratio 0.5) once the frozen weights were
    scaled by ``2⁻²⁰``: scipy's LSMR estimates ``cond K`` from quantities that scale with ``‖K‖`` and
    stopped at its ``conlim = 1e8`` after one iteration. ``A``, ``B`` and ``W`` are now normalized by
    powers of two (exact) before LSMR."""
    target = verify.TargetNetwork.random([3, 4, 3, 2], seed=0)
    frozen = verify.FrozenNetwork.for_target(target, "paper", seed=1)
    for power in (-60, -20, 0, 20, 60):
        scaled = verify.FrozenNetwork([w * 2.0**power for w in frozen.weights])
        result = verify.reconstruct(target, scaled, verify.Ball(1.0), method="iterative")
        assert result.certificate.holds


@pytest.mark.parametrize("factor", [1e78, 2.0**260, 1e-78])
def test_minimal_mode_accepts_frozen_weights_of_extreme_scale(factor: float) -> None:
    """Bug: minimal mode on frozen weights scaled by 1e78 said "every solution … switches off target
    row(s) … no minimal-mode solution exists": the column norms of its system ``[W-part | −K]``
    (``K ~ 1e156``) overflowed to inf in ``np.linalg.norm``, the equilibrated ``K`` columns became 0
    and every null vector had ``ρ = 0``. The registry now runs ``direct``, ``lstsq`` and ``minimal`` on
    the equation normalized by powers of two (exact, ``γ`` scaled back)."""
    target = verify.TargetNetwork.random([3, 4, 2], seed=0)
    frozen = verify.FrozenNetwork.for_target(target, "minimal", seed=1)
    scaled = verify.FrozenNetwork([w * factor for w in frozen.weights])
    assert verify.reconstruct(target, scaled, verify.Ball(1.0), mode="minimal").certificate.holds


@pytest.mark.parametrize("method", PAPER_METHODS)
def test_every_method_accepts_frozen_weights_scaled_by_1e78(method: str) -> None:
    """The same scales (not powers of two) in paper mode, for every method (``box``'s bound scaled along)."""
    target = verify.TargetNetwork.random([3, 4, 2], seed=0)
    frozen = verify.FrozenNetwork.for_target(target, 1.25, seed=1)
    for factor in (1e78, 1e-78):
        scaled = verify.FrozenNetwork([w * factor for w in frozen.weights])
        result = verify.reconstruct(
            target, scaled, verify.Ball(1.0), method=method, bound=1e3 / factor**2 if method == "box" else None
        )
        assert result.certificate.holds


@pytest.mark.parametrize("seed", [11, 30])
def test_direct_finds_proportional_neurons_its_lu_diagonal_misses(seed: int) -> None:
    """Bug (found by the duplicated-neurons property): ``direct`` decided the rank from the LU
    diagonal, which is not rank-revealing; with neuron 1 = 3 × neuron 0 (proportional up to
    rounding) the diagonal looked full rank, ``γ ~ 4e15`` came out and the sampled check failed
    (`CertificateError`). LAPACK's ``gecon`` estimate now sends every suspect block to the SVD."""
    target = verify.TargetNetwork.random([1, 2], seed=seed)
    frozen = verify.FrozenNetwork.for_target(target, "paper", seed=seed)
    weights = [np.array(w) for w in frozen.weights]
    weights[0][1] = 3.0 * weights[0][0]
    weights[1][:, 1] = weights[1][:, 0]
    with pytest.raises(verify.InfeasibleError, match=r"block 1: .* has rank 1"):
        verify.reconstruct(target, verify.FrozenNetwork(weights), verify.Ball(1.0), method="direct")
