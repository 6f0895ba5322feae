"""The verification report's figures (PNG, matplotlib): what the claims' numbers look like.

``width.png``
    Success rate against odd width minus the threshold, one panel per mode (``threshold/*``).
``density.png``
    Full-rank rate over density × width, with the measured and fitted threshold (``sparse/map``).
``error_vs_time.png``
    Error against wall time: the construction against BN-only training (``baseline/training``).
``frontier.png``
    Odd width against depth with skip connections, next to Case 1 (``tradeoff/<mode>``).
``case3.png``
    Case 3's failure-rate bound against the density constant ``C`` (``sparse/case3``).

Figures are drawn on `matplotlib.figure.Figure` objects with the Agg canvas, never through
``pyplot``: nothing global changes and no display is needed. matplotlib is imported inside the
functions only, so ``import verify`` does not pay for it. Which claim feeds which figure is declared
by the claim (`verify.job.registry.Figure`); `verify.job.report.write_figures` draws them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ERROR_FLOOR",
    "case3_figure",
    "density_heatmap",
    "error_time_figure",
    "frontier_figure",
    "width_figure",
]

_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
"""Okabe–Ito: distinguishable under the common colour-vision deficiencies."""
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
_SIZE = (6.4, 4.0)
"""Figure size in inches; at `_DPI` every PNG is 960 × 600 pixels."""
_DPI = 150
ERROR_FLOOR = 1e-17
"""Errors below this (an exact 0 included) are drawn at it on the log axes of `error_time_figure`."""
_THRESHOLD_RULE = {"paper": "d_out·d_in", "minimal": "d_out(d_in−1)+1"}
_WIDTH_KEYS = ("mode", "shape", "offset", "cases", "succeeded")
_MAP_KEYS = ("d", "factors", "densities", "rate", "p_star", "fit", "seeds")
_BASELINE_KEYS = ("construction_seconds", "construction_error", "curve")

PathLike = str | os.PathLike[str]


def _figure() -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=_SIZE, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=_DPI, format="png")
    return path


def _floats(values: Any, name: str) -> np.ndarray:
    """``values`` as a float array, ``None`` (a JSON NaN) as NaN; a `ValueError` naming ``name`` otherwise."""
    try:
        return np.array([math.nan if v is None else v for v in values], dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be a list of numbers, got {values!r}") from error


def _missing(data: Any, keys: Sequence[str], what: str) -> None:
    if not isinstance(data, Mapping):
        raise ValueError(f"{what} must be a dict with the keys {list(keys)}, got {type(data).__name__}")
    missing = [k for k in keys if k not in data]
    if missing:
        raise ValueError(f"{what} needs the keys {missing} (has {sorted(data)})")


def _seconds(value: float) -> str:
    return f"{value * 1e3:.3g} ms" if value < 1 else f"{value:.3g} s"


def _sci(value: float) -> str:
    """``value`` as mathtext ``m×10^e`` (two significant digits), or ``0``."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    exponent = math.floor(math.log10(abs(value)))
    mantissa = value / 10.0**exponent
    if round(mantissa, 1) >= 10:
        mantissa, exponent = mantissa / 10, exponent + 1
    return f"${mantissa:.1f}\\times10^{{{exponent}}}$"


# ----------------------------------------------------------------------------------------------- width


def _check_width_rows(rows: Sequence[Mapping[str, Any]]) -> None:
    if not rows:
        raise ValueError("width_figure needs the rows of the threshold/paper or threshold/minimal claim, got none")
    for i, row in enumerate(rows):
        _missing(row, _WIDTH_KEYS, f"width_figure row {i}")
        if row["mode"] not in _THRESHOLD_RULE:
            raise ValueError(f"width_figure row {i}: mode must be one of {list(_THRESHOLD_RULE)}, got {row['mode']!r}")
        if len(row["shape"]) != 2:
            raise ValueError(f"width_figure row {i}: shape must be [d_out, d_in], got {row['shape']!r}")
        if not 0 <= row["succeeded"] <= row["cases"] or row["cases"] < 1:
            raise ValueError(
                f"width_figure row {i}: need 0 <= succeeded <= cases and cases >= 1, "
                f"got succeeded={row['succeeded']}, cases={row['cases']}"
            )


