"""How many BLAS threads the library's own linear algebra may use (docs/design.md §5).

The construction's linear algebra is many small or mid-sized BLAS calls: LSMR's products with ``K``
(two small GEMMs per iteration), minimal mode's one LU of an ``m × (m + 1)`` system, the dense
solvers' factorizations. OpenBLAS spins its worker threads while it waits for work, so on a machine
whose cores are busy with something else, the same call with the default threads can run many
times slower than with one thread; on an idle machine the second thread gains little on calls this
size. `nox -s bench` (``python benchmarks/bench.py threads``) measures both, idle and beside a busy
process. The library therefore limits BLAS to `DEFAULT_LIMIT` thread(s) *inside its own calls*
(`verify.reconstruct` and the solvers of `verify.solvers`) and restores the caller's setting on
return; nothing outside those calls is affected.

Configure it with `set_blas_threads` (``None`` leaves BLAS as the process has it), with the
`blas_threads` context manager for one block of code, or with the environment variable
``VERIFY_BLAS_THREADS`` (an integer ``>= 1``, or ``none``) read at import. The limit covers the BLAS
libraries threadpoolctl finds (OpenBLAS, MKL, BLIS); torch's own intra-op threads are torch's
(``torch.set_num_threads``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

from verify.core.validate import as_count

__all__ = ["DEFAULT_LIMIT", "ENVIRONMENT", "blas_thread_limit", "blas_threads", "limited", "set_blas_threads"]

DEFAULT_LIMIT = 1
"""BLAS threads inside the library's calls unless configured otherwise."""
ENVIRONMENT = "VERIFY_BLAS_THREADS"
"""Environment variable read at import: an integer ``>= 1``, or ``none`` for no limit."""

F = TypeVar("F", bound=Callable[..., Any])


def _parse(value: object, name: str) -> int | None:
    """``None`` (or the string ``none``) for no limit, else an integer ``>= 1``; refused by name otherwise."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
        return None
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ValueError(f"{name} must be an integer >= 1 or 'none', got {value!r}") from None
    return as_count(value, name, minimum=1)


_limit: int | None = _parse(os.environ.get(ENVIRONMENT, DEFAULT_LIMIT), ENVIRONMENT)
_state = threading.local()  # ``active``: this thread is inside a limited call (nested calls add nothing)


def blas_thread_limit() -> int | None:
    """The current limit: BLAS threads inside the library's calls (``None``: no limit)."""
    return _limit


def set_blas_threads(limit: int | str | None) -> int | None:
    """Set the BLAS thread limit of the library's calls (``None`` or ``"none"``: no limit); returns the previous one."""
    global _limit
    previous, _limit = _limit, _parse(limit, "limit")
    return previous


@contextmanager
def blas_threads(limit: int | str | None) -> Iterator[None]:
    """``with verify.blas_threads(2): ...``: the library's calls in the block use this limit, then the old one."""
    previous = set_blas_threads(limit)
    try:
        yield
    finally:
        set_blas_threads(previous)


def limited(function: F) -> F:
    """Decorator: run ``function`` with BLAS limited to the current limit, and restore the threads after.

    Only the outermost limited call sets the limit (threadpoolctl finds the BLAS libraries loaded at
    that moment, about 0.5 ms); calls nested in it run as they are.
    """

    @wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        if _limit is None or getattr(_state, "active", False):
            return function(*args, **kwargs)
        from threadpoolctl import threadpool_limits

        _state.active = True
        try:
            with threadpool_limits(limits=_limit, user_api="blas"):
                return function(*args, **kwargs)
        finally:
            _state.active = False

    return run  # type: ignore[return-value]
