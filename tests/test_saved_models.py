"""``python -m verify reconstruct``: saved state dicts in, tuned frozen state dict out (verify.cli.reconstruct)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import verify  # noqa: E402
from verify.nn import fit_norm_layers, frozen_mlp, target_mlp  # noqa: E402

TARGET_WIDTHS = [3, 4, 2]
FROZEN_WIDTHS = [3, 12, 4, 8, 2]  # paper mode: n_1 = d_1 d_0 = 12, n_3 = d_2 d_1 = 8
PAIRED_WIDTHS = [3, 24, 4, 16, 2]  # paired: twice the paper width in every odd layer
RTOL_FLOAT64 = 1e-9
"""Accepted max |g - f| / max |f| of the reloaded float64 modules. The certificate's sampled check
measures about 1e-15 here (float64 solve, well-conditioned blocks) and torch's forward rounds
differently only at the level of a few ulps, so 1e-9 leaves six orders of margin; a wrong or
unloaded γ/β gives errors of order 1, so the comparison still detects any real failure."""


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cli(*args: object) -> int:
    from verify.__main__ import main

    return main(["reconstruct", *(str(a) for a in args)])


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The single ``error: …`` line on stderr (and nothing else, no traceback, nothing on stdout)."""
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err
    assert captured.out == ""
    return lines[0]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """A float64 target [3, 4, 2], a paper-width frozen network and a paired one, saved as state dicts."""
    paths = {name: tmp_path / f"{name}.pt" for name in ("target", "frozen", "paired")}
    torch.save(target_mlp(TARGET_WIDTHS, seed=1, dtype=torch.float64).state_dict(), paths["target"])
    torch.save(frozen_mlp(FROZEN_WIDTHS, seed=0, dtype=torch.float64).state_dict(), paths["frozen"])
    torch.save(frozen_mlp(PAIRED_WIDTHS, seed=0, paired=True, dtype=torch.float64).state_dict(), paths["paired"])
    return paths


def _reloaded_error(tuned: Path, widths: list[int], target_path: Path, points: np.ndarray, **build: object) -> float:
    """max |g - f| / max |f| of a fresh frozen_mlp loaded with ``tuned`` against the saved target."""
    frozen = frozen_mlp(widths, seed=123, dtype=torch.float64, **build)  # other weights: all come from the file
    frozen.load_state_dict(torch.load(tuned, weights_only=True))
    target = target_mlp(TARGET_WIDTHS, seed=99, dtype=torch.float64)
    target.load_state_dict(torch.load(target_path, weights_only=True))
    x = torch.tensor(points)
    with torch.no_grad():
        f, g = target(x), frozen.eval()(x)
    return float((g - f).abs().max() / f.abs().max())


