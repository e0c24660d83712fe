"""Trainings run off the event loop, a bounded number at a time. No FastAPI here.

Large bodies go to a pool of spawned child processes (decode, validate, fit and save all happen
there, so neither the GIL nor the event loop is held while a big model trains); small ones to a
thread, where they take milliseconds. Past ``train_concurrency`` running trainings in this
process, ``TrainingBusy`` (HTTP 429) instead of a queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, BinaryIO

from .config import Settings
from .errors import TrainingBusy, TrainingCrashed
from .train_job import IdleSpawnContext, init_child, train_from_body


class TrainRunner:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.running = 0
        self._pool: ProcessPoolExecutor | None = None

    def acquire(self) -> None:
        """Take a training slot or raise ``TrainingBusy``; pair with ``release``."""
        if self.running >= self.settings.train_concurrency:
            raise TrainingBusy(self.running, self.settings.train_retry_after)
        self.running += 1

    def release(self) -> None:
        self.running -= 1

    def pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.settings.train_concurrency,
                mp_context=IdleSpawnContext(),
                initializer=init_child,
            )
        return self._pool

    async def run(
        self,
        content_type: str | None,
        chunks: list[bytes],
        spill: str | None,
        *,
        query: dict[str, str] | None = None,
    ) -> Any:
        """Train on the body (in memory as ``chunks``, or in the file ``spill``); ``query``: the
        request's query parameters (options of CSV bodies)."""
        if spill is None:
            body = b"".join(chunks)
            return await asyncio.to_thread(
                train_from_body, self.settings, content_type, body, query or {}
            )
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self.pool(), train_from_body, self.settings, content_type, spill, query or {}
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
        if self._pool is not None:
            # stop running fits too: a server shutting down should not wait for them
            for proc in list(getattr(self._pool, "_processes", {}).values()):
                proc.terminate()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
