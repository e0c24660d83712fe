"""One training, from the request's bytes to the stored model: runs in a training child process
(or a thread, for small bodies). Heavy imports (NumPy, the service) happen inside functions: a
spawned child imports this module before its initializer has limited the BLAS threads.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from multiprocessing.context import SpawnProcess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from ..audit import Actor
    from ..config import Settings
    from ..schemas import ModelSummary

#: Environment variables that fix the thread pools of OpenBLAS, OpenMP and MKL.
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


#: Niceness of training children: what they get where Linux's SCHED_IDLE (below) is missing.
CHILD_NICENESS = 19


def lowest_priority(pid: int = 0) -> None:
    """Give process ``pid`` (0: this one) Linux's SCHED_IDLE policy: it gets a core almost only
    when nothing else wants one (a weight of 3 against 1,024 at nice 0), any waking request
    handler takes the core from it at once, and its I/O gets the idle class. Nice 19 alone still
    left it a share of the CPU (docs/DEVELOPING.md). The price: on a saturated server a training
    barely moves, and holds its slot meanwhile. No privilege is needed to lower a priority; where
    the policy is missing or refused, niceness is all there is.
    """
    if hasattr(os, "sched_setscheduler"):
        with contextlib.suppress(OSError):  # also ProcessLookupError: the child already left
            os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))


class IdleSpawnProcess(SpawnProcess):
    """A spawned process that its parent gives the lowest priority as soon as it exists:
    Python's start-up and imports in the child (~0.15 s of a core) run before any initializer
    of the child could lower it."""

    def start(self) -> None:
        super().start()
        if self.pid is not None:
            lowest_priority(self.pid)


def init_child(metrics_folder: Path | None = None) -> None:
    """Training children use one BLAS thread and the lowest CPU priority: the server's cores
    belong to the predictions first. They count their trainings in ``metrics_folder`` (the
    server's, ``app.metrics.shared_folder()``), where every process's counts are totalled."""
    for var in BLAS_THREAD_VARS:
        os.environ[var] = "1"
    os.nice(CHILD_NICENESS)
    lowest_priority()
    if metrics_folder is not None:
        from .. import metrics

        metrics.share(metrics_folder)


def train_from_body(
    settings: Settings,
    content_type: str | None,
    body: bytes | str,
    query: Sequence[tuple[str, str]] = (),
    actor: Actor | None = None,
) -> ModelSummary:
    """Decode, validate, fit and save; the stored model's summary. ``body``: the bytes, or the
    path of a file holding them (read, then deleted); ``query``: the request's query parameters
    (the options of a CSV body); ``actor``: who asked (for the audit log).

    Raises the domain errors of ``app.errors`` (they pickle, so they reach the server as they
    are): ``UnsupportedMediaType``, ``InvalidRequest``, ``MalformedJSON``, ``CsvError``,
    ``EngineError``, ``LimitExceeded``, ``StoreError``.
    """
    from model_store import open_store

    from ..decode import decode_train
    from ..service import ModelService

    if isinstance(body, str):
        with open(body, "rb") as fh:
            path, body = body, fh.read()
        # Freeing the file's pages takes tens of ms of a core for a big body: done here, at the
        # child's priority, not by the worker (which still removes it if the child never got here).
        with contextlib.suppress(OSError):
            os.unlink(path)
    request, X = decode_train(content_type, body, query, max_features=settings.max_features)
    del body
    store = open_store(settings.model_store_url, settings.model_store_dir, create=False)
    try:
        return ModelService(store, settings).train(request, X, actor=actor)
    finally:
        store.close()
