"""What the verification job checks: the `Config` (grid of targets, seeds, domains, claim sizes).

The quick and full grids of targets, the domain kinds of the exactness claims, and the sizes of
every claim family: each family declares its quick and full sizes where it registers
(`verify.job.registry.register`), and a `Config` may override any of them, which is how the tests
shrink a claim::

    Config(((2, 2),), seeds=(0,), sizes={"threshold": {"shapes": ((2, 2),)}})

Everything is deterministic: targets use seed ``s``, frozen networks ``1000 + s``, fresh points
``2000 + s``, for ``s`` in ``config.seeds``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from verify.construction.reconstruct import MODES
from verify.core.domains import Ball, Box, Domain
from verify.job import registry

__all__ = ["DOMAIN_KINDS", "WIDTHS", "Config", "describe_domain", "make_domain"]

WIDTHS = (1, 2, 3, 5, 8, 12)
"""Layer widths the grids draw from."""

_QUICK_DEEP = (
    (1, 12, 1),
    (2, 3, 5),
    (3, 5, 2),
    (5, 8, 3),
    (8, 12, 2),
    (12, 8, 12),
    (12, 1, 12),
    (2, 12, 8),
    (12, 12, 12),
    (1, 2, 3, 5),
    (5, 3, 8, 2),
    (12, 5, 1, 8),
    (8, 12, 12, 3),
    (3, 8, 5, 12),
    (12, 12, 12, 12),
    (2, 5, 8, 12, 3),
    (12, 8, 5, 3, 1),
    (1, 3, 12, 2, 8),
    (5, 12, 5, 12, 5),
    (12, 12, 12, 12, 12),
)
"""Depth 2–4 architectures of the quick grid: non-square mixes, bottlenecks of width 1, all-12."""


def _domain_ball(dim: int) -> Domain:
    return Ball(1.0)


def _domain_ball_offcentre(dim: int) -> Domain:
    return Ball(1.0, center=np.linspace(2.0, -1.0, dim))


def _domain_box(dim: int) -> Domain:
    return Box(-np.ones(dim), np.ones(dim))


def _domain_box_far(dim: int) -> Domain:
    lo = 100.0 + np.arange(dim)
    return Box(lo, lo + np.linspace(0.5, 2.0, dim))


_DOMAINS: dict[str, tuple[Callable[[int], Domain], str]] = {
    "ball": (_domain_ball, "Ball(1.0) centred at the origin"),
    "ball-offcentre": (_domain_ball_offcentre, "Ball(1.0) centred at linspace(2, -1, d_0)"),
    "box": (_domain_box, "Box [-1, 1]^d_0"),
    "box-far": (_domain_box_far, "Box lo = 100 + arange(d_0), hi = lo + linspace(0.5, 2, d_0)"),
}
DOMAIN_KINDS = tuple(_DOMAINS)
"""Domain kinds of the exactness claims, in report order."""


def make_domain(kind: str, dim: int) -> Domain:
    """The domain of kind ``kind`` (one of `DOMAIN_KINDS`) in input dimension ``dim``, resolved.

    ``"ball"``: ``Ball(1.0)`` at the origin; ``"ball-offcentre"``: ``Ball(1.0)`` centred at
    ``linspace(2, -1, dim)``; ``"box"``: ``[-1, 1]^dim``; ``"box-far"``: a box of uneven sides
    about 100 away from the origin.
    """
    if kind not in _DOMAINS:
        raise ValueError(f"domain kind must be one of {DOMAIN_KINDS}, got {kind!r}")
    return _DOMAINS[kind][0](dim).resolve(dim)


def describe_domain(kind: str) -> str:
    """The domain of kind ``kind`` in words, as the report states it."""
    return _DOMAINS[kind][1]


def _quick_architectures() -> tuple[tuple[int, ...], ...]:
    shallow = tuple((a, b) for a in WIDTHS for b in WIDTHS)
    return shallow + _QUICK_DEEP


def _full_architectures() -> tuple[tuple[int, ...], ...]:
    rng = np.random.default_rng(20230712)
    extra = []
    for depth in (2, 3, 4):
        for _ in range(16):
            extra.append(tuple(int(w) for w in rng.choice(WIDTHS, size=depth + 1)))
    seen = dict.fromkeys(_quick_architectures() + tuple(extra))
    return tuple(seen)


@dataclass(frozen=True)
class Config:
    """What the job checks.

    Attributes
    ----------
    architectures : tuple of tuple of int
        Target widths ``d_0 … d_L`` (``L = 1 … 4``), each ``>= 1``.
    seeds : tuple of int
        Seeds ``s``: target ``s``, frozen network ``1000 + s``, fresh points ``2000 + s``.
    modes : tuple of str
        Subset of ``verify.MODES``.
    domains : tuple of str
        Subset of `DOMAIN_KINDS`.
    points : int
        Fresh points per exactness case (about half on the domain's boundary).
    properties : bool
        Run the Hypothesis property suite.
    only : tuple of str
        Glob patterns on claim names (`fnmatch`); empty selects every claim.
    grid : str
        ``"quick"``, ``"full"`` or ``"custom"``: how the grid was chosen (used in the commands, and
        choosing each family's sizes: ``full`` or, otherwise, ``quick``).
    sizes : dict
        Overrides of the families' sizes: family key (``threshold``, ``sparse/map``, …, see
        `verify.job.registry.ClaimSpec.key`) to the sizes that replace the declared ones.
    """

    architectures: tuple[tuple[int, ...], ...]
    seeds: tuple[int, ...] = (0, 1, 2)
    modes: tuple[str, ...] = MODES
    domains: tuple[str, ...] = DOMAIN_KINDS
    points: int = 512
    properties: bool = True
    only: tuple[str, ...] = ()
    grid: str = "custom"
    sizes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not self.architectures:
            raise ValueError("architectures must list at least one target, got an empty tuple")
        for widths in self.architectures:
            if len(widths) < 2 or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
                raise ValueError(f"architectures must hold tuples d_0 … d_L of integers >= 1, got {widths!r}")
        if not self.seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.seeds):
            raise ValueError(f"seeds must be a non-empty tuple of integers >= 0, got {self.seeds!r}")
        bad_modes = [m for m in self.modes if m not in MODES]
        if not self.modes or bad_modes:
            raise ValueError(f"modes must be a non-empty subset of {MODES}, got {self.modes!r}")
        bad_domains = [k for k in self.domains if k not in DOMAIN_KINDS]
        if not self.domains or bad_domains:
            raise ValueError(f"domains must be a non-empty subset of {DOMAIN_KINDS}, got {self.domains!r}")
        if isinstance(self.points, bool) or not isinstance(self.points, int) or self.points < 2:
            raise ValueError(f"points must be an integer >= 2 (half of them on the boundary), got {self.points!r}")
        if not isinstance(self.sizes, Mapping) or not all(isinstance(v, Mapping) for v in self.sizes.values()):
            raise ValueError(f"sizes must map a claim family to a dict of sizes, got {self.sizes!r}")

    @classmethod
    def quick(cls, seeds: int = 3, **options: Any) -> Config:
        """The default grid: every depth-1 pair of `WIDTHS`, 20 deeper targets, 512 fresh points."""
        return cls(_quick_architectures(), tuple(range(seeds)), points=512, grid="quick", **options)

    @classmethod
    def full(cls, seeds: int = 5, **options: Any) -> Config:
        """The bigger grid: the quick one plus 48 random deeper targets, 2048 fresh points."""
        return cls(_full_architectures(), tuple(range(seeds)), points=2048, grid="full", **options)

    def sizes_for(self, key: str) -> dict[str, Any]:
        """The sizes of claim family ``key``: those it declares for this grid, with this config's overrides.

        Raises `ValueError` for an override the family does not declare (a typo would otherwise be ignored).
        """
        sizes = registry.default_sizes(key, self.grid)
        override = dict(self.sizes.get(key, {}))
        unknown = sorted(set(override) - set(sizes))
        if unknown:
            raise ValueError(f"claim family {key!r} has no sizes {unknown}; it has {sorted(sizes)}")
        return sizes | override

    def claim_names(self) -> list[str]:
        """Names of every claim this configuration can run, before the ``only`` filter."""
        return registry.claim_names(self)

    def selected(self, name: str) -> bool:
        """Whether claim ``name`` passes the ``only`` filter."""
        return not self.only or any(fnmatch.fnmatchcase(name, pattern) for pattern in self.only)

    def command(self, name: str) -> str:
        """The command line that reruns claim ``name`` alone with this grid."""
        parts = ["python", "-m", "verify"]
        if self.grid == "full":
            parts.append("--full")
        default_seeds = tuple(range(5 if self.grid == "full" else 3))
        if self.seeds != default_seeds:
            parts += ["--seeds", str(len(self.seeds))]
        parts += ["--only", name]
        return " ".join(parts)

    def domain_descriptions(self) -> dict[str, str]:
        """Each domain kind of this config, in words."""
        return {k: describe_domain(k) for k in self.domains}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description of the grid (``sizes`` only when some are overridden)."""
        described = {
            "grid": self.grid,
            "architectures": [list(a) for a in self.architectures],
            "seeds": list(self.seeds),
            "modes": list(self.modes),
            "domains": self.domain_descriptions(),
            "points": self.points,
            "properties": self.properties,
            "only": list(self.only),
        }
        if self.sizes:
            described["sizes"] = {k: dict(v) for k, v in self.sizes.items()}
        return described
