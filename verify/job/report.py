"""The verification job behind ``python -m verify``: every claim of docs/design.md checked numerically.

Claims (each one a `Claim`, named so that ``python -m verify --only NAME`` reruns it):

``exact/<mode>/<domain>`` (docs/design.md §2, §6)
    For every target of the grid and every seed, ``reconstruct`` returns a result whose certificate
    holds, and on fresh points of the domain (boundary included, drawn independently of the
    certificate's own) the tuned frozen network ``g`` agrees with the target ``f`` to the same
    derived tolerance the certificate uses (`verify.evaluation_tolerance`)::

        max |g(x) - f(x)| / (|g|(x) + |f|(x))  <=  evaluation_tolerance(n, d, residual ratios)
        max |g(x) - f(x)| / max |f(x)|           <=  certificate.sampled.rtol

    ``max |g - f| / max |f|`` is the human figure of the report.
``tight/<mode>`` (docs/design.md §2, tightness)
    One neuron below the mode's odd-layer width in one block (``paper_width - 1`` or
    ``minimal_width - 1``), ``reconstruct`` raises `verify.InfeasibleError` naming that block, and
    independent linear algebra shows the block's system really has no solution for the (generic)
    target: in paper mode the least-squares residual of ``K γ = vec(W)`` is far from zero, in
    minimal mode the square homogeneous matrix ``[W-part | -K]`` is far from singular.
``properties``
    The Hypothesis property suite (``properties/``) passes under the ``thorough`` profile.

The other claims live with their own idea: ``threshold/*`` in `verify.job.width_claims`,
``paired/Rd`` in `verify.job.paired_claim`, ``certificate/exact`` and ``solvers/speed`` in
`verify.job.solver_claims`, ``sparse/*`` in `verify.job.sparse_claims`, ``baseline/training`` in
`verify.job.baseline`. Every claim runs its cases through a `verify.job.progress.Sweep` (this process, a
local process pool or a Dask cluster: `verify.job.sweeps.Runner`); `write_report` draws the figures
(`verify.job.figures`).

Everything is deterministic: targets use seed ``s``, frozen networks ``1000 + s``, fresh points
``2000 + s``, for ``s`` in ``config.seeds``.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy
import scipy.linalg

import verify
from verify.construction.reconstruct import MODES
from verify.core.domains import Ball, Box, Domain
from verify.core.errors import InfeasibleError
from verify.core.networks import FrozenNetwork, TargetNetwork, minimal_width, paper_width
from verify.core.scale_equation import khatri_rao
from verify.core.tolerances import EPS, evaluation_tolerance
from verify.job.sparse_claims import SPARSE_CLAIMS

if TYPE_CHECKING:
    from verify.job.progress import Sweep

__all__ = [
    "DOMAIN_KINDS",
    "SEPARATION",
    "Claim",
    "Config",
    "environment",
    "khatri_rao_residual",
    "make_console",
    "make_domain",
    "minimal_system_separation",
    "render_console",
    "render_markdown",
    "run_claims",
    "run_properties",
    "write_report",
]

SEPARATION = math.sqrt(EPS)
"""Threshold of the tightness evidence: a relative least-squares residual, or a smallest-over-largest
singular value ratio, above ``sqrt(eps) ≈ 1.5e-8`` is not rounding error. A backward-stable solve of
these small systems (at most 144 × 144 here) perturbs either figure by about ``max(shape) · eps ≈
3e-14`` relative (Weyl's inequality for singular values); ``sqrt(eps)`` is more than five orders of
magnitude above that, so a figure above it proves the exact system is unsolvable (paper mode) or
nonsingular (minimal mode)."""

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
        ``"quick"``, ``"full"`` or ``"custom"``: how the grid was chosen (used in the commands).
    """

    architectures: tuple[tuple[int, ...], ...]
    seeds: tuple[int, ...] = (0, 1, 2)
    modes: tuple[str, ...] = MODES
    domains: tuple[str, ...] = DOMAIN_KINDS
    points: int = 512
    properties: bool = True
    only: tuple[str, ...] = ()
    grid: str = "custom"

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

    @classmethod
    def quick(cls, seeds: int = 3, **options: Any) -> Config:
        """The default grid: every depth-1 pair of `WIDTHS`, 20 deeper targets, 512 fresh points."""
        return cls(_quick_architectures(), tuple(range(seeds)), points=512, grid="quick", **options)

    @classmethod
    def full(cls, seeds: int = 5, **options: Any) -> Config:
        """The bigger grid: the quick one plus 48 random deeper targets, 2048 fresh points."""
        return cls(_full_architectures(), tuple(range(seeds)), points=2048, grid="full", **options)

    def claim_names(self) -> list[str]:
        """Names of every claim this configuration can run, before the ``only`` filter."""
        names = [f"exact/{m}/{k}" for m in self.modes for k in self.domains]
        names += [f"tight/{m}" for m in self.modes]
        names += [f"threshold/{m}" for m in self.modes]
        names += ["certificate/exact", "paired/Rd"]
        names += list(SPARSE_CLAIMS)
        names += ["baseline/training", "solvers/speed"]
        if self.properties:
            names.append("properties")
        return names

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

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description of the grid."""
        return {
            "grid": self.grid,
            "architectures": [list(a) for a in self.architectures],
            "seeds": list(self.seeds),
            "modes": list(self.modes),
            "domains": {k: _DOMAINS[k][1] for k in self.domains},
            "points": self.points,
            "properties": self.properties,
            "only": list(self.only),
        }


@dataclass
class Claim:
    """One checked claim: its verdict, figures and the command that reproduces it.

    Attributes
    ----------
    name : str
        ``exact/<mode>/<domain>``, ``tight/<mode>`` or ``properties``.
    statement : str
        What is claimed, in one sentence.
    status : str
        ``"passed"``, ``"failed"`` or ``"skipped"`` (could not be checked: not a pass).
    figures : dict
        Aggregate figures (counts, worst errors, times), JSON-ready.
    command : str
        Shell command that reruns the claim.
    rows : list of dict
        Per-depth breakdown (exactness, tightness) for the tables.
    failures : list of dict
        Failing cases, each with a reason and a ``reproduce`` command (at most `_MAX_FAILURES`).
    seconds : float
        Wall time of the claim.
    """

    name: str
    statement: str
    status: str
    figures: dict[str, Any]
    command: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """True only for status ``"passed"``."""
        return self.status == "passed"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (non-finite floats become the strings ``"inf"``, ``"nan"``)."""
        return _json_ready(
            {
                "name": self.name,
                "passed": self.passed,
                "status": self.status,
                "statement": self.statement,
                "command": self.command,
                "seconds": self.seconds,
                "figures": self.figures,
                "rows": self.rows,
                "failures": self.failures,
            }
        )


_MAX_FAILURES = 20
"""Failing cases kept per claim (all are counted)."""


# --------------------------------------------------------------------------------------------------
# Exactness


def _domain_code(domain: Domain) -> str:
    spec = domain.to_dict()
    if spec["kind"] == "ball":
        return f"verify.Ball({spec['radius']!r}, center={spec['center']!r})"
    return f"verify.Box({spec['lo']!r}, {spec['hi']!r})"


def _exact_reproducer(mode: str, widths: Sequence[int], seed: int, domain: Domain, points: int) -> str:
    code = (
        "import numpy as np, verify; "
        f"t = verify.TargetNetwork.random({list(widths)!r}, seed={seed}); "
        f"fr = verify.FrozenNetwork.for_target(t, width={mode!r}, seed={1000 + seed}); "
        f"dom = {_domain_code(domain)}; "
        f"r = verify.reconstruct(t, fr, dom, mode={mode!r}); "
        f"x = dom.sample({points}, np.random.default_rng({2000 + seed})); "
        "print(r.certificate.holds, np.abs(r.network(x) - t(x)).max() / np.abs(t(x)).max())"
    )
    return f'python -c "{code}"'


def exact_case(mode: str, widths: tuple[int, ...], seed: int, kind: str, points: int) -> dict[str, Any]:
    """Build, reconstruct and check one case on fresh points; a failing case is recorded, never raised."""
    start = time.perf_counter()
    case: dict[str, Any] = {"mode": mode, "widths": list(widths), "seed": seed, "domain": kind}
    try:
        case |= _exact_check(mode, widths, seed, kind, points)
    except Exception as error:  # any error (InfeasibleError, CertificateError, a bug) fails this case only
        case |= {"passed": False, "holds": False, "reason": f"{type(error).__name__}: {error}"}
    case["seconds"] = time.perf_counter() - start
    return case


def _exact_check(mode: str, widths: tuple[int, ...], seed: int, kind: str, points: int) -> dict[str, Any]:
    domain = make_domain(kind, widths[0])
    target = TargetNetwork.random(widths, seed=seed)
    frozen = FrozenNetwork.for_target(target, width=mode, seed=1000 + seed)
    result = verify.reconstruct(target, frozen, domain, mode=mode)
    certificate = result.certificate
    x = domain.sample(points, np.random.default_rng(2000 + seed))
    f = target(x)
    difference = np.abs(result.network(x) - f)
    scale = frozen.magnitude(x, result.gamma, result.beta) + target.magnitude(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(difference == 0, 0.0, difference / scale)
    error_ratio = float(ratios.max())
    tolerance = evaluation_tolerance(frozen.widths, target.widths, [b.residual_ratio for b in certificate.blocks])
    relative_error = float(difference.max() / max(float(np.abs(f).max()), np.finfo(float).tiny))
    rtol = certificate.sampled.rtol
    holds = bool(certificate.holds)
    within = bool(error_ratio <= tolerance and relative_error <= rtol)
    figures: dict[str, Any] = {
        "passed": holds and within,
        "holds": holds,
        "max_relative_error": relative_error,
        "rtol": rtol,
        "certificate_relative_error": certificate.sampled.max_relative_error,
        "error_ratio": error_ratio,
        "tolerance": tolerance,
        "error_over_tolerance": error_ratio / tolerance if tolerance > 0 else math.inf,
        "max_condition": float(certificate.max_condition),
        "max_scale": float(max(np.abs(scale).max(initial=0.0) for scale in result.scales)),
        "min_margin": float(certificate.min_margin),
    }
    if not figures["passed"]:
        reasons = [] if holds else list(certificate.failures())
        if not error_ratio <= tolerance:
            reasons.append(
                f"fresh points: error ratio {error_ratio:.3g} exceeds the rounding tolerance {tolerance:.3g}"
            )
        if not relative_error <= rtol:
            reasons.append(f"fresh points: max |g-f|/max|f| = {relative_error:.3g} exceeds rtol = {rtol:.3g}")
        figures["reason"] = "; ".join(reasons)
    return figures


def _exact_claim(config: Config, mode: str, kind: str, sweep: Sweep) -> Claim:
    name = f"exact/{mode}/{kind}"
    start = time.perf_counter()
    cases = sweep.map(
        exact_case,
        [(mode, widths, seed, kind, config.points) for widths in config.architectures for seed in config.seeds],
    )
    rows = []
    for depth in sorted({len(c["widths"]) - 1 for c in cases}):
        group = [c for c in cases if len(c["widths"]) - 1 == depth]
        rows.append({"depth": depth, **_exact_figures(group)})
    failures = []
    for c in cases:
        if not c["passed"] and len(failures) < _MAX_FAILURES:
            domain = make_domain(kind, c["widths"][0])
            failures.append(
                {
                    "case": f"widths={c['widths']} seed={c['seed']}",
                    "reason": c.get("reason", ""),
                    "reproduce": _exact_reproducer(mode, c["widths"], c["seed"], domain, config.points),
                }
            )
    figures = _exact_figures(cases)
    return Claim(
        name=name,
        statement=(
            f"mode {mode!r} on {_DOMAINS[kind][1]}: the certificate holds and g = f on {config.points} fresh points "
            "(boundary included) within the certificate's own tolerances (rounding bound and rtol)"
        ),
        status="passed" if figures["passed"] == figures["cases"] > 0 else "failed",
        figures=figures,
        command=config.command(name),
        rows=rows,
        failures=failures,
        seconds=time.perf_counter() - start,
    )


def _worst(cases: list[dict[str, Any]], key: str, pick: Callable[..., float] = max) -> float:
    values = [c[key] for c in cases if key in c]
    return float(pick(values)) if values else math.nan


def _exact_figures(cases: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "cases": len(cases),
        "architectures": len({tuple(c["widths"]) for c in cases}),
        "max_width": max(max(c["widths"]) for c in cases),
        "certificates_hold": sum(c["holds"] for c in cases),
        "passed": sum(c["passed"] for c in cases),
        "max_relative_error": _worst(cases, "max_relative_error"),
        "rtol": _worst(cases, "rtol", min),
        "max_certificate_relative_error": _worst(cases, "certificate_relative_error"),
        "max_error_over_tolerance": _worst(cases, "error_over_tolerance"),
        "max_condition": _worst(cases, "max_condition"),
        "max_scale": _worst(cases, "max_scale"),
        "min_margin": _worst(cases, "min_margin", min),
        "seconds": sum(c["seconds"] for c in cases),
    }


# --------------------------------------------------------------------------------------------------
# Tightness


def khatri_rao_residual(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> float:
    """Relative least-squares residual ``min_γ ||K γ − vec(W)|| / ||vec(W)||`` of the paper-mode system.

    ``K = verify.khatri_rao(A, B)``, shape ``(d_out·d_in, n)``; solved with `scipy.linalg.lstsq`.
    Zero means ``A diag(γ) B = W`` is solvable; a value far above `SEPARATION` means it is not.
    """
    k = khatri_rao(a, b)
    rhs = np.asarray(w, dtype=float).reshape(-1)
    gamma = scipy.linalg.lstsq(k, rhs)[0]
    return float(np.linalg.norm(k @ gamma - rhs) / np.linalg.norm(rhs))


def minimal_system_separation(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> tuple[float, tuple[int, int]]:
    """Smallest over largest singular value of the minimal-mode homogeneous matrix, and its shape.

    The unknowns ``(ρ, γ)`` of ``diag(ρ) W = A diag(γ) B`` satisfy ``[W-part | −K] (ρ, γ) = 0`` where
    column ``a`` of the W-part holds row ``a`` of ``W`` in the equations ``(a, ·)`` (row-major, as
    ``K = verify.khatri_rao(A, B)``). Columns are scaled to unit norm first (a change of unknowns,
    which does not change whether the matrix is singular). One neuron below the minimal width the
    matrix is square, and a ratio far above `SEPARATION` proves only the trivial solution exists.
    """
    w = np.asarray(w, dtype=float)
    d_out, d_in = w.shape
    weight_part = np.zeros((d_out * d_in, d_out))
    for row in range(d_out):
        weight_part[row * d_in : (row + 1) * d_in, row] = w[row]
    system = np.hstack([weight_part, -khatri_rao(a, b)])
    norms = np.linalg.norm(system, axis=0)
    norms[norms == 0] = 1.0
    singular = scipy.linalg.svdvals(system / norms)
    ratio = float(singular[-1] / singular[0]) if singular[0] > 0 else 0.0
    if system.shape[0] < system.shape[1]:
        ratio = 0.0  # more unknowns than equations: a non-trivial null space always exists
    return ratio, (int(system.shape[0]), int(system.shape[1]))


def _tight_reproducer(mode: str, widths: Sequence[int], seed: int, odd: Sequence[int]) -> str:
    code = (
        "import verify; "
        f"t = verify.TargetNetwork.random({list(widths)!r}, seed={seed}); "
        f"fr = verify.FrozenNetwork.for_target(t, width={list(odd)!r}, seed={1000 + seed}); "
        f"verify.reconstruct(t, fr, verify.Ball(1.0), mode={mode!r})"
    )
    return f'python -c "{code}"'


def tight_case(mode: str, widths: tuple[int, ...], seed: int, block: int) -> dict[str, Any]:
    """One neuron below ``mode``'s width in ``block``: refused by reconstruct, and unsolvable."""
    start = time.perf_counter()
    rule = paper_width if mode == "paper" else minimal_width
    odd = [rule(widths[k], widths[k - 1]) for k in range(1, len(widths))]
    odd[block - 1] -= 1
    case: dict[str, Any] = {"mode": mode, "widths": list(widths), "seed": seed, "block": block, "odd_widths": odd}
    try:
        case |= _tight_check(mode, widths, seed, block, odd)
    except Exception as error:  # a bug in the check itself fails this case only
        case |= {"passed": False, "refused": False, "unsolvable": False, "reason": f"{type(error).__name__}: {error}"}
    case["seconds"] = time.perf_counter() - start
    if "reason" in case:
        case["reproduce"] = _tight_reproducer(mode, widths, seed, odd)
    return case


def _tight_check(mode: str, widths: tuple[int, ...], seed: int, block: int, odd: list[int]) -> dict[str, Any]:
    target = TargetNetwork.random(widths, seed=seed)
    frozen = FrozenNetwork.for_target(target, width=odd, seed=1000 + seed)
    reasons = []
    try:
        verify.reconstruct(target, frozen, Ball(1.0), mode=mode)
    except InfeasibleError as error:
        refused = error.block == block and f"block {block}" in str(error)
        if not refused:
            reasons.append(f"InfeasibleError names block {error.block}, not {block}: {error}")
    except Exception as error:  # CertificateError, another ValueError, or a bug: not the refusal claimed
        refused = False
        reasons.append(f"expected InfeasibleError for block {block}, got {type(error).__name__}: {error}")
    else:
        refused = False
        reasons.append(f"reconstruct returned a result at odd width {odd[block - 1]} in block {block}")
    d_out, d_in = widths[block], widths[block - 1]
    b_mat = frozen.weights[2 * block - 2][:, :d_in]
    a_mat = frozen.weights[2 * block - 1][:d_out, :]
    w = target.weights[block - 1]
    if mode == "paper":
        evidence = khatri_rao_residual(a_mat, b_mat, w)
        square = True
    else:
        evidence, shape = minimal_system_separation(a_mat, b_mat, w)
        square = shape[0] == shape[1]
        if not square:
            reasons.append(f"the homogeneous system has shape {shape}, not square")
    unsolvable = bool(evidence > SEPARATION)
    if not unsolvable:
        reasons.append(f"evidence {evidence:.3g} is not above {SEPARATION:.3g}: the system may be solvable")
    figures: dict[str, Any] = {
        "refused": refused,
        "evidence": evidence,
        "unsolvable": unsolvable,
        "passed": refused and unsolvable and square,
    }
    if reasons:
        figures["reason"] = "; ".join(reasons)
    return figures


def _tight_claim(config: Config, mode: str, sweep: Sweep) -> Claim:
    name = f"tight/{mode}"
    start = time.perf_counter()
    rule = paper_width if mode == "paper" else minimal_width
    arguments, skipped = [], 0
    for widths in config.architectures:
        for seed in config.seeds:
            for block in range(1, len(widths)):
                if rule(widths[block], widths[block - 1]) - 1 < 1:
                    skipped += 1  # the width would be 0: nothing to test
                    continue
                arguments.append((mode, widths, seed, block))
    cases = sweep.map(tight_case, arguments)
    rows = []
    for depth in sorted({len(c["widths"]) - 1 for c in cases}):
        group = [c for c in cases if len(c["widths"]) - 1 == depth]
        rows.append({"depth": depth, **_tight_figures(group)})
    failures = [
        {
            "case": f"widths={c['widths']} seed={c['seed']} block={c['block']}",
            "reason": c["reason"],
            "reproduce": c["reproduce"],
        }
        for c in cases
        if not c["passed"]
    ][:_MAX_FAILURES]
    figures = _tight_figures(cases) | {"skipped_blocks": skipped, "threshold": SEPARATION}
    evidence = (
        "relative least-squares residual of K γ = vec(W)"
        if mode == "paper"
        else ("σ_min/σ_max of the square matrix [W-part | -K]")
    )
    return Claim(
        name=name,
        statement=(
            f"one neuron below the {mode} width in one block, reconstruct raises InfeasibleError naming that block, "
            f"and the {evidence} is above sqrt(eps) = {SEPARATION:.2g} (the system has no solution)"
        ),
        status="passed" if figures["passed"] == figures["blocks"] > 0 else "failed",
        figures=figures,
        command=config.command(name),
        rows=rows,
        failures=failures,
        seconds=time.perf_counter() - start,
    )


def _tight_figures(cases: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "blocks": len(cases),
        "refused": sum(c["refused"] for c in cases),
        "unsolvable": sum(c["unsolvable"] for c in cases),
        "passed": sum(c["passed"] for c in cases),
        "min_evidence": _worst(cases, "evidence", min),
        "seconds": sum(c["seconds"] for c in cases),
    }


# --------------------------------------------------------------------------------------------------
# Hypothesis properties

_PROPERTIES_STATEMENT = "the Hypothesis property suite (properties/) passes under the thorough profile"


def _properties_dir() -> Path | None:
    """The ``properties`` package next to the installed ``verify`` (a source checkout), or None."""
    candidate = Path(verify.__file__).resolve().parent.parent / "properties"
    return candidate if (candidate / "__init__.py").is_file() else None


def run_properties(timeout: float | None = None) -> Claim:
    """Run ``pytest properties -q -p no:cacheprovider`` in a subprocess with the thorough profile.

    ``VERIFY_HYPOTHESIS_PROFILE`` is set to ``thorough`` unless already set. The claim passes iff
    pytest exits 0 with at least one passed test and no failure or error; it is ``"skipped"`` (which
    is not a pass) when there is no source checkout next to ``verify`` or pytest is not importable.
    """
    directory = _properties_dir()
    profile = os.environ.get("VERIFY_HYPOTHESIS_PROFILE", "thorough")
    command = f"VERIFY_HYPOTHESIS_PROFILE={profile} python -m pytest properties -q -p no:cacheprovider"
    reason = None
    if directory is None:
        reason = f"no properties/ package next to {Path(verify.__file__).resolve().parent} (not a source checkout)"
    elif importlib.util.find_spec("pytest") is None:
        reason = "pytest is not importable (install the 'test' extra: pip install -e '.[test]')"
    if reason is not None:
        return Claim("properties", _PROPERTIES_STATEMENT, "skipped", {"reason": reason, "profile": profile}, command)
    start = time.perf_counter()
    env = dict(os.environ)
    env["VERIFY_HYPOTHESIS_PROFILE"] = profile
    argv = [sys.executable, "-m", "pytest", "properties", "-q", "-p", "no:cacheprovider"]
    try:
        done = subprocess.run(
            argv, cwd=directory.parent, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        figures = {"profile": profile, "reason": f"pytest did not finish within {timeout} s"}
        return Claim(
            "properties", _PROPERTIES_STATEMENT, "failed", figures, command, seconds=time.perf_counter() - start
        )
    output = (done.stdout + done.stderr).strip().splitlines()
    counts = _pytest_counts(output)
    failing = [line.split(" ", 1)[1] for line in output if line.startswith(("FAILED ", "ERROR "))]
    figures: dict[str, Any] = {"profile": profile, "exit_code": done.returncode, **counts}
    figures |= {"failing_tests": failing, "tail": output[-15:]}
    passed = done.returncode == 0 and counts["passed"] > 0 and counts["failed"] == counts["errors"] == 0
    if not passed:
        figures["reason"] = _pytest_reason(done.returncode, counts)
    return Claim(
        "properties",
        _PROPERTIES_STATEMENT,
        "passed" if passed else "failed",
        figures,
        command,
        seconds=time.perf_counter() - start,
    )


def _pytest_counts(lines: Sequence[str]) -> dict[str, int]:
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0, "xfailed": 0, "xpassed": 0}
    summary = next((line for line in reversed(lines) if re.search(r"\d+ (passed|failed|error|skipped)", line)), "")
    for number, word in re.findall(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)", summary):
        counts["errors" if word.startswith("error") else word] += int(number)
    return counts


def _pytest_reason(code: int, counts: dict[str, int]) -> str:
    if code == 5 or counts["passed"] == 0:
        return f"pytest collected no passing test (exit code {code}): an empty suite proves nothing"
    return f"pytest exit code {code}: {counts['failed']} failed, {counts['errors']} errors"


# --------------------------------------------------------------------------------------------------
# The job


def run_claims(
    config: Config, progress: Callable[[str], None] | None = None, sweep: Sweep | None = None
) -> list[Claim]:
    """Check every selected claim of ``config`` and return them in report order.

    Parameters
    ----------
    config : Config
        The grid and the selection (``config.only``, ``config.properties``).
    progress : callable, optional
        Called with each claim's name before it runs (for a status line).
    sweep : verify.job.progress.Sweep, optional
        Where the claims' cases run and how their progress is drawn; the default runs them one
        after another in this process, silently. Results do not depend on it (every case is seeded).

    Returns
    -------
    list of Claim
        In the order of `Config.claim_names`. Failing cases never raise: they make their claim fail,
        with reasons and reproducers.
    """
    from verify.job.progress import Sweep

    sweep = sweep if sweep is not None else Sweep()
    claims = []
    for name in config.claim_names():
        if not config.selected(name):
            continue
        if progress is not None:
            progress(name)
        sweep.start(name)
        claims.append(_run_claim(config, name, sweep))
        sweep.finish()
    return claims


def _run_claim(config: Config, name: str, sweep: Sweep) -> Claim:
    kind, *rest = name.split("/")
    if kind == "exact":
        return _exact_claim(config, rest[0], rest[1], sweep)
    if kind == "tight":
        return _tight_claim(config, rest[0], sweep)
    if kind == "threshold":
        from verify.job.width_claims import threshold_claim

        return threshold_claim(config, name, sweep)
    if name == "paired/Rd":
        from verify.job.paired_claim import paired_claim

        return paired_claim(config, sweep)
    if name in ("certificate/exact", "solvers/speed"):
        from verify.job.solver_claims import solver_claim

        return solver_claim(config, name, sweep)
    if kind == "baseline":
        from verify.job.baseline import baseline_claim

        return baseline_claim(config)
    if kind == "sparse":
        from verify.job.sparse_claims import sparse_claim

        return sparse_claim(config, name, sweep)
    return run_properties()


def _format(value: Any, digits: int = 2) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.{digits}e}"
    return str(value)


def _verdict(claim: Claim) -> str:
    return {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}[claim.status]


def _summary(claim: Claim) -> str:
    f = claim.figures
    if claim.name.startswith("exact/"):
        return (
            f"{f['passed']}/{f['cases']} cases pass ({f['architectures']} targets, widths ≤ {f['max_width']}); "
            f"max |g-f|/max|f| {_format(f['max_relative_error'])} (rtol {_format(f['rtol'], 0)}); "
            f"worst error/tolerance {_format(f['max_error_over_tolerance'])}; "
            f"max condition {_format(f['max_condition'])}; max |scale| {_format(f['max_scale'])}"
        )
    if claim.name.startswith("tight/"):
        what = "LS residual" if claim.name.endswith("paper") else "σ_min/σ_max"
        return (
            f"{f['refused']}/{f['blocks']} blocks refused, {f['unsolvable']}/{f['blocks']} unsolvable; "
            f"min {what} {_format(f['min_evidence'])} > {_format(f['threshold'])}"
        )
    if claim.name == "baseline/training" and claim.status != "skipped":
        return (
            f"construction {f['construction_seconds'] * 1e3:.1f} ms to error {f['construction_error']:.1e}; "
            f"training {f['training_budget_seconds']:g} s ({f['training_steps']} steps) to best error "
            f"{f['training_best_error']:.2e}: {f['time_ratio']:.0f}x the time, {f['error_ratio']:.1e}x the error"
        )
    if claim.name.startswith("threshold/"):
        return (
            f"{f['cases'] - f['wrong']}/{f['cases']} cases as predicted; success rate {f['rate_below']:.2f} below "
            f"the threshold, {f['rate_at_or_above']:.2f} at or above it ({len(f['shapes'])} block shapes)"
        )
    if claim.name == "paired/Rd":
        return (
            f"{f['passed']}/{f['cases']} cases exact on spheres of radius up to {max(f['radii']):g}; max |g-f|/max|f| "
            f"{_format(f['max_relative_error'])}, worst error/tolerance {_format(f['max_error_over_tolerance'])}; "
            f"unpaired control at radius 1e3: median error {_format(f['unpaired_median_relative_error_at_1e3'])}"
        )
    if claim.name == "certificate/exact":
        return (
            f"{f['passed']}/{f['cases']} exact certificates (residual exactly 0, g = f exactly on "
            f"{f['fresh_points']} rational points); perturbed controls rejected {f['controls_detected']}/{f['cases']}; "
            f"denominators up to {f['max_denominator_bits']} bits"
        )
    if claim.name == "solvers/speed":
        return (
            f"d = {f['d']}: iterative {f['iterative_ratio_vs_lstsq']:.1f}x and direct "
            f"{f['direct_ratio_vs_lstsq']:.1f}x faster than lstsq; "
            f"max relative difference {_format(f['max_relative_error'])}"
        )
    if claim.name == "sparse/map":
        fit = f["map"]["fit"]
        return (
            f"{f['cells']} cells (d = {f['map']['d']}, {f['map']['seeds']} seeds), {f['violations']} violations; "
            f"fitted p* = {fit['coefficient']:.3f}·c^{fit['exponent']:.2f}"
        )
    if claim.name == "sparse/rank":
        deficient = f["structurally_deficient"]
        return f"{f['agree']}/{f['cases']} masks: matching size = numerical rank ({deficient} rank-deficient)"
    if claim.name == "sparse/decision":
        return "; ".join(
            f"{m}: {c['agree']}/{c['cases']} agree ({c['feasible']} feasible, {c['infeasible']} not)"
            for m, c in f.items()
        )
    if claim.name == "sparse/phase":
        return f"p* decreasing in d: {f['decreasing']}; " + "; ".join(
            f"{k}: p* ~ d^{v['p_star_exponent']:.2f}, non-zeros/target ~ d^{v['multiple_exponent']:.2f}"
            for k, v in f["fits"].items()
        )
    if "reason" in f and claim.status == "skipped":
        return f"skipped: {f['reason']}"
    text = f"{f.get('passed', 0)} passed, {f.get('failed', 0)} failed, {f.get('errors', 0)} errors"
    text += f" (profile {f.get('profile')})"
    return text + (f"; {f['reason']}" if "reason" in f else "")


def _exact_table_rows(claims: Sequence[Claim]) -> list[list[str]]:
    rows = []
    for claim in claims:
        if not claim.name.startswith("exact/"):
            continue
        _, mode, kind = claim.name.split("/")
        for r in claim.rows:
            rows.append(
                [
                    mode,
                    kind,
                    str(r["depth"]),
                    str(r["architectures"]),
                    str(r["cases"]),
                    f"{r['certificates_hold']}/{r['cases']}",
                    f"{r['passed']}/{r['cases']}",
                    _format(r["max_relative_error"]),
                    _format(r["max_error_over_tolerance"]),
                    _format(r["max_condition"]),
                    _format(r["max_scale"]),
                    f"{r['seconds']:.2f}",
                ]
            )
    return rows


_EXACT_HEADER = [
    "mode",
    "domain",
    "depth",
    "targets",
    "cases",
    "cert holds",
    "pass",
    "max rel err",
    "worst err/tol",
    "max cond",
    "max |s|",
    "time (s)",
]


def _tight_table_rows(claims: Sequence[Claim]) -> list[list[str]]:
    rows = []
    for claim in claims:
        if not claim.name.startswith("tight/"):
            continue
        mode = claim.name.split("/")[1]
        for r in claim.rows:
            rows.append(
                [
                    mode,
                    str(r["depth"]),
                    str(r["blocks"]),
                    f"{r['refused']}/{r['blocks']}",
                    f"{r['unsolvable']}/{r['blocks']}",
                    _format(r["min_evidence"]),
                    f"{r['seconds']:.2f}",
                ]
            )
    return rows


_TIGHT_HEADER = [
    "mode",
    "depth",
    "blocks",
    "refused (right block)",
    "unsolvable",
    "min evidence",
    "time (s)",
]


def _phase_table_rows(claims: Sequence[Claim]) -> list[list[str]]:
    return [
        [
            f"{r['factor']:g}x",
            str(r["d"]),
            str(r["seeds"]),
            f"{r['p_star']:.4f}",
            f"{r['rate_at_0.8p']:.2f}",
            f"{r['rate_at_1.25p']:.2f}",
            f"{r['p_star_sqrt_d']:.3f}",
            f"{r['nonzeros_multiple']:.2f}",
            f"{r['multiple_over_sqrt_d']:.2f}",
        ]
        for claim in claims
        if claim.name == "sparse/phase"
        for r in claim.rows
    ]


_PHASE_HEADER = [
    "odd width",
    "d",
    "seeds",
    "p*",
    "P(full) at 0.8p*",
    "P(full) at 1.25p*",
    "p*·√d",
    "non-zeros / target",
    "(non-zeros / target) / √d",
]


def make_console() -> Any:
    """A `rich.console.Console` on stdout, at least 150 columns wide when stdout is not a terminal (logs)."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=max(console.width, 150))


def _width_table_rows(claims: Sequence[Claim]) -> tuple[list[str], list[list[str]]]:
    """Success rate per block shape (rows) and offset from the threshold (columns), both modes."""
    rows = [r for c in claims if c.name.startswith("threshold/") for r in c.rows]
    offsets = sorted({r["offset"] for r in rows})
    table: dict[tuple[str, str], dict[int, str]] = {}
    for r in rows:
        key = (r["mode"], f"{r['shape'][0]}x{r['shape'][1]}")
        table.setdefault(key, {})[r["offset"]] = f"{r['succeeded'] / r['cases']:.2f}"
    header = ["mode", "block", *(f"{o:+d}" for o in offsets)]
    return header, [[mode, shape, *(cells.get(o, "") for o in offsets)] for (mode, shape), cells in table.items()]


def _print_table(console: Any, title: str, header: Sequence[str], rows: Sequence[Sequence[str]], text: int) -> None:
    """Print a rich table whose first ``text`` columns are left-aligned labels, the rest numbers."""
    from rich.table import Table

    if not rows:
        return
    table = Table(title=title, title_justify="left")
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i < text else "right", no_wrap=i < text)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def render_console(claims: Sequence[Claim], console: Any = None) -> None:
    """Print the claims as rich tables (exactness, tightness, width, sparsity), then one line per claim."""
    from rich.table import Table

    if console is None:
        console = make_console()
    _print_table(
        console,
        "Exactness on the domain (fresh points, boundary included; rel err = max|g-f| / max|f|)",
        _EXACT_HEADER,
        _exact_table_rows(claims),
        text=2,
    )
    _print_table(
        console,
        "Tightness: one neuron below each mode's width (evidence: paper LS residual, minimal σ_min/σ_max)",
        _TIGHT_HEADER,
        _tight_table_rows(claims),
        text=1,
    )
    _print_table(
        console,
        "Success rate against odd width n − threshold (one block, all seeds)",
        *_width_table_rows(claims),
        text=2,
    )
    _print_table(
        console,
        "Sparsity phase transition: full generic rank of one d x d block, odd width c·d², Bernoulli(p) masks",
        _PHASE_HEADER,
        _phase_table_rows(claims),
        text=0,
    )
    table = Table(title="Claims", title_justify="left")
    table.add_column("claim")
    table.add_column("verdict")
    table.add_column("figures")
    table.add_column("time (s)", justify="right")
    styles = {"passed": "bold green", "failed": "bold red", "skipped": "bold yellow"}
    for claim in claims:
        verdict = f"[{styles[claim.status]}]{_verdict(claim)}[/]"
        table.add_row(claim.name, verdict, _summary(claim), f"{claim.seconds:.1f}")
    console.print(table)
    for claim in claims:
        for failure in claim.failures[:5]:
            console.print(f"[red]{claim.name}[/] {failure['case']}: {failure['reason']}", highlight=False)
            if "reproduce" in failure:
                console.print(f"  reproduce: {failure['reproduce']}", highlight=False, soft_wrap=True)


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(header), "|" + "|".join(" --- " for _ in header) + "|", *(line(row) for row in rows)])


def _plot(plots: dict[str, str], key: str, caption: str) -> list[str]:
    """Markdown lines embedding figure ``key`` (a path relative to the report) if it was written."""
    return [f"![{caption}]({plots[key]})", ""] if key in plots else []


def _rows_table(rows: Sequence[dict[str, Any]], columns: dict[str, str]) -> str:
    """A markdown table of ``rows`` with ``columns`` mapping a header to its row key."""

    def cell(value: Any) -> str:
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    return _markdown_table(list(columns), [[cell(r.get(key, "")) for key in columns.values()] for r in rows])


def _extra_sections(claims: Sequence[Claim], plots: dict[str, str]) -> list[str]:
    """Sections of the width-threshold, paired, exact-certificate and solver-speed claims."""
    by_name = {c.name: c for c in claims}
    out: list[str] = []
    threshold = [by_name[n] for n in ("threshold/paper", "threshold/minimal") if n in by_name]
    if threshold:
        out += [
            "## Success rate against width",
            "",
            *_plot(plots, "width", "Success rate against odd width minus the threshold, paper and minimal mode"),
            "One block `[d_in, d_out]` per shape, odd width `n` from threshold − 3 to threshold + 3 (paper "
            "`d_out·d_in`, minimal `d_out(d_in − 1) + 1`), every seed. Success = `reconstruct` returns a "
            "certified result; below the threshold every case must be refused with `InfeasibleError`.",
            "",
        ]
        header, rows = _width_table_rows(threshold)
        out += ["Success rate per block shape and `n − threshold`:", "", _markdown_table(header, rows), ""]
    if "paired/Rd" in by_name:
        claim = by_name["paired/Rd"]
        out += [
            "## Paired networks on all of R^d",
            "",
            f"{claim.statement}. {_summary(claim)}.",
            "",
            _rows_table(
                claim.rows,
                {
                    "radius": "radius",
                    "cases": "cases",
                    "max |g−f| / max |f|": "max_relative_error",
                    "worst error / tolerance": "max_error_over_tolerance",
                },
            ),
            "",
        ]
    sections = (
        (
            "certificate/exact",
            "Exact rational certificate",
            {
                "target": "widths",
                "seed": "seed",
                "certificate": "exact_holds",
                "denominator bits": "max_denominator_bits",
                "one-ulp control rejected by": "control_failed_parts",
                "seconds": "seconds",
            },
        ),
        (
            "solvers/speed",
            "Solver speed",
            {
                "method": "method",
                "d": "d",
                "n": "n",
                "seconds": "seconds",
                "lstsq on the same system (s)": "baseline_seconds",
                "speed-up vs lstsq": "ratio_vs_lstsq",
                "relative difference to lstsq": "relative_error",
            },
        ),
    )
    for name, title, columns in sections:
        if name in by_name:
            claim = by_name[name]
            out += [f"## {title}", "", f"{claim.statement}. {_summary(claim)}.", ""]
            if claim.rows:
                out += [_rows_table(claim.rows, columns), ""]
    return out


def render_markdown(
    claims: Sequence[Claim],
    config: Config,
    meta: dict[str, Any] | None = None,
    plots: dict[str, str] | None = None,
) -> str:
    """The markdown report: verdicts, tables, figures, failures, and the command of every claim.

    ``plots`` maps a figure name (``width``, ``density``, ``error_vs_time``) to its path relative to
    the report; the figures that are present are embedded.
    """
    meta = meta or {}
    plots = plots or {}
    passed = all(c.passed for c in claims)
    out = [
        "# Verification report",
        "",
        f"Overall: **{'PASS' if passed else 'FAIL'}** ({sum(c.passed for c in claims)}/{len(claims)} claims passed). "
        f"Generated by `{meta.get('command', 'python -m verify')}`"
        + (f" in {meta['wall_time_s']:.1f} s" if "wall_time_s" in meta else "")
        + ".",
        "",
        "## Claims",
        "",
        _markdown_table(
            ["claim", "verdict", "figures", "time (s)", "reproduce"],
            [[c.name, _verdict(c), _summary(c), f"{c.seconds:.1f}", f"`{c.command}`"] for c in claims],
        ),
        "",
    ]
    for claim in claims:
        out += [f"- **{claim.name}**: {claim.statement}."]
    out.append("")
    exact_rows = _exact_table_rows(claims)
    if exact_rows:
        out += [
            "## Exactness",
            "",
            "Per case: `TargetNetwork.random(widths, seed=s)`, `FrozenNetwork.for_target(target, width=mode, "
            f"seed=1000+s)`, `reconstruct(target, frozen, domain, mode=mode)`; then {config.points} fresh points "
            "`domain.sample(n, default_rng(2000+s))` (half on the boundary). A case passes iff the certificate holds "
            "and, on the fresh points, `max |g-f| / (|g|+|f|)` is within `evaluation_tolerance(...)` (the rounding "
            "bound; `worst err/tol` is that ratio over the tolerance, ≤ 1 passes) and `max |g-f| / max |f|` is "
            "within the certificate's `rtol`. `max rel err` is `max |g-f| / max |f|` over the fresh points. "
            "`max cond` is the largest condition number a block's solver reports; "
            "`max |s|` is the largest per-neuron scale `|γ|` or `|s'|` of any normalization: huge even-layer scales "
            "`s' = 1/ρ` (minimal mode, where the null space fixes ρ up to one factor) cancel against huge shifts and "
            "cost digits that the condition number does not show.",
            "",
            _markdown_table(_EXACT_HEADER, exact_rows),
            "",
        ]
    tight_rows = _tight_table_rows(claims)
    if tight_rows:
        out += [
            "## Tightness",
            "",
            "Per target and block: the odd layer of that block is one neuron below the mode's width "
            "(`paper_width - 1` or `minimal_width - 1`; blocks where that is 0 are skipped). Evidence that the "
            "block's system has no solution, independent of `reconstruct`: paper mode, the relative "
            "least-squares residual `min ||K γ - vec(W)|| / ||W||` (scipy.linalg.lstsq); minimal mode, "
            "`σ_min/σ_max` of the square, column-equilibrated matrix `[W-part | -K]` (scipy.linalg.svdvals). "
            f"Both must exceed sqrt(eps) = {SEPARATION:.3g}.",
            "",
            _markdown_table(_TIGHT_HEADER, tight_rows),
            "",
        ]
    phase_rows = _phase_table_rows(claims)
    if phase_rows:
        out += [
            "## Sparse frozen networks",
            "",
            *_plot(plots, "density", "Full-rank rate against density and width, with the fitted threshold"),
            "One square block (d_out = d_in = d), odd width n = c·d², independent Bernoulli(p) masks on A and B "
            "(nested across p for each seed). `p*` is where the fraction of seeds with full generic rank d² "
            "(maximum matching, docs/design.md §4) crosses 1/2, found by bisection in log p. "
            "Frozen non-zeros at p* are "
            "p*·2·c·d³, shown as a multiple of the target layer's d² weights; the paper's claim is about √d times "
            "the target's parameters, so the last column would be flat under that claim.",
            "",
            _markdown_table(_PHASE_HEADER, phase_rows),
            "",
        ]
    out += _extra_sections(claims, plots)
    for claim in claims:
        if claim.name == "baseline/training" and claim.rows:
            out += [
                "## Construction vs BN-only training",
                "",
                *_plot(plots, "error_vs_time", "Error against wall time: the construction and BN-only training"),
                f"{claim.statement}. {_summary(claim)}. Training curve (relative error on 1024 held-out points):",
                "",
                _markdown_table(
                    ["seconds", "max|g-f|/max|f|"],
                    [[f"{r['seconds']:.2f}", f"{r['relative_error']:.3e}"] for r in claim.rows],
                ),
                "",
            ]
    for claim in claims:
        if claim.name == "properties":
            out += ["## Property suite", "", f"`{claim.command}` (from the project root): {_summary(claim)}", ""]
            out += [f"- failing: `{test}`" for test in claim.figures.get("failing_tests", [])]
            if claim.figures.get("tail"):
                out += ["```", *claim.figures["tail"], "```", ""]
    failing = [(c, f) for c in claims for f in c.failures]
    if failing:
        out += ["## Failures", ""]
        for claim, failure in failing:
            out.append(f"- {claim.name}, {failure['case']}: {failure['reason']}")
            if "reproduce" in failure:
                out.append(f"  `{failure['reproduce']}`")
        out.append("")
    out += [
        "## Grid",
        "",
        f"- grid: {config.grid}; seeds {list(config.seeds)}; fresh points per case {config.points}",
        "- targets: " + ", ".join(str(list(a)) for a in config.architectures),
        "- domains: " + "; ".join(f"{k}: {_DOMAINS[k][1]}" for k in config.domains),
    ]
    if "versions" in meta:
        out.append("- versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
    out.append("")
    return "\n".join(out)


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else str(value)
    return value


def environment() -> dict[str, str]:
    """Versions of Python, NumPy, SciPy and verify, and the platform: recorded in the report."""
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "verify": verify.__version__,
        "platform": platform.platform(),
    }


_PLOTS = {
    "threshold/paper": ("width",),
    "threshold/minimal": ("width",),
    "sparse/map": ("density",),
    "baseline/training": ("error_vs_time",),
}
"""Which figure shows which claim (``plots`` of each claim in the JSON)."""


def write_report(
    claims: Sequence[Claim], out_dir: str | os.PathLike[str], config: Config, meta: dict[str, Any] | None = None
) -> tuple[Path, Path]:
    """Write ``verify.md``, ``verify.json`` and ``figures/*.png`` into ``out_dir`` (created if needed).

    Returns the paths of the markdown and the JSON. The JSON holds ``plots`` (figure name to path
    relative to ``out_dir``) and ``passed`` (every claim passed), ``config``, ``meta`` and ``claims``: a list of
    `Claim.to_dict` entries, each with ``name``, ``passed``, ``status``, ``figures`` and ``command``.
    """
    from verify.job.figures import write_figures

    meta = {"versions": environment()} | (meta or {})
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    plots = {key: path.relative_to(directory).as_posix() for key, path in write_figures(claims, directory).items()}
    markdown = directory / "verify.md"
    markdown.write_text(render_markdown(claims, config, meta, plots), encoding="utf-8")
    entries = []
    for claim in claims:
        entry = claim.to_dict()
        entry["plots"] = [plots[key] for key in _PLOTS.get(claim.name, ()) if key in plots]
        entries.append(entry)
    document = {
        "passed": all(c.passed for c in claims),
        "config": config.to_dict(),
        "meta": meta,
        "plots": plots,
        "claims": entries,
    }
    report = directory / "verify.json"
    report.write_text(json.dumps(_json_ready(document), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return markdown, report