def width_figure(rows: Sequence[Mapping[str, Any]], path: PathLike) -> Path:
    """Draw success rate against ``n − threshold``, one panel per mode and one line per block shape.

    Parameters
    ----------
    rows
        The rows of the ``threshold/paper`` and/or ``threshold/minimal`` claims, each a dict with
        ``mode`` (``"paper"`` or ``"minimal"``), ``shape`` ``[d_out, d_in]``, ``offset`` (the odd
        width ``n`` minus the mode's threshold: ``d_out·d_in`` for paper, ``d_out(d_in−1)+1`` for
        minimal), ``cases`` and ``succeeded``; ``width`` is allowed and unused.
    path
        The PNG to write (its directory is created).

    Returns
    -------
    Path
        ``path``. The panels share the y axis (success rate ``succeeded / cases``); the dashed
        vertical line marks offset 0, the threshold. A mode without rows gets no panel.

    Raises
    ------
    ValueError
        If ``rows`` is empty, or a row misses a key, names an unknown mode or has impossible counts.
    """
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    _check_width_rows(rows)
    modes = [m for m in _THRESHOLD_RULE if any(r["mode"] == m for r in rows)]
    shapes = sorted({tuple(r["shape"]) for r in rows}, key=lambda s: (s[0] * s[1], s))
    figure = _figure()
    axes = figure.subplots(1, len(modes), sharey=True, squeeze=False)[0]
    handles = []
    for i, shape in enumerate(shapes):
        style = {
            "color": _COLOURS[i % len(_COLOURS)],
            "marker": _MARKERS[i % len(_MARKERS)],
            # Shapes often agree point for point: hollow markers shrinking with the index stay visible nested.
            "markersize": 4 + 8 * (len(shapes) - 1 - i) / max(len(shapes) - 1, 1),
            "markerfacecolor": "none",
            "markeredgewidth": 1.3,
            "linewidth": 1.2,
        }
        handles.append(Line2D([], [], label=f"{shape[0]}×{shape[1]} block", **style))
        for axis, mode in zip(axes, modes, strict=True):
            mine = [r for r in rows if r["mode"] == mode and tuple(r["shape"]) == shape]
            mine.sort(key=lambda r: r["offset"])
            if mine:
                axis.plot([r["offset"] for r in mine], [r["succeeded"] / r["cases"] for r in mine], **style)
    for axis, mode in zip(axes, modes, strict=True):
        axis.axvline(0, color="0.25", linestyle="--", linewidth=1, zorder=0)
        axis.annotate(
            f"threshold ({mode}: {_THRESHOLD_RULE[mode]})",
            (0, 0.04),
            xycoords=("data", "axes fraction"),
            xytext=(4, 0),
            textcoords="offset points",
            rotation=90,
            ha="left",
            va="bottom",
            fontsize=7.5,
            color="0.25",
        )
        axis.set_title(f"{mode} mode", fontsize=10)
        axis.set_xlabel("odd width n − threshold (neurons)", fontsize=9)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.25, linewidth=0.6)
        axis.tick_params(labelsize=8)
    axes[0].set_ylim(-0.05, 1.05)
    axes[0].set_ylabel("success rate (certified / cases)", fontsize=9)
    axes[-1].legend(handles=handles, fontsize=7.5, loc="center right", title="frozen block", title_fontsize=7.5)
    cases = sum(r["cases"] for r in rows)
    figure.suptitle(f"Exact reconstruction vs odd width around the threshold ({cases} cases)", fontsize=10.5)
    return _save(figure, path)


# ----------------------------------------------------------------------------------------------- density


def _edges(values: np.ndarray, log: bool) -> np.ndarray:
    """Cell edges around ascending ``values``: midpoints (geometric if ``log``), half a step beyond the ends."""
    v = np.log(values) if log else values
    if len(v) == 1:
        inner = np.array([v[0] - 0.25, v[0] + 0.25]) if log else np.array([v[0] - 0.5, v[0] + 0.5])
    else:
        middle = (v[1:] + v[:-1]) / 2
        inner = np.concatenate([[2 * v[0] - middle[0]], middle, [2 * v[-1] - middle[-1]]])
    return np.exp(inner) if log else inner


def _check_axis(values: np.ndarray, name: str) -> None:
    if values.size == 0:
        raise ValueError(f"density_heatmap needs at least one value in {name!r}, got none")
    if not np.all(np.isfinite(values) & (values > 0)) or np.any(np.diff(values) <= 0):
        raise ValueError(f"{name!r} must be positive, finite and strictly ascending, got {values.tolist()}")


