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

    from model_store import FileDatasetStore, Record

    from ..config import Settings
    from ..schemas import ModelSummary

#: The datasets' folder, inside ``MODEL_STORE_DIR``.
DATASETS_FOLDER = "datasets"

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
) -> ModelSummary:
    """Decode, validate, fit and save; the stored model's summary. ``body``: the bytes, or the
    path of a file holding them (read, then deleted); ``query``: the request's query parameters
    (the options of a CSV body).

    Raises the domain errors of ``app.errors`` (they pickle, so they reach the server as they
    are): ``UnsupportedMediaType``, ``InvalidRequest``, ``MalformedJSON``, ``CsvError``,
    ``EngineError``, ``LimitExceeded``, ``StoreError``.
    """
    from model_store import JsonFileStore

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
    service = ModelService(JsonFileStore(settings.model_store_dir, create=False), settings)
    return service.train(request, X, datasets=lambda: dataset_store(settings))


def dataset_store(settings: Settings) -> FileDatasetStore:
    """The datasets' folder: ``datasets/`` in ``MODEL_STORE_DIR`` (made by the first upload)."""
    from model_store import FileDatasetStore

    return FileDatasetStore(settings.model_store_dir / DATASETS_FOLDER)


def ingest_dataset(
    settings: Settings,
    upload: str,
    *,
    fmt: str | None,
    compressed: bool,
    name: str | None,
    label: str | None,
) -> Record | None:
    """Parse an uploaded file (``upload``, kept by the caller) into a stored dataset; its
    metadata record. ``fmt`` ``None``: found from the file's first bytes (a multipart upload).
    The upload may still be arriving (``app.datasets.GrowingFile``): the parse keeps pace; if
    its writer gives it up, ``None`` (the server answers why)."""
    from model_store import UploadAbandoned

    from ..datasets import ingest, sniff

    try:
        if fmt is None:
            fmt, compressed = sniff(upload)
        return ingest(
            dataset_store(settings),
            upload,
            fmt=fmt,
            compressed=compressed,
            name=name,
            label=label,
            max_bytes=settings.max_dataset_bytes,
        )
    except UploadAbandoned:
        return None
