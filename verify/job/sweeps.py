"""Where the cases of a sweep run: this process, a local process pool, or a Dask cluster.

Every claim of ``python -m verify`` is a sweep of independent cases, each a module-level function
of plain, picklable arguments (widths, seeds, mode names) that seeds its own random numbers. So
where a case runs changes nothing in its result, only how long the sweep takes::

    with Runner() as runner:                                   # local process pool, one worker per CPU
        results = runner.map(case_function, [(mode, widths, seed), ...])
    with Runner(scheduler="tcp://10.0.0.5:8786") as runner:    # Dask distributed (``dask scheduler``)
        results = runner.map(case_function, cases)              # the same list, in the same order

The local pool uses the ``spawn`` start method: forking a process that already holds BLAS and torch
thread pools can deadlock, and spawned workers import ``verify`` afresh, as Dask workers do.

Every case runs with BLAS limited to one thread (threadpoolctl), whatever the backend: a
multithreaded GEMM sums in an order that depends on the thread count, which changes results in
the last bits. One thread per case makes them bit-identical between this process, the pool and a
Dask worker on the same kind of CPU (different CPU instruction sets can still round differently;
the verdicts do not depend on it).
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import multiprocessing
import os
import re
import socket
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["Runner", "available_cores", "single_threaded"]

_ADDRESS = re.compile(r"^((tcp|tls|inproc|ucx|ws|wss)://\S+|[\w.\-\[\]:]+:\d+)$")
CONNECT_TIMEOUT = 10.0
"""Seconds to wait for a Dask scheduler before giving up with an error naming the address."""


_PROTOCOLS = {
    "tcp": None,
    "tls": None,
    "ws": None,
    "wss": None,
    "ucx": "needs UCX (the ucx-py or distributed-ucxx package), which is not installed",
    "inproc": "names a scheduler inside one Python process, which a separate command cannot reach",
}
"""Dask's address protocols: None where a scheduler can be reached from here, else why not."""


def _protocol(address: str) -> str:
    return address.split("://", 1)[0] if "://" in address else "tcp"


def _check_protocol(address: str) -> None:
    """Refuse, before any work, an address whose protocol cannot reach a scheduler from this machine."""
    protocol = _protocol(address)
    why = _PROTOCOLS.get(protocol, f"uses an unknown protocol {protocol!r}")
    if protocol == "ucx" and any(importlib.util.find_spec(name) for name in ("ucp", "distributed_ucxx")):
        why = None
    if why is not None:
        raise ValueError(f"scheduler address {address} {why}; use a tcp:// (or tls://) address such as tcp://host:8786")


def _probe(address: str) -> None:
    """Open and close one TCP connection to the scheduler, so that a refused connection fails at once.

    Dask's client retries until its timeout; a scheduler that is not listening refuses the
    connection immediately, and that answer is final. Raises OSError (the socket's) when refused.
    """
    if _protocol(address) not in ("tcp", "tls", "ws", "wss"):
        return
    from distributed.comm.addressing import parse_address, parse_host_port

    host, port = parse_host_port(parse_address(address)[1].split("/", 1)[0])
    with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
        pass


def single_threaded(function: Callable[..., Any], *case: Any) -> Any:
    """``function(*case)`` with BLAS (OpenBLAS, MKL, BLIS) and OpenMP limited to one thread."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return function(*case)


def available_cores() -> int:
    """The CPU cores this process may run on: `os.sched_getaffinity` where present, else `os.cpu_count`."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


