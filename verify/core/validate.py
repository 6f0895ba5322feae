"""Argument checks shared by the public constructors.

Every helper copies its input into a fresh, read-only float64 array, so that objects built from
caller data never alias (and so can never mutate) the caller's arrays, and every message names the
argument, what was received and what would work.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from verify.core.interop import to_host

__all__ = ["as_array", "as_points", "as_sequence"]


def as_array(value: object, name: str, shape: tuple[int | None, ...]) -> np.ndarray:
    """Return a read-only float64 copy of ``value`` with the given shape (``None`` = any size).

    Raises ValueError naming ``name`` if the value is not numeric, has the wrong shape, or holds
    NaN or infinity.
    """
    try:
        array = np.array(to_host(value), dtype=np.float64, copy=True)
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
