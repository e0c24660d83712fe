"""Every domain error of the service, in one place. No web imports: ``app.api.errors`` alone turns
them into HTTP answers (the status of each is noted below). The engine's and the store's errors
stay in their packages, which import nothing of ``app``; they are re-exported here.

Exception hierarchy::

    ValueError
    ├── EngineError ................... app.engine.errors; the computation is impossible (422)
    │   ├── InvalidData ............... features or labels unusable
    │   ├── InvalidParams ............. a training parameter out of range
    │   └── TrainingDiverged .......... the solver's cost blew up
    └── RequestError .................. the request cannot be used as sent
        ├── InvalidRequest ............ fields fail validation (422); ``errors``, ``total``
        ├── MalformedJSON ............. the body is not JSON (400)
        ├── UnsupportedMediaType ...... a Content-Type the route does not read (415)
        │   └── UnsupportedEncoding ... a Content-Encoding it does not read (415)
        ├── LimitExceeded ............. larger than the configured limits (413)
        │   └── BodyTimeout ........... the body took longer than BODY_READ_TIMEOUT (408)
        ├── CsvError .................. the CSV names a bad line or column (422)
        │   └── CsvEncodingError ...... the CSV is not UTF-8 (400)
        └── ProtocolError ............. an unusable Open Inference request (400)
            └── UnknownVersion ........ a model version that does not exist (404)
    StoreError ........................ model_store; a stored model cannot be used
    ├── InvalidModelId ................ not a model reference of any form (404)
    ├── ModelNotFound ................. no such model (404)
    ├── NameNotFound .................. no such registered name (404)
    ├── VersionNotFound ............... no such version of a name (404)
    ├── AliasNotFound ................. no such alias of a name (404)
    ├── InvalidName ................... a name or alias breaking its rule (422); ``field``
    ├── AliasConflict ................. an alias forbids the change (409)
    ├── CorruptModel .................. unreadable or tampered file (409)
    ├── DatasetNotFound ............... no such dataset, or not a valid id (404)
    ├── CorruptDataset ................ a dataset's metadata or data file is damaged (409)
    ├── StoreUnavailable .............. the model folder cannot be read (503)
    │   └── DatabaseUnavailable ....... the model database cannot be used (503)
    ├── StoreWriteFailed .............. the disk refused a write (507 when full, else 503)
    │   └── StoreDeleteFailed ......... the disk refused a delete (503)
    ├── JobNotFound ................... no training job with that id (404)
    └── JobQueueFull .................. MAX_QUEUED_JOBS jobs already wait (429); ``retry_after``
    JobFinished ....................... a cancel for a job that has ended (409); ``status``
    JobCancelled ...................... raised in the training child when its job is cancelled
    TrainingUnavailable ............... the training could not run; nothing was stored
    ├── TrainingBusy .................. every training slot is taken (429); ``retry_after``
    └── TrainingCrashed ............... the training child died (503)
    ChildCrashed ...................... a child decoding a large body died (503; app.offload)

They cross the process boundary from the training child (``app.training``), so every one
pickles, whatever its ``__init__`` takes (``model_store.PicklableError``, the base of both the
store's errors and the service's); ``tests/api/test_errors_pickle.py`` round-trips them all.
"""

from __future__ import annotations

from collections.abc import Sequence

from model_store import (
    AliasConflict,
    AliasNotFound,
    CorruptDataset,
    CorruptModel,
    DatabaseUnavailable,
    DatasetNotFound,
    InvalidModelId,
    InvalidName,
    JobNotFound,
    JobQueueFull,
    ModelNotFound,
    NameNotFound,
    PicklableError,
    StoreDeleteFailed,
    StoreError,
    StoreUnavailable,
    StoreWriteFailed,
    VersionNotFound,
)

from .engine.errors import EngineError, InvalidData, InvalidParams, TrainingDiverged

__all__ = [
    "AliasConflict",
    "AliasNotFound",
    "InvalidName",
    "NameNotFound",
    "VersionNotFound",
    "BodyTimeout",
    "ChildCrashed",
    "CorruptDataset",
    "CorruptModel",
    "DatabaseUnavailable",
    "CsvEncodingError",
    "DatasetNotFound",
    "CsvError",
    "EngineError",
    "InvalidData",
    "InvalidModelId",
    "InvalidParams",
    "InvalidRequest",
    "JobCancelled",
    "JobFinished",
    "JobNotFound",
    "JobQueueFull",
    "LimitExceeded",
    "MalformedJSON",
    "ModelNotFound",
    "ProtocolError",
    "RequestError",
    "StoreDeleteFailed",
    "StoreError",
    "StoreUnavailable",
    "StoreWriteFailed",
    "TrainingBusy",
    "TrainingCrashed",
    "TrainingDiverged",
    "TrainingUnavailable",
    "UnknownVersion",
    "UnsupportedEncoding",
    "UnsupportedMediaType",
]


