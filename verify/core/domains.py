"""Bounded input domains: a Euclidean ball and an axis-aligned box.

A domain answers the one question the bias shift needs (docs/design.md §2): for an affine map
``h = B z + c`` the exact range of every coordinate of ``h`` over the domain, as a centre and a
radius. It also draws sample points, boundary included, for the certificate's sampled check.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from verify.core.interop import to_host
from verify.core.validate import as_array, as_real

__all__ = ["AffineRange", "Ball", "Box", "Domain"]

_SPHERE = 1.0 - 2.0**-36
"""Radius (relative) of a ball's "sphere" sample points: inside the ball by far more than the rounding of
``c + r u`` and of `Ball.contains`'s test (about ``d · 1e-16``), and on the sphere to ``1.5e-11``."""


@dataclass(frozen=True)
class AffineRange:
    """Range of each coordinate of ``h = B z + c`` over a region: ``h_i ∈ [mid_i - rad_i, mid_i + rad_i]``.

    ``size_i`` bounds ``|B_i| |z| + |c_i|`` over the region: the magnitude that rounding errors of
    ``h_i`` scale with.
    """

    mid: np.ndarray
    rad: np.ndarray
    size: np.ndarray


class Domain:
    """Base class of input domains (`Ball`, `Box`)."""

    dim: int | None

    def resolve(self, dim: int) -> Domain:
        """Return this domain in dimension ``dim``, or raise ValueError if it has another dimension."""
        raise NotImplementedError

    def affine_range(self, weight: np.ndarray, bias: np.ndarray) -> AffineRange:
        """Exact coordinate ranges of ``weight @ z + bias`` for ``z`` in the domain."""
        raise NotImplementedError

    def bounding_box(self) -> tuple[np.ndarray, np.ndarray]:
        """The smallest box ``(lo, hi)`` containing the domain."""
        raise NotImplementedError

    def sample(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """``count`` points of the domain, about half on its boundary, as a ``(count, dim)`` array."""
        raise NotImplementedError

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Per point of ``points`` (``(count, dim)``): True only if it provably lies in the domain (rounding
        of the test included), so that a figure taken over those points is one of the domain."""
        raise NotImplementedError

    def to_dict(self) -> dict:
        """A JSON-ready description of the domain."""
        raise NotImplementedError


class Ball(Domain):
    """The closed Euclidean ball ``{x : ||x - center||_2 <= radius}``.

    Parameters
    ----------
    radius : float
        Positive and finite.
    center : array of shape (d_0,) or None
        Defaults to the origin of whatever input dimension the ball is used with.
    """

    def __init__(self, radius: float = 1.0, center: object = None) -> None:
        self.radius = as_real(radius, "radius", positive=True)
        self.center = None if center is None else as_array(center, "center", (None,))
        if self.center is not None and self.center.shape[0] == 0:
            raise ValueError("center must have at least one coordinate (or be None: the origin of R^d_0)")
        self.dim = None if self.center is None else self.center.shape[0]

    def resolve(self, dim: int) -> Ball:
        """This ball, centred at the origin of R^dim if it had no centre; ValueError for another dimension."""
        if self.center is None:
            return Ball(self.radius, np.zeros(dim))
        if self.dim != dim:
            raise ValueError(f"domain center has dimension {self.dim} but the target's input has d_0 = {dim}")
        return self

    def _centre(self) -> np.ndarray:
        if self.center is None:
            raise ValueError("this Ball has no dimension yet; call resolve(d_0) first")
        return self.center

    def affine_range(self, weight: np.ndarray, bias: np.ndarray) -> AffineRange:
        """Exact ranges over the ball: ``mid = W c + b`` and ``rad_i = r ‖W_i‖₂`` (attained, Cauchy–Schwarz)."""
        centre = self._centre()
        with np.errstate(over="ignore", invalid="ignore"):
            rad = self.radius * np.linalg.norm(weight, axis=1)
            image = AffineRange(weight @ centre + bias, rad, np.abs(weight) @ np.abs(centre) + rad + np.abs(bias))
        return _finite(image, self)

    def bounding_box(self) -> tuple[np.ndarray, np.ndarray]:
        """``(c − r, c + r)`` in every coordinate."""
        centre = self._centre()
        return centre - self.radius, centre + self.radius

    def sample(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """The centre, then about half the points uniform in the ball and the rest on its sphere (drawn at
        radius ``r (1 − 2^-36)``, so that rounding cannot put them outside: `contains` proves them inside)."""
        centre = self._centre()
        d = centre.shape[0]
        directions = rng.standard_normal((count, d))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        radii = np.ones(count)
        inner = count // 2
        radii[:inner] = rng.uniform(size=inner) ** (1.0 / d)  # uniform in the ball
        radii[inner:] = _SPHERE  # a hair inside the sphere, so that `contains` can prove them inside
        points = centre + self.radius * radii[:, None] * directions
        points[0] = centre
        return points

    def contains(self, points: np.ndarray) -> np.ndarray:
        """``‖x − c‖₂ <= r``, tested on an upper bound of the norm. ``x − c`` is scaled by the power of two
        ``2^-e`` nearest its largest entry (exact, so neither the squares overflow nor do they underflow);
        ``fl(‖·‖₂) (1 + 2 γ_{d+4}) + d · 2^-1074`` then bounds the scaled norm (one rounding per difference,
        ``d`` squares summed, the square root; Higham §3.1; the last term for entries the scaling made
        subnormal), and is compared with ``r 2^-e``."""
        points = np.atleast_2d(np.asarray(points, dtype=np.float64))
        d = points.shape[1]
        with np.errstate(over="ignore", invalid="ignore"):
            difference = points - self._centre()
            largest = np.max(np.abs(difference), axis=1)
            _, exponent = np.frexp(np.where(np.isfinite(largest) & (largest > 0), largest, 1.0))
            scaled = np.ldexp(difference, -exponent[:, None])
            mu = (d + 4) * 2.0**-53
            norms = np.linalg.norm(scaled, axis=1) * (1 + 2 * mu / (1 - mu)) + d * 2.0**-1074
            return np.asarray(np.isfinite(largest) & (norms <= np.ldexp(self.radius, -exponent)))

    def to_dict(self) -> dict:
        """``{"kind": "ball", "radius", "center"}``."""
        return {"kind": "ball", "radius": self.radius, "center": None if self.center is None else self.center.tolist()}

    def __repr__(self) -> str:
        if self.center is None:
            return f"Ball(radius={self.radius!r})"
        return f"Ball(radius={self.radius!r}, center={self.center.tolist()})"


class Box(Domain):
    """The closed box ``{x : lo <= x <= hi}`` (componentwise).

    Parameters
    ----------
    lo, hi : arrays of shape (d_0,), or numbers
        Finite, with ``lo <= hi``. A number stands for the same bound in every coordinate: with two
        numbers (``Box(-1, 1)``) the box has no dimension until it is used with a network, which
        resolves it to ``[lo, hi]^d_0`` (`resolve`); a number beside an array is broadcast to it.
        For a convolutional network, arrays shaped like one input tensor (``(C, H, W)``, say).
    shape : tuple of int, optional
        The shape of one input tensor: ``Box(0, 1, shape=(3, 32, 32))`` is ``[0, 1]^{3×32×32}``.
        Implied by ``lo``/``hi`` arrays of two or more dimensions. A box over tensors keeps ``lo``
        and ``hi`` flat (C-order) and its shape in ``shape`` (None for a box over vectors).
    """

    def __init__(self, lo: object, hi: object, shape: Sequence[int] | None = None) -> None:
        if shape is None and max(np.ndim(to_host(lo)), np.ndim(to_host(hi))) > 1:
            shape = np.shape(to_host(lo)) if np.ndim(to_host(lo)) > 1 else np.shape(to_host(hi))
        self.shape = None if shape is None else _tensor_shape(shape)
        if self.shape is not None:  # bounds over a tensor (a convolution's input): stored flat, C-order
            lo, hi = (_flat(value, name, self.shape) for value, name in ((lo, "lo"), (hi, "hi")))
        self.lo = as_array(lo, "lo", () if np.ndim(to_host(lo)) == 0 else (None,))
        hi_shape = () if np.ndim(to_host(hi)) == 0 else (self.lo.shape if self.lo.ndim else (None,))
        self.hi = as_array(hi, "hi", hi_shape)
        if self.lo.ndim != self.hi.ndim:  # one number beside an array: the same bound in every coordinate
            dim = max(self.lo.size, self.hi.size)
            self.lo, self.hi = _broadcast(self.lo, dim), _broadcast(self.hi, dim)
        if self.shape is not None and self.lo.ndim == 0:  # numbers with shape=: [lo, hi]^shape
            self.lo, self.hi = _broadcast(self.lo, math.prod(self.shape)), _broadcast(self.hi, math.prod(self.shape))
        if self.lo.ndim == 1 and self.lo.shape[0] == 0:
            raise ValueError("lo and hi must have at least one coordinate")
        if np.any(self.lo > self.hi):
            bad = int(np.argmax(np.atleast_1d(self.lo > self.hi)))
            lo_bad, hi_bad = np.atleast_1d(self.lo)[bad], np.atleast_1d(self.hi)[bad]
            where = f"[{bad}]" if self.lo.ndim else ""
            raise ValueError(f"lo must be <= hi in every coordinate, but lo{where} = {lo_bad} > hi{where} = {hi_bad}")
        self.dim = self.lo.shape[0] if self.lo.ndim else None

    def resolve(self, dim: int) -> Box:
        """This box in dimension ``dim`` (numbers broadcast to ``[lo, hi]^dim``); ValueError for another dimension."""
        if self.dim is None:
            return Box(np.full(dim, float(self.lo)), np.full(dim, float(self.hi)))
        if self.dim != dim:
            raise ValueError(f"domain Box has dimension {self.dim} but the target's input has d_0 = {dim}")
        return self

    def resolve_shape(self, shape: Sequence[int], layer: str = "the first layer") -> Box:
        """This box over tensors of ``shape`` (a convolutional network's input, flattened C-order);
        ValueError naming ``layer`` when the box has another shape or size."""
        shape = _tensor_shape(shape)
        size = math.prod(shape)
        if self.shape is not None and self.shape != shape:
            raise ValueError(
                f"domain Box has shape {self.shape} but {layer} takes inputs of shape {shape}; give lo and hi of "
                f"shape {shape} (or numbers with shape={shape})"
            )
        if self.dim is not None and self.dim != size:
            raise ValueError(
                f"domain Box has {self.dim} coordinates but {layer} takes inputs of shape {shape} ({size} entries); "
                f"give lo and hi of shape {shape}"
            )
        flat = self.resolve(size)
        return Box(flat.lo, flat.hi, shape=shape)

    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        if self.dim is None:
            raise ValueError("this Box has no dimension yet (scalar bounds); call resolve(d_0) first")
        return self.lo, self.hi

    def affine_range(self, weight: np.ndarray, bias: np.ndarray) -> AffineRange:
        """Exact ranges over the box: ``mid = W c + b`` and ``rad = |W| h`` with centre ``c`` and half-widths ``h``."""
        lo, hi = self._bounds()
        with np.errstate(over="ignore", invalid="ignore"):
            centre = (lo + hi) / 2
            half = (hi - lo) / 2
            rad = np.abs(weight) @ half
            image = AffineRange(weight @ centre + bias, rad, np.abs(weight) @ np.abs(centre) + rad + np.abs(bias))
        return _finite(image, self)

    def bounding_box(self) -> tuple[np.ndarray, np.ndarray]:
        """``(lo, hi)`` itself."""
        return self._bounds()

    def sample(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """The centre, then about half the points uniform in the box, the rest on corners and faces."""
        lo, hi = self._bounds()
        d = self.dim
        t = rng.uniform(size=(count, d))
        inner = count // 2
        # Boundary points: corners first, then points with one coordinate pinned to a face.
        corners = rng.integers(0, 2, size=(count - inner, d)).astype(float)
        faces = t[inner:].copy()
        pinned = rng.integers(0, d, size=count - inner)
        rows = np.arange(count - inner)
        faces[rows, pinned] = corners[rows, pinned]
        boundary = np.where(rows[:, None] < (count - inner) // 2, corners, faces)
        t = np.concatenate([t[:inner], boundary])
        points = np.clip(lo + t * (hi - lo), lo, hi)  # corners exactly: lo + (hi − lo) may round past hi
        points[0] = np.clip((lo + hi) / 2, lo, hi)
        return points

    def contains(self, points: np.ndarray) -> np.ndarray:
        """``lo <= x <= hi`` in every coordinate (exact: comparisons do not round)."""
        lo, hi = self._bounds()
        points = np.atleast_2d(np.asarray(points, dtype=np.float64))
        return np.all((points >= lo) & (points <= hi), axis=1)

    def to_dict(self) -> dict:
        """``{"kind": "box", "lo", "hi"}`` (and ``"shape"`` for a box over tensors; ``lo``, ``hi`` stay flat)."""
        described = {"kind": "box", "lo": self.lo.tolist(), "hi": self.hi.tolist()}
        return described if self.shape is None else described | {"shape": list(self.shape)}

    def __repr__(self) -> str:
        return f"Box(lo={self.lo.tolist()}, hi={self.hi.tolist()})"


def _tensor_shape(shape: object) -> tuple[int, ...]:
    """``shape`` as a tuple of integers >= 1; ValueError otherwise."""
    items = (shape,) if isinstance(shape, (int, np.integer)) else shape
    if (
        isinstance(items, (str, bytes))
        or not isinstance(items, Sequence)
        or not items
        or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in items)
    ):
        raise ValueError(f"shape must be a tuple of integers >= 1 such as (3, 32, 32), got {shape!r}")
    return tuple(int(s) for s in items)


def _flat(value: object, name: str, shape: tuple[int, ...]) -> object:
    """A bound over tensors of ``shape`` as a flat array (a number stays a number: it is broadcast)."""
    host = to_host(value)
    if np.ndim(host) == 0:
        return value
    array = as_array(value, name, (None,) * np.ndim(host))
    if array.shape != shape and array.shape != (math.prod(shape),):
        raise ValueError(f"{name} must have shape {shape} (or be a number), got shape {array.shape}")
    return array.reshape(-1)


def _broadcast(value: np.ndarray, dim: int) -> np.ndarray:
    """A bound as a read-only array of ``dim`` coordinates (a number repeated; an array of that size as is)."""
    if value.ndim:
        return value
    array = np.full(dim, float(value))
    array.setflags(write=False)
    return array


def _finite(image: AffineRange, domain: Domain) -> AffineRange:
    """``image`` if every figure is finite; else the ValueError that the domain is too large for float64."""
    if not (np.all(np.isfinite(image.mid)) and np.all(np.isfinite(image.rad)) and np.all(np.isfinite(image.size))):
        raise ValueError(
            f"the domain {domain!r} is too large for float64: the range of a layer over it overflows "
            f"(largest finite float {np.finfo(np.float64).max:.3g}); use a smaller domain, or rescale the inputs"
        )
    return image
