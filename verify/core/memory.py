"""Memory planning before allocation: what is available, what a frozen network or a pair's solve needs.

A builder (`verify.FrozenNetwork.for_target`, the convolutional and residual ones, ``verify.nn``'s
``frozen_mlp``, ``frozen_like``, ``frozen_residual_mlp``) describes its frozen network as `Pair` s, one per
target layer: the odd layer ``fan_in -> n`` and the even layer ``n -> fan_out``. `check_build` estimates the
bytes it allocates from exactly those shapes and refuses, with a `ValueError`, a network that does not fit
in `available_memory`, naming the widest layer, the estimate, what is available, the widest ``width`` (an int
for every pair, or a multiple of the paper width) that would fit and, when that is below the theorem's
threshold, the width exact reconstruction needs.
"""

from __future__ import annotations

import math
import os
import resource
from collections.abc import Sequence
from dataclasses import dataclass, replace

__all__ = [
    "NUMPY_BUILD",
    "Pair",
    "PairEstimate",
    "available_memory",
    "check_build",
    "format_bytes",
    "require_memory",
]

NUMPY_BUILD = (16, 8)
"""Bytes per frozen weight entry a numpy builder holds at its peak, ``(stored, transient)``: the float64 draws
(scaled in place of the raw draw) and the validated read-only copy the network stores (``as_array`` copies)
are both alive when the network is made, and the widest pair's raw draw is alive while it is scaled.
Measured with ``tracemalloc`` in ``tests/test_memory.py``."""


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _status_bytes(key: str) -> int:
    """``VmSize`` / ``VmData`` of this process from ``/proc/self/status`` (0 when unreadable)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _rlimit_headroom() -> list[int]:
    """``RLIMIT_AS`` minus the address space in use and ``RLIMIT_DATA`` minus the data segment in use."""
    out = []
    for limit, key in ((resource.RLIMIT_AS, "VmSize"), (resource.RLIMIT_DATA, "VmData")):
        soft = resource.getrlimit(limit)[0]
        if soft != resource.RLIM_INFINITY:
            out.append(max(0, soft - _status_bytes(key)))
    return out


def _read_int(path: str) -> int | None:
    try:
        with open(path) as handle:
            text = handle.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max" (v2, no limit) is not a number


def _cgroup_headroom() -> list[int]:
    """The cgroup's memory limit minus its usage: v2 (``memory.max``, ``memory.current``) or v1."""
    roots = ["/sys/fs/cgroup"]
    try:
        with open("/proc/self/cgroup") as cgroup:
            for line in cgroup:
                parts = line.strip().split(":", 2)
                if len(parts) == 3 and parts[0] == "0" and parts[2] not in ("", "/"):
                    roots.insert(0, "/sys/fs/cgroup" + parts[2])
    except OSError:
        pass
    out = []
    for root in roots:
        limit, usage = _read_int(os.path.join(root, "memory.max")), _read_int(os.path.join(root, "memory.current"))
        if limit is not None and usage is not None:
            out.append(max(0, limit - usage))
            break
    limit = _read_int("/sys/fs/cgroup/memory/memory.limit_in_bytes")
    usage = _read_int("/sys/fs/cgroup/memory/memory.usage_in_bytes")
    if limit is not None and usage is not None and limit < 2**62:  # v1 reports ~2^63 for "no limit"
        out.append(max(0, limit - usage))
    return out


def available_memory() -> int | None:
    """Bytes a new allocation can take: the least of ``MemAvailable`` (``/proc/meminfo``), ``RLIMIT_AS`` /
    ``RLIMIT_DATA`` minus this process's use, and the cgroup (v2 or v1) memory limit minus its usage.

    None when none of these can be read (then nothing is refused).
    """
    candidates = [_meminfo_available(), *_rlimit_headroom(), *_cgroup_headroom()]
    known = [c for c in candidates if c is not None]
    return min(known) if known else None


