"""The report's figures (`verify._figures`): written as PNGs from claim data, skipped when a claim did not run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from verify._figures import density_heatmap, error_time_figure, width_figure, write_figures

PNG = b"\x89PNG\r\n\x1a\n"

WIDTH_ROWS = [
    {"mode": mode, "shape": [3, 3], "offset": o, "width": 9 + o, "cases": 3, "succeeded": 3 * (o >= 0)}
    for mode in ("paper", "minimal")
    for o in range(-3, 4)
]
MAP = {
    "d": 4,
    "factors": [0.75, 1.0, 2.0],
    "densities": [0.1, 0.3, 1.0],
    "rate": [[0.0, 0.0, 0.0], [0.0, 0.2, 1.0], [0.0, 0.9, 1.0]],
    "p_star": [float("nan"), 0.5, 0.2],
    "fit": {"coefficient": 0.5, "exponent": -1.3},
    "seeds": 10,
}
BASELINE = {
    "construction_seconds": 0.004,
    "construction_error": 0.0,  # an exact 0 is drawn at the floor
    "training_budget_seconds": 1.0,
    "curve": {"seconds": [0.1, 0.5, 1.0], "relative_error": [0.9, 0.3, 0.4], "steps": [10, 50, 100]},
}


@dataclass
class FakeClaim:
    name: str
    figures: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    status: str = "passed"


def _is_png(path: Path) -> tuple[int, int]:
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG
    height, width, _ = matplotlib.image.imread(path).shape
    return width, height


def test_each_figure_is_a_png_of_the_expected_size(tmp_path: Path) -> None:
    assert _is_png(width_figure(WIDTH_ROWS, tmp_path / "w.png")) == (int(7.8 * 150), int(3.8 * 150))
    assert _is_png(width_figure(WIDTH_ROWS[:7], tmp_path / "w1.png")) == (int(4.4 * 150), int(3.8 * 150))
    assert _is_png(density_heatmap(MAP, tmp_path / "d.png")) == (960, 600)
    assert _is_png(error_time_figure(BASELINE, tmp_path / "e.png")) == (960, 600)


def test_write_figures_draws_what_ran_and_skips_the_rest(tmp_path: Path) -> None:
    claims = [
        FakeClaim("threshold/paper", rows=WIDTH_ROWS[:7]),
        FakeClaim("threshold/minimal", rows=WIDTH_ROWS[7:]),
        FakeClaim("sparse/map", figures={"map": MAP}),
        FakeClaim("baseline/training", figures=BASELINE),
    ]
    written = write_figures(claims, tmp_path)
    assert set(written) == {"width", "density", "error_vs_time"}
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["density.png", "error_vs_time.png", "width.png"]
    skipped = write_figures([FakeClaim("baseline/training", figures=BASELINE, status="skipped")], tmp_path / "s")
    assert skipped == {} and not (tmp_path / "s" / "figures").exists()
    assert set(write_figures(claims[2:3], tmp_path / "only")) == {"density"}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: width_figure([], p), "threshold/paper"),
        (lambda p: width_figure([{"mode": "paper"}], p), "need the keys"),
        (lambda p: density_heatmap({"d": 4}, p), "needs the keys"),
        (lambda p: density_heatmap(MAP | {"rate": [[0.0]]}, p), "one row per factor"),
        (lambda p: error_time_figure({"curve": {}}, p), "needs the keys"),
        (lambda p: error_time_figure(BASELINE | {"curve": {"seconds": [], "relative_error": []}}, p), "training"),
    ],
)
def test_bad_data_is_refused_with_what_is_missing(call: Any, message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=message):
        call(tmp_path / "x.png")
