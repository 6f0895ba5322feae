"""The width–error frontier (docs/design.md §11): certified bound and observed error per frozen width
and density.

`frontier` builds, for every width (a fraction of the paper width ``d_k d_{k−1}``, or an odd width),
every density (the Bernoulli mask of a sparse frozen network, docs/design.md §4) and every frozen
seed, the frozen network `verify.FrozenNetwork.for_target` draws, reconstructs it
with ``mode="approximate"``, and measures ``max |g − f|`` on fresh points of the domain (box
corners, or a ball's boundary, included) next to the certified ``error_bound``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from verify.construction.reconstruct import reconstruct
from verify.core.domains import Ball, Box, Domain
from verify.core.feasibility import feasibility
from verify.core.networks import FrozenNetwork, TargetNetwork, paper_width

__all__ = ["Frontier", "FrontierPoint", "fresh_points", "frontier"]


@dataclass(frozen=True)
class FrontierPoint:
    """One frozen network of the frontier.

    ``width`` is what was asked (a fraction of the paper width, or an int); ``fraction`` the odd widths'
    total over the paper widths' total; ``density`` the frozen masks' Bernoulli density (1: dense);
    ``matching`` whether every block's mask passes the matching criterion of paper mode
    (`verify.feasibility`: the pattern alone allows an exact solution); ``observed`` ``max |g − f|`` on
    the fresh points; ``seconds`` the reconstruction's wall-clock time (construction, solve and
    certificate).
    """

    width: float
    odd_widths: tuple[int, ...]
    fraction: float
    seed: int
    exact: bool
    error_bound: float
    approximation_error: float
    observed: float
    seconds: float
    density: float = 1.0
    matching: bool = True


@dataclass(frozen=True)
class Frontier:
    """The points of `frontier`, in the order of ``widths``, then ``densities``, then ``seeds``."""

    points: tuple[FrontierPoint, ...]

    def rows(self) -> list[dict]:
        """One JSON-ready dictionary per point."""
        return [asdict(p) | {"odd_widths": list(p.odd_widths)} for p in self.points]

    def table(self) -> str:
        """A Markdown table: width, odd widths, density, matching, seed, exact, certified bound, observed error,
        seconds."""
        lines = [
            "| width | odd widths | density | matching | seed | exact | certified bound | observed | seconds |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {p.fraction:.2f} | {list(p.odd_widths)} | {p.density:g} | {p.matching} | {p.seed} | {p.exact} | "
            f"{p.error_bound:.3g} | {p.observed:.3g} | {p.seconds:.3f} |"
            for p in self.points
        ]
        return "\n".join(lines)


def fresh_points(domain: Domain, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` points of ``domain`` (half on its boundary), plus a quarter as many box corners for a box."""
    points = domain.sample(count, rng)
    if isinstance(domain, Box):
        lo, hi = domain.bounding_box()
        corners = np.where(rng.integers(0, 2, size=(max(1, count // 4), lo.size)) == 1, hi, lo)
        points = np.concatenate([points, corners])
    return points


def frontier(
    target: TargetNetwork,
    widths: Sequence[float | int] = (0.1, 0.25, 0.5, 0.75, 1.0),
    seeds: Sequence[int] = (1,),
    domain: Domain | None = None,
    *,
    densities: Sequence[float] = (1.0,),
    method: str = "auto",
    points: int = 1024,
    seed: int = 0,
) -> Frontier:
    """The certified bound and the observed error of ``mode="approximate"`` per width, density and frozen seed.

    Parameters
    ----------
    target : TargetNetwork
        The network to approximate.
    widths : sequence of float or int
        Odd-layer widths as `verify.FrozenNetwork.for_target` takes them: a float ``f > 0`` is
        ``ceil(f · d_k d_{k−1})`` per block, an int the same width for every block.
    seeds : sequence of int
        Frozen-network seeds (one frozen network per width and seed).
    domain : Ball or Box, optional
        The bounded domain (default: the unit ball).
    densities : sequence of float
        Densities in ``(0, 1]`` of the frozen masks (``density`` of `verify.FrozenNetwork.for_target`;
        1 is dense). Below the matching threshold (``matching`` False) no value of the frozen weights
        lets the block be exact, and the point is approximated over the scales the mask allows.
    method : "auto", "l1" or "lstsq"
        How narrow blocks are solved (see `verify.reconstruct`).
    points : int
        Fresh points per frozen network on which ``|g − f|`` is observed (a box adds its corners).
    seed : int
        Seed of the fresh points (they differ from the certificate's own sample points).
    """
    if not isinstance(target, TargetNetwork):
        raise ValueError(f"target must be a verify.TargetNetwork, got {type(target).__name__}")
    for name, values in (("widths", widths), ("densities", densities), ("seeds", seeds)):
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise ValueError(f"{name} must be a non-empty sequence (a list or tuple), got {values!r}")
    if domain is not None and not isinstance(domain, Domain):
        raise ValueError(f"domain must be a verify.Ball, a verify.Box or None (the unit ball), got {domain!r}")
    if isinstance(points, bool) or not isinstance(points, (int, np.integer)) or points < 1:
        raise ValueError(f"points must be an integer >= 1, got {points!r}")
    domain = (Ball(1.0) if domain is None else domain).resolve(target.widths[0])
    d = target.widths
    paper = sum(paper_width(d[k], d[k - 1]) for k in range(1, len(d)))
    rng = np.random.default_rng([seed, 0x5EED])
    x = fresh_points(domain, points, rng)
    f = target(x)
    rows = []
    for width, density, frozen_seed in ((w, p, s) for w in widths for p in densities for s in seeds):
        frozen = FrozenNetwork.for_target(target, width=width, density=density, seed=frozen_seed)
        start = time.perf_counter()
        result = reconstruct(target, frozen, domain, "approximate", method=method)
        seconds = time.perf_counter() - start
        odd = tuple(frozen.widths[1::2])
        certificate = result.certificate
        rows.append(
            FrontierPoint(
                width=float(width),
                odd_widths=odd,
                fraction=sum(odd) / paper,
                seed=int(frozen_seed),
                exact=certificate.exact,
                error_bound=certificate.error_bound,
                approximation_error=certificate.approximation_error,
                observed=float(np.max(np.abs(result.network(x) - f))),
                seconds=seconds,
                density=float(density),
                matching=feasibility(target, frozen, "paper").ok,
            )
        )
    return Frontier(tuple(rows))
