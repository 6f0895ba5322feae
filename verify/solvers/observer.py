"""The LSMR loops' progress callback: who, if anyone, is told each iteration and residual.

`verify.solvers.iterative` (scipy's LSMR) and `verify.solvers.torch_lsmr` (the torch port) call
`report` as they iterate; it does nothing unless a caller has installed a callback with `observing`
(`verify.construction.progress` does, to draw its progress bars). The callback only reads: the
solve and its result are the same with or without one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["Observer", "observed", "observing", "report"]

Observer = Callable[[int, "float | None"], None]
"""``callback(iteration, residual)``: LSMR iterations so far in this solve (refinement passes
included), and ``‖K γ − w‖ / ‖w‖`` when the loop knows it (``None`` otherwise)."""

_OBSERVER: ContextVar[Observer | None] = ContextVar("verify_lsmr_observer", default=None)


@contextmanager
def observing(callback: Observer | None) -> Iterator[None]:
    """Within the block, the LSMR loops call ``callback(iteration, residual)`` (``None``: nobody)."""
    token = _OBSERVER.set(callback)
    try:
        yield
    finally:
        _OBSERVER.reset(token)


def observed() -> bool:
    """Whether a callback is installed (the loops skip their bookkeeping otherwise)."""
    return _OBSERVER.get() is not None


def report(iteration: int, residual: float | None) -> None:
    """Tell the installed callback, if any, LSMR's iteration count and relative residual."""
    callback = _OBSERVER.get()
    if callback is not None:
        callback(iteration, residual)
