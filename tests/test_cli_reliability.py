"""Issue 22's reliability items: what ``--out`` may replace, ``--bound``, the ``--workers`` cap, the eps
trap, and a target whose output is identically 0 (exact, with bound 0)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import verify  # noqa: E402
from verify.cli.eps import THE_EPS_TRAP, alternative, inferred  # noqa: E402
from verify.cli.main import _check_out  # noqa: E402
from verify.core.paths import missing_directory, node_kind, node_problem  # noqa: E402
from verify.job.sweeps import Runner, available_cores  # noqa: E402
from verify.nn import fit_norm_layers, frozen_like, frozen_mlp, target_mlp  # noqa: E402
from verify.nn.state_dict import write_atomically  # noqa: E402

TARGET_WIDTHS = [3, 4, 2]
FROZEN_WIDTHS = [3, 12, 4, 8, 2]
PAIRED_WIDTHS = [3, 24, 4, 16, 2]


def _cli(*args: object) -> int:
    from verify.__main__ import main

    return main(["reconstruct", *(str(a) for a in args)])


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    return lines[0]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {name: tmp_path / f"{name}.pt" for name in ("target", "frozen")}
    torch.save(target_mlp(TARGET_WIDTHS, seed=1, dtype=torch.float64).state_dict(), paths["target"])
    torch.save(frozen_mlp(FROZEN_WIDTHS, seed=0, dtype=torch.float64).state_dict(), paths["frozen"])
    return paths


def _fifo(tmp_path: Path) -> Path:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no os.mkfifo on this platform")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    return fifo


# --------------------------------------------------------------------------------------------- --out


@pytest.mark.parametrize("through_link", [False, True])
def test_a_fifo_at_out_is_refused_even_with_force_and_left_untouched(files, tmp_path, capsys, through_link) -> None:
    fifo = _fifo(tmp_path)
    out = fifo
    if through_link:
        out = tmp_path / "link.pt"
        out.symlink_to(fifo)
    assert _cli("--target", files["target"], "--frozen", files["frozen"], "--out", out, "--force") == 2
    line = _error_line(capsys)
    assert "is a FIFO (named pipe)" in line and "left untouched" in line
    assert ("through the symbolic link" in line) is through_link
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # still the FIFO, not replaced by a regular file
    assert not through_link or out.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary left


def test_write_atomically_refuses_a_fifo_and_a_directory(tmp_path) -> None:
    fifo = _fifo(tmp_path)
    for node, kind in ((fifo, "a FIFO"), (tmp_path, "a directory")):
        with pytest.raises(ValueError, match=f"out '.*' is {kind}.*not a regular file"):
            write_atomically({"x": torch.zeros(1)}, node)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and tmp_path.is_dir()
    regular = tmp_path / "ok.pt"
    write_atomically({"x": torch.ones(1)}, regular)  # a regular file (and a link to one) is still written
    link = tmp_path / "link.pt"
    link.symlink_to(regular)
    assert node_problem(link) is None and node_kind(link) == "a regular file"
    write_atomically({"x": torch.zeros(1)}, link)
    assert torch.load(link, weights_only=True)["x"].item() == 0.0


def test_the_job_out_refuses_a_fifo_and_a_fifo_report_file(tmp_path) -> None:
    fifo = _fifo(tmp_path)
    assert "is a FIFO (named pipe), not a directory" in _check_out(str(fifo))
    reports = tmp_path / "reports"
    reports.mkdir()
    os.mkfifo(reports / "verify.md")
    problem = _check_out(str(reports))
    assert problem is not None and "the report file" in problem and "FIFO" in problem
    assert stat.S_ISFIFO(os.stat(reports / "verify.md").st_mode)
    assert _check_out(str(tmp_path / "fresh")) is None


def test_a_dangling_link_into_a_missing_directory_names_the_link_and_the_directory(files, tmp_path, capsys) -> None:
    link = tmp_path / "tuned.pt"
    link.symlink_to(tmp_path / "missing" / "tuned.pt")
    assert _cli("--target", files["target"], "--frozen", files["frozen"], "--out", link, "--force") == 2
    line = _error_line(capsys)
    assert f"{str(link)!r} is a symbolic link to" in line
    assert f"whose directory {str(tmp_path / 'missing')!r} does not exist" in line
    assert "directory '.'" not in line
    assert missing_directory(tmp_path / "new.pt") is None


# --------------------------------------------------------------------------------------------- --bound


def test_bound_with_method_box(files, tmp_path, capsys) -> None:
    out = tmp_path / "tuned.pt"
    common = ("--target", files["target"], "--frozen", files["frozen"], "--out", out)
    assert _cli(*common, "--method", "box", "--bound", "1e3") == 0
    assert "solver: box" in capsys.readouterr().out and out.exists()
    out.unlink()
    assert _cli(*common, "--bound", "1e3") == 2
    assert "--bound is the |gamma| <= C of --method box only; --method auto would ignore it" in _error_line(capsys)
    assert _cli(*common, "--method", "box") == 2
    assert "--method box needs --bound C" in _error_line(capsys)
    assert _cli(*common, "--method", "box", "--bound", "-1") == 2
    assert "--bound must be a positive finite number" in _error_line(capsys)
    assert not out.exists()


def test_help_documents_bound_and_the_eps_trap(capsys) -> None:
    assert _cli("--help") == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--bound C" in text and "--method box, which needs it" in text
    assert " ".join(THE_EPS_TRAP.split()) in text


# --------------------------------------------------------------------------------------------- --workers


def test_workers_are_capped_at_the_cores_available() -> None:
    cores = available_cores()
    if hasattr(os, "sched_getaffinity"):
        assert cores == len(os.sched_getaffinity(0))
    runner = Runner(workers=cores + 10000)
    assert runner.workers == cores
    assert runner.capped == (
        f"--workers {cores + 10000} capped at {cores}, the CPU cores available to this process "
        "(more processes than cores only add memory)"
    )
    assert Runner(workers=1).capped is None and Runner().workers == cores


def test_the_job_says_when_it_capped_the_workers(capsys, monkeypatch) -> None:
    from verify.cli import main as job

    monkeypatch.setattr(job, "_check_out", lambda out: "stop here")  # the note comes before any claim runs
    assert job.main(["--workers", "10000", "--only", "sparse/*", "--no-properties"]) == 2
    err = capsys.readouterr().err
    assert f"note: --workers 10000 capped at {available_cores()}" in err


# --------------------------------------------------------------------------------------------- eps


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).flatten(1))


@pytest.mark.parametrize(
    "target",
    [
        target_mlp(TARGET_WIDTHS),
        nn.Sequential(nn.Conv1d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2)),
        _Net(),
    ],
    ids=["mlp", "sequential-conv", "class"],
)
def test_frozen_like_uses_eps_1e_5_on_every_route(target) -> None:
    norms = [m for m in frozen_like(target).modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms and {m.eps for m in norms} == {1e-5}


def test_the_eps_check_and_the_torch_check_with_another_eps(files, tmp_path, capsys) -> None:
    assert _cli("--target", files["target"], "--frozen", files["frozen"], "--out", tmp_path / "t.pt") == 0
    lines = {line[:13]: line[13:] for line in capsys.readouterr().out.splitlines()}
    assert "the running statistics are the initial ones" in lines["eps check    "]
    torch_check = lines["torch check  "]
    # The first figure is the float64 check of the assumed eps (about 1e-15: a few ulps of torch's forward, so
    # 1e-9 leaves six orders of margin, as in tests/test_saved_models.py); the second, the same file in
    # BatchNorms with eps 0, changes every 1/sqrt(v + eps) by about eps/2 = 5e-6 relative, which the
    # construction's cancelling scales amplify: it must be visibly above the first.
    first = float(torch_check.split("= ")[1].split(" ")[0])
    second = float(torch_check.split("would be ")[1].split(" ")[0])
    assert first <= 1e-9 < second, torch_check


def test_inferred_reads_a_stored_eps_and_says_what_trained_statistics_leave_open() -> None:
    state = frozen_mlp(FROZEN_WIDTHS).state_dict()
    prefixes = ["1", "4", "7", "10"]
    assert "initial ones" in inferred(state, prefixes, [1e-5] * 4)
    state["1.running_var"] = state["1.running_var"] * 2
    assert "were trained" in inferred(state, prefixes, [1e-5] * 4)
    state["1.eps"] = torch.tensor(0.0)
    assert inferred(state, prefixes, [1e-5] * 4) == "MISMATCH: 1 stores 0 but 1e-05 was assumed"
    assert "agrees" in inferred(state, prefixes, [0.0] * 4)
    assert alternative([1e-5]) == 0.0 and alternative([0.0, 0.0]) == 1e-5


# --------------------------------------------------------------------------------------------- messages


def test_an_mlp_target_with_batchnorm_is_fitted_on_a_ball_of_any_dimension() -> None:
    torch.manual_seed(0)
    target = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2)).double().eval()
    result = fit_norm_layers(frozen_like(target), target, verify.Ball(1.0))
    assert result.certificate.holds


# --------------------------------------------------------------------------------------------- zero target


def _zero_target(widths: list[int]) -> nn.Sequential:
    target = target_mlp(widths, seed=1, dtype=torch.float64)
    with torch.no_grad():
        target[-1].weight.zero_()
        target[-1].bias.zero_()
    return target


def _fresh_points(domain: verify.Ball | verify.Box | None, dim: int, seed: int) -> np.ndarray:
    """Fresh points of the domain, its box corners included (for R^d: balls of radius 1 and 1e6 and corners)."""
    rng = np.random.default_rng(seed)
    corners = np.array(np.meshgrid(*[[-1.0, 1.0]] * dim)).reshape(dim, -1).T
    if domain is None:
        return np.vstack([verify.Ball(r, np.zeros(dim)).sample(64, rng) for r in (1.0, 1e6)] + [1e6 * corners])
    return np.vstack(
        [domain.resolve(dim).sample(256, rng), corners / np.sqrt(dim) if isinstance(domain, verify.Ball) else corners]
    )


ROUTES = {
    "dense": (lambda t: frozen_mlp(FROZEN_WIDTHS, seed=0, dtype=torch.float64), verify.Ball(1.0), {}),
    "paired": (lambda t: frozen_mlp(PAIRED_WIDTHS, seed=0, paired=True, dtype=torch.float64), None, {}),
    "paired-box": (
        lambda t: frozen_mlp(PAIRED_WIDTHS, seed=0, paired=True, dtype=torch.float64),
        verify.Box(-1, 1),
        {},
    ),
    "minimal": (lambda t: frozen_like(t, width="minimal"), verify.Ball(1.0), {"mode": "minimal"}),
}


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_a_zero_target_is_exact_with_bound_0(route: str) -> None:
    build, domain, options = ROUTES[route]
    target = _zero_target(TARGET_WIDTHS)
    frozen = build(target)
    result = fit_norm_layers(frozen, target, domain, **options)
    certificate = result.certificate
    assert certificate.holds and certificate.error_bound == 0.0 and certificate.error_slope == 0.0
    assert certificate.scale == 0.0
    # soundness on fresh points, corners included, by torch's own forward of the user's module: g = f = 0
    x = torch.tensor(_fresh_points(domain, TARGET_WIDTHS[0], seed=7))
    with torch.no_grad():
        g, f = frozen(x), target(x)
    assert torch.all(f == 0) and torch.all(g == 0)
    assert np.all(np.abs((g - f).numpy()).max(axis=1) <= certificate.bound.at(x.numpy()))


def test_a_zero_target_in_numpy_with_a_bias_in_the_hidden_layer() -> None:
    rng = np.random.default_rng(3)
    target = verify.TargetNetwork(
        [rng.standard_normal((4, 3)), np.zeros((2, 4))], [rng.standard_normal(4), np.zeros(2)]
    )
    for frozen, domain, mode in (
        (verify.FrozenNetwork.for_target(target, seed=1), verify.Ball(1.0), "paper"),
        (verify.FrozenNetwork.for_target(target, "minimal", seed=1), verify.Box(-1, 1), "minimal"),
        (verify.FrozenNetwork.for_target(target, seed=1, paired=True), None, "paper"),
    ):
        result = verify.reconstruct(target, frozen, domain, mode)
        assert result.certificate.holds and result.certificate.error_bound == 0.0
        assert not np.any(result.gamma[-1]) and not np.any(result.beta[-1])
