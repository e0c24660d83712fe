"""One training, from the request's bytes to the stored model: runs in a training child process
(or a thread, for small bodies). Heavy imports (NumPy, the service) happen inside functions: a
spawned child imports this module before its initializer has limited the BLAS threads.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator, Sequence
from multiprocessing.context import SpawnProcess
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from model_store import FileDatasetStore, JobStore, ModelStore, Record

    from ..audit import Actor
    from ..config import Settings
    from ..schemas import DatasetEvaluateRequest, Evaluation, ModelSummary

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
    global _keep_stores
    _keep_stores = True


#: In a training child, the stores it opened, kept for its life (``opened_store``).
_kept: dict[tuple[str | None, str], tuple[ModelStore, JobStore]] = {}
_keep_stores = False


@contextlib.contextmanager
def opened_store(settings: Settings) -> Iterator[tuple[ModelStore, JobStore]]:
    """The model store ``settings`` name (opened with ``create=False``) and its job store. A
    training child keeps them for its life, as it runs one training after another: a
    PostgreSQL store opens a pool and a connection (~15-25 ms a time, a small job's fit or
    more). Elsewhere (a training in a thread of the server) they are opened and closed around
    the work."""
    from model_store import open_store

    key = (settings.model_store_url, str(settings.model_store_dir))
    if _keep_stores and key in _kept:
        yield _kept[key]
        return
    store = open_store(settings.model_store_url, settings.model_store_dir, create=False)
    pair = (store, job_store(settings, store))
    if _keep_stores:
        _kept[key] = pair
        yield pair
        return
    try:
        yield pair
    finally:
        pair[1].close()
        store.close()


def train_from_body(
    settings: Settings,
    content_type: str | None,
    body: bytes | str,
    query: Sequence[tuple[str, str]] = (),
    actor: Actor | None = None,
    *,
    progress: JobProgress | None = None,
) -> ModelSummary:
    """Decode, validate, fit and save; the stored model's summary. ``body``: the bytes, or the
    path of a file holding them (read, then deleted); ``query``: the request's query parameters
    (the options of a CSV body); ``actor``: who asked (for the audit log); ``progress``: a
    job's, told of each phase and iteration (and able to stop the training: ``train_job``).

    Raises the domain errors of ``app.errors`` (they pickle, so they reach the server as they
    are): ``UnsupportedMediaType``, ``InvalidRequest``, ``MalformedJSON``, ``CsvError``,
    ``EngineError``, ``LimitExceeded``, ``StoreError``.
    """
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
    labels = getattr(request, "labels", None)  # a dataset's rows are read in blocks, later
    if progress is not None and labels is not None:
        progress.phase("reading", rows_read=len(labels))
    with opened_store(settings) as (store, _):
        return ModelService(store, settings).train(
            request,
            X,
            actor=actor,
            monitor=progress,
            datasets=lambda: dataset_store(settings, store),
        )


#: A job's progress goes to its record at most this often (seconds): a tenth of a second is as
#: often as an event stream shows it.
REPORT_INTERVAL = 0.1
#: How often (seconds) a running job looks for a cancel (a file, or a row's flag) and for its
#: server.
CHECK_INTERVAL = 0.05
#: The exit status of a training child whose server died under it.
ORPHANED_EXIT = 70


class JobProgress:
    """The training child's side of a job (``app.training.job.train_job``): it writes the job's
    progress to the record, at most every ``REPORT_INTERVAL`` s, and stops the training when
    the job is cancelled (``JobCancelled``) or when the server process that runs the job died.

    A ``service.TrainingMonitor``. Called on every iteration of the solver (and every row block
    of a fit that reads rows in blocks), it looks at a clock and returns, but for every
    ``CHECK_INTERVAL`` s, when it looks for the cancel marker (one ``stat``, or one indexed query
    on a kept connection with the PostgreSQL store) and at its parent.
    """

    def __init__(self, jobs: JobStore, record: Record) -> None:
        from datetime import datetime

        self.jobs = jobs
        self.record = dict(record)
        started = record.get("started_at")
        self.started = datetime.fromisoformat(started).timestamp() if started else time.time()
        self.parent = os.getppid()
        self.phase_name = "reading"
        self.iterations = 0
        self.max_iter: int | None = None
        self.loss: float | None = None
        self.grad_norm: float | None = None
        self.rows_read = 0
        self._next_check = 0.0
        self._next_report = 0.0

    # --- service.TrainingMonitor --------------------------------------------------------------

    def iteration(self, iteration: int, loss: float, grad_norm: float) -> None:
        if iteration > 0:  # 0 is each solver's (or solver stage's) starting point
            self.iterations += 1
        self.loss, self.grad_norm = loss, grad_norm
        now = time.monotonic()
        if now >= self._next_check:
            self._tick(now)

    def block(self, rows: int) -> None:
        self.rows_read = max(self.rows_read, rows)  # the first pass reads; later ones re-read
        now = time.monotonic()
        if now >= self._next_check:
            self._tick(now)

    def fitting(self, *, max_iter: int) -> None:
        self.max_iter = max_iter
        self.phase("fitting")

    def saving(self) -> None:
        self.phase("saving")

    # --- the rest -----------------------------------------------------------------------------

    def phase(self, name: str, *, rows_read: int | None = None) -> None:
        """Enter a phase (``reading``, ``fitting``, ``saving``): checked and reported at once."""
        self.phase_name = name
        if rows_read is not None:
            self.rows_read = rows_read
        self.check()
        self.report(time.monotonic())

    def _tick(self, now: float) -> None:
        self._next_check = now + CHECK_INTERVAL
        self.check()
        if now >= self._next_report:
            self.report(now)

    def check(self) -> None:
        job_id = self.record["id"]
        if self.jobs.cancel_requested(job_id):
            from ..errors import JobCancelled  # here: see the module's docstring

            raise JobCancelled(job_id)
        if os.getppid() != self.parent:
            # The server died (a crash, kill -9): after a restart the job is "interrupted",
            # so nothing may be saved now; nobody is left to hear an answer either.
            os._exit(ORPHANED_EXIT)

    def progress(self) -> dict[str, Any]:
        return {
            "phase": self.phase_name,
            "iteration": self.iterations,
            "max_iter": self.max_iter,
            "loss": _finite(self.loss),
            "grad_norm": _finite(self.grad_norm),
            "rows_read": self.rows_read,
            "elapsed_s": round(max(0.0, time.time() - self.started), 3),
        }

    def report(self, now: float) -> None:
        self._next_report = now + REPORT_INTERVAL
        self.record["progress"] = self.progress()
        self.jobs.update(self.record)


def _finite(x: float | None) -> float | None:
    """JSON has no NaN or Infinity: such a value is reported as ``null``."""
    return x if x is None or math.isfinite(x) else None


def train_job(settings: Settings, job_id: str) -> ModelSummary:
    """Run the training of job ``job_id`` (its runner, ``app.jobs.JobScheduler``, holds it and
    marks it ``running``): the request stored with the job, read, decoded, fitted and saved, with
    progress written to the job's record. Returns the stored model's summary.

    Raises ``JobCancelled`` when the job was cancelled (nothing stored), or any error of
    ``train_from_body`` (the job fails with the status that error has as an HTTP answer): the
    same training as a synchronous ``/train``, whatever its request names (a training from a
    dataset is one whose body names the dataset).
    """
    from ..audit import Actor

    with opened_store(settings) as (_, jobs):
        record = jobs.get(job_id)
        progress = JobProgress(jobs, record)
        progress.phase("reading")
        request = record["request"]
        actor = request.get("actor")
        return train_from_body(
            settings,
            request["content_type"],
            jobs.read_body(job_id),
            [tuple(q) for q in request["query"]],
            None if actor is None else Actor(**actor),
            progress=progress,
        )


def models_folder(settings: Settings) -> Path:
    """The folder store's model folder; with a database, ``MODEL_STORE_DIR`` (where datasets'
    files are kept, on a volume every replica and worker mounts)."""
    from model_store import store_folder

    folder = store_folder(settings.model_store_url, settings.model_store_dir)
    return folder or settings.model_store_dir


def job_store(settings: Settings, store: ModelStore) -> JobStore:
    """The training jobs of ``store`` (opened from ``settings``): in its database for the
    PostgreSQL store, else in the folder ``jobs`` of the model folder, so every worker and
    replica over the same store sees them (``model_store.job_store_for``)."""
    from model_store import job_store_for

    return job_store_for(store, models_folder(settings))


def evaluate_dataset(
    settings: Settings, ref: str, request: DatasetEvaluateRequest, actor: Actor | None
) -> Evaluation:
    """``POST /models/{ref}/evaluate`` on a stored dataset, in a training child (pyarrow, and a
    dataset's rows, stay out of the server): the model's feature columns, read from the mapped
    file, then the service's one ``evaluate``."""
    import numpy as np

    from ..datasets import read_training_columns
    from ..errors import LimitExceeded
    from ..service import ModelService

    with opened_store(settings) as (store, _):
        service = ModelService(store, settings)
        model = service.served(ref)
        datasets = dataset_store(settings, store)
        rows = datasets.load(request.dataset)["rows"]
        if rows > settings.max_rows:
            raise LimitExceeded(
                f"dataset: {rows} rows is more than the limit of {settings.max_rows} (MAX_ROWS) "
                "for an evaluation, which holds every row's probabilities"
            )
        columns = read_training_columns(
            datasets, request.dataset, label=request.label, features=model.feature_names
        )
        X = np.vstack([np.column_stack(batch) for batch in columns.batches])
        return service.evaluate(
            ref,
            X,
            columns.labels.tolist(),
            threshold=request.threshold,
            positive_label=request.positive_label,
            actor=actor,
        )


def dataset_store(settings: Settings, store: ModelStore) -> FileDatasetStore:
    """The datasets of ``store`` (opened from ``settings``): files in ``datasets/`` of the model
    folder (made by the first upload), or of ``MODEL_STORE_DIR`` with the PostgreSQL store,
    which keeps their metadata (``model_store.postgres_datasets`` says why)."""
    from model_store import dataset_store_for

    return dataset_store_for(store, models_folder(settings))


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

    with opened_store(settings) as (store, _):
        try:
            if fmt is None:
                fmt, compressed = sniff(upload)
            return ingest(
                dataset_store(settings, store),
                upload,
                fmt=fmt,
                compressed=compressed,
                name=name,
                label=label,
                max_bytes=settings.max_dataset_bytes,
            )
        except UploadAbandoned:
            return None
