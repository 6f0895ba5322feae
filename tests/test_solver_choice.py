"""docs/design.md §5: the condition estimates the solvers report, ``auto``'s time-based choice and the line
announcing a long solve."""

from __future__ import annotations

import io

import numpy as np
import pytest
import scipy.sparse.linalg

import verify
from verify.core.scale_equation import ScaleEquation
from verify.solvers import planning, registry
from verify.solvers.condition import BidiagonalRecorder, bidiagonal_condition
from verify.solvers.registry import choose, solve

HUGE = 2**60
"""Bytes 'available' in chooser tests: memory never decides, only time."""


def _equation(d_out: int, d_in: int, factor: float, seed: int) -> ScaleEquation:
    rng = np.random.default_rng(seed)
    n = int(np.ceil(factor * d_out * d_in))
    return ScaleEquation(
        rng.standard_normal((d_out, n)), rng.standard_normal((n, d_in)), rng.standard_normal((d_out, d_in))
    )


@pytest.mark.parametrize(("d_out", "d_in", "seed"), [(3, 4, 0), (5, 5, 1), (6, 7, 2), (8, 8, 3)])
def test_direct_reports_gecons_estimate_of_the_1_norm_condition(d_out: int, d_in: int, seed: int) -> None:
    equation = _equation(d_out, d_in, 1.0, seed)
    solution = solve("direct", equation, block=1)
    true = np.linalg.cond(equation.normalized()[0].k, 1)  # direct factors the normalized K (powers of two)
    # Hager–Higham's estimate is a lower bound (up to rounding, 1e-12 relative here) and usually within a
    # factor of 3 of the 1-norm condition number (not guaranteed: properties/test_condition.py).
    assert true / 3 <= solution.condition <= true * (1 + 1e-12)
    assert solution.diagnostics["condition_norm"].startswith("1-norm")


@pytest.mark.parametrize("factor", [1.0, 1.5, 2.0])
@pytest.mark.parametrize(("d_out", "d_in", "seed"), [(3, 4, 0), (6, 5, 1), (8, 8, 2)])
def test_iterative_reports_the_2_norm_condition_from_lsmrs_bidiagonal(
    d_out: int, d_in: int, seed: int, factor: float
) -> None:
    equation = _equation(d_out, d_in, factor, seed)
    solution = solve("iterative", equation, block=1)
    true = np.linalg.cond(equation.k)  # 2-norm; scale-free, so normalization does not change it
    # The bidiagonal's extreme singular values are Ritz values of K; LSMR stops only after its Krylov
    # space has resolved K's range (rank d_out·d_in <= 64 here), and then they agree with the SVD's to
    # about cond·eps relative (cond <= 1e4 here, so 1e-6 leaves two orders of margin).
    assert solution.condition == pytest.approx(true, rel=1e-6)


def test_the_torch_lsmr_reports_the_same_condition() -> None:
    torch = pytest.importorskip("torch")
    equation = _equation(6, 5, 1.0, 4)
    tensors = ScaleEquation(*(torch.from_numpy(m) for m in (equation.a, equation.b, equation.w)))
    assert solve("iterative", tensors, block=1).condition == pytest.approx(np.linalg.cond(equation.k), rel=1e-6)


def test_recording_the_bidiagonal_leaves_lsmr_unchanged() -> None:
    equation = _equation(7, 6, 1.0, 5).normalized()[0]
    recorder = BidiagonalRecorder(equation.operator)
    recorded = scipy.sparse.linalg.lsmr(recorder, equation.target, atol=1e-15, btol=1e-15, maxiter=2000)
    plain = scipy.sparse.linalg.lsmr(equation.operator, equation.target, atol=1e-15, btol=1e-15, maxiter=2000)
    assert np.array_equal(recorded[0], plain[0]) and recorded[2] == plain[2]
    assert len(recorder.betas) == plain[2] and len(recorder.alphas) == plain[2] + 1  # α_{k+1} of the last step
    # scipy's own acond is a different quantity: on this square system it is far below the true value.
    assert plain[6] < np.linalg.cond(equation.k) / 10 < recorder.condition()


def test_bidiagonal_condition_of_a_known_bidiagonal() -> None:
    alphas, betas = [3.0, 2.0, 1.0], [0.5, 0.25]
    matrix = np.diag(alphas) + np.diag(betas, -1)
    assert bidiagonal_condition(alphas, betas) == pytest.approx(np.linalg.cond(matrix), rel=1e-13)
    assert np.isnan(bidiagonal_condition([], []))


def _direct_boundary() -> int:
    """The largest number of equations whose square ``direct`` solve is within `AUTO_DIRECT_SECONDS`."""
    m = int((planning.AUTO_DIRECT_SECONDS * planning.FLOP_RATE * 1.5) ** (1 / 3))
    while planning.estimate_seconds("direct", m + 1, m + 1, 1) <= planning.AUTO_DIRECT_SECONDS:
        m += 1
    while planning.estimate_seconds("direct", m, m, 1) > planning.AUTO_DIRECT_SECONDS:
        m -= 1
    return m