def density_heatmap(data: Mapping[str, Any], path: PathLike) -> Path:
    """Draw the full-rank rate over density ``p`` (x, log) and width factor ``c`` (y, log), with ``p*(c)`` and its fit.

    Parameters
    ----------
    data
        ``figures["map"]`` of the ``sparse/map`` claim: ``d`` (block size), ``factors`` (ascending
        ``c``, odd width ``n = c·d²``), ``densities`` (ascending ``p``), ``rate`` (one row per factor,
        one entry per density: the fraction of ``seeds`` masks giving full rank, NaN allowed),
        ``p_star`` (the density where the rate crosses 1/2, per factor; NaN or ``None`` where it
        never does), ``fit`` (``coefficient`` ``a`` and ``exponent`` ``b`` of ``p* ≈ a·c^b``) and ``seeds``.
    path
        The PNG to write (its directory is created).

    Returns
    -------
    Path
        ``path``. The fitted curve spans the factors with a measured ``p*`` and is left out when the
        fit is NaN.

    Raises
    ------
    ValueError
        If a key is missing, an axis is empty, not ascending or not positive, or ``rate``/``p_star``
        do not match the axes.
    """
    from matplotlib import patheffects
    from matplotlib.ticker import LogLocator, NullFormatter, NullLocator, StrMethodFormatter

    _missing(data, _MAP_KEYS, "density_heatmap data (figures['map'] of sparse/map)")
    factors, densities = _floats(data["factors"], "factors"), _floats(data["densities"], "densities")
    _check_axis(factors, "factors")
    _check_axis(densities, "densities")
    try:
        rate = np.array([[math.nan if r is None else r for r in row] for row in data["rate"]], dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError("rate must be a list of rows of numbers, one row per factor") from error
    if rate.shape != (len(factors), len(densities)):
        raise ValueError(
            f"rate must have one row per factor and one column per density, got shape {rate.shape} "
            f"for {len(factors)} factors and {len(densities)} densities"
        )
    if np.any((rate < 0) | (rate > 1)):
        raise ValueError("rate entries are fractions of seeds and must lie in [0, 1]")
    p_star = _floats(data["p_star"], "p_star")
    if p_star.shape != factors.shape:
        raise ValueError(f"p_star needs one entry per factor ({len(factors)}), got {len(p_star)}")
    _missing(data["fit"], ("coefficient", "exponent"), "density_heatmap fit")
    a, b = (math.nan if data["fit"][k] is None else float(data["fit"][k]) for k in ("coefficient", "exponent"))

    figure = _figure()
    axis = figure.add_subplot()
    x_edges, y_edges = _edges(densities, True), _edges(factors, True)
    mesh = axis.pcolormesh(
        x_edges, y_edges, np.ma.masked_invalid(rate), cmap="viridis", vmin=0, vmax=1, edgecolors="face"
    )
    bar = figure.colorbar(mesh, ax=axis, pad=0.02)
    bar.set_label(f"P(full rank) over {data['seeds']} masks", fontsize=9)
    bar.ax.tick_params(labelsize=8)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.yaxis.set_minor_locator(NullLocator())
    axis.yaxis.set_minor_formatter(NullFormatter())
    axis.set_yticks(factors, [f"{c:g}" for c in factors])
    axis.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
    axis.xaxis.set_minor_formatter(NullFormatter())
    axis.set_xlim(x_edges[0], x_edges[-1])
    axis.set_ylim(y_edges[0], y_edges[-1])
    axis.tick_params(labelsize=8)
    axis.set_xlabel("density p (fraction of frozen weights kept)", fontsize=9)
    axis.set_ylabel("width factor c = n / d²", fontsize=9)

    measured = np.isfinite(p_star)
    if measured.any():
        axis.plot(
            p_star[measured],
            factors[measured],
            "o",
            color="white",
            markeredgecolor="black",
            markeredgewidth=1.2,
            markersize=7,
            label="measured $p^*$ (rate crosses 1/2)",
            zorder=4,
        )
    if measured.any() and math.isfinite(a) and math.isfinite(b):
        c = np.geomspace(factors[measured].min(), factors[measured].max(), 100)
        axis.plot(
            a * c**b,
            c,
            "-",
            color=_COLOURS[1],
            linewidth=2,
            path_effects=[patheffects.withStroke(linewidth=4, foreground="white")],
            label=f"fitted $p^* = a\\,c^b = {a:.3g}\\,c^{{{b:.2f}}}$",
            zorder=3,
        )
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=8, loc="lower left", framealpha=0.92)
    axis.set_title(f"Full rank of a sparse frozen {data['d']}×{data['d']} block: density vs width", fontsize=10.5)
    return _save(figure, path)


# ----------------------------------------------------------------------------------------------- error vs time


