"""Work that would hold the GIL too long for the event loop's thread runs in a child process.

A thread keeps the event loop free only while the work in it lets go of the GIL now and then;
parsing a large JSON body (``json.loads``, simdjson) or validating it with pydantic does not: a
70 MB body held it for seconds, and ``/health`` waited that long. Such work goes to a spawned
child instead (``Offload.run``); what it returns or raises must pickle (``app.errors``).
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
    """The ``spawn`` start method, keeping the processes it made (``processes``, while they are
    referenced), so that a pool's owner can stop them without the pool's private attributes."""

    process_class: type[SpawnProcess] = SpawnProcess

    def __init__(self) -> None:
        super().__init__()
        self.processes: WeakSet[SpawnProcess] = WeakSet()

    def Process(self, *args: Any, **kwargs: Any) -> SpawnProcess:  # type: ignore[override]  # noqa: N802
        process = self.process_class(*args, **kwargs)
        self.processes.add(process)
        return process


class Offload:
    """A pool of ``max_workers`` spawned children, started on first use."""

    def __init__(self, *, max_workers: int = 1) -> None:
        self.max_workers = max_workers
        self._pool: ProcessPoolExecutor | None = None
        self._context: TrackedSpawnContext | None = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a child; ``ChildCrashed`` if the child dies first."""
        if self._pool is None:
            self._context = TrackedSpawnContext()
            self._pool = ProcessPoolExecutor(self.max_workers, mp_context=self._context)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, fn, *args)
        except BrokenProcessPool:
            self.shutdown()  # start afresh next time
            raise ChildCrashed() from None

    def shutdown(self) -> None:
        if self._pool is not None and self._context is not None:
            for process in list(self._context.processes):
                with contextlib.suppress(ValueError):
                    if process.pid is not None:
                        process.terminate()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._context = None