def test_auto_runs_direct_at_the_exact_width_while_it_fits_in_time() -> None:
    m = _direct_boundary()
    assert choose(m, m, available=HUGE) == "direct"
    assert choose(32 * 32, 32 * 32, d_out=32, d_in=32, available=HUGE) == "direct"
    # Beyond AUTO_DIRECT_SECONDS, direct while it is estimated faster than LSMR on the square system: at
    # d = 128 the 16384² LU (about 150 s) against LSMR's 2.2·m iterations (about half an hour).
    slow = planning.estimate_seconds("direct", 128 * 128, 128 * 128, 1)
    assert slow > planning.AUTO_DIRECT_SECONDS and slow < planning.estimate_seconds("iterative", 128**2, 128**2, 1)
    assert choose(128 * 128, 128 * 128, d_out=128, d_in=128, available=HUGE) == "direct"
    # ... unless the LU does not fit in memory: then LSMR, whatever the time.
    assert choose(128 * 128, 128 * 128, d_out=128, d_in=128, available=2**30) == "iterative"


def test_auto_beside_the_exact_width_and_under_memory_pressure() -> None:
    assert choose(2 * 1024, 1024, d_out=32, d_in=32, available=HUGE) == "lstsq"
    assert choose(2 * 1025, 1025, available=HUGE) == "iterative"
    needed = 48 * 48
    direct_bytes = registry.memory_estimate("direct", needed, 48, 48)
    assert choose(needed, needed, d_out=48, d_in=48, available=direct_bytes) == "direct"
    assert choose(needed, needed, d_out=48, d_in=48, available=direct_bytes - 1) == "iterative"


def test_the_iteration_model_is_monotone_in_the_width() -> None:
    needed = 3000
    counts = [planning.lsmr_iterations(int(needed * r), needed) for r in (1.0, 1.01, 1.1, 1.5, 2.0, 4.0)]
    assert counts == sorted(counts, reverse=True) and counts[0] == planning.lsmr_iterations(needed, needed)
    assert counts[-2] == counts[-1] == 100


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_long_solve_is_announced_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    equation = _equation(3, 4, 1.0, 6)
    terminal = _Terminal()
    monkeypatch.setattr(registry, "estimate_seconds", lambda *args: 5400.0)  # a fake 90-minute estimate
    monkeypatch.setattr("sys.stderr", terminal)
    expected = solve("direct", equation, block=3)
    assert terminal.getvalue() == "verify: block 3: method 'direct' on 12 equations x 12 neurons, estimated 90 min\n"
    pipe = io.StringIO()
    monkeypatch.setattr("sys.stderr", pipe)
    quiet = solve("direct", equation, block=3)
    assert pipe.getvalue() == "" and np.array_equal(quiet.scale, expected.scale)


def test_announce_is_silent_below_a_minute() -> None:
    terminal = _Terminal()
    shape = (3000, 30, 100)
    assert not planning.announce("iterative", planning.LONG_SOLVE_SECONDS, block=1, shape=shape, stream=terminal)
    assert planning.announce("iterative", 2 * planning.LONG_SOLVE_SECONDS, block=1, shape=shape, stream=terminal)
    assert "estimated 2 min" in terminal.getvalue() and "twice the exact width" in terminal.getvalue()


def _nearly_duplicated(seed: int = 0) -> tuple[verify.TargetNetwork, verify.FrozenNetwork]:
    """A paper-width block with two frozen neurons 1e-12 apart (odd row, even column): full rank, badly conditioned."""
    target = verify.TargetNetwork.random([4, 4], seed=seed)
    frozen = verify.FrozenNetwork.for_target(target, "paper", seed=seed + 1)
    weights = [w.copy() for w in frozen.weights]
    rng = np.random.default_rng(seed)  # both the odd row and the even column: two columns of K nearly equal
    weights[0][1] = weights[0][0] + 1e-12 * rng.standard_normal(weights[0].shape[1])
    weights[1][:, 1] = weights[1][:, 0] + 1e-12 * rng.standard_normal(weights[1].shape[0])
    return target, verify.FrozenNetwork(weights, frozen.biases, frozen.running_mean, frozen.running_var, frozen.eps)


def test_beyond_the_svd_limit_a_suspect_condition_skips_the_svd(monkeypatch: pytest.MonkeyPatch) -> None:
    """A suspect 1-norm estimate sends a system to the SVD only up to SVD_RANK_LIMIT equations; beyond it the
    LU decides and the certificate refuses what it cannot prove: the same verdict, and never a wrong result."""
    import scipy.linalg

    from verify.solvers import direct

    calls = []
    real = scipy.linalg.svdvals
    monkeypatch.setattr(scipy.linalg, "svdvals", lambda *a, **k: calls.append(1) or real(*a, **k))

    def verdict() -> str:
        target, frozen = _nearly_duplicated()
        try:
            result = verify.reconstruct(target, frozen, verify.Ball(1.0), method="direct")
        except (verify.CertificateError, verify.InfeasibleError) as error:
            return type(error).__name__
        assert result.certificate.holds
        return "holds"

    first = verdict()
    assert calls, "the suspect condition estimate (about 4e13 here) must send a small system to the SVD"
    calls.clear()
    monkeypatch.setattr(direct, "SVD_RANK_LIMIT", 0)
    assert verdict() == first and not calls