def error_time_figure(data: Mapping[str, Any], path: PathLike) -> Path:
    """Draw error against wall time (log-log): the construction's one point against BN-only training's curve.

    Parameters
    ----------
    data
        ``figures`` of the ``baseline/training`` claim: ``construction_seconds``,
        ``construction_error`` (relative: ``max|g−f| / max|f|``), ``curve`` (``seconds`` and
        ``relative_error`` of training, equal lengths; other keys are ignored) and optionally
        ``training_budget_seconds`` (drawn as a dotted vertical line).
    path
        The PNG to write (its directory is created).

    Returns
    -------
    Path
        ``path``. Errors below `ERROR_FLOOR` (an exact 0 included) are drawn at the floor and the
        legend or annotation says so.

    Raises
    ------
    ValueError
        If a key is missing, the curve is empty or uneven, or a time is not positive and finite.
    """
    _missing(data, _BASELINE_KEYS, "error_time_figure data (figures of baseline/training)")
    _missing(data["curve"], ("seconds", "relative_error"), "error_time_figure curve")
    seconds = _floats(data["curve"]["seconds"], "curve seconds")
    raw = _floats(data["curve"]["relative_error"], "curve relative_error")
    if seconds.size == 0 or seconds.shape != raw.shape:
        raise ValueError(
            "error_time_figure needs a training curve: non-empty 'seconds' and 'relative_error' of equal length, "
            f"got {seconds.size} and {raw.size}"
        )
    t, e_raw = float(data["construction_seconds"]), float(data["construction_error"])
    if not (np.all(np.isfinite(seconds) & (seconds > 0)) and math.isfinite(t) and t > 0):
        raise ValueError("wall times must be positive and finite (the time axis is logarithmic)")
    if math.isnan(e_raw) or e_raw < 0 or np.any(raw < 0):
        raise ValueError("errors must be non-negative numbers")
    errors = np.maximum(raw, ERROR_FLOOR)  # NaN stays NaN: a gap in the line
    best = np.fmin.accumulate(errors)
    e = max(e_raw, ERROR_FLOOR)
    floor = _sci(ERROR_FLOOR).replace("1.0\\times", "")

    figure = _figure()
    axis = figure.add_subplot()
    clipped = f" (< {floor} drawn at {floor})" if np.any(raw < ERROR_FLOOR) else ""
    axis.plot(seconds, errors, color=_COLOURS[5], linewidth=1.4, alpha=0.8, label=f"BN-only training (Adam){clipped}")
    axis.plot(seconds, best, color=_COLOURS[0], linestyle="--", linewidth=1.6, label="training, best so far")
    budget = data.get("training_budget_seconds")
    budget = float(budget) if budget is not None and math.isfinite(budget) and budget > 0 else None
    if budget is not None:
        axis.axvline(budget, color="0.4", linestyle=":", linewidth=1.2, label=f"training budget ({_seconds(budget)})")
    axis.plot(
        [t],
        [e],
        "*",
        color=_COLOURS[1],
        markersize=17,
        markeredgecolor="black",
        markeredgewidth=0.8,
        linestyle="none",
        label="construction (solve for γ, β)",
        zorder=5,
    )
    shown = f"0 (drawn at {floor})" if e_raw == 0 else _sci(e_raw)
    if 0 < e_raw < ERROR_FLOOR:
        shown += f" (drawn at {floor})"
    axis.annotate(
        f"construction: {_seconds(t)},\nerror {shown}",
        (t, e),
        textcoords="offset points",
        xytext=(12, 6),
        fontsize=8,
        va="bottom",
    )
    if np.isfinite(best[-1]):
        axis.annotate(
            f"training best after {_seconds(seconds[-1])}: {_sci(float(best[-1]))}",
            (seconds[-1], best[-1]),
            textcoords="offset points",
            xytext=(-4, -10),
            fontsize=8,
            ha="right",
            va="top",
            color=_COLOURS[0],
        )
    axis.set_xscale("log")
    axis.set_yscale("log")
    low, high = axis.get_ylim()
    axis.set_ylim(low / 10, high * 10)  # room for the annotations
    left, right = axis.get_xlim()
    axis.set_xlim(left, max(right, 2 * max(seconds[-1], budget or 0)))
    axis.set_xlabel("wall time (s)", fontsize=9)
    axis.set_ylabel("max|g − f| / max|f|  (held-out points)", fontsize=9)
    axis.tick_params(labelsize=8)
    axis.grid(alpha=0.25, which="major", linewidth=0.6)
    axis.grid(alpha=0.1, which="minor", linewidth=0.4)
    axis.legend(fontsize=8, loc="center right", framealpha=0.92)
    axis.set_title("Error vs wall time: construction vs BN-only training, same frozen network", fontsize=10.5)
    return _save(figure, path)


# -------------------------------------------------------------------------------------------- frontier