class Runner:
    """Runs the cases of sweeps in this process, a local process pool, or on a Dask cluster.

    Parameters
    ----------
    scheduler : str, optional
        Address of a Dask distributed scheduler (``tcp://host:port``, ``tls://…`` or ``host:port``).
        ``None`` runs locally.
    workers : int, optional
        Local process pool size (default, and at most: the CPU cores available to this process,
        `available_cores`; a larger value is capped and `capped` says so); ``1`` runs every case in
        this process with no pool. Ignored with a scheduler (the cluster has its own workers).

    The pool or the Dask client is created at the first `map` and reused until `close` (or the end
    of a ``with`` block).
    """

    def __init__(self, scheduler: str | None = None, workers: int | None = None) -> None:
        if scheduler is not None and (not isinstance(scheduler, str) or not _ADDRESS.match(scheduler)):
            raise ValueError(
                f"scheduler must be the address of a Dask scheduler such as tcp://10.0.0.5:8786 or "
                f"127.0.0.1:8786, got {scheduler!r}"
            )
        if scheduler is not None:
            _check_protocol(scheduler)
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise ValueError(f"workers must be an integer >= 1 (or None for one per CPU), got {workers!r}")
        self.scheduler = scheduler
        cores = available_cores()
        self.workers = min(workers, cores) if workers is not None else cores
        self.capped: str | None = None
        """Why ``workers`` was lowered to the cores available, or None when it was not."""
        if workers is not None and workers > cores and scheduler is None:
            self.capped = (
                f"--workers {workers} capped at {cores}, the CPU cores available to this process "
                "(more processes than cores only add memory)"
            )
        self._pool: concurrent.futures.Executor | None = None
        self._client: Any = None

    def describe(self) -> str:
        """Where cases run, in words: ``in-process``, ``local process pool (2 workers)`` or the Dask address."""
        if self.scheduler is not None:
            return f"Dask scheduler {self.scheduler}"
        return "this process (no pool)" if self.workers == 1 else f"a local process pool ({self.workers} workers)"

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Shut the process pool down, or disconnect from the Dask scheduler (the cluster keeps running)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def connect(self) -> None:
        """Reach the Dask scheduler now (nothing to do for local runs), so that an unreachable one is an
        OSError before any work starts rather than at the first `map`."""
        if self.scheduler is not None:
            self._dask()

    def _dask(self) -> Any:
        if self._client is None:
            try:
                from distributed import Client
            except ImportError as error:  # pragma: no cover - distributed is a dependency
                raise ValueError(
                    "--scheduler needs Dask's distributed package: pip install 'dask[distributed]'"
                ) from error
            try:
                _probe(self.scheduler)
                self._client = Client(self.scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
            except (OSError, TimeoutError) as error:
                raise OSError(
                    f"cannot reach the Dask scheduler at {self.scheduler} within {CONNECT_TIMEOUT:g} s ({error}); "
                    "start one with `dask scheduler` and workers with `dask worker ADDRESS`, or leave out "
                    "--scheduler to run on a local process pool"
                ) from error
        return self._client

    def map(
        self, function: Callable[..., Any], cases: Sequence[tuple], *, on_done: Callable[[], None] | None = None
    ) -> list:
        """``function(*case)`` for every case; results in the order of ``cases``.

        ``on_done()`` is called once per finished case, in this process (for a progress bar). An
        exception raised by a case propagates. ``function`` must be importable by name (module level)
        unless the runner is in-process.
        """
        cases = [tuple(case) for case in cases]
        if not cases:
            return []
        if self.scheduler is not None:
            return self._map_dask(function, cases, on_done)
        if self.workers == 1:
            results = []
            for case in cases:
                results.append(single_threaded(function, *case))
                if on_done is not None:
                    on_done()
            return results
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = concurrent.futures.ProcessPoolExecutor(max_workers=self.workers, mp_context=context)
        futures = {self._pool.submit(single_threaded, function, *case): i for i, case in enumerate(cases)}
        return self._gather(futures, concurrent.futures.as_completed(futures), len(cases), on_done)

    def _map_dask(self, function: Callable[..., Any], cases: list[tuple], on_done: Callable[[], None] | None) -> list:
        from distributed import as_completed

        client = self._dask()
        futures = {client.submit(single_threaded, function, *case, pure=False): i for i, case in enumerate(cases)}
        return self._gather(futures, as_completed(list(futures), loop=client.loop), len(cases), on_done)

    @staticmethod
    def _gather(futures: dict, completed: Any, count: int, on_done: Callable[[], None] | None) -> list:
        results: list[Any] = [None] * count
        for future in completed:
            results[futures[future]] = future.result()
            if on_done is not None:
                on_done()
        return results