class RequestError(PicklableError, ValueError):
    """The request cannot be used as sent: the client's mistake, a 4xx."""


#: ``InvalidRequest`` keeps this many errors; the rest are only counted.
MAX_LISTED = 20
#: Its message names this many.
MAX_IN_MESSAGE = 5


class InvalidRequest(RequestError):
    """Fields of the request fail validation (HTTP 422).

    ``errors``: ``{"field": "features[3][2]", "message": "..."}`` for at most ``MAX_LISTED``
    of them, so that an answer stays small whatever the input; ``total``: how many there are.
    """

    def __init__(self, errors: Sequence[dict[str, str]], total: int | None = None) -> None:
        self.errors = list(errors[:MAX_LISTED])
        self.total = len(errors) if total is None else total
        shown = "; ".join(f"{e['field']}: {e['message']}" for e in self.errors[:MAX_IN_MESSAGE])
        if self.total > MAX_IN_MESSAGE:
            shown += f"; and {self.total - MAX_IN_MESSAGE} more"
        super().__init__(shown)


class MalformedJSON(RequestError):
    """The body is declared as JSON and is not (HTTP 400); ``reason`` says why, if known."""

    def __init__(self, reason: str | None = None) -> None:
        self.reason = reason
        super().__init__(
            f"body: malformed JSON ({reason})"
            if reason is not None
            else "There was an error parsing the body"  # FastAPI's words, for the rare rest
        )


class UnsupportedMediaType(RequestError):
    """The body's Content-Type is not one this route reads (HTTP 415)."""

    def __init__(self, content_type: str, allowed: Sequence[str]) -> None:
        self.content_type = content_type
        self.allowed = tuple(allowed)
        super().__init__(
            f"Content-Type {content_type or '(none)'!r} is not supported here; "
            f"send {' or '.join(allowed)}"
        )


class UnsupportedEncoding(UnsupportedMediaType):
    """A ``Content-Encoding`` the route does not read (HTTP 415)."""

    def __init__(self, coding: str, allowed: str) -> None:
        RequestError.__init__(self, f"Content-Encoding {coding!r} is not supported here; {allowed}")
        self.content_type = coding
        self.allowed = ()


class LimitExceeded(RequestError):
    """A request is larger than the service's configured limits allow (HTTP 413)."""


class BodyTimeout(LimitExceeded):
    """The request body did not arrive within ``BODY_READ_TIMEOUT`` seconds (HTTP 408).

    Raised inside the app's read of the body by the front layer ``app.api.front.limits``,
    which answers the 408 itself: whatever the app makes of it (a ``LimitExceeded``, so no
    "unhandled error" is logged) is discarded.
    """


class CsvError(RequestError):
    """The CSV body cannot be used; the message names the line and column (HTTP 422)."""


class CsvEncodingError(CsvError):
    """The body is not UTF-8 text (HTTP 400, like malformed JSON)."""


class ProtocolError(RequestError):
    """A malformed or unusable infer request; the message names the input or output (HTTP 400)."""


class UnknownVersion(ProtocolError):
    """A model version that does not exist (HTTP 404)."""


class TrainingUnavailable(PicklableError):
    """The training could not run; nothing was stored."""


class TrainingBusy(TrainingUnavailable):
    """Every training slot of this worker process is taken (HTTP 429 with Retry-After)."""

    def __init__(self, running: int, retry_after: int) -> None:
        self.running = running
        self.retry_after = retry_after
        super().__init__(
            f"training capacity reached: {running} training(s) already running in this "
            f"worker (TRAIN_CONCURRENCY={running}); retry in {retry_after} s"
        )


class TrainingCrashed(TrainingUnavailable):
    """The training child process died before answering (HTTP 503): killed, most often by the
    kernel for memory."""

    def __init__(self) -> None:
        super().__init__(
            "the training process stopped before it finished (killed, most likely for lack of "
            "memory); nothing was stored. Retry with fewer rows, or once other trainings end"
        )


class ChildCrashed(PicklableError):
    """The child process given a large request body (``app.offload``) died before answering
    (HTTP 503): killed, most often by the kernel for memory."""

    def __init__(self) -> None:
        super().__init__(
            "the process decoding this request stopped before it finished (killed, most likely "
            "for lack of memory); retry with a smaller body"
        )


class JobFinished(PicklableError):
    """A cancel for a job that has already ended (HTTP 409): it keeps its final state."""

    def __init__(self, job_id: str, status: str) -> None:
        self.job_id = job_id
        self.status = status
        super().__init__(
            f"job {job_id!r} has already ended ({status}); only a queued or "
            "running job can be cancelled"
        )


class JobCancelled(PicklableError):
    """Raised inside a job's training when a cancel was asked for: the fit stops, nothing is
    stored, and the job becomes ``cancelled`` (never an HTTP answer)."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id!r} was cancelled")
