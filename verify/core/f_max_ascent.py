"""More points for ``f_max``: projected gradient ascent of ``|f_i|`` over the domain (docs/design.md §6.8).

``f_max`` (`verify.core.f_max`) is the largest ``|f̂_i(x)| − a_i(x)`` over points ``x`` that provably lie
in the domain: any such point gives a rigorous lower bound of ``max_D ‖f‖_∞``, however it was found. Random
sample points sit away from where ``|f_i|`` peaks (on a ball or box in ``d`` dimensions, the peak of a piece
of a ReLU network is on the boundary, at one direction), so this module looks for better points.

A dense ReLU target is affine on each of its linear regions: at ``x``, ``f_i(x) = J_i x + c`` with ``J_i``
the gradient along the active ReLUs (`gradient`). From the best sample points of the few most promising
``(output, sign)`` pairs, each step moves along ``σ J_i / ‖J_i‖``, projects onto the domain (a box by
clipping, a ball radially a hair inside its sphere, as `verify.core.domains.Ball.sample` draws its sphere),
tries halved steps, and keeps the best point whenever ``σ f_i`` grows (`ascend`). Nothing about the
search needs to be right: the caller evaluates the points it returns with its own rounding allowance and
keeps only those `verify.core.domains.Domain.contains` proves inside, so ``f_max`` stays a lower bound.
"""

from __future__ import annotations

import numpy as np

from verify.core.domains import Ball, Box, Domain
from verify.core.f_max import float64_allowance, sampled_f_max
from verify.core.networks import TargetNetwork

__all__ = ["PAIRS", "STARTS", "STEPS", "ascend", "ascended_f_max", "gradient"]

PAIRS = 4
"""How many ``(output, sign)`` pairs are climbed: those with the largest sampled ``σ f_i``."""
STARTS = 4
"""Starting points per pair: its best sample points."""
STEPS = 24
"""Ascent steps per start (each tries `HALVINGS` step lengths)."""
HALVINGS = 8
_INSIDE = 1.0 - 2.0**-36
"""A ball's points are projected to radius ``r (1 − 2^-36)`` at most (`verify.core.domains.Ball.sample`)."""


def gradient(target: TargetNetwork, x: np.ndarray, output: int) -> np.ndarray:
    """``∇ f_output`` at each row of ``x`` (shape ``(points, d_0)``): ``W_L[output]`` back through the active
    ReLUs (a ReLU at exactly 0 counts as inactive; any one-sided choice is a gradient of a neighbouring piece)."""
    z, masks = np.atleast_2d(np.asarray(x, dtype=np.float64)), []
    for w, b in zip(target.weights[:-1], target.biases[:-1], strict=True):
        h = z @ w.T + b
        masks.append(h > 0)
        z = np.maximum(h, 0.0)
    g = np.broadcast_to(target.weights[-1][output], (z.shape[0], target.weights[-1].shape[1])).copy()
    for w, mask in zip(reversed(target.weights[:-1]), reversed(masks), strict=True):
        g = (g * mask) @ w
    return g


def _project(domain: Domain, x: np.ndarray) -> np.ndarray:
    if isinstance(domain, Box):
        lo, hi = domain.bounding_box()
        return np.clip(x, lo, hi)
    if isinstance(domain, Ball):
        centre = domain.center
        offset = (x - centre) / domain.radius  # in radii: neither the squares overflow nor do they underflow
        norm = np.linalg.norm(offset, axis=1, keepdims=True)
        scale = np.where(norm > _INSIDE, _INSIDE / np.where(norm > 0, norm, 1.0), 1.0)
        return centre + (offset * scale) * domain.radius
    raise ValueError(f"ascend needs a resolved verify.Ball or verify.Box, got {type(domain).__name__}")


def ascend(target: TargetNetwork, domain: Domain, x: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Points of ``domain`` where some ``|f_i|`` is at least as large as at the best of ``x`` (module notes).

    Parameters
    ----------
    target : TargetNetwork
        The dense target.
    domain : Ball or Box
        Resolved to the target's input dimension.
    x, values : arrays of shape (points, d_0) and (points, d_L)
        Sample points of the domain and ``f`` there (the search starts from the best of them).

    Returns
    -------
    array of shape (count, d_0)
        The end point of every climb (the caller evaluates them and checks that they lie in the domain).
    """
    x, values = np.atleast_2d(np.asarray(x, dtype=np.float64)), np.atleast_2d(np.asarray(values, dtype=np.float64))
    if x.shape[0] != values.shape[0] or x.shape[0] == 0:
        raise ValueError(
            f"x and values must have the same number of points (at least one), got {x.shape}, {values.shape}"
        )
    lo, hi = domain.bounding_box()
    length = float(np.max(hi - lo))
    signed = np.concatenate([values, -values], axis=1)  # column i: f_i, column m + i: −f_i
    m = values.shape[1]
    pairs = np.argsort(-signed.max(axis=0), kind="stable")[:PAIRS]
    ends = []
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):  # a huge domain: such steps score -inf
        for pair in pairs:
            ends.append(_climb(target, domain, x, signed, int(pair), m, length))
    return np.concatenate(ends)


def _climb(
    target: TargetNetwork, domain: Domain, x: np.ndarray, signed: np.ndarray, pair: int, m: int, length: float
) -> np.ndarray:
    """One ``(output, sign)`` pair's climbs from its best `STARTS` points (module notes)."""
    output, sign = int(pair % m), (1.0 if pair < m else -1.0)
    best = _project(domain, x[np.argsort(-signed[:, pair], kind="stable")[:STARTS]])
    score = sign * target(best)[:, output]
    for _ in range(STEPS):
        direction = sign * gradient(target, best, output)
        norms = np.linalg.norm(direction, axis=1, keepdims=True)
        direction = direction / np.where(norms > 0, norms, 1.0)
        steps = length * 2.0 ** -np.arange(HALVINGS)
        trials = _project(
            domain, (best[:, None, :] + steps[None, :, None] * direction[:, None, :]).reshape(-1, x.shape[1])
        )
        trial_scores = (sign * target(trials)[:, output]).reshape(len(best), HALVINGS)
        trial_scores = np.where(np.isfinite(trial_scores), trial_scores, -np.inf)
        choice = np.argmax(trial_scores, axis=1)
        better = trial_scores[np.arange(len(best)), choice] > score
        if not np.any(better):
            break
        chosen = trials.reshape(len(best), HALVINGS, -1)[np.arange(len(best)), choice]
        best = np.where(better[:, None], chosen, best)
        score = np.where(better, trial_scores[np.arange(len(best)), choice], score)
    return best


def ascended_f_max(target: TargetNetwork, domain: Domain | None, x: np.ndarray, values: np.ndarray) -> float:
    """``f_max`` (`verify.core.f_max.sampled_f_max`) over the points `ascend` climbs to from ``x`` (``values =
    f(x)``), each evaluated in float64 with its rounding allowance and counted only where ``domain`` provably
    contains it; 0 on ``R^d`` (``domain=None``: the unit cube's samples are not climbed)."""
    if domain is None:
        return 0.0
    points = ascend(target, domain, x, values)
    allowance = float64_allowance(target.magnitude(points), sum(d + 2 for d in target.widths[:-1]))
    return sampled_f_max(target(points), allowance, domain.contains(points))
