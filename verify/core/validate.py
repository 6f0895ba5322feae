"""Argument checks shared by the public constructors.

Every helper copies its input into a fresh, read-only float64 array, so that objects built from
caller data never alias (and so can never mutate) the caller's arrays, and every message names the
argument, what was received and what would work.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from verify.core.interop import to_host

__all__ = ["as_array", "as_count", "as_points", "as_real", "as_seed", "as_sequence"]


def as_array(value: object, name: str, shape: tuple[int | None, ...]) -> np.ndarray:
    """Return a read-only float64 copy of ``value`` with the given shape (``None`` = any size).

    Raises ValueError naming ``name`` if the value is not numeric, has the wrong shape, or holds
    NaN or infinity.
    """
    host = _host(value, name)
    if np.iscomplexobj(host):
        raise ValueError(f"{name} must be real, got a complex array (its imaginary part would be dropped)")
    if isinstance(host, (str, bytes)) or (isinstance(host, np.ndarray) and host.dtype.kind in "US"):
        raise ValueError(f"{name} must be a real numeric array, got {type(value).__name__} {value!r:.60}")
    try:
        array = np.array(host, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be a real numeric array, got {type(value).__name__}: {error}") from None
    expected = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
    if array.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, array.shape, strict=True)):
        raise ValueError(f"{name} must have shape {expected}, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(f"{name} must be finite, but {bad} of its {array.size} entries are NaN or infinite")
    array.setflags(write=False)
    return array


def as_points(x: object, dim: int, name: str = "x") -> tuple[np.ndarray, bool]:
    """Return input points as a read-only ``(batch, dim)`` array and whether a single ``(dim,)`` vector was given."""
    single = np.ndim(to_host(x)) == 1
    if single:
        return as_array(x, name, (dim,))[None, :], True
    return as_array(x, name, (None, dim)), False


def as_sequence(value: object, name: str, length: int | None = None) -> list:
    """Return ``value`` as a list, checking that it is a sequence (of ``length`` items if given)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"{name} must be a list with one entry per layer, got {type(value).__name__}")
    items = list(value)
    if length is not None and len(items) != length:
        raise ValueError(f"{name} must have {length} entries (one per layer), got {len(items)}")
    return items


def _host(value: object, name: str) -> object:
    """``value`` with a tensor moved to host memory; ValueError for a tensor that holds no data (meta device)."""
    try:
        return to_host(value)
    except (NotImplementedError, RuntimeError) as error:
        device = getattr(value, "device", "its")
        raise ValueError(
            f"{name} is a tensor on the {device} device, whose values cannot be read ({error}); "
            "pass a tensor with data (e.g. on the CPU)"
        ) from None


def as_real(value: object, name: str, *, minimum: float | None = None, positive: bool = False) -> float:
    """``value`` as a finite float; ValueError naming ``name`` for anything else.

    Refused: bools (``rtol=True``), strings (``Ball("2")``), None, complex numbers, arrays with more
    than one entry, NaN and infinity, and values below ``minimum`` (or ``<= 0`` when ``positive``).
    """
    wanted = (
        "a positive finite number"
        if positive
        else "a finite number" + (f" >= {minimum:g}" if minimum is not None else "")
    )
    host = _host(value, name)
    if isinstance(host, np.ndarray) and host.size == 1 and host.ndim <= 1:
        host = host.reshape(()).item()
    if isinstance(host, (bool, np.bool_)) or not isinstance(host, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be {wanted}, got {type(value).__name__} {value!r:.60}")
    number = float(host)
    if not np.isfinite(number) or (positive and number <= 0) or (minimum is not None and number < minimum):
        raise ValueError(f"{name} must be {wanted}, got {number!r}")
    return number


def as_count(value: object, name: str, minimum: int = 1) -> int:
    """``value`` as an integer ``>= minimum``; ValueError for bools, non-integral or non-numeric values.

    Integral floats (``12.0``) are accepted; ``12.5`` is refused rather than truncated.
    """
    host = _host(value, name)
    if isinstance(host, np.ndarray) and host.ndim == 0:
        host = host.item()
    integral = isinstance(host, (int, np.integer)) or (
        isinstance(host, (float, np.floating)) and np.isfinite(host) and float(host).is_integer()
    )
    if isinstance(host, (bool, np.bool_)) or not integral:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {type(value).__name__} {value!r:.60}")
    if int(host) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {int(host)}")
    return int(host)


def as_seed(value: object, name: str = "seed") -> int:
    """A random seed: an integer ``>= 0`` (what `numpy.random.default_rng` takes); ValueError otherwise."""
    try:
        return as_count(value, name, minimum=0)
    except ValueError as error:
        raise ValueError(f"{error}; pass a whole number such as 0 (numpy.random.default_rng's seed)") from None
