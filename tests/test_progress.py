"""A fit's progress bars (verify.construction.progress): drawn on a terminal, silent otherwise, result unchanged."""

from __future__ import annotations

import io
import re
from itertools import pairwise

import numpy as np
import pytest
from rich.console import Console

import verify
from verify.construction import progress as _progress

WIDTHS = [3, 4, 2]
"""A two-block target: pairs 1 and 2 of 2."""


def _networks(**frozen_options: object) -> tuple[verify.TargetNetwork, verify.FrozenNetwork]:
    target = verify.TargetNetwork.random(WIDTHS, seed=0)
    return target, verify.FrozenNetwork.for_target(target, width="paper", seed=1, **frozen_options)


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=terminal, width=160, color_system=None), out


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


@pytest.fixture
def no_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_progress, "DELAY", 0.0)  # the bars appear at once (a real fit waits about 2 s)


@pytest.mark.usefixtures("no_delay")
def test_a_terminal_shows_each_pair_with_its_size_and_lsmr_state() -> None:
    target, frozen = _networks()
    console, out = _console(terminal=True)
    result = verify.reconstruct(target, frozen, verify.Ball(1.0), method="iterative", progress=console)
    assert result.certificate.holds
    text = _plain(out.getvalue())
    for k, (d_in, d_out) in enumerate(pairwise(WIDTHS), start=1):
        n = frozen.widths[2 * k - 1]
        assert f"pair {k} of 2" in text
        assert f"{n} neurons for a {d_out}×{d_in} weight" in text
    iterations = [int(i) for i in re.findall(r"LSMR iteration (\d+), residual", text)]
    residuals = [float(r) for r in re.findall(r"residual (\d\.\d\de[-+]\d+)", text)]
    assert iterations and max(iterations) >= 1
    # The last residual drawn is the solve's: LSMR reached rounding level (the certificate holds).
    assert residuals and residuals[-1] < 1e-8


@pytest.mark.usefixtures("no_delay")
def test_torch_lsmr_reports_every_iteration_with_its_residual() -> None:
    torch = pytest.importorskip("torch")
    from verify.nn import fit_norm_layers, frozen_mlp, target_mlp

    target = target_mlp(WIDTHS, seed=0, dtype=torch.float64)
    frozen = frozen_mlp(_networks()[1].widths, seed=1, dtype=torch.float64)  # the paper widths n_0 … n_4
    console, out = _console(terminal=True)
    seen: list[tuple[int, float | None]] = []
    draw = _progress.FitProgress.lsmr

    def spy(self: _progress.FitProgress, iteration: int, residual: float | None) -> None:
        seen.append((iteration, residual))
        draw(self, iteration, residual)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_progress.FitProgress, "lsmr", spy)
        result = fit_norm_layers(frozen, target, verify.Ball(1.0), method="iterative", progress=console)
    assert all("torch" in block.solver for block in result.certificate.blocks)
    # The torch loop reports LSMR's own residual estimate at every iteration, 1, 2, … within each pair.
    assert seen and all(r is not None for _, r in seen)
    assert [i for i, _ in seen[:3]] == [1, 2, 3]
    text = _plain(out.getvalue())
    assert "pair 2 of 2" in text and re.search(r"LSMR iteration \d+, residual \d\.\d\de", text)


def test_silent_off_a_terminal_and_with_progress_false(no_delay: None, monkeypatch: pytest.MonkeyPatch) -> None:
    target, frozen = _networks()
    console, out = _console(terminal=False)
    verify.reconstruct(target, frozen, verify.Ball(1.0), method="iterative", progress=console)
    assert out.getvalue() == ""
    terminal, drawn = _console(terminal=True)
    monkeypatch.setattr(_progress, "_default_console", lambda: terminal)
    verify.reconstruct(target, frozen, verify.Ball(1.0), method="iterative", progress=False)
    assert drawn.getvalue() == ""
    verify.reconstruct(target, frozen, verify.Ball(1.0), method="iterative")  # default True: the terminal draws
    assert "pair 1 of 2" in _plain(drawn.getvalue())


def test_a_quick_fit_draws_nothing() -> None:
    target, frozen = _networks()
    console, out = _console(terminal=True)
    verify.reconstruct(target, frozen, verify.Ball(1.0), method="iterative", progress=console)
    assert out.getvalue() == ""  # well under DELAY = 2 s