@pytest.mark.parametrize(
    ("spec", "domain"),
    [
        ("ball:1.0", verify.Ball(1.0, np.zeros(3))),
        ("ball:2@1,0,-1", verify.Ball(2.0, [1.0, 0.0, -1.0])),
        ("box:-1,2", verify.Box(np.full(3, -1.0), np.full(3, 2.0))),
    ],
)
def test_bounded_domains_reproduce_the_target(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str, domain: verify.Domain
) -> None:
    before = {name: _digest(path) for name, path in files.items()}
    out = tmp_path / "tuned.pt"
    assert _cli("--target", files["target"], "--frozen", files["frozen"], "--domain", spec, "--out", out) == 0
    stdout = capsys.readouterr().out
    assert "certificate  holds" in stdout and "3 → 4 → 2" in stdout and "3 → 12 → 4 → 8 → 2" in stdout
    assert f"wrote        {out}" in stdout
    points = domain.sample(512, np.random.default_rng(7))  # about half on the boundary
    assert _reloaded_error(out, FROZEN_WIDTHS, files["target"], points) <= RTOL_FLOAT64
    assert {name: _digest(path) for name, path in files.items()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frozen.pt", "paired.pt", "target.pt", "tuned.pt"]  # no temp


def test_output_keeps_keys_dtypes_and_everything_but_the_norm_affine(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "tuned.pt"
    assert _cli("--target", files["target"], "--frozen", files["frozen"], "--out", out) == 0
    original = torch.load(files["frozen"], weights_only=True)
    tuned = torch.load(out, weights_only=True)
    assert list(tuned) == list(original)
    assert all(tuned[k].dtype == original[k].dtype and tuned[k].shape == original[k].shape for k in original)
    norm_affine = {f"{i}.{name}" for i in (1, 4, 7, 10) for name in ("weight", "bias")}
    assert all(torch.equal(tuned[k], original[k]) for k in original if k not in norm_affine)
    assert not torch.equal(tuned["1.weight"], original["1.weight"])


def test_all_of_rd_with_a_paired_frozen_network(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "tuned.pt"
    before = _digest(files["paired"])
    assert _cli("--target", files["target"], "--frozen", files["paired"], "--domain", "all", "--out", out) == 0
    rng = np.random.default_rng(3)
    points = np.vstack([verify.Ball(r, np.zeros(3)).sample(128, rng) for r in (1.0, 1e3, 1e6)])  # far out too
    assert _reloaded_error(out, PAIRED_WIDTHS, files["target"], points, paired=True) <= RTOL_FLOAT64
    assert _digest(files["paired"]) == before


def test_all_of_rd_refuses_an_unpaired_frozen_network(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tuned.pt"
    assert _cli("--target", files["target"], "--frozen", files["frozen"], "--domain", "all", "--out", out) == 2
    line = _error_line(capsys)
    assert "needs a paired frozen network" in line and "frozen_mlp(widths, paired=True)" in line
    assert not out.exists()


@pytest.mark.parametrize("rtol", ["0", "-1", "nan", "inf"])
def test_rtol_must_be_positive_and_finite(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], rtol: str
) -> None:
    out = tmp_path / "tuned.pt"
    assert _cli("--target", files["target"], "--frozen", files["frozen"], "--out", out, "--rtol", rtol) == 2
    assert "--rtol" in _error_line(capsys) and not out.exists()


def test_rtol_is_the_certified_accuracy(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A float64 result is certified far below 1e-6; an rtol below its bound is refused (exit 1)."""
    out = tmp_path / "tuned.pt"
    assert _cli("--target", files["target"], "--frozen", files["frozen"], "--out", out, "--rtol", "1e-300") == 1
    assert "exceeds rtol = 1e-300" in capsys.readouterr().err and not out.exists()
    assert _cli("--target", files["target"], "--frozen", files["frozen"], "--out", out) == 0
    assert "holds in float64: |g - f| <= " in capsys.readouterr().out


def test_float32_and_a_common_prefix(tmp_path: Path) -> None:
    """DataParallel-style ``module.`` keys are accepted and kept; float32 stays float32."""
    target, frozen = tmp_path / "t.pt", tmp_path / "f.pt"
    torch.save({f"module.{k}": v for k, v in target_mlp(TARGET_WIDTHS, seed=1).state_dict().items()}, target)
    torch.save({f"module.{k}": v for k, v in frozen_mlp(FROZEN_WIDTHS, seed=0).state_dict().items()}, frozen)
    out = tmp_path / "tuned.pt"
    # Certified in float32 (docs/design.md §6.5): the default rtol = 1e-6 is a float64 figure, refused
    # here (exit 1, nothing written); a float32 module needs a larger --rtol.
    assert _cli("--target", target, "--frozen", frozen, "--out", out) == 1
    assert not out.exists()
    assert _cli("--target", target, "--frozen", frozen, "--out", out, "--rtol", "1e-2") == 0
    tuned = torch.load(out, weights_only=True)
    assert set(tuned) == set(torch.load(frozen, weights_only=True))
    assert all(v.dtype == torch.float32 for k, v in tuned.items() if not k.endswith("num_batches_tracked"))


@pytest.mark.parametrize("how", ["same", "dotdot", "relative", "symlink", "hardlink"])
def test_out_is_never_an_input_even_with_force(
    files: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    how: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    before = _digest(files["frozen"])
    out: str | Path = {
        "same": files["frozen"],
        "dotdot": tmp_path / "sub" / ".." / "frozen.pt",
        "relative": "frozen.pt",
        "symlink": tmp_path / "link.pt",
        "hardlink": tmp_path / "hard.pt",
    }[how]
    (tmp_path / "sub").mkdir()
    if how == "symlink":
        os.symlink(files["frozen"], out)
    if how == "hardlink":
        os.link(files["frozen"], out)
    assert _cli("--target", files["target"], "--frozen", files["frozen"], "--out", out, "--force") == 2
    line = _error_line(capsys)
    assert "is the --frozen file" in line and "never overwritten" in line
    assert _digest(files["frozen"]) == before


def test_out_equal_to_the_target_is_refused(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    before = _digest(files["target"])
    assert _cli("--target", files["target"], "--frozen", files["frozen"], "--out", files["target"], "--force") == 2
    assert "is the --target file" in _error_line(capsys)
    assert _digest(files["target"]) == before


def test_existing_out_needs_force(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tuned.pt"
    out.write_bytes(b"keep me")
    assert _cli("--target", files["target"], "--frozen", files["frozen"], "--out", out) == 2
    assert "exists; pass --force" in _error_line(capsys)
    assert out.read_bytes() == b"keep me"
    assert _cli("--target", files["target"], "--frozen", files["frozen"], "--out", out, "--force") == 0
    assert "1.weight" in torch.load(out, weights_only=True)


def test_missing_file_is_named(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.pt"
    assert _cli("--target", files["target"], "--frozen", missing, "--out", tmp_path / "o.pt") == 2
    line = _error_line(capsys)
    assert "--frozen" in line and str(missing) in line and "no such file" in line


def test_pickled_whole_module_is_refused_with_the_fix(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = tmp_path / "whole.pt"
    torch.save(target_mlp(TARGET_WIDTHS, seed=1), whole)
    assert _cli("--target", whole, "--frozen", files["frozen"], "--out", tmp_path / "o.pt") == 2
    line = _error_line(capsys)
    assert "--target" in line and "weights_only=True" in line and "torch.save(model.state_dict(), path)" in line


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ([torch.zeros(2)], "holds a list, not a state dict"),
        ({"state_dict": {"0.weight": torch.zeros(2, 2)}, "epoch": 3}, "entry 'state_dict' holds a dict, not a tensor"),
        ({}, "empty dict"),
        ({"0.weight": torch.zeros(2, 2, dtype=torch.bfloat16)}, "dtype bfloat16"),
    ],
)
def test_not_a_state_dict(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], content: object, expected: str
) -> None:
    bad = tmp_path / "bad.pt"
    torch.save(content, bad)
    assert _cli("--target", bad, "--frozen", files["frozen"], "--out", tmp_path / "o.pt") == 2
    line = _error_line(capsys)
    assert expected in line and "--target" in line


def _save_state(module: nn.Module, path: Path) -> Path:
    torch.save(module.state_dict(), path)
    return path


def test_layernorm_is_refused_naming_design_7(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layer_norm = nn.Sequential(
        nn.Linear(3, 12), nn.LayerNorm(12), nn.ReLU(), nn.Linear(12, 4), nn.LayerNorm(4), nn.ReLU(),
        nn.Linear(4, 8), nn.LayerNorm(8), nn.ReLU(), nn.Linear(8, 2), nn.LayerNorm(2),
    )  # fmt: skip
    frozen = _save_state(layer_norm, tmp_path / "ln.pt")
    assert _cli("--target", files["target"], "--frozen", frozen, "--out", tmp_path / "o.pt") == 2
    line = _error_line(capsys)
    assert "layer 1" in line and "LayerNorm is unsupported" in line and "docs/design.md §7" in line


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        (nn.Sequential(nn.Conv1d(3, 4, 2), nn.ReLU(), nn.Linear(4, 2)), "convolution (Conv1d)"),
        (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(5, 2)), "layer 2 (Linear) takes 5 inputs but layer 0"),
        (nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)), "Linear layers 0 and 1 have nothing between them"),
        (frozen_mlp(FROZEN_WIDTHS), "layer 1 is a BatchNorm1d, but a target is"),
    ],
    ids=["conv", "shapes", "no-relu", "swapped"],
)
def test_unsupported_target_architectures(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], module: nn.Module, expected: str
) -> None:
    target = _save_state(module, tmp_path / "t.pt")
    assert _cli("--target", target, "--frozen", files["frozen"], "--out", tmp_path / "o.pt") == 2
    assert expected in _error_line(capsys)


class _NamedTarget(nn.Module):
    """A target written as a class: named submodules, functional ReLU (what a state dict cannot show)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(3, 4, dtype=torch.float64), nn.Linear(4, 2, dtype=torch.float64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


def test_named_submodules_are_read_in_key_order_and_the_assumption_is_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression: state dicts with named submodule keys (fc1.weight) were refused.
    torch.manual_seed(0)
    model = _NamedTarget()
    target = tmp_path / "t.pt"
    torch.save(model.state_dict(), target)
    frozen_seq = frozen_mlp(FROZEN_WIDTHS, seed=0, dtype=torch.float64)
    indices = sorted({int(key.split(".")[0]) for key in frozen_seq.state_dict()})  # 0, 1, 3, 4, 6, 7, 9, 10
    names = [f"{'fc' if j % 2 == 0 else 'bn'}{j // 2 + 1}" for j in range(len(indices))]  # fc1, bn1, fc2, …
    renamed = {}
    for key, value in frozen_seq.state_dict().items():
        index, name = key.split(".")
        renamed[f"{names[indices.index(int(index))]}.{name}"] = value
    frozen = tmp_path / "f.pt"
    torch.save(renamed, frozen)
    out = tmp_path / "o.pt"
    assert _cli("--target", target, "--frozen", frozen, "--out", out) == 0
    said = capsys.readouterr().out
    assert "assumed      --target: named layers read in key order (fc1, fc2), with a ReLU assumed before" in said
    assert f"assumed      --frozen: named layers read in key order ({', '.join(names)})" in said
    tuned = {f"{indices[names.index(k.split('.')[0])]}.{k.split('.')[1]}": v for k, v in torch.load(out).items()}
    frozen_seq.load_state_dict(tuned)
    x = torch.tensor(verify.Ball(1.0).resolve(3).sample(200, np.random.default_rng(1)))
    with torch.no_grad():
        f, g = model(x), frozen_seq.eval()(x)
    assert float((g - f).abs().max() / f.abs().max()) <= RTOL_FLOAT64


def test_a_model_that_starts_with_flatten_is_read_and_the_assumption_is_said(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression: a leading Flatten (a gap before the first Linear) was refused.
    module = nn.Sequential(nn.Flatten(), *target_mlp(TARGET_WIDTHS, seed=1, dtype=torch.float64))
    target = _save_state(module, tmp_path / "t.pt")
    assert _cli("--target", target, "--frozen", files["frozen"], "--out", tmp_path / "o.pt") == 0
    said = capsys.readouterr().out
    assert "assumed      --target: layer 0 holds no parameters before the first Linear: read as nn.Flatten" in said
    assert verify.nn.target_from_module(module).widths == tuple(TARGET_WIDTHS)
    with pytest.raises(ValueError, match=r"layer 0 \(Flatten\) is not supported: only nn\.Flatten\(\)"):
        verify.nn.target_from_module(nn.Sequential(nn.Flatten(0), nn.Linear(3, 2)))


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        (target_mlp(TARGET_WIDTHS), "Linear layer 0 must be followed directly by a BatchNorm1d at index 1, but layer"),
        (nn.Sequential(nn.Linear(3, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Linear(12, 2)), "layer 3 is not followed"),
        (nn.Sequential(nn.Linear(3, 12), nn.ReLU(), nn.BatchNorm1d(12)), "it is at index 2, after a layer without"),
        (nn.Sequential(nn.Linear(3, 12), nn.BatchNorm1d(12, affine=False)), "affine=False"),
        (nn.Sequential(nn.Linear(3, 12), nn.BatchNorm1d(10)), "layer 1 (BatchNorm1d) takes 10 inputs but layer 0"),
        (frozen_mlp([4, 12, 4, 8, 2]), "the target takes 3 inputs but the frozen network takes 4"),
        (frozen_mlp([3, 12, 4, 8, 5]), "the target gives 2 outputs but the frozen network gives 5"),
        (frozen_mlp([3, 12, 2]), "has 2 Linear -> BatchNorm1d layers but a target of depth L = 2 needs 2L = 4"),
    ],
    ids=["swapped", "last-linear", "relu-before-bn", "no-affine", "shapes", "inputs", "outputs", "depth"],
)
def test_unsupported_or_mismatched_frozen_networks(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], module: nn.Module, expected: str
) -> None:
    frozen = _save_state(module, tmp_path / "f.pt")
    assert _cli("--target", files["target"], "--frozen", frozen, "--out", tmp_path / "o.pt") == 2
    line = _error_line(capsys)
    assert expected in line
    if "frozen network takes" in expected or "gives" in expected or "depth" in expected:
        assert "frozen_mlp([3, 12, 4, 8, 2])" in line  # the widths that would work


def test_too_narrow_frozen_network_shows_the_infeasible_error(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    narrow = frozen_mlp([3, 10, 4, 8, 2], seed=0, dtype=torch.float64)
    path = _save_state(narrow, tmp_path / "narrow.pt")
    target = target_mlp(TARGET_WIDTHS, seed=1, dtype=torch.float64)
    with pytest.raises(verify.InfeasibleError) as raised:
        fit_norm_layers(narrow, target, verify.Ball(1.0), mode="paper")
    out = tmp_path / "o.pt"
    assert _cli("--target", files["target"], "--frozen", path, "--out", out) == 2
    line = _error_line(capsys)
    assert str(raised.value) in line and "width >= 12" in line
    assert not out.exists()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("ball:-1", "the radius must be > 0"),
        ("ball:x", "radius 'x' is not a number"),
        ("ball:nan", "must be finite"),
        ("ball:1@1,2", "centre has 2 coordinates but the target takes d_0 = 3"),
        ("box:2,1", "LO must be <= HI"),
        ("box:1", "a box is box:LO,HI (two numbers)"),
        ("cube:1", "is not understood; expected ball:R"),
    ],
)
def test_bad_domain_strings(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str, expected: str
) -> None:
    out = tmp_path / "o.pt"
    assert _cli("--target", files["target"], "--frozen", files["frozen"], "--domain", spec, "--out", out) == 2
    line = _error_line(capsys)
    assert expected in line
    assert f"--domain {spec!r}" in line or "centre" in expected
    assert not out.exists()


def test_failed_certificate_exits_1_and_writes_nothing(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def failing(*args: object, **kwargs: object) -> None:
        raise verify.CertificateError("the reconstruction does not pass its certificate: block 1: margin < 0", None)

    monkeypatch.setattr("verify.nn.fit_norm_layers", failing)
    out = tmp_path / "o.pt"
    assert _cli("--target", files["target"], "--frozen", files["frozen"], "--out", out) == 1
    assert "does not pass its certificate" in _error_line(capsys)
    assert not out.exists()


def test_help_in_a_subprocess() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "verify", "reconstruct", "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "usage: python -m verify reconstruct" in done.stdout
    assert "--target target.pt --frozen frozen.pt --domain ball:1.0 --out tuned.pt" in done.stdout


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(
            {"1.num_batches_tracked": torch.zeros(3, dtype=torch.long)},
            r"entry '1\.num_batches_tracked' has shape \(3,\) and dtype int64; a BatchNorm batch counter is one",
            id="counter-shape",
        ),
        pytest.param(
            {"0.weight": "long"},
            r"entry '0\.weight' has dtype int64; every weight, bias and running statistic must be float32 or float64",
            id="int-weight",
        ),
        pytest.param({"0.weight": "sparse"}, r"entry '0\.weight' is a sparse_coo tensor", id="sparse-weight"),
    ],
)
def test_a_malformed_state_dict_is_one_error_line_with_status_2(files, tmp_path, capsys, change, message) -> None:
    # Regression: each of these crashed with a raw traceback and exit status 1 ("certificate fails").
    state = torch.load(files["frozen"], weights_only=True)
    for key, value in change.items():
        state[key] = state[key].long() if value == "long" else state[key].to_sparse() if value == "sparse" else value
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    assert _cli("--target", files["target"], "--frozen", bad, "--out", tmp_path / "out.pt") == 2
    assert re.search(message, _error_line(capsys))
    assert not (tmp_path / "out.pt").exists()


def test_a_dangling_symlink_at_out_is_not_replaced_without_force(files, tmp_path, capsys) -> None:
    # Regression: Path.exists() is False for a dangling link, so it was replaced without --force.
    link = tmp_path / "tuned.pt"
    link.symlink_to(tmp_path / "missing.pt")
    assert _cli("--target", files["target"], "--frozen", files["frozen"], "--out", link) == 2
    assert "is a dangling symbolic link; pass --force" in _error_line(capsys)
    assert link.is_symlink() and not link.exists()
    assert _cli("--target", files["target"], "--frozen", files["frozen"], "--out", link, "--force") == 0


@pytest.mark.parametrize(("signum", "status", "word"), [("SIGTERM", 143, "terminated"), ("SIGINT", 130, "interrupted")])
def test_a_signal_during_the_write_leaves_no_temporary_file(files, tmp_path, capsys, monkeypatch, signum, status, word):
    # Regression: SIGTERM during the write left a .tmp file behind; SIGINT printed a traceback.
    import signal

    real_save = torch.save

    def save_then_signal(obj: object, file: object) -> None:
        real_save(obj, file)
        os.kill(os.getpid(), getattr(signal, signum))

    monkeypatch.setattr(torch, "save", save_then_signal)
    handler = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "tuned.pt"
    # Ctrl-C as in a terminal: a process started in the background (CI, `cmd &`) inherits SIGINT ignored.
    interrupt = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert _cli("--target", files["target"], "--frozen", files["frozen"], "--out", out) == status
    finally:
        signal.signal(signal.SIGINT, interrupt)
    assert _error_line(capsys).startswith(f"error: {word}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frozen.pt", "paired.pt", "target.pt"]
    assert signal.getsignal(signal.SIGTERM) is handler  # the command's own handler is removed again


def test_bn_eps_per_layer_and_the_assumed_eps_is_said(tmp_path, capsys) -> None:
    # Regression: the command's checks used the assumed --bn-eps without saying so (eps 1e-3 assumed,
    # 1e-5 real: relative error 0.264 while the output looked fine); and one eps per layer was impossible.
    target = _save_state(target_mlp(TARGET_WIDTHS, seed=1, dtype=torch.float64), tmp_path / "t.pt")
    module = frozen_mlp(FROZEN_WIDTHS, seed=0, dtype=torch.float64)
    norms = [m for m in module if isinstance(m, nn.BatchNorm1d)]
    for bn, eps in zip(norms, (1e-5, 1e-3, 1e-2, 1e-4), strict=True):
        bn.eps = eps
        with torch.no_grad():
            bn.running_var.fill_(1e-3)  # small variances make eps matter
    frozen = _save_state(module, tmp_path / "f.pt")
    out = tmp_path / "o.pt"
    assert _cli("--target", target, "--frozen", frozen, "--out", out, "--bn-eps", "1e-5,1e-3,1e-2,1e-4") == 0
    said = capsys.readouterr().out
    assert "assumed      BatchNorm eps 1e-05, 0.001, 0.01, 0.0001 (one per BatchNorm) (--bn-eps): a state" in said
    module.load_state_dict(torch.load(out, weights_only=True))
    x = torch.tensor(verify.Ball(1.0).resolve(3).sample(200, np.random.default_rng(2)))
    reference = target_mlp(TARGET_WIDTHS, seed=1, dtype=torch.float64)
    with torch.no_grad():
        assert float((module.eval()(x) - reference(x)).abs().max() / reference(x).abs().max()) <= RTOL_FLOAT64
    assert _cli("--target", target, "--frozen", frozen, "--out", tmp_path / "p.pt", "--bn-eps", "1e-5,1e-3,1") == 2
    assert "3 eps values were given but the network has 4 BatchNorm layers" in _error_line(capsys)
    assert _cli("--target", target, "--frozen", frozen, "--out", tmp_path / "q.pt", "--bn-eps", "1e-3") == 0
    assert "assumed      BatchNorm eps 0.001 in every BatchNorm (--bn-eps)" in capsys.readouterr().out


class _WrappedSequential(nn.Module):
    """A model class holding its layers in ``self.net``: keys ``net.0.weight``, ``net.2.weight``."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(*target_mlp(TARGET_WIDTHS, seed=1, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_a_sequential_under_a_prefix_is_read_by_index_and_the_assumptions_are_said(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _WrappedSequential()
    assert all(key.startswith("net.") for key in model.state_dict())
    target = _save_state(model, tmp_path / "t.pt")
    out = tmp_path / "o.pt"
    assert _cli("--target", target, "--frozen", files["frozen"], "--out", out) == 0
    said = capsys.readouterr().out
    assert "assumed      --target: keys under 'net.' read as one nn.Sequential, layer by index" in said
    assert "assumed      --target: index 1 holds no parameters between Linear layers: read as ReLU" in said
    frozen = frozen_mlp(FROZEN_WIDTHS, seed=0, dtype=torch.float64)
    frozen.load_state_dict(torch.load(out, weights_only=True))
    x = torch.tensor(verify.Ball(1.0).resolve(TARGET_WIDTHS[0]).sample(200, np.random.default_rng(1)))
    with torch.no_grad():
        f, g = model(x), frozen.eval()(x)
    assert float((g - f).abs().max() / f.abs().max()) <= RTOL_FLOAT64
