"""The verification report's figures (PNG, matplotlib): what the claims' numbers look like.

``width.png``
    Success rate against odd width minus the threshold, one panel per mode (``threshold/*``).
``density.png``
    Full-rank rate over density × width, with the measured and fitted threshold (``sparse/map``).
``error_vs_time.png``
    Error against wall time: the construction against BN-only training (``baseline/training``).

Figures are drawn on `matplotlib.figure.Figure` objects with the Agg canvas, never through
``pyplot``: nothing global changes and no display is needed. matplotlib is imported only here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["density_heatmap", "error_time_figure", "width_figure", "write_figures"]

_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
"""Okabe–Ito: distinguishable under the common colour-vision deficiencies."""
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
_ERROR_FLOOR = 1e-17
_DPI = 150
_THRESHOLD_RULE = {"paper": "d_out·d_in", "minimal": "d_out(d_in − 1) + 1"}


def _figure(width: float = 6.4, height: float = 4.0) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=_DPI)
    return path


def width_figure(rows: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Success rate against ``n − threshold``: one panel per mode, one line per block shape.

    ``rows`` are the rows of the ``threshold/*`` claims: ``mode``, ``shape`` ``[d_out, d_in]``,
    ``offset`` (odd width minus the mode's threshold), ``cases`` and ``succeeded``.
    """
    if not rows:
        raise ValueError("width_figure needs the rows of a threshold/paper or threshold/minimal claim, got none")
    missing = {"mode", "shape", "offset", "cases", "succeeded"} - set(rows[0])
    if missing:
        raise ValueError(f"width_figure rows need the keys {sorted(missing)}")
    modes = [m for m in ("paper", "minimal") if any(r["mode"] == m for r in rows)]
    shapes = sorted({tuple(r["shape"]) for r in rows})
    figure = _figure(3.4 * len(modes) + 1.0, 3.8)
    axes = figure.subplots(1, len(modes), sharey=True, squeeze=False)[0]
    for axis, mode in zip(axes, modes, strict=True):
        for i, shape in enumerate(shapes):
            mine = sorted(
                (r for r in rows if r["mode"] == mode and tuple(r["shape"]) == shape), key=lambda r: r["offset"]
            )
            if not mine:
                continue
            jitter = 0.06 * (i - (len(shapes) - 1) / 2)  # overlapping lines stay visible
            axis.plot(
                [r["offset"] + jitter for r in mine],
                [r["succeeded"] / r["cases"] for r in mine],
                marker=_MARKERS[i % len(_MARKERS)],
                color=_COLOURS[i % len(_COLOURS)],
                label=f"{shape[0]}×{shape[1]} block",
                linewidth=1.2,
                markersize=5,
            )
        axis.axvline(-0.5, color="0.3", linestyle="--", linewidth=1)
        axis.set_title(f"{mode} mode: threshold {_THRESHOLD_RULE[mode]}", fontsize=10)
        axis.set_xlabel("odd width n − threshold")
        axis.grid(alpha=0.3)
        axis.set_ylim(-0.05, 1.05)
    axes[0].set_ylabel("success rate (certified)")
    axes[-1].legend(fontsize=8, loc="center right")
    figure.suptitle("Reconstruction succeeds exactly from the threshold width on", fontsize=11)
    return _save(figure, path)


def _edges(values: Sequence[float], log: bool) -> np.ndarray:
    """Cell edges around ``values``: midpoints (geometric if ``log``), extended by half a step at the ends."""
    v = np.log(np.asarray(values, dtype=float)) if log else np.asarray(values, dtype=float)
    if len(v) == 1:
        inner = np.array([v[0] - 0.5, v[0] + 0.5])
    else:
        middle = (v[1:] + v[:-1]) / 2
        inner = np.concatenate([[v[0] - (middle[0] - v[0])], middle, [v[-1] + (v[-1] - middle[-1])]])
    return np.exp(inner) if log else inner


