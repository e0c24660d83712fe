"""Trainings run off the event loop, a bounded number at a time.

Large bodies go to a pool of spawned child processes (decode, validate, fit and save all happen
there, so neither the GIL nor the event loop is held while a big model trains); small ones to a
thread, where they take milliseconds. Past ``train_concurrency`` running trainings in this
process, ``TrainingBusy`` (HTTP 429) instead of a queue. Either way the answer is the stored
model's summary, or the domain error the job raised (``app.errors``: they pickle).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, BinaryIO

from .. import metrics
from ..config import Settings
from ..errors import TrainingBusy, TrainingCrashed
from .job import IdleSpawnContext, init_child, train_from_body

if TYPE_CHECKING:
    from ..schemas import ModelSummary


class TrainRunner:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.running = 0
        self._pool: ProcessPoolExecutor | None = None
        self._context: IdleSpawnContext | None = None

    def check_capacity(self) -> None:
        """``TrainingBusy`` if every slot is taken now: ``/train`` asks before reading a body it
        could not train on; ``acquire``, once the body is in, decides."""
        if self.running >= self.settings.train_concurrency:
            raise TrainingBusy(self.running, self.settings.train_retry_after)

    def acquire(self) -> None:
        """Take a training slot or raise ``TrainingBusy``; pair with ``release``."""
        self.check_capacity()
        self.running += 1

    def release(self) -> None:
        self.running -= 1

    def pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._context = IdleSpawnContext()
            self._pool = ProcessPoolExecutor(
                max_workers=self.settings.train_concurrency,
                mp_context=self._context,
                initializer=init_child,
                initargs=(metrics.shared_folder(),),
            )
        return self._pool

    async def run(
        self,
        content_type: str | None,
        chunks: list[bytes],
        spill: str | None,
        *,
        query: Sequence[tuple[str, str]] = (),
    ) -> ModelSummary:
        """Train on the body (in memory as ``chunks``, or in the file ``spill``); ``query``: the
        request's query parameters (options of CSV bodies). Returns the model's summary."""
        query = list(query)
        if spill is None:
            body = b"".join(chunks)
            return await asyncio.to_thread(
                train_from_body, self.settings, content_type, body, query
            )
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self.pool(), train_from_body, self.settings, content_type, spill, query
            )
        except BrokenProcessPool:
            self.shutdown()  # start afresh next time
            raise TrainingCrashed() from None

    def spill_file(self) -> tuple[BinaryIO, str]:
        fd, path = tempfile.mkstemp(prefix="train-body-")
        return os.fdopen(fd, "wb"), path

    @staticmethod
    def remove(path: str | None) -> None:
        if path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def shutdown(self) -> None:
        """Stop the pool, running fits too: a server shutting down should not wait for them."""
        if self._pool is not None and self._context is not None:
            for process in list(self._context.processes):
                # a no-op for a process that has ended and been reaped: no pid reused by then
                with contextlib.suppress(ValueError):  # closed (not done by 3.11's pool)
                    if process.pid is not None:
                        process.terminate()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._context = None
