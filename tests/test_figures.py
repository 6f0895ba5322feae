"""The report's figures (`verify.job.figures`): written as PNGs from claim data, skipped when a claim did not run."""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import verify.job.claims  # noqa: F401  (registers the claim families whose figures write_figures draws)
from verify.job.figures import density_heatmap, error_time_figure, width_figure
from verify.job.report import write_figures

PNG = b"\x89PNG\r\n\x1a\n"
SIZE = (960, 600)  # 6.4 × 4 in at 150 dpi


def _rows(mode: str, shapes: tuple[tuple[int, int], ...] = ((2, 2), (3, 3), (2, 5))) -> list[dict[str, Any]]:
    threshold = {"paper": lambda o, i: o * i, "minimal": lambda o, i: o * (i - 1) + 1}[mode]
    return [
        {
            "mode": mode,
            "shape": [d_out, d_in],
            "offset": offset,
            "width": threshold(d_out, d_in) + offset,
            "cases": 3,
            "succeeded": 3 if offset >= 0 else 0,
        }
        for d_out, d_in in shapes
        for offset in range(-3, 4)
        if threshold(d_out, d_in) + offset >= 1
    ]


PAPER, MINIMAL = _rows("paper"), _rows("minimal")
FACTORS = [0.75, 1.0, 1.5, 2.0, 3.0, 4.0]
DENSITIES = [float(p) for p in np.geomspace(0.02, 1.0, 12)]
MAP = {
    "d": 6,
    "factors": FACTORS,
    "densities": DENSITIES,
    "rate": [[float(c >= 1 and p >= 0.4 * c**-0.8) for p in DENSITIES] for c in FACTORS],
    "p_star": [math.nan] + [0.4 * c**-0.8 for c in FACTORS[1:]],
    "fit": {"coefficient": 0.4, "exponent": -0.8},
    "seeds": 20,
}
SECONDS = [float(s) for s in np.geomspace(0.01, 10.0, 200)]
BASELINE = {
    "construction_seconds": 0.004,
    "construction_error": 0.0,  # an exact 0 is drawn at the floor
    "training_budget_seconds": 10.0,
    "curve": {"seconds": SECONDS, "relative_error": [0.5 / (1 + s) for s in SECONDS], "steps": list(range(200))},
}


@dataclass
class FakeClaim:
    name: str
    figures: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    status: str = "passed"


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height in pixels of the PNG at ``path``, after checking it is one of some substance."""
    import matplotlib.image

    data = path.read_bytes()
    assert data[:8] == PNG
    assert len(data) > 10_000
    height, width, _ = matplotlib.image.imread(path).shape
    return width, height


def test_each_figure_is_a_png_of_960_by_600(tmp_path: Path) -> None:
    assert width_figure(PAPER + MINIMAL, tmp_path / "w.png") == tmp_path / "w.png"
    assert _png_size(tmp_path / "w.png") == SIZE
    assert _png_size(density_heatmap(MAP, tmp_path / "d.png")) == SIZE
    assert _png_size(error_time_figure(BASELINE, str(tmp_path / "sub" / "e.png"))) == SIZE  # str path, dir created


def test_degenerate_but_valid_data_still_draws(tmp_path: Path) -> None:
    assert _png_size(width_figure(MINIMAL, tmp_path / "one_mode.png")) == SIZE
    no_fit = MAP | {"p_star": [None] * len(FACTORS), "fit": {"coefficient": math.nan, "exponent": None}}
    assert _png_size(density_heatmap(no_fit, tmp_path / "no_fit.png")) == SIZE
    single = MAP | {"factors": [1.0], "densities": [0.5], "rate": [[1.0]], "p_star": [0.3]}
    assert _png_size(density_heatmap(single, tmp_path / "single.png")) == SIZE
    zeros = BASELINE | {"curve": {"seconds": [0.1, 1.0], "relative_error": [0.2, 0.0]}}
    del zeros["training_budget_seconds"]
    assert _png_size(error_time_figure(zeros, tmp_path / "zeros.png")) == SIZE


def test_write_figures_draws_what_ran_and_skips_the_rest(tmp_path: Path) -> None:
    claims = [
        FakeClaim("threshold/paper", rows=PAPER),
        FakeClaim("threshold/minimal", rows=MINIMAL),
        FakeClaim("sparse/map", figures={"map": MAP, "cells": 72}),
        FakeClaim("baseline/training", figures=BASELINE),
        FakeClaim("exact/depth", rows=[{"depth": 2}]),
    ]
    written = write_figures(claims, tmp_path)
    figures = tmp_path / "figures"
    assert written == {"width": figures / "width.png", "density": figures / "density.png"} | {
        "error_vs_time": figures / "error_vs_time.png"
    }
    assert sorted(p.name for p in figures.iterdir()) == ["density.png", "error_vs_time.png", "width.png"]

    skipped = [FakeClaim("baseline/training", figures={"reason": "torch is not installed"}, status="skipped")]
    skipped.append(FakeClaim("sparse/map", figures={"map": MAP}, status="skipped"))
    assert write_figures(skipped, tmp_path / "s") == {}
    assert not (tmp_path / "s" / "figures").exists()
    half = [FakeClaim("threshold/paper", rows=PAPER, status="skipped"), FakeClaim("threshold/minimal", rows=MINIMAL)]
    assert set(write_figures(half + claims[2:3], tmp_path / "half")) == {"width", "density"}
    failed_early = FakeClaim("sparse/map", figures={"reason": "worker crashed"}, status="failed")
    assert write_figures([failed_early], tmp_path / "f") == {}
    assert write_figures([], tmp_path / "none") == {}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: width_figure([], p), "threshold/paper"),
        (lambda p: width_figure([{"mode": "paper"}], p), r"row 0 needs the keys \['shape', 'offset'"),
        (lambda p: width_figure([*PAPER, PAPER[0] | {"mode": "wide"}], p), "mode must be one of"),
        (lambda p: width_figure([PAPER[0] | {"cases": 0}], p), "cases >= 1"),
        (lambda p: width_figure([PAPER[0] | {"succeeded": 4}], p), "succeeded <= cases"),
        (lambda p: density_heatmap({"d": 4}, p), r"needs the keys \['factors'"),
        (lambda p: density_heatmap(MAP | {"rate": [[0.0]]}, p), "one row per factor"),
        (lambda p: density_heatmap(MAP | {"factors": []}, p), "at least one value in 'factors'"),
        (lambda p: density_heatmap(MAP | {"densities": DENSITIES[::-1]}, p), "strictly ascending"),
        (lambda p: density_heatmap(MAP | {"p_star": [0.1]}, p), "one entry per factor"),
        (lambda p: density_heatmap(MAP | {"fit": {}}, p), "fit needs the keys"),
        (lambda p: error_time_figure({"curve": {}}, p), r"needs the keys \['construction_seconds'"),
        (lambda p: error_time_figure(BASELINE | {"curve": {"seconds": []}}, p), "curve needs the keys"),
        (lambda p: error_time_figure(BASELINE | {"curve": {"seconds": [], "relative_error": []}}, p), "non-empty"),
        (lambda p: error_time_figure(BASELINE | {"construction_seconds": 0.0}, p), "positive and finite"),
        (lambda p: error_time_figure(BASELINE | {"construction_error": -1.0}, p), "non-negative"),
    ],
)
def test_bad_data_is_refused_with_what_is_wrong(call: Any, message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=message):
        call(tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_importing_verify_does_not_import_matplotlib() -> None:
    code = "import sys, verify, verify.job.figures; sys.exit('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
