"""Progress of a fit: one rich progress bar per pair of layers, with LSMR's iteration and residual.

`verify.reconstruct` (and so `verify.nn.fit_norm_layers`) runs its blocks inside `fit_progress`; each
block announces itself (`announce_pair`, from `verify.construction.tuning.tune_block`) and the LSMR
loops report to it through `verify.solvers.observer`. Nothing is drawn for a fit that ends within
`DELAY` seconds, when ``progress=False``, or when the console is not a terminal (rich's
``Console.is_terminal``: logs, pipes and test runs stay clean). Drawing reads the solve, never changes it.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from verify.solvers.observer import observing

__all__ = ["DELAY", "FitProgress", "announce_pair", "check_progress", "fit_progress", "silenced"]

DELAY = 2.0
"""Seconds a fit runs before its bars appear (a quick fit prints nothing)."""


def check_progress(progress: object) -> None:
    """Refuse a ``progress=`` that is neither a bool nor a `rich.console.Console`."""
    if isinstance(progress, bool):
        return
    from rich.console import Console

    if not isinstance(progress, Console):
        raise ValueError(
            f"progress must be True (bars on a terminal), False (silent) or a rich.console.Console, got {progress!r}"
        )


def _console(progress: object) -> Any:
    """The console to draw on, or None: ``progress`` False, a console that is not a terminal, or, for
    ``progress=True``, a worker process (a pool's workers share the parent's terminal, and the parent
    draws its own progress there)."""
    check_progress(progress)
    if progress is False or (progress is True and multiprocessing.parent_process() is not None):
        return None
    console = _default_console() if progress is True else progress
    return console if console.is_terminal else None


def _default_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


class FitProgress:
    """The bars of one fit of ``pairs`` pairs of layers, drawn on ``console`` (None: draws nothing)."""

    def __init__(self, pairs: int, console: Any) -> None:
        self.pairs = pairs
        self.console = console
        self.k = 0
        self.started = time.perf_counter()
        self._progress: Any = None
        self._task: Any = None
        self._fields: dict[str, Any] = {}

    def pair(self, n: int, d_out: int, d_in: int) -> None:
        """Pair ``k + 1`` begins: ``n`` odd neurons for a ``d_out × d_in`` weight."""
        self._finish_task()
        self.k += 1
        size = f"{n} neurons for a {d_out}×{d_in} weight"
        self._fields = {"k": self.k, "pairs": max(self.pairs, self.k), "size": size, "iteration": "-", "residual": "-"}
        self._draw()

    def lsmr(self, iteration: int, residual: float | None) -> None:
        """LSMR's iteration count and relative residual ``‖Kγ − w‖ / ‖w‖`` (None: not known yet)."""
        self._fields["iteration"] = str(iteration)
        if residual is not None:
            self._fields["residual"] = f"{residual:.2e}"
        self._draw()

    def _draw(self) -> None:
        if self.console is None or self.k == 0:  # nothing to draw before the first pair
            return
        if self._progress is None:
            if time.perf_counter() - self.started < DELAY:
                return
            self._start()
        if self._task is None:
            self._task = self._progress.add_task("", total=None, **self._fields)
        else:
            self._progress.update(self._task, **self._fields)

    def _start(self) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("pair {task.fields[k]} of {task.fields[pairs]}"),
            TextColumn("{task.fields[size]}"),
            BarColumn(),
            TextColumn("LSMR iteration {task.fields[iteration]}, residual {task.fields[residual]}"),
            TimeElapsedColumn(),
            console=self.console,
        )
        self._progress.start()

    def _finish_task(self) -> None:
        if self._task is not None:
            self._progress.update(self._task, total=1, completed=1, **self._fields)
            self._task = None

    def close(self) -> None:
        """Complete the last bar and stop drawing."""
        if self._progress is not None:
            self._finish_task()
            self._progress.stop()
            self._progress = None


_ACTIVE: ContextVar[FitProgress | None] = ContextVar("verify_fit_progress", default=None)


def active() -> bool:
    """Whether a fit's progress is open (a nested `fit_progress` then reuses it)."""
    return _ACTIVE.get() is not None


@contextmanager
def fit_progress(progress: object, pairs: int) -> Iterator[FitProgress]:
    """Within the block, pairs announced by `announce_pair` and LSMR's iterations are drawn.

    ``progress``: True (bars on standard error when it is a terminal), False (silent) or a
    `rich.console.Console` to draw on (drawn only if ``is_terminal``). Inside an open one (a route
    that reconstructs node by node), the open one is reused.
    """
    current = _ACTIVE.get()
    if current is not None:
        yield current
        return
    bar = FitProgress(pairs, _console(progress))
    token = _ACTIVE.set(bar)
    try:
        with observing(bar.lsmr if bar.console is not None else None):
            yield bar
    finally:
        _ACTIVE.reset(token)
        bar.close()


@contextmanager
def silenced() -> Iterator[None]:
    """Within the block, every fit is silent, whatever its ``progress`` (for a caller drawing its own progress,
    as ``python -m verify`` does)."""
    with fit_progress(False, 0):
        yield


def announce_pair(n: int, d_out: int, d_in: int) -> None:
    """Tell the open fit, if any, that its next pair (``n`` odd neurons, a ``d_out × d_in`` weight) begins."""
    bar = _ACTIVE.get()
    if bar is not None:
        bar.pair(n, d_out, d_in)