def density_heatmap(data: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Full-rank rate over density (x, log) and width factor ``c`` (y), with ``p*(c)`` and its fit.

    ``data`` is ``figures["map"]`` of the ``sparse/map`` claim: ``d``, ``factors``, ``densities``,
    ``rate`` (one row per factor), ``p_star``, ``fit`` (``coefficient``, ``exponent``) and ``seeds``.
    """
    missing = {"d", "factors", "densities", "rate", "p_star", "fit", "seeds"} - set(data)
    if missing:
        raise ValueError(f"density_heatmap needs the keys {sorted(missing)} (figures['map'] of sparse/map)")
    rate = np.asarray(data["rate"], dtype=float)
    factors, densities = list(data["factors"]), list(data["densities"])
    if rate.shape != (len(factors), len(densities)) or rate.size == 0:
        raise ValueError(
            f"rate must have one row per factor and one column per density, got shape {rate.shape} "
            f"for {len(factors)} factors and {len(densities)} densities"
        )
    figure = _figure()
    axis = figure.add_subplot()
    rows = np.arange(len(factors))
    mesh = axis.pcolormesh(_edges(densities, True), _edges(rows, False), rate, cmap="viridis", vmin=0, vmax=1)
    figure.colorbar(mesh, ax=axis, label="P(full rank)")
    axis.set_xscale("log")
    axis.set_yticks(rows, [f"{c:g}" for c in factors])
    axis.set_xlabel("density p (fraction of frozen weights kept)")
    axis.set_ylabel("odd width n / d²")
    measured = [(i, p) for i, p in enumerate(data["p_star"]) if p is not None and math.isfinite(p)]
    if measured:
        axis.plot(
            [p for _, p in measured],
            [i for i, _ in measured],
            "o",
            color="white",
            markeredgecolor="black",
            markersize=7,
            label="measured p* (rate 1/2)",
        )
    a, b = data["fit"]["coefficient"], data["fit"]["exponent"]
    fitted = [(i, a * c**b) for i, c in enumerate(factors) if c >= 1]
    if fitted and math.isfinite(a) and math.isfinite(b):
        axis.plot(
            [p for _, p in fitted],
            [i for i, _ in fitted],
            "-",
            color="#E69F00",
            linewidth=2,
            label=f"fit p* = {a:.3f}·c^{b:.2f}",
        )
    axis.legend(fontsize=8, loc="lower left", framealpha=0.9)
    axis.set_title(f"Sparse frozen block: d = {data['d']}, {data['seeds']} masks per cell", fontsize=11)
    return _save(figure, path)


def error_time_figure(data: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Error against wall time (log-log): the construction's one point and BN-only training's curve.

    ``data`` is ``figures`` of the ``baseline/training`` claim: ``construction_seconds``,
    ``construction_error``, ``training_budget_seconds`` and ``curve`` (``seconds``, ``relative_error``).
    Errors below 1e-17 (an exact 0 included) are drawn at 1e-17.
    """
    missing = {"construction_seconds", "construction_error", "curve"} - set(data)
    if missing:
        raise ValueError(f"error_time_figure needs the keys {sorted(missing)} (figures of baseline/training)")
    seconds = np.asarray(data["curve"].get("seconds", []), dtype=float)
    errors = np.maximum(np.asarray(data["curve"].get("relative_error", []), dtype=float), _ERROR_FLOOR)
    if seconds.size == 0 or seconds.shape != errors.shape:
        raise ValueError("error_time_figure needs a training curve: equal, non-empty 'seconds' and 'relative_error'")
    figure = _figure()
    axis = figure.add_subplot()
    axis.plot(seconds, errors, color=_COLOURS[0], linewidth=1, alpha=0.8, label="BN-only training (Adam)")
    axis.plot(
        seconds,
        np.minimum.accumulate(errors),
        color=_COLOURS[0],
        linestyle="--",
        linewidth=1.5,
        label="training, best so far",
    )
    t, e = float(data["construction_seconds"]), max(float(data["construction_error"]), _ERROR_FLOOR)
    axis.plot([t], [e], "*", color=_COLOURS[1], markersize=16, markeredgecolor="black", label="construction")
    axis.annotate(
        f"construction: {t * 1e3:.1f} ms,\nerror {e:.1e}",
        (t, e),
        textcoords="offset points",
        xytext=(12, 10),
        fontsize=8,
    )
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("wall time (s)")
    axis.set_ylabel("max|g − f| / max|f| (held-out points)")
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8, loc="center right")
    axis.set_title("Solving for (γ, β) against training them, same frozen network", fontsize=11)
    return _save(figure, path)


def write_figures(claims: Sequence[Any], directory: str | os.PathLike[str]) -> dict[str, Path]:
    """Draw every figure whose claims ran (and were not skipped) into ``directory/figures/``.

    Returns a mapping from figure name (``width``, ``density``, ``error_vs_time``) to its path.
    """
    ran = {c.name: c for c in claims if c.status != "skipped"}
    out = Path(directory) / "figures"
    written: dict[str, Path] = {}
    width_rows = [r for name in ("threshold/paper", "threshold/minimal") if name in ran for r in ran[name].rows]
    if width_rows:
        written["width"] = width_figure(width_rows, out / "width.png")
    if "sparse/map" in ran and "map" in ran["sparse/map"].figures:
        written["density"] = density_heatmap(ran["sparse/map"].figures["map"], out / "density.png")
    if "baseline/training" in ran and "curve" in ran["baseline/training"].figures:
        written["error_vs_time"] = error_time_figure(ran["baseline/training"].figures, out / "error_vs_time.png")
    return written