def frontier_figure(data: Mapping[str, Any], path: PathLike) -> Path:
    """Odd width against depth (log-log) at ``d′l′ = 2d²L``: Case 2 for every branch count ``m``, next to Case 1.

    Parameters
    ----------
    data
        ``{"d", "depth" (L), "modes": {mode: {"case2": rows, "case1": {"odd_width", "depth"}}}}``, the rows those
        of the ``tradeoff/<mode>`` claims' ``frontier`` figure (``branches``, ``odd_width``, ``depth``).
    path
        The PNG to write.
    """
    _missing(data, ("d", "depth", "modes"), "frontier_figure data")
    d, depth = int(data["d"]), int(data["depth"])
    figure = _figure()
    axis = figure.subplots()
    depths = np.geomspace(2 * depth, 2 * d * depth, 64)
    axis.plot(depths, 2 * d * d * depth / depths, color="0.4", linestyle="--", linewidth=1, label="d′l′ = 2d²L")
    for i, (mode, series) in enumerate(sorted(data["modes"].items())):
        _missing(series, ("case2", "case1"), f"frontier_figure mode {mode!r}")
        rows = sorted(series["case2"], key=lambda r: r["branches"])
        colour = _COLOURS[i % len(_COLOURS)]
        axis.plot(
            [r["depth"] for r in rows],
            [r["odd_width"] for r in rows],
            color=colour,
            marker=_MARKERS[i % len(_MARKERS)],
            markerfacecolor="none",
            linewidth=1.2,
            label=f"Case 2 ({mode}): m = 1 … {d} branches",
        )
        for r in rows:
            axis.annotate(
                f"m={r['branches']}",
                (r["depth"], r["odd_width"]),
                fontsize=6.5,
                color=colour,
                xytext=(3, 3),
                textcoords="offset points",
            )
        point = series["case1"]
        axis.plot(
            [point["depth"]],
            [point["odd_width"]],
            color=colour,
            marker="*",
            markersize=12,
            linestyle="none",
            label=f"Case 1 ({mode}): chain, width {point['odd_width']}, depth {point['depth']}",
        )
    axis.set_xscale("log", base=2)
    axis.set_yscale("log", base=2)
    axis.set_xlabel("depth l′ (normalized layers)", fontsize=9)
    axis.set_ylabel("odd width d′ (largest branch)", fontsize=9)
    axis.grid(alpha=0.25, linewidth=0.6, which="both")
    axis.tick_params(labelsize=8)
    axis.legend(fontsize=7.5)
    figure.suptitle(f"Skip connections trade width for depth (target d = {d}, L = {depth})", fontsize=10.5)
    return _save(figure, path)


# ------------------------------------------------------------------------------------------------ case 3


def case3_figure(data: Mapping[str, Any], path: PathLike) -> Path:
    """Case 3: the 95% upper confidence bound on the failure rate against ``C`` (``p = C √(log d / d)``), one line
    per ``d``, each with its target ``1/d`` (dotted) and its smallest passing ``C`` (filled marker).

    ``data``: ``{"rows": [{"d", "C", "masks", "failures", "upper"}], "c_star": {d: C or None}}``.
    """
    _missing(data, ("rows", "c_star"), "case3_figure data")
    figure = _figure()
    axis = figure.subplots()
    ds = sorted({int(r["d"]) for r in data["rows"]})
    for i, d in enumerate(ds):
        rows = sorted((r for r in data["rows"] if int(r["d"]) == d), key=lambda r: r["C"])
        colour = _COLOURS[i % len(_COLOURS)]
        axis.plot(
            [r["C"] for r in rows],
            [max(r["upper"], ERROR_FLOOR) for r in rows],
            color=colour,
            marker=_MARKERS[i % len(_MARKERS)],
            markerfacecolor="none",
            linewidth=1.2,
            label=f"d = {d} ({rows[0]['masks']} masks per C)",
        )
        axis.axhline(1 / d, color=colour, linestyle=":", linewidth=1)
        star = data["c_star"].get(str(d), data["c_star"].get(d))
        if star is not None:
            chosen = next(r for r in rows if r["C"] == star)
            axis.plot([star], [chosen["upper"]], color=colour, marker=_MARKERS[i % len(_MARKERS)], markersize=8)
    axis.set_yscale("log")
    axis.set_xlabel("C  (density p = C·√(log d / d), width d², one block)", fontsize=9)
    axis.set_ylabel("95% upper bound on the failure rate", fontsize=9)
    axis.grid(alpha=0.25, linewidth=0.6, which="both")
    axis.tick_params(labelsize=8)
    axis.legend(fontsize=7.5)
    figure.suptitle("Case 3: failure rate ≤ 1/d (dotted) from the smallest C on (filled)", fontsize=10.5)
    return _save(figure, path)
