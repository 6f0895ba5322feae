"""Where sweeps run (`verify.job.sweeps.Runner`): in-process, a local process pool, a Dask cluster.

The issue's contract: sweeps run on a local process pool by default and on a Dask distributed
cluster given ``--scheduler ADDRESS``, with results identical to the local run. The Dask tests start
a `distributed.LocalCluster` on loopback (two worker processes).
"""

from __future__ import annotations

import logging

import pytest

from verify.core.sparsity import full_rank_rate
from verify.job.claims.threshold import threshold_case
from verify.job.config import Config
from verify.job.progress import Sweep
from verify.job.runner import run_claims
from verify.job.sweeps import Runner

distributed = pytest.importorskip("distributed")

# Case functions must be importable by worker processes, so the tests use the library's own:
# full_rank_rate(d, factor, density, seeds) is deterministic and fails (ZeroDivisionError) on no seeds.
CASES = [(d, factor, p, tuple(range(6))) for d in (3, 4) for factor in (1.0, 2.0) for p in (0.2, 0.5, 0.9)]
EXPECTED = [full_rank_rate(*case) for case in CASES]
CONFIG = Config(
    architectures=((2, 3), (3, 2, 2), (12, 12, 12), (5, 12, 5, 12, 5)),
    seeds=(0, 1),
    points=16,
    domains=("ball",),
    properties=False,
    only=("exact/*", "tight/paper", "threshold/paper", "paired/Rd", "sparse/rank"),
)


def _without_times(claims: list) -> list:
    """Claims (or their JSON dictionaries) without wall times, the only thing that may differ between runners."""

    def strip(value: object) -> object:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "seconds"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return [strip(c if isinstance(c, dict) else c.to_dict()) for c in claims]


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",  # any free port: a fixed one may be taken on a shared machine
        silence_logs=logging.ERROR,
    ) as local_cluster:
        yield local_cluster


def test_expected_values_are_not_trivial() -> None:
    assert 0 < sum(EXPECTED) < len(EXPECTED)  # a mix of rates: a reordering would show


@pytest.mark.parametrize("workers", [1, 2])
def test_local_runner_returns_results_in_case_order(workers: int) -> None:
    ticks = []
    with Runner(workers=workers) as runner:
        assert runner.map(full_rank_rate, CASES, on_done=lambda: ticks.append(1)) == EXPECTED
        assert runner.map(full_rank_rate, CASES[::-1]) == EXPECTED[::-1]  # the pool is reused
    assert len(ticks) == len(CASES)


def test_dask_runner_matches_the_local_run(cluster) -> None:
    ticks = []
    with Runner(scheduler=cluster.scheduler_address) as runner:
        assert "Dask" in runner.describe()
        assert runner.map(full_rank_rate, CASES, on_done=lambda: ticks.append(1)) == EXPECTED
    assert len(ticks) == len(CASES)


def test_claims_on_dask_and_on_a_pool_are_identical_to_the_in_process_run(cluster) -> None:
    local = run_claims(CONFIG)
    assert [c.name for c in local] == [
        "exact/paper/ball",
        "exact/minimal/ball",
        "tight/paper",
        "threshold/paper",
        "paired/Rd",
        "sparse/rank",
    ]
    assert all(c.passed for c in local), [(c.name, c.failures) for c in local if not c.passed]
    with Sweep(Runner(workers=2)) as sweep:
        pooled = run_claims(CONFIG, sweep=sweep)
    with Sweep(Runner(scheduler=cluster.scheduler_address)) as sweep:
        on_dask = run_claims(CONFIG, sweep=sweep)
    assert _without_times(pooled) == _without_times(local)
    assert _without_times(on_dask) == _without_times(local)


@pytest.mark.parametrize("workers", [1, 2])
def test_an_exception_in_a_case_propagates(workers: int) -> None:
    with Runner(workers=workers) as runner, pytest.raises(ZeroDivisionError):
        runner.map(full_rank_rate, [(3, 1.0, 0.5, ())])


def test_an_exception_on_dask_propagates(cluster) -> None:
    with Runner(scheduler=cluster.scheduler_address) as runner, pytest.raises(ZeroDivisionError):
        runner.map(full_rank_rate, [(3, 1.0, 0.5, ())])


@pytest.mark.parametrize("scheduler", ["", "localhost", "http://", "not an address", 8786])
def test_a_bad_scheduler_address_is_refused(scheduler: object) -> None:
    with pytest.raises(ValueError, match="address of a Dask scheduler"):
        Runner(scheduler=scheduler)  # type: ignore[arg-type]


