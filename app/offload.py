"""Work that would hold the GIL too long for the event loop's thread runs in a child process.

A thread keeps the event loop free only while the work in it lets go of the GIL now and then;
parsing a large JSON body (``json.loads``, simdjson), validating it with pydantic or fitting a
model does not. Such work goes to a pool of spawned children instead (``Offload.run``): the
decoding of large predict bodies (app.api.prediction) and the trainings (app.training.runner).
What the work returns or raises must pickle (``app.errors``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.context import SpawnContext, SpawnProcess
from typing import Any, TypeVar
from weakref import WeakSet

from .errors import ChildCrashed

T = TypeVar("T")


class TrackedSpawnContext(SpawnContext):
    """The ``spawn`` start method with processes of ``process_class``, keeping those it made
    (``processes``, while they are referenced), so that the pool's owner can stop them without
    reading the pool's private attributes."""

    def __init__(self, process_class: type[SpawnProcess] = SpawnProcess) -> None:
        super().__init__()
        self.process_class = process_class
        self.processes: WeakSet[SpawnProcess] = WeakSet()

    # A method where SpawnContext has a class: ProcessPoolExecutor only calls it.
    def Process(self, *args: Any, **kwargs: Any) -> SpawnProcess:  # type: ignore[override]  # noqa: N802
        process = self.process_class(*args, **kwargs)
        self.processes.add(process)
        return process


class Offload:
    """A pool of up to ``max_workers`` spawned children, started on first use.

    Parameters
    ----------
    process_class : SpawnProcess subclass
        E.g. one that lowers the child's priority as soon as it exists.
    initializer, initargs
        Run in each child as it starts; ``initargs`` is called for them when the pool starts.
    crashed : callable
        The error ``run`` raises when a child dies before answering (the pool then starts
        afresh on the next ``run``).
    """

    def __init__(
        self,
        *,
        max_workers: int = 1,
        process_class: type[SpawnProcess] = SpawnProcess,
        initializer: Callable[..., None] | None = None,
        initargs: Callable[[], tuple[Any, ...]] = tuple,
        crashed: Callable[[], Exception] = ChildCrashed,
    ) -> None:
        self.max_workers = max_workers
        self.process_class = process_class
        self.initializer = initializer
        self.initargs = initargs
        self.crashed = crashed
        self._pool: ProcessPoolExecutor | None = None
        self._context: TrackedSpawnContext | None = None

    @property
    def processes(self) -> list[SpawnProcess]:
        """The children started so far, alive or not (while referenced)."""
        return [] if self._context is None else list(self._context.processes)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a child; ``crashed()`` if the child dies first."""
        if self._pool is None:
            self._context = TrackedSpawnContext(self.process_class)
            self._pool = ProcessPoolExecutor(
                self.max_workers,
                mp_context=self._context,
                initializer=self.initializer,
                initargs=self.initargs(),
            )
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, fn, *args)
        except BrokenProcessPool:
            self.shutdown()
            raise self.crashed() from None

    async def warm(self) -> None:
        """Start every child now (each pays Python's start-up and its imports, ~1 s), so that
        the first work does not wait for them: a training worker's first job."""
        await asyncio.gather(*(self.run(_ready) for _ in range(self.max_workers)))

    def shutdown(self) -> None:
        """Stop the children, running work too (a server shutting down should not wait for a
        fit), then the pool, waiting for its queues to close so nothing is left behind."""
        pool, context = self._pool, self._context
        self._pool = self._context = None
        if pool is None or context is None:
            return
        for process in list(context.processes):
            # a no-op for a process that has ended and been reaped: no pid reused by then
            with contextlib.suppress(ValueError):  # closed
                if process.pid is not None and process.is_alive():
                    process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)


def _ready() -> None:
    """The work ``Offload.warm`` gives each child: none (its initializer has run)."""
