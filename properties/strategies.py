"""Hypothesis strategies for the objects of docs/design.md §1: targets, frozen networks, domains, instances.

Every strategy is a plural noun for what it draws, takes keyword-only options with bounds as
``min_*``/``max_*`` pairs, and validates its arguments when it is built (not when it is first
drawn from), with a message that names the argument, the value received and what would work.
Arguments documented as "a value or a strategy" accept either.

Array values are never drawn element by element: each object draws one integer seed and fills
its arrays from ``numpy.random.default_rng(seed)`` (Gaussian or uniform). The weights therefore
have a continuous joint density, which the theorem's "with probability 1" needs (docs/design.md §2), and
shrinking only has to shrink a few integers and scale exponents. Whatever is structural (widths,
depths, which rows are zero, which options are on) is drawn by Hypothesis, so it shrinks.

Example::

    from hypothesis import given
    from properties import instances

    @given(instances(modes=["paper"]))
    def test_something(instance):
        result = verify.reconstruct(instance.target, instance.frozen, instance.domain, instance.mode)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Sequence
from typing import NamedTuple

import numpy as np
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

import verify

__all__ = [
    "DISTRIBUTIONS",
    "DOMAIN_KINDS",
    "WIDTH_RULES",
    "Instance",
    "domains",
    "frozen_networks",
    "instances",
    "mirrored",
    "paired_instances",
    "seeds",
    "target_widths",
    "targets",
]

DISTRIBUTIONS = ("gaussian", "uniform")
"""Distributions of frozen weights `frozen_networks` can draw (both have a continuous density)."""

DOMAIN_KINDS = ("ball", "box")
"""Kinds of domain `domains` can draw."""

WIDTH_RULES = ("paper", "minimal")
"""Odd-layer width rules of `frozen_networks`: `verify.paper_width` and `verify.minimal_width`."""


def seeds() -> SearchStrategy[int]:
    """Seeds for ``numpy.random.default_rng``: integers in ``[0, 2**32 - 1]`` (shrinking towards 0)."""
    return st.integers(0, 2**32 - 1)


# --------------------------------------------------------------------------------------------
# Argument checks: one line each, every message names the argument, the value and what works.


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}={value!r} is too small; use {name} >= {minimum}")
    return int(value)


def _check_positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}={value!r} is not a positive finite number; use e.g. {name}=1.0")
    return float(value)


def _check_non_negative(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}={value!r} is not a finite number >= 0; use e.g. {name}=0")
    return float(value)


def _check_order(min_name: str, min_value: float, max_name: str, max_value: float) -> None:
    if min_value > max_value:
        raise ValueError(
            f"{min_name}={min_value!r} is larger than {max_name}={max_value!r}; use {min_name} <= {max_name}"
        )


def _flags(name: str, value: object) -> SearchStrategy[bool]:
    """``None`` -> draw True or False; a bool -> always that; a strategy -> drawn from it."""
    if value is None:
        return st.booleans()
    if isinstance(value, (bool, np.bool_)):
        return st.just(bool(value))
    if isinstance(value, SearchStrategy):
        return value.map(lambda v: _checked_flag(name, v))
    raise ValueError(f"{name} must be None (draw both), True, False or a strategy of booleans, got {value!r}")


def _checked_flag(name: str, value: object) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} drew {value!r} from its strategy; it must draw True or False")
    return bool(value)


def _choices(name: str, value: object, allowed: tuple[str, ...]) -> SearchStrategy[str]:
    """A name, a non-empty collection of names (drawn from) or a strategy of names, all in ``allowed``."""
    if isinstance(value, SearchStrategy):
        return value.map(lambda v: _checked_choice(name, v, allowed))
    if isinstance(value, str):
        return st.just(_checked_choice(name, value, allowed))
    if isinstance(value, Collection) and value:
        return st.sampled_from([_checked_choice(name, v, allowed) for v in value])
    raise ValueError(f"{name} must be one of {allowed}, a non-empty collection of them or a strategy, got {value!r}")


def _checked_choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {allowed}; use one of those (or a collection of them)")
    return value


def _ints(name: str, value: object, minimum: int) -> SearchStrategy[int]:
    """An integer ``>= minimum`` or a strategy of them."""
    if isinstance(value, SearchStrategy):
        return value.map(lambda v: _check_int(name, v, minimum))
    return st.just(_check_int(name, value, minimum))


def _log_uniform(low: float, high: float) -> SearchStrategy[float]:
    """Floats log-uniform in ``[low, high]`` (both positive), shrinking towards ``low``."""
    if low == high:
        return st.just(low)
    log_low, log_high = math.log(low), math.log(high)
    return st.floats(log_low, log_high).map(lambda e: min(max(math.exp(e), low), high))


# --------------------------------------------------------------------------------------------
# Targets (docs/design.md §1: f with widths d_0 … d_L).


def target_widths(
    *, min_depth: int = 1, max_depth: int = 3, min_width: int = 1, max_width: int = 8
) -> SearchStrategy[list[int]]:
    """Widths ``[d_0, …, d_L]`` of a target network (docs/design.md §1).

    Depth ``L`` in ``[min_depth, max_depth]``, each ``d_k`` in ``[min_width, max_width]``.

    Parameters
    ----------
    min_depth, max_depth : int
        Bounds on the number ``L >= 1`` of linear layers.
    min_width, max_width : int
        Bounds on every width ``d_k >= 1``, input and output included.

    Returns
    -------
    SearchStrategy[list[int]]
        Lists of ``L + 1`` integers, shrinking towards the shallowest, narrowest network.
    """
    min_depth = _check_int("min_depth", min_depth, 1)
    max_depth = _check_int("max_depth", max_depth, 1)
    _check_order("min_depth", min_depth, "max_depth", max_depth)
    min_width = _check_int("min_width", min_width, 1)
    max_width = _check_int("max_width", max_width, 1)
    _check_order("min_width", min_width, "max_width", max_width)
    return st.lists(st.integers(min_width, max_width), min_size=min_depth + 1, max_size=max_depth + 1)


def targets(
    *,
    min_depth: int = 1,
    max_depth: int = 3,
    min_width: int = 1,
    max_width: int = 8,
    min_scale: float = 1e-3,
    max_scale: float = 1e3,
    biases: bool | SearchStrategy[bool] | None = None,
    degenerate: bool | SearchStrategy[bool] | None = False,
) -> SearchStrategy[verify.TargetNetwork]:
    """Target ReLU networks ``f`` (docs/design.md §1) with generic (Gaussian) weights.

    Layer ``k`` has ``W_k = scale_k · G / sqrt(d_{k-1})`` with ``G`` standard Gaussian and
    ``scale_k`` log-uniform in ``[min_scale, max_scale]``, drawn per layer (so a deep network's
    overall scale spans the product); biases, when present, are Gaussian with their own
    log-uniform scale per layer (large negative ones give neurons dead on the whole domain).

    Parameters
    ----------
    min_depth, max_depth, min_width, max_width : int
        Shape bounds, as in `target_widths`.
    min_scale, max_scale : float
        Positive bounds of the per-layer weight and bias scales.
    biases : None, bool or strategy of bool
        Draw non-zero biases (True), use zero biases (False), or either (None, the default).
    degenerate : None, bool or strategy of bool
        True: some rows and columns of the weights are exactly zero (at least one somewhere;
        proper subsets per layer, plus a whole zero layer in about a quarter of the networks):
        dead target neurons and ignored inputs. False (default): none, the weights are generic.
        None: either.

    Returns
    -------
    SearchStrategy[verify.TargetNetwork]
    """
    widths = target_widths(min_depth=min_depth, max_depth=max_depth, min_width=min_width, max_width=max_width)
    min_scale = _check_positive("min_scale", min_scale)
    max_scale = _check_positive("max_scale", max_scale)
    _check_order("min_scale", min_scale, "max_scale", max_scale)
    return _targets(
        widths, _log_uniform(min_scale, max_scale), _flags("biases", biases), _flags("degenerate", degenerate)
    )


@st.composite
def _targets(
    draw: st.DrawFn,
    widths: SearchStrategy[list[int]],
    scales: SearchStrategy[float],
    biases: SearchStrategy[bool],
    degenerate: SearchStrategy[bool],
) -> verify.TargetNetwork:
    dims = draw(widths)
    with_biases, is_degenerate = draw(biases), draw(degenerate)
    pairs = list(itertools.pairwise(dims))
    zero_rows: list[set[int]] = [set() for _ in pairs]
    zero_cols: list[set[int]] = [set() for _ in pairs]
    if is_degenerate:
        # Proper subsets of the rows and of the columns, so a layer keeps a non-zero entry...
        for k, (d_in, d_out) in enumerate(pairs):
            zero_rows[k] = draw(st.sets(st.integers(0, d_out - 1), max_size=d_out - 1))
            zero_cols[k] = draw(st.sets(st.integers(0, d_in - 1), max_size=d_in - 1))
        # ...except for one whole zero layer in about a quarter of the networks (shrinks to none).
        pick = draw(st.integers(0, 4 * len(pairs) - 1))
        if pick >= 3 * len(pairs):
            zero_rows[pick - 3 * len(pairs)] = set(range(pairs[pick - 3 * len(pairs)][1]))
        if not any(zero_rows) and not any(zero_cols):  # guarantee one zero row or column somewhere
            k = draw(st.integers(0, len(pairs) - 1))
            d_in, d_out = pairs[k]
            if draw(st.booleans()):
                zero_rows[k].add(draw(st.integers(0, d_out - 1)))
            else:
                zero_cols[k].add(draw(st.integers(0, d_in - 1)))
    weight_scales = [draw(scales) for _ in pairs]
    bias_scales = [draw(scales) for _ in pairs] if with_biases else None
    rng = np.random.default_rng(draw(seeds()))
    ws, bs = [], []
    for k, (d_in, d_out) in enumerate(pairs):
        w = rng.standard_normal((d_out, d_in)) * (weight_scales[k] / math.sqrt(d_in))
        w[sorted(zero_rows[k]), :] = 0.0
        w[:, sorted(zero_cols[k])] = 0.0
        ws.append(w)
        bs.append(rng.standard_normal(d_out) * bias_scales[k] if bias_scales is not None else None)
    return verify.TargetNetwork(ws, bs)


# --------------------------------------------------------------------------------------------
# Frozen networks (docs/design.md §1: g with 2L layers, eval-mode BatchNorm after each).


def frozen_networks(
    target: verify.TargetNetwork,
    *,
    width: str | Sequence[int] | SearchStrategy = "paper",
    min_extra_odd: int = 0,
    max_extra_odd: int = 0,
    min_extra_even: int = 0,
    max_extra_even: int = 0,
    distribution: str | Collection[str] | SearchStrategy[str] = DISTRIBUTIONS,
    biases: bool | SearchStrategy[bool] | None = None,
    statistics: bool | SearchStrategy[bool] | None = None,
    min_scale: float = 1e-2,
    max_scale: float = 1e2,
) -> SearchStrategy[verify.FrozenNetwork]:
    """Frozen networks ``g`` shaped for ``target`` (docs/design.md §1): ``2L`` layers, ``n_0 = d_0``, ``n_{2L} = d_L``.

    Block ``k``'s odd layer ``2k-1`` has the width of ``width``'s rule plus ``extra_odd`` neurons,
    and its even layer ``2k`` has ``d_k`` neurons plus ``extra_even`` (only for ``k < L``: the
    last layer is the output). Extra even neurons feed extra columns of the next odd layer, which
    the construction must ignore (docs/design.md §2: they are switched off). Weights are i.i.d.
    ``scale_j · X / sqrt(fan_in)`` with ``X`` standard Gaussian or uniform with variance 1 and
    ``scale_j`` log-uniform per layer.

    Parameters
    ----------
    target : verify.TargetNetwork
        Fixes ``L``, ``d_0``, the live even widths ``d_k`` and the width rules.
    width : "paper", "minimal", sequence of int, or a strategy of those
        Base odd-layer widths: ``verify.paper_width(d_k, d_{k-1})`` (``d_k d_{k-1}``),
        ``verify.minimal_width(d_k, d_{k-1})`` (``d_k (d_{k-1} - 1) + 1``), or one width per block.
    min_extra_odd, max_extra_odd : int
        Bounds on the neurons added to each odd layer (drawn per block).
    min_extra_even, max_extra_even : int
        Bounds on the neurons added to each hidden even layer (drawn per block ``k < L``).
    distribution : "gaussian", "uniform", a collection of them, or a strategy
        Distribution of the frozen weights and biases, drawn once per network.
    biases : None, bool or strategy of bool
        Non-zero frozen linear biases ``c_j`` (True), zero ones (False), or either (None).
    statistics : None, bool or strategy of bool
        True: non-trivial BatchNorm running statistics (Gaussian means of log-uniform size,
        log-uniform variances in ``[1e-3, 1e3]``) and ``eps`` log-uniform in ``[1e-6, 1e-1]``.
        False: fresh statistics (mean 0, variance 1) and ``eps = 0``. None: either.
    min_scale, max_scale : float
        Positive bounds of the per-layer weight scales.

    Returns
    -------
    SearchStrategy[verify.FrozenNetwork]
    """
    if not isinstance(target, verify.TargetNetwork):
        raise ValueError(f"target must be a verify.TargetNetwork, got {type(target).__name__}")
    widths = _width_rules(width, target.depth)
    min_extra_odd = _check_int("min_extra_odd", min_extra_odd, 0)
    max_extra_odd = _check_int("max_extra_odd", max_extra_odd, 0)
    _check_order("min_extra_odd", min_extra_odd, "max_extra_odd", max_extra_odd)
    min_extra_even = _check_int("min_extra_even", min_extra_even, 0)
    max_extra_even = _check_int("max_extra_even", max_extra_even, 0)
    _check_order("min_extra_even", min_extra_even, "max_extra_even", max_extra_even)
    min_scale = _check_positive("min_scale", min_scale)
    max_scale = _check_positive("max_scale", max_scale)
    _check_order("min_scale", min_scale, "max_scale", max_scale)
    return _frozen_networks(
        target,
        widths,
        st.integers(min_extra_odd, max_extra_odd),
        st.integers(min_extra_even, max_extra_even),
        _choices("distribution", distribution, DISTRIBUTIONS),
        _flags("biases", biases),
        _flags("statistics", statistics),
        _log_uniform(min_scale, max_scale),
    )


def _width_rules(width: object, depth: int) -> SearchStrategy[str | list[int]]:
    if isinstance(width, SearchStrategy):
        return width.map(lambda w: _checked_width(w, depth))
    return st.just(_checked_width(width, depth))


def _checked_width(width: object, depth: int) -> str | list[int]:
    if isinstance(width, str):
        return _checked_choice("width", width, WIDTH_RULES)
    if isinstance(width, Sequence) and len(width) == depth:
        return [_check_int(f"width[{k}]", w, 1) for k, w in enumerate(width)]
    raise ValueError(
        f"width must be one of {WIDTH_RULES} or a list of {depth} odd-layer widths (one per block), got {width!r}"
    )


@st.composite
def _frozen_networks(
    draw: st.DrawFn,
    target: verify.TargetNetwork,
    widths: SearchStrategy[str | list[int]],
    extra_odd: SearchStrategy[int],
    extra_even: SearchStrategy[int],
    distributions: SearchStrategy[str],
    biases: SearchStrategy[bool],
    statistics: SearchStrategy[bool],
    scales: SearchStrategy[float],
) -> verify.FrozenNetwork:
    d = target.widths
    depth = target.depth
    rule = draw(widths)
    if isinstance(rule, str):
        width_of = verify.paper_width if rule == "paper" else verify.minimal_width
        base = [width_of(d[k], d[k - 1]) for k in range(1, depth + 1)]
    else:
        base = list(rule)
    layer_widths = [d[0]]
    for k in range(1, depth + 1):
        layer_widths.append(base[k - 1] + draw(extra_odd))
        layer_widths.append(d[k] + (draw(extra_even) if k < depth else 0))
    distribution = draw(distributions)
    with_biases, with_statistics = draw(biases), draw(statistics)
    layer_scales = [draw(scales) for _ in range(2 * depth)]
    eps = draw(_log_uniform(1e-6, 1e-1)) if with_statistics else 0.0
    mean_scales = [draw(_log_uniform(1e-3, 1e3)) for _ in range(2 * depth)] if with_statistics else None
    rng = np.random.default_rng(draw(seeds()))

    def unit(shape: tuple[int, ...]) -> np.ndarray:
        """I.i.d. entries with mean 0 and variance 1."""
        if distribution == "gaussian":
            return rng.standard_normal(shape)
        return rng.uniform(-math.sqrt(3.0), math.sqrt(3.0), shape)

    ms, cs, means, variances = [], [], [], []
    for j, (n_in, n_out) in enumerate(itertools.pairwise(layer_widths)):
        ms.append(unit((n_out, n_in)) * (layer_scales[j] / math.sqrt(n_in)))
        cs.append(unit((n_out,)) * layer_scales[j] if with_biases else None)
        if mean_scales is not None:
            means.append(rng.standard_normal(n_out) * mean_scales[j])
            variances.append(np.exp(rng.uniform(math.log(1e-3), math.log(1e3), n_out)))
    if mean_scales is None:
        return verify.FrozenNetwork(ms, cs)
    return verify.FrozenNetwork(ms, cs, means, variances, eps)


# --------------------------------------------------------------------------------------------
# Domains (docs/design.md §2: a bounded input domain, ball or box).


def domains(
    dim: int | SearchStrategy[int],
    *,
    kinds: str | Collection[str] | SearchStrategy[str] = DOMAIN_KINDS,
    min_radius: float = 1e-2,
    max_radius: float = 1e2,
    max_center: float = 1e3,
    flat: bool | SearchStrategy[bool] | None = False,
) -> SearchStrategy[verify.Domain]:
    """Bounded input domains of dimension ``dim``: `verify.Ball` and `verify.Box`, centred or not.

    The size ``r`` is log-uniform in ``[min_radius, max_radius]``: a ball's radius, or the largest
    half-side of a box (the other half-sides are between ``r/10`` and ``r``). The centre is the
    origin or a random direction times a distance log-uniform in ``[1e-3, max_center]`` (so boxes
    and balls far from the origin, much further than their size, are drawn). A centred ball is
    drawn both as ``Ball(r)`` (no centre: resolved to the origin by `verify.reconstruct`) and with
    an explicit zero centre.

    Parameters
    ----------
    dim : int or strategy of int
        Dimension ``d_0 >= 1``.
    kinds : "ball", "box", a collection of them, or a strategy
        Which kinds of domain to draw.
    min_radius, max_radius : float
        Positive bounds of the size ``r``.
    max_center : float
        Largest distance of the centre from the origin; 0 keeps every domain centred.
    flat : None, bool or strategy of bool
        True: boxes of dimension >= 2 get at least one side of zero width (``lo_i = hi_i``; the
        side of half-width ``r`` stays). False (default): no flat sides. None: either. Balls are
        never flat.

    Returns
    -------
    SearchStrategy[verify.Domain]
    """
    dims = _ints("dim", dim, 1)
    kind_strategy = _choices("kinds", kinds, DOMAIN_KINDS)
    min_radius = _check_positive("min_radius", min_radius)
    max_radius = _check_positive("max_radius", max_radius)
    _check_order("min_radius", min_radius, "max_radius", max_radius)
    max_center = _check_non_negative("max_center", max_center)
    if max_center == 0:
        distances = st.just(0.0)
    else:
        distances = st.one_of(st.just(0.0), _log_uniform(min(1e-3, max_center), max_center))
    return _domains(dims, kind_strategy, _log_uniform(min_radius, max_radius), distances, _flags("flat", flat))


@st.composite
def _domains(
    draw: st.DrawFn,
    dims: SearchStrategy[int],
    kinds: SearchStrategy[str],
    radii: SearchStrategy[float],
    distances: SearchStrategy[float],
    flat: SearchStrategy[bool],
) -> verify.Domain:
    dim, kind, radius, distance = draw(dims), draw(kinds), draw(radii), draw(distances)
    rng = np.random.default_rng(draw(seeds()))
    direction = rng.standard_normal(dim)
    center = distance * direction / np.linalg.norm(direction)
    if kind == "ball":
        if distance == 0 and draw(st.booleans()):
            return verify.Ball(radius)
        return verify.Ball(radius, center)
    half = radius * np.exp(rng.uniform(math.log(0.1), 0.0, dim))
    wide = int(rng.integers(dim))
    half[wide] = radius
    if draw(flat) and dim > 1:
        pinned = draw(st.sets(st.sampled_from([i for i in range(dim) if i != wide]), min_size=1))
        half[sorted(pinned)] = 0.0
    return verify.Box(center - half, center + half)


# --------------------------------------------------------------------------------------------
# Whole instances: what `verify.reconstruct` takes.


class Instance(NamedTuple):
    """One reconstruction problem: ``verify.reconstruct(*instance)`` solves it."""

    target: verify.TargetNetwork
    frozen: verify.FrozenNetwork
    domain: verify.Domain
    mode: str


def instances(
    *,
    target: verify.TargetNetwork | SearchStrategy[verify.TargetNetwork] | None = None,
    modes: str | Collection[str] | SearchStrategy[str] = verify.MODES,
    min_extra_odd: int = 0,
    max_extra_odd: int = 2,
    min_extra_even: int = 0,
    max_extra_even: int = 2,
    kinds: str | Collection[str] | SearchStrategy[str] = DOMAIN_KINDS,
) -> SearchStrategy[Instance]:
    """Feasible instances ``(target, frozen, domain, mode)`` of `verify.reconstruct`, drawn together.

    The frozen network is wide enough for the mode (docs/design.md §2): ``"paper"`` mode gets the paper
    width ``d_k d_{k-1}``, ``"minimal"`` mode the minimal width ``d_k (d_{k-1} - 1) + 1`` or the
    paper width, each plus ``extra_odd`` neurons; hidden even layers get ``extra_even`` neurons.
    Everything else (frozen distribution, frozen biases, running statistics, domain placement,
    degenerate targets) is drawn from the defaults of `targets`, `frozen_networks` and `domains`,
    except that targets may be degenerate and boxes may be flat.

    Parameters
    ----------
    target : None, verify.TargetNetwork or strategy of them
        Default: ``targets(degenerate=None)`` (generic and degenerate targets).
    modes : "paper", "minimal", a collection of them, or a strategy
        The construction's mode.
    min_extra_odd, max_extra_odd, min_extra_even, max_extra_even : int
        As in `frozen_networks`.
    kinds : "ball", "box", a collection of them, or a strategy
        As in `domains`.

    Returns
    -------
    SearchStrategy[Instance]
    """
    if target is None:
        target_strategy = targets(degenerate=None)
    elif isinstance(target, verify.TargetNetwork):
        target_strategy = st.just(target)
    elif isinstance(target, SearchStrategy):
        target_strategy = target
    else:
        raise ValueError(f"target must be None, a verify.TargetNetwork or a strategy of them, got {target!r}")
    mode_strategy = _choices("modes", modes, verify.MODES)
    for name, value in [
        ("min_extra_odd", min_extra_odd),
        ("max_extra_odd", max_extra_odd),
        ("min_extra_even", min_extra_even),
        ("max_extra_even", max_extra_even),
    ]:
        _check_int(name, value, 0)
    _check_order("min_extra_odd", min_extra_odd, "max_extra_odd", max_extra_odd)
    _check_order("min_extra_even", min_extra_even, "max_extra_even", max_extra_even)
    kind_strategy = _choices("kinds", kinds, DOMAIN_KINDS)
    extras = {
        "min_extra_odd": min_extra_odd,
        "max_extra_odd": max_extra_odd,
        "min_extra_even": min_extra_even,
        "max_extra_even": max_extra_even,
    }
    return _instances(target_strategy, mode_strategy, extras, kind_strategy)


@st.composite
def _instances(
    draw: st.DrawFn,
    target_strategy: SearchStrategy[verify.TargetNetwork],
    mode_strategy: SearchStrategy[str],
    extras: dict[str, int],
    kind_strategy: SearchStrategy[str],
) -> Instance:
    target = draw(target_strategy)
    if not isinstance(target, verify.TargetNetwork):
        raise ValueError(f"target drew {target!r} from its strategy; it must draw verify.TargetNetwork objects")
    mode = draw(mode_strategy)
    width = "paper" if mode == "paper" else draw(st.sampled_from(WIDTH_RULES[::-1]))
    frozen = draw(frozen_networks(target, width=width, **extras))
    domain = draw(domains(target.widths[0], kinds=kind_strategy, flat=None))
    return Instance(target, frozen, domain, mode)


# --------------------------------------------------------------------------------------------
# Paired ("looks-linear") frozen networks (docs/design.md §3).


def mirrored(frozen: verify.FrozenNetwork) -> verify.FrozenNetwork:
    """The paired network of ``frozen`` (docs/design.md §3): each odd layer ``M`` becomes ``[M; −M]`` with
    biases ``[c; −c]``, the next (even) layer's columns ``[M', −M']``; the odd layers' running
    statistics are repeated (BatchNorm statistics do not affect pairing). Widths of odd layers double."""
    ms, cs = [], []
    means, variances = [], []
    for j, (m, c, mean, var) in enumerate(
        zip(frozen.weights, frozen.biases, frozen.running_mean, frozen.running_var, strict=True)
    ):
        if j % 2 == 0:
            ms.append(np.vstack([m, -m]))
            cs.append(np.concatenate([c, -c]))
            means.append(np.concatenate([mean, mean]))
            variances.append(np.concatenate([var, var]))
        else:
            ms.append(np.hstack([m, -m]))
            cs.append(np.array(c))
            means.append(np.array(mean))
            variances.append(np.array(var))
    return verify.FrozenNetwork(ms, cs, means, variances, frozen.eps)


def paired_instances(
    *,
    modes: str | Collection[str] | SearchStrategy[str] = verify.MODES,
    kinds: str | Collection[str] | SearchStrategy[str] = DOMAIN_KINDS,
) -> SearchStrategy[Instance]:
    """`instances` on a bounded domain with the frozen network `mirrored` (each half as wide as
    `instances` draws it, extra odd and even neurons included)."""
    return instances(modes=modes, kinds=kinds).map(
        lambda instance: Instance(instance.target, mirrored(instance.frozen), instance.domain, instance.mode)
    )