@pytest.mark.usefixtures("no_delay")
def test_drawing_changes_nothing_in_the_result() -> None:
    target, frozen = _networks()
    quiet = verify.reconstruct(target, frozen, verify.Ball(1.0), method="iterative", progress=False)
    console, _ = _console(terminal=True)
    drawn = verify.reconstruct(target, frozen, verify.Ball(1.0), method="iterative", progress=console)
    for a, b in zip(quiet.gamma + quiet.beta, drawn.gamma + drawn.beta, strict=True):
        np.testing.assert_array_equal(a, b)  # bit for bit: the callback only reads
    assert quiet.certificate.bound.error_bound == drawn.certificate.bound.error_bound


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_a_bad_progress_is_refused(bad: object) -> None:
    target, frozen = _networks()
    with pytest.raises(ValueError, match=r"progress must be True .* False .* or a rich\.console\.Console, got"):
        verify.reconstruct(target, frozen, verify.Ball(1.0), progress=bad)


def test_silenced_and_worker_processes_draw_nothing(no_delay: None, monkeypatch: pytest.MonkeyPatch) -> None:
    target, frozen = _networks()
    terminal, drawn = _console(terminal=True)
    monkeypatch.setattr(_progress, "_default_console", lambda: terminal)
    with _progress.silenced():  # python -m verify draws its own bars around the claims' fits
        verify.reconstruct(target, frozen, verify.Ball(1.0), method="iterative")
        verify.reconstruct(target, frozen, verify.Ball(1.0), method="iterative", progress=terminal)
    assert drawn.getvalue() == ""
    monkeypatch.setattr(_progress.multiprocessing, "parent_process", lambda: object())  # as in a pool's worker
    verify.reconstruct(target, frozen, verify.Ball(1.0), method="iterative")
    assert drawn.getvalue() == ""
    monkeypatch.undo()
    monkeypatch.setattr(_progress, "DELAY", 0.0)
    monkeypatch.setattr(_progress, "_default_console", lambda: terminal)
    verify.reconstruct(target, frozen, verify.Ball(1.0), method="iterative")  # the control: drawn
    assert "pair 1 of 2" in _plain(drawn.getvalue())


def _torch_routes() -> dict[str, tuple[object, object, verify.Domain]]:
    """A CNN Sequential, a residual class (the graph route) and a Case-2 module: every torch route but the dense one."""
    torch = pytest.importorskip("torch")
    from torch import nn

    from verify.nn import frozen_like, frozen_residual_mlp

    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(32, 3)).double().eval()

    class Skip(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2, self.head = nn.Linear(3, 3), nn.Linear(3, 3), nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(torch.relu(x + self.fc2(torch.relu(self.fc1(x)))))

    skip = Skip().double().eval()
    mlp = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2)).double().eval()
    case2 = frozen_residual_mlp([3, 3, 2], branches=2, seed=1, dtype=torch.float64)
    return {
        "cnn": (frozen_like(cnn, width="paper", seed=0), cnn, verify.Box(-np.ones((1, 6, 6)), np.ones((1, 6, 6)))),
        "graph": (frozen_like(skip, width="paper", seed=0), skip, verify.Box(-1.0, 1.0, shape=(3,))),
        "case2": (case2, mlp, verify.Ball(1.0)),
    }


@pytest.mark.usefixtures("no_delay")
@pytest.mark.parametrize("route", ["cnn", "graph", "case2"])
def test_every_torch_route_takes_progress(route: str) -> None:
    """``progress=`` reaches every route of `fit_norm_layers`: a console draws each pair, False stays silent,
    and the γ, β loaded are the same either way."""
    from verify.nn import fit_norm_layers

    frozen, target, domain = _torch_routes()[route]
    console, out = _console(terminal=True)
    shown = fit_norm_layers(frozen, target, domain, progress=console)
    assert "pair 1 of" in _plain(out.getvalue())
    frozen, target, domain = _torch_routes()[route]  # a fresh frozen module: fit_norm_layers loads in place
    silent = fit_norm_layers(frozen, target, domain, progress=False)
    assert shown.holds and silent.holds
    assert all(np.array_equal(a, b) for a, b in zip(shown.gamma, silent.gamma, strict=True))
    with pytest.raises(ValueError, match="progress must be"):
        fit_norm_layers(*_torch_routes()[route], progress="yes")
