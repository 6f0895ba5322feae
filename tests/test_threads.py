"""The BLAS thread limit inside the library's calls (verify.core.threads, docs/design.md §5)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import verify
from verify.solvers import registry


def _blas_threads() -> set[int]:
    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[set[int]]:
    """Records the BLAS threads the lstsq solver runs with, at each call."""
    record: list[set[int]] = []
    solver = registry.SOLVERS["lstsq"]

    def recording(*args, **kwargs):
        record.append(_blas_threads())
        return solver(*args, **kwargs)

    monkeypatch.setitem(registry.SOLVERS, "lstsq", recording)
    return record


def _run() -> None:
    target = verify.TargetNetwork.random([3, 4, 2], seed=0)
    frozen = verify.FrozenNetwork.for_target(target, width=2.0, seed=1)
    verify.reconstruct(target, frozen, verify.Ball(1.0), method="lstsq")


def test_the_default_limit_holds_inside_reconstruct_and_the_callers_threads_come_back(seen):
    if not _blas_threads():
        pytest.skip("threadpoolctl finds no BLAS library")
    before = _blas_threads()
    assert verify.blas_thread_limit() == 1  # the default (VERIFY_BLAS_THREADS is unset in the test sessions)
    _run()
    assert seen and all(threads == {1} for threads in seen)
    assert _blas_threads() == before


def test_the_limit_is_configurable_and_none_leaves_blas_alone(seen):
    if not _blas_threads():
        pytest.skip("threadpoolctl finds no BLAS library")
    process = _blas_threads()
    with verify.blas_threads(None):
        assert verify.blas_thread_limit() is None
        _run()
    assert seen[-1] == process
    with threadpool_limits(limits=2, user_api="blas"):
        expected = _blas_threads()  # what threadpoolctl itself makes of a limit of 2 (a library may cap it)
    with verify.blas_threads(2):
        _run()
    assert seen[-1] == expected
    assert verify.blas_thread_limit() == 1  # restored after each block


def test_set_blas_threads_returns_the_previous_limit_and_refuses_nonsense():
    previous = verify.set_blas_threads(3)
    try:
        assert previous == 1
        assert verify.set_blas_threads("none") == 3
        assert verify.blas_thread_limit() is None
        for bad in (0, -1, 1.5, True, "two", [1]):
            with pytest.raises(ValueError, match="limit must be an integer >= 1"):
                verify.set_blas_threads(bad)
        assert verify.blas_thread_limit() is None  # a refused value changes nothing
    finally:
        verify.set_blas_threads(previous)


def test_a_direct_solver_call_is_limited_too(seen):
    if not _blas_threads():
        pytest.skip("threadpoolctl finds no BLAS library")
    rng = np.random.default_rng(0)
    registry.solve_with("lstsq", rng.standard_normal((2, 8)), rng.standard_normal((8, 3)), np.ones((2, 3)), block=1)
    assert seen == [{1}]


@pytest.mark.parametrize(("value", "expected"), [("2", "2"), (" none ", "None"), ("NONE", "None")])
def test_the_environment_variable_sets_the_limit_at_import(value, expected):
    env = os.environ | {"VERIFY_BLAS_THREADS": value}
    out = subprocess.run(
        [sys.executable, "-c", "import verify; print(verify.blas_thread_limit())"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == expected


def test_a_bad_environment_variable_is_refused_by_name():
    env = os.environ | {"VERIFY_BLAS_THREADS": "0"}
    out = subprocess.run([sys.executable, "-c", "import verify"], env=env, capture_output=True, text=True)
    assert out.returncode != 0
    assert "VERIFY_BLAS_THREADS must be an integer >= 1" in out.stderr
