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
from typing import TYPE_CHECKING, BinaryIO

from .. import metrics
from ..config import Settings
from ..errors import TrainingBusy, TrainingCrashed
from ..offload import Offload
from .job import IdleSpawnProcess, init_child, train_from_body, train_job

if TYPE_CHECKING:
    from ..audit import Actor
    from ..schemas import ModelSummary


class TrainRunner:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.running = 0
        self.children = Offload(
            max_workers=settings.train_concurrency,
            process_class=IdleSpawnProcess,
            initializer=init_child,
            initargs=lambda: (metrics.shared_folder(),),
            crashed=TrainingCrashed,
        )

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

    async def run(
        self,
        content_type: str | None,
        chunks: list[bytes],
        spill: str | None,
        *,
        query: Sequence[tuple[str, str]] = (),
        actor: Actor | None = None,
    ) -> ModelSummary:
        """Train on the body (in memory as ``chunks``, or in the file ``spill``); ``query``: the
        request's query parameters (options of CSV bodies). Returns the model's summary."""
        query = list(query)
        if spill is None:
            body = b"".join(chunks)
            return await asyncio.to_thread(
                train_from_body, self.settings, content_type, body, query, actor
            )
        return await self.children.run(
            train_from_body, self.settings, content_type, spill, query, actor
        )

    def has_capacity(self) -> bool:
        return self.running < self.settings.train_concurrency

    async def run_job(self, job_id: str) -> ModelSummary:
        """Train job ``job_id`` in a child (always: a job is cancelled from its child's fit loop,
        and runs at the child's low priority). Take a slot first (``acquire``)."""
        return await self.children.run(train_job, self.settings, job_id)

    def spill_file(self) -> tuple[BinaryIO, str]:
        fd, path = tempfile.mkstemp(prefix="train-body-")
        return os.fdopen(fd, "wb"), path

    @staticmethod
    def remove(path: str | None) -> None:
        if path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def shutdown(self) -> None:
        """Stop the training children, running fits too."""
        self.children.shutdown()
