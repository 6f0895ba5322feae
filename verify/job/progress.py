"""What the verification job shows while it runs: one rich progress bar per claim.

A `Sweep` is what every claim of ``python -m verify`` runs its cases through::

    with Sweep(Runner(workers=2), console) as sweep:
        sweep.start("exact/paper/ball")
        results = sweep.map(case_function, cases)    # in order; the bar advances as cases finish

`Sweep.map` sends the cases to the `verify.job.sweeps.Runner` (this process, a local process pool or a
Dask cluster) and adds their number to the current claim's bar, so a claim that maps several
sweeps shows them all. Without a console (tests, library use) nothing is drawn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from verify.job.sweeps import Runner

__all__ = ["Sweep"]


class Sweep:
    """Runs a claim's cases through a `Runner` and draws their progress (rich) on ``console``.

    Parameters
    ----------
    runner : Runner, optional
        Where cases run; the default runs them one after another in this process.
    console : rich.console.Console, optional
        Where to draw the bars; ``None`` draws nothing.
    """

    def __init__(self, runner: Runner | None = None, console: Any = None) -> None:
        self.runner = runner if runner is not None else Runner(workers=1)
        self._console = console
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> Sweep:
        if self._console is not None:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                SpinnerColumn(finished_text="✓"),  # alive during claims without cases (training, pytest)
                TextColumn("{task.description:<22}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self._console,
                transient=False,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        self.runner.close()

    def start(self, name: str) -> None:
        """Begin claim ``name``: a new bar (with no cases yet) that `map` fills."""
        if self._progress is not None:
            self._finish()
            self._task = self._progress.add_task(name, total=0)

    def _finish(self) -> None:
        if self._task is not None:
            total = self._progress.tasks[self._task].total or 1
            self._progress.update(self._task, total=total, completed=total)
            self._task = None

    def finish(self) -> None:
        """End the current claim's bar (it shows as complete even if the claim mapped no cases)."""
        if self._progress is not None:
            self._finish()

    def map(self, function: Callable[..., Any], cases: Sequence[tuple]) -> list:
        """``function(*case)`` for every case, through the runner; results in the order of ``cases``."""
        cases = list(cases)
        on_done = None
        if self._progress is not None and self._task is not None:
            task, progress = self._task, self._progress
            progress.update(task, total=(progress.tasks[task].total or 0) + len(cases))

            def on_done() -> None:
                progress.advance(task)

        return self.runner.map(function, cases, on_done=on_done)