def format_bytes(size: float) -> str:
    """``size`` bytes in the unit that reads best (``"1.5 GiB"``, ``"12 MiB"``)."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{int(size)} B"


def require_memory(needed: int, what: str, suggestion: str, *, available: int | None = None) -> None:
    """Refuse ``what`` when its ``needed`` bytes exceed ``available`` (default `available_memory`).

    The `ValueError` names ``what`` (the layer or pair), the estimate, the available memory and ends with
    ``suggestion`` (what would fit).
    """
    available = available_memory() if available is None else available
    if available is None or needed <= available:
        return
    raise ValueError(
        f"{what} needs an estimated {format_bytes(needed)} of memory but only {format_bytes(available)} is "
        f"available; {suggestion}"
    )


@dataclass(frozen=True)
class Pair:
    """One target layer's frozen pair: odd layer ``fan_in -> n``, even layer ``n -> fan_out``.

    ``fan_in`` counts the odd layer's inputs per neuron (``C_in·prod(kernel)`` for a convolution);
    ``paper`` and ``minimal`` are the odd widths the theorem's two modes need for this pair, and ``unit`` the
    odd neurons one unit of the builder's ``width`` makes (2 for a paired, looks-linear, network).
    """

    name: str
    fan_in: int
    n: int
    fan_out: int
    paper: int
    minimal: int
    unit: int = 1

    @property
    def per_neuron(self) -> int:
        """Weight entries one odd neuron adds: its row of the odd layer and its column of the even one."""
        return self.fan_in + self.fan_out


@dataclass(frozen=True)
class PairEstimate:
    """Estimated bytes of one pair, by part, in a dtype of ``itemsize`` bytes.

    ``frozen``: the two frozen weight matrices; ``operator``: the explicit Khatri–Rao matrix ``K`` and its
    factorization (``direct``/``lstsq``); ``workspace``: what an iterative solve holds (LSMR's vectors and
    copies of the factors). Zero parts are not needed by the method in question.
    """

    name: str
    frozen: int
    operator: int = 0
    workspace: int = 0

    @property
    def total(self) -> int:
        """All parts together."""
        return self.frozen + self.operator + self.workspace


def frozen_bytes(pairs: Sequence[Pair], cost: tuple[int, int] = NUMPY_BUILD) -> int:
    """Peak bytes a builder allocates for ``pairs`` at ``cost = (stored, transient)`` bytes per weight entry:
    ``stored`` for every entry (biases and BatchNorm vectors included, ``4 n + 4 fan_out`` entries per pair)
    and ``transient`` for the widest pair's temporaries."""
    stored, transient = cost
    sizes = [p.n * p.per_neuron + 4 * (p.n + p.fan_out) for p in pairs]
    return stored * sum(sizes) + transient * max(sizes)


def _widest(fits: object, top: float, integer: bool) -> float:
    """The largest ``x`` in ``[0, top]`` with ``fits(x)`` (monotone), by bisection."""
    lo, hi = 0.0, float(top)
    for _ in range(200):
        mid = (lo + hi) / 2
        mid = math.floor(mid) if integer else mid
        if fits(mid):  # type: ignore[operator]
            lo = mid
        else:
            hi = mid
        if hi - lo <= (1 if integer else 1e-4 * max(hi, 1e-12)):
            break
    return math.floor(lo) if integer else lo


def check_build(
    what: str, pairs: Sequence[Pair], cost: tuple[int, int] = NUMPY_BUILD, *, available: int | None = None
) -> None:
    """Refuse to build ``pairs`` when `frozen_bytes` exceeds ``available`` (default `available_memory`).

    The message names the widest pair, the estimate, the available memory, the widest int ``width`` (the same
    for every pair) and the widest ``width=`` multiple of the paper width that fit, and, when those are below
    the theorem's threshold, that exact reconstruction needs ``mode="minimal"`` and at least the minimal width.
    """
    needed = frozen_bytes(pairs, cost)
    available = available_memory() if available is None else available
    if available is None or needed <= available:
        return
    widest = max(pairs, key=lambda p: p.n * p.per_neuron)

    def with_widths(widths: Sequence[int]) -> int:
        return frozen_bytes([replace(p, n=int(n) * p.unit) for p, n in zip(pairs, widths, strict=True)], cost)

    top = max(p.n for p in pairs)  # in width units, at least the width asked for
    n_fit = int(_widest(lambda n: with_widths([n] * len(pairs)) <= available, top, True))
    f_fit = _widest(lambda f: with_widths([math.ceil(f * p.paper) for p in pairs]) <= available, top, False)
    fits = f"width={n_fit} for every layer, or width={f_fit:.3g} (times the paper width)"
    threshold = ""
    below = [p for p in pairs if n_fit < p.paper]
    if below:
        p = max(below, key=lambda p: p.minimal)
        threshold = (
            f"; that is below the paper width {p.paper} of {p.name}: exact reconstruction then needs "
            f"mode='minimal' and at least the minimal width {p.minimal}"
        )
        if n_fit < p.minimal:
            threshold += ", so this target cannot be reconstructed exactly in this memory"
    raise ValueError(
        f"{what}: the frozen network needs an estimated {format_bytes(needed)} of memory (widest: {widest.name}, "
        f"{widest.fan_in} -> {widest.n} -> {widest.fan_out}) but only {format_bytes(available)} is available; "
        f"at most {fits} would fit{threshold}"
    )