@pytest.mark.parametrize("workers", [0, -1, 1.5, True, "2"])
def test_a_bad_worker_count_is_refused(workers: object) -> None:
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        Runner(workers=workers)  # type: ignore[arg-type]


def test_an_unreachable_scheduler_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import verify.job.sweeps as sweeps

    monkeypatch.setattr(sweeps, "CONNECT_TIMEOUT", 1.0)
    with Runner(scheduler="tcp://127.0.0.1:1") as runner, pytest.raises(OSError, match=r"tcp://127\.0\.0\.1:1\b"):
        runner.map(threshold_case, [("paper", 2, 2, 4, 0)])


def test_no_cases_is_an_empty_list() -> None:
    assert Runner(workers=2).map(full_rank_rate, []) == []


def test_the_command_line_on_dask_writes_the_same_report(cluster, tmp_path) -> None:
    import json

    from verify.__main__ import main

    def claims(out: str) -> list:
        document = json.loads((tmp_path / out / "verify.json").read_text(encoding="utf-8"))
        return _without_times(document["claims"])

    arguments = ["--only", "threshold/minimal", "--only", "paired/Rd", "--no-properties", "--seeds", "1"]
    assert main([*arguments, "--workers", "1", "--out", str(tmp_path / "local")]) == 0
    assert main([*arguments, "--scheduler", cluster.scheduler_address, "--out", str(tmp_path / "dask")]) == 0
    assert claims("dask") == claims("local")
    assert (tmp_path / "dask" / "figures" / "width.png").is_file()


def test_the_command_line_names_an_unreachable_scheduler(monkeypatch, tmp_path, capsys) -> None:
    import verify.job.sweeps as sweeps
    from verify.__main__ import main

    monkeypatch.setattr(sweeps, "CONNECT_TIMEOUT", 1.0)
    code = main(["--only", "threshold/paper", "--scheduler", "tcp://127.0.0.1:1", "--out", str(tmp_path)])
    assert code == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in capsys.readouterr().err
    assert main(["--scheduler", "nonsense", "--out", str(tmp_path)]) == 2


@pytest.mark.parametrize(
    ("scheduler", "why"),
    [("ucx://127.0.0.1:8786", "needs UCX"), ("inproc://10.0.0.5/1/2", "inside one Python process")],
)
def test_a_scheduler_protocol_that_cannot_work_here_is_refused_up_front(scheduler: str, why: str) -> None:
    # Regression: ucx:// passed the address check, then died in a traceback when the sweep started.
    pytest.importorskip("distributed")
    if scheduler.startswith("ucx") and any(
        __import__("importlib").util.find_spec(name) for name in ("ucp", "distributed_ucxx")
    ):
        pytest.skip("UCX is installed here")
    with pytest.raises(ValueError, match=why):
        Runner(scheduler=scheduler)


def test_a_refused_connection_fails_at_once_not_after_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    # Regression: a scheduler that refuses the connection at once was still waited for 10 s (Dask
    # retries until its timeout). The probe's own ConnectionRefusedError is the error's cause.
    import verify.job.sweeps as sweeps

    monkeypatch.setattr(sweeps, "CONNECT_TIMEOUT", 30.0)  # a regression fails after 30 s, not 10 min
    with Runner(scheduler="tcp://127.0.0.1:1") as runner, pytest.raises(OSError, match="cannot reach") as caught:
        runner.map(threshold_case, [("paper", 2, 2, 4, 0)])
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)


def test_the_command_line_checks_out_and_seeds_before_any_claim_runs(tmp_path, capsys) -> None:
    # Regression: --out naming a file was found only after every claim had run, in a traceback;
    # --seeds 10^23 overflowed.
    from verify.__main__ import main

    not_a_dir = tmp_path / "report.txt"
    not_a_dir.write_text("x", encoding="utf-8")
    assert main(["--only", "threshold/paper", "--out", str(not_a_dir)]) == 2
    assert f"--out {not_a_dir} is a file, not a directory" in capsys.readouterr().err
    assert main(["--only", "threshold/paper", "--out", str(not_a_dir / "sub")]) == 2
    assert "cannot write the report into --out" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["--seeds", "100000000000000000000000"])
    assert exit_.value.code == 2
    assert "at most 1000 seeds" in capsys.readouterr().err
