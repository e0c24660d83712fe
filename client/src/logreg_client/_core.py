"""The sans-IO core: what to send for each call and what its answer means, shared by ``Client``
and ``AsyncClient``, which only send.

A call is a ``Call``: method, path, query, body and a ``parse`` for the success answer. Errors
become exceptions here (``raise_for``), and ``Retry`` decides whether and how long to wait before
sending a call again. Adding a route is one builder here and one line in each client::

    def get_name(name: str) -> Call[NameDetail]:
        return Call("GET", f"/names/{segment('name', name)}", _json(NameDetail.from_json))
"""

from __future__ import annotations

import email.utils
import json
import math
import operator
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from . import _data
from ._exceptions import JobCancelled, JobTimeout, ServiceError, ServiceUnreachable, error_type
from ._models import (
    JOB_STATUSES,
    AliasChange,
    AliasHistory,
    AuditList,
    Dataset,
    DatasetList,
    Evaluation,
    EvaluationList,
    JobList,
    JobState,
    ModelDetail,
    ModelList,
    ModelSummary,
    NameDetail,
    NameList,
    Prediction,
)

T = TypeVar("T")

JSON = "application/json"
CSV = "text/csv"
PARQUET = "application/vnd.apache.parquet"
#: Trainings may run up to the service's TRAIN_TIME_BUDGET (300 s by default) before answering.
DEFAULT_TIMEOUT = httpx.Timeout(10.0, read=360.0)
#: Upload chunk size for files (a progress callback is called once per chunk).
CHUNK = 256 * 1024


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request, and how to read its success answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    #: a file to stream as the body (opened again for each attempt, so retries resend it)
    upload: Path | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    #: the statuses after which this call may be sent again (``None``: ``Retry.statuses``); a
    #: call that must not be done twice narrows them to answers sent before anything changed
    retry_statuses: frozenset[int] | None = None

    def result(self, response: httpx.Response) -> T:
        """The parsed answer, or the service's error raised."""
        raise_for(response)
        return self.parse(response)


def raise_for(response: httpx.Response) -> None:
    """Raise the exception of the answer's status family, carrying ``detail`` and ``errors``."""
    status = response.status_code
    if status < 400:
        return
    detail: str = response.reason_phrase or f"HTTP {status}"
    errors: list[dict[str, Any]] = []
    try:
        body = response.json()
    except ValueError:  # not JSON: a proxy's page, say
        text = response.text.strip()
        if text:
            detail = text[:500]
    else:
        if isinstance(body, dict):
            detail = str(body.get("detail") or body.get("error") or detail)
            errors = [e for e in body.get("errors") or [] if isinstance(e, dict)]
    raise error_type(status)(
        status,
        detail,
        errors,
        retry_after=retry_after(response.headers.get("retry-after")),
        request_id=response.headers.get("x-request-id"),
    )


def retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


@dataclass(frozen=True)
class Retry:
    """When to send a refused call again: statuses 429 and 503, at most ``attempts`` more times.

    The wait is the answer's ``Retry-After`` when it has one, else ``backoff * 2**n`` for the
    n-th retry (0-based), at most ``max_wait``. A ``Retry-After`` longer than ``max_wait`` is
    not waited for: the error is raised, carrying it, for the caller to decide.
    """

    attempts: int = 3
    backoff: float = 0.5
    max_wait: float = 60.0
    statuses: frozenset[int] = frozenset({429, 503})

    def delay(
        self,
        retries_done: int,
        response: httpx.Response,
        statuses: frozenset[int] | None = None,
    ) -> float | None:
        """Seconds to wait before sending again, or ``None`` to stop here. ``statuses``
        narrows ``self.statuses`` for one call (``Call.retry_statuses``)."""
        allowed = self.statuses if statuses is None else self.statuses & statuses
        if response.status_code not in allowed or retries_done >= self.attempts:
            return None
        told = retry_after(response.headers.get("retry-after"))
        if told is not None:
            return told if told <= self.max_wait else None
        return min(self.backoff * 2.0**retries_done, self.max_wait)


def as_retry(retries: int | Retry) -> Retry:
    return retries if isinstance(retries, Retry) else Retry(attempts=retries)


def ref_path(ref: str) -> str:
    """A model reference (an id, ``NAME``, ``NAME:VERSION``, ``NAME@ALIAS``, ``latest``) as one
    path segment."""
    if not ref:
        raise ValueError("ref: a model reference must not be empty")
    return quote(ref, safe="@:")


def segment(what: str, value: str) -> str:
    """A name or an alias as one path segment. Other characters are escaped and reach the
    service, which names its rule; a ``/`` cannot (servers decode ``%2F`` before routing, so it
    would name another route), nor can ``.`` and ``..`` (URLs drop them): refused here."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what}: must be a non-empty string, got {value!r}")
    if "/" in value or value in (".", ".."):
        raise ValueError(f"{what}: {value!r} is not a {what} (no '/', not '.' or '..')")
    return quote(value, safe="")


def whole_number(value: Any) -> Any:
    """NumPy's integers as ``int`` (JSON cannot encode them); anything else is sent as it is,
    for the service to name (``version: must be a whole number``)."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        return value
    return operator.index(value)


def time_query(value: datetime | str) -> str:
    """A ``since`` time as the service reads it (ISO 8601). A naive datetime is UTC, as the
    service reads a time without an offset; a string is sent as it is."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.isoformat()
    return value


def encode_json(body: Any) -> bytes:
    # allow_nan=False: JSON has no NaN; _data.rows already named the first one in features
    return json.dumps(body, allow_nan=False, separators=(",", ":")).encode()


def query_value(value: Any) -> str:
    """A training setting as a CSV upload's query string carries it (the service reads values
    as JSON when they parse as JSON)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _json(parse: Callable[[Any], T]) -> Callable[[httpx.Response], T]:
    return lambda response: parse(response.json())


# --- the calls ----------------------------------------------------------------------------------


def _train_body(
    X: Any,
    y: Any,
    *,
    name: str | None,
    feature_names: list[str] | None,
    sample_weight: Any,
    params: Mapping[str, Any] | None,
) -> bytes:
    body: dict[str, Any] = {"features": _data.rows(X), "labels": _data.labels(y)}
    names = feature_names if feature_names is not None else _data.feature_names(X)
    if names is not None:
        body["feature_names"] = list(names)
    if name is not None:
        body["name"] = name
    weights = _data.weights(sample_weight)
    if weights is not None:
        body["sample_weight"] = weights
    if params:
        body["params"] = dict(params)
    return encode_json(body)


def train(
    X: Any,
    y: Any,
    *,
    name: str | None = None,
    feature_names: list[str] | None = None,
    sample_weight: Any = None,
    params: Mapping[str, Any] | None = None,
) -> Call[ModelSummary]:
    body = _train_body(
        X, y, name=name, feature_names=feature_names, sample_weight=sample_weight, params=params
    )
    return Call(
        "POST", "/train", _json(ModelSummary.from_json), body=body, headers={"content-type": JSON}
    )


def _csv_query(
    label: str | None, name: str | None, params: Mapping[str, Any] | None
) -> dict[str, str]:
    query = {k: query_value(v) for k, v in (params or {}).items() if v is not None}
    if label is not None:
        query["label"] = label
    if name is not None:
        query["name"] = name
    return query


def train_csv(
    path: str | Path,
    *,
    label: str | None = None,
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> Call[ModelSummary]:
    return Call(
        "POST",
        "/train",
        _json(ModelSummary.from_json),
        params=_csv_query(label, name, params),
        upload=Path(path),
        headers={"content-type": CSV},
    )


def predict(
    ref: str, X: Any, *, threshold: float | None = None, explain: bool = False
) -> Call[Prediction]:
    body: dict[str, Any] = {"model_id": ref, "features": _data.rows(X)}
    if threshold is not None:
        body["threshold"] = threshold
    if explain:  # only when asked: an older service refuses a field it does not know
        body["explain"] = True
    return Call(
        "POST",
        "/predict",
        _json(Prediction.from_json),
        body=encode_json(body),
        headers={"content-type": JSON},
    )


def predict_csv(ref: str, path: str | Path, *, threshold: float | None = None) -> Call[bytes]:
    query = {"model_id": ref}
    if threshold is not None:
        query["threshold"] = query_value(threshold)
    return Call(
        "POST",
        "/predict",
        lambda response: response.content,
        params=query,
        upload=Path(path),
        headers={"content-type": CSV, "accept": CSV},
    )


# --- evaluations ----------------------------------------------------------------------------------


def label_value(value: Any) -> Any:
    """A class label as JSON carries it: NumPy's scalars (``np.int64(1)``, ``np.str_``) as
    Python's; anything else as it is, for the service to name."""
    return value.item() if hasattr(value, "item") and hasattr(value, "dtype") else value


def _evaluate_options(threshold: float | None, positive_label: Any) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if threshold is not None:
        options["threshold"] = threshold
    if positive_label is not None:
        options["positive_label"] = label_value(positive_label)
    return options


def evaluate_path(ref: str) -> str:
    return f"/models/{ref_path(ref)}/evaluate"


def evaluate(
    ref: str,
    X: Any,
    y: Any,
    *,
    threshold: float | None = None,
    positive_label: Any = None,
) -> Call[Evaluation]:
    """Rows ``X`` (in the model's feature order, as ``predict`` sends them) and their true
    labels ``y``."""
    body = {
        "features": _data.rows(X),
        "labels": _data.labels(y),
        **_evaluate_options(threshold, positive_label),
    }
    return Call(
        "POST",
        evaluate_path(ref),
        _json(Evaluation.from_json),
        body=encode_json(body),
        headers={"content-type": JSON},
    )


def evaluate_csv(
    ref: str,
    path: str | Path,
    *,
    label: str | None = None,
    threshold: float | None = None,
    positive_label: Any = None,
) -> Call[Evaluation]:
    """A CSV file with a header row, streamed: the model's features by name, and ``label``."""
    query = {k: query_value(v) for k, v in _evaluate_options(threshold, positive_label).items()}
    if label is not None:
        query["label"] = label
    return Call(
        "POST",
        evaluate_path(ref),
        _json(Evaluation.from_json),
        params=query,
        upload=Path(path),
        headers={"content-type": CSV},
    )


def evaluate_dataset(
    ref: str,
    dataset_id: str,
    *,
    label: str,
    threshold: float | None = None,
    positive_label: Any = None,
) -> Call[Evaluation]:
    """A stored dataset: the model's feature columns (by name) and ``label``. The service
    reads it in a training slot: a 429 when every slot is taken, sent again."""
    body = {
        "dataset": dataset_id,
        "label": label,
        **_evaluate_options(threshold, positive_label),
    }
    return Call(
        "POST",
        evaluate_path(ref),
        _json(Evaluation.from_json),
        body=encode_json(body),
        headers={"content-type": JSON},
    )


def list_evaluations(ref: str) -> Call[EvaluationList]:
    return Call("GET", f"/models/{ref_path(ref)}/evaluations", _json(EvaluationList.from_json))


def report_path(ref: str) -> str:
    """The model's report page (HTML, for a browser)."""
    return f"/models/{ref_path(ref)}/report"


def list_models(*, limit: int = 50, offset: int = 0) -> Call[ModelList]:
    return Call(
        "GET",
        "/models",
        _json(ModelList.from_json),
        params={"limit": str(limit), "offset": str(offset)},
    )


def get_model(ref: str) -> Call[ModelDetail]:
    return Call("GET", f"/models/{ref_path(ref)}", _json(ModelDetail.from_json))


def delete_model(ref: str) -> Call[None]:
    return Call("DELETE", f"/models/{ref_path(ref)}", lambda response: None)


def health() -> Call[dict[str, Any]]:
    return Call("GET", "/health", _json(dict))


# --- names, versions, aliases, the audit log ----------------------------------------------------


def list_names(*, limit: int = 50, offset: int = 0) -> Call[NameList]:
    return Call(
        "GET",
        "/names",
        _json(NameList.from_json),
        params={"limit": str(limit), "offset": str(offset)},
    )


def get_name(name: str) -> Call[NameDetail]:
    return Call("GET", f"/names/{segment('name', name)}", _json(NameDetail.from_json))


def alias_path(name: str, alias: str) -> str:
    return f"/names/{segment('name', name)}/aliases/{segment('alias', alias)}"


def set_alias(name: str, alias: str, version: int) -> Call[AliasChange]:
    return Call(
        "PUT",
        alias_path(name, alias),
        _json(AliasChange.from_json),
        body=encode_json({"version": whole_number(version)}),
        headers={"content-type": JSON},
    )


def delete_alias(name: str, alias: str) -> Call[None]:
    return Call("DELETE", alias_path(name, alias), lambda response: None)


def alias_history(name: str, alias: str) -> Call[AliasHistory]:
    return Call("GET", f"{alias_path(name, alias)}/history", _json(AliasHistory.from_json))


#: Answers sent before a change was made. A 503 may come after a rollback was written (the
#: folder's fsync failed, a proxy gave up): sent again, it would go one more version back.
REFUSED_BEFORE_CHANGE = frozenset({429})


def rollback_alias(name: str, alias: str) -> Call[AliasChange]:
    return Call(
        "POST",
        f"{alias_path(name, alias)}/rollback",
        _json(AliasChange.from_json),
        retry_statuses=REFUSED_BEFORE_CHANGE,
    )


def audit(*, since: datetime | str | None = None, limit: int = 100) -> Call[AuditList]:
    query = {"limit": str(limit)}
    if since is not None:
        query["since"] = time_query(since)
    return Call("GET", "/audit", _json(AuditList.from_json), params=query)


# --- training jobs --------------------------------------------------------------------------------

RESPOND_ASYNC = {"prefer": "respond-async"}
#: What ``submit`` answers: the job (202), or the model itself (201) from a service without jobs,
#: which ignores ``Prefer`` and trains at once, as RFC 7240 lets it.
Submitted = JobState | ModelSummary


def _submitted(response: httpx.Response) -> Submitted:
    data = response.json()
    if response.status_code == 202:
        return JobState.from_json(data)
    return ModelSummary.from_json(data)


def submit(
    X: Any,
    y: Any,
    *,
    name: str | None = None,
    feature_names: list[str] | None = None,
    sample_weight: Any = None,
    params: Mapping[str, Any] | None = None,
) -> Call[Submitted]:
    """``train``'s request with ``Prefer: respond-async``. Sent again only after a 429 (the
    queue is full): after a 503 the job may have been made, and a second would train twice."""
    body = _train_body(
        X, y, name=name, feature_names=feature_names, sample_weight=sample_weight, params=params
    )
    return Call(
        "POST",
        "/train",
        _submitted,
        body=body,
        headers={"content-type": JSON, **RESPOND_ASYNC},
        retry_statuses=REFUSED_BEFORE_CHANGE,
    )


def submit_csv(
    path: str | Path,
    *,
    label: str | None = None,
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> Call[Submitted]:
    return Call(
        "POST",
        "/train",
        _submitted,
        params=_csv_query(label, name, params),
        upload=Path(path),
        headers={"content-type": CSV, **RESPOND_ASYNC},
        retry_statuses=REFUSED_BEFORE_CHANGE,
    )


# --- datasets -----------------------------------------------------------------------------------


def upload_headers(path: Path) -> dict[str, str]:
    """How a file is sent to ``POST /datasets``, by its name: ``.parquet`` as Parquet,
    ``.gz`` as a CSV with ``Content-Encoding: gzip`` (sent as it is on disk), else CSV."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes[-1:] == [".parquet"]:
        return {"content-type": PARQUET}
    if suffixes[-1:] in ([".gz"], [".gzip"]):
        return {"content-type": CSV, "content-encoding": "gzip"}
    return {"content-type": CSV}


def upload(path: str | Path, *, label: str | None = None, name: str | None = None) -> Call[Dataset]:
    """``POST /datasets`` streaming the file. Sent again only after a 429 (no training slot,
    answered before the body is read): after a 503 the dataset may have been stored."""
    path = Path(path)
    return Call(
        "POST",
        "/datasets",
        _json(Dataset.from_json),
        params=_csv_query(label, name, None),
        upload=path,
        headers=upload_headers(path),
        retry_statuses=REFUSED_BEFORE_CHANGE,
    )


def list_datasets(*, limit: int = 50, offset: int = 0) -> Call[DatasetList]:
    return Call(
        "GET",
        "/datasets",
        _json(DatasetList.from_json),
        params={"limit": str(limit), "offset": str(offset)},
    )


def dataset_path(dataset_id: str) -> str:
    return f"/datasets/{segment('dataset id', dataset_id)}"


def get_dataset(dataset_id: str) -> Call[Dataset]:
    return Call("GET", dataset_path(dataset_id), _json(Dataset.from_json))


def delete_dataset(dataset_id: str) -> Call[None]:
    return Call("DELETE", dataset_path(dataset_id), lambda response: None)


def _dataset_body(
    dataset_id: str,
    *,
    label: str,
    features: list[str] | None,
    name: str | None,
    params: Mapping[str, Any] | None,
) -> bytes:
    body: dict[str, Any] = {"dataset": dataset_id, "label": label}
    if features is not None:
        body["features"] = list(features)
    if name is not None:
        body["name"] = name
    if params:
        body["params"] = dict(params)
    return encode_json(body)


def submit_dataset(
    dataset_id: str,
    *,
    label: str,
    features: list[str] | None = None,
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> Call[Submitted]:
    """``POST /train`` from a stored dataset, its columns named, as a job (``submit``'s rules:
    resent only after a 429). ``Client.train_dataset`` waits for it."""
    body = _dataset_body(dataset_id, label=label, features=features, name=name, params=params)
    return Call(
        "POST",
        "/train",
        _submitted,
        body=body,
        headers={"content-type": JSON, **RESPOND_ASYNC},
        retry_statuses=REFUSED_BEFORE_CHANGE,
    )


def dataset_label(dataset: Dataset, label: str | None) -> str:
    """The label column a training from ``dataset`` names: ``label``, else the column the
    upload took as the label (the one kept as text), else the last."""
    if label is not None:
        return label
    text = [c.name for c in dataset.columns if c.dtype == "string"]
    if text:
        return text[0]
    if not dataset.columns:
        raise ValueError("label: the dataset has no columns")
    return dataset.columns[-1].name


def job_path(job_id: str) -> str:
    return f"/jobs/{segment('job id', job_id)}"


def list_jobs(*, status: str | None = None, limit: int = 50, offset: int = 0) -> Call[JobList]:
    if status is not None and status not in JOB_STATUSES:
        raise ValueError(f"status: {status!r} is not one of {', '.join(JOB_STATUSES)}")
    query = {"limit": str(limit), "offset": str(offset)}
    if status is not None:
        query["status"] = status
    return Call("GET", "/jobs", _json(JobList.from_json), params=query)


def get_job(job_id: str) -> Call[JobState]:
    return Call("GET", job_path(job_id), _json(JobState.from_json))


def cancel_job(job_id: str) -> Call[JobState]:
    """200 with the job ``cancelled``, or 202 while it is still stopping; 409 once it ended.
    Sent again only after a 429: a cancel that was made answers 409 the second time."""
    return Call(
        "POST",
        f"{job_path(job_id)}/cancel",
        _json(JobState.from_json),
        retry_statuses=REFUSED_BEFORE_CHANGE,
    )


def job_events(job_id: str) -> Call[None]:
    """The request of a job's event stream (read line by line by the clients, through
    ``EventStream``, never as one answer)."""
    return Call(
        "GET",
        f"{job_path(job_id)}/events",
        lambda response: None,
        headers={"accept": "text/event-stream", "cache-control": "no-cache"},
    )


@dataclass
class Event:
    """One server-sent event."""

    event: str = "message"
    data: str = ""
    id: str | None = None


class EventStream:
    """Server-sent events from the lines of a ``text/event-stream`` (the WHATWG HTML rules):
    ``field: value`` lines, one leading space of the value dropped; ``data`` lines joined with
    newlines; a blank line ends an event; ``:`` lines are comments (keep-alives); unknown
    fields ignored; an event without data is not dispatched."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self.last_id: str | None = None

    def feed(self, line: str) -> Event | None:
        """Take one line (without its line ending); the event it completes, if any."""
        if line == "":
            event = None
            if self._data:
                event = Event(self._event or "message", "\n".join(self._data), self.last_id)
            self._event, self._data = "", []
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_id = value
        return None


def event_state(event: Event) -> JobState:
    """A job event's ``data``: the job as ``GET /jobs/{id}`` shows it."""
    return JobState.from_json(json.loads(event.data))


def outcome(state: JobState) -> str:
    """The id of the model a final job stored; or the exception of its end raised: a failed
    job's ``error`` as the same training would have raised at once, ``JobCancelled``."""
    if state.status == "succeeded" and state.model_id is not None:
        return state.model_id
    if state.status == "cancelled":
        raise JobCancelled(state.id)
    error = state.error
    status, detail = (error.status, error.detail) if error else (500, f"job {state.status}")
    raise error_type(status)(status, detail)


@dataclass
class Follow:
    """How ``job.wait`` follows a job: the event stream, reconnected when it drops, polling
    ``GET /jobs/{id}`` once the stream has dropped ``stream_drops`` times in a row; a
    ``ServiceUnreachable`` once ``attempts`` tries in a row heard nothing; ``JobTimeout`` past
    the deadline. Sans-IO: the clients ask it what to do and tell it what happened."""

    job_id: str
    timeout: float | None = None
    clock: Callable[[], float] = time.monotonic
    #: a read this long without a byte means a dead connection (the service sends a keep-alive
    #: comment every 15 s)
    read_timeout: float = 35.0
    poll_interval: float = 0.5
    stream_drops: int = 2
    attempts: int = 6
    backoff: float = 0.25
    streaming: bool = True
    failures: int = 0
    drops: int = 0
    deadline: float | None = None

    def __post_init__(self) -> None:
        if self.timeout is not None:
            self.deadline = self.clock() + self.timeout

    def remaining(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - self.clock())

    def read_timeout_now(self) -> float:
        """The stream's read timeout: a dead connection, or the deadline, whichever is first
        (at least 10 ms: httpx takes 0 as no wait at all)."""
        left = self.remaining()
        return self.read_timeout if left is None else max(0.01, min(left, self.read_timeout))

    def check(self, state: JobState) -> None:
        """``JobTimeout`` past the deadline, unless the job has ended."""
        if not state.final and self.deadline is not None and self.clock() >= self.deadline:
            assert self.timeout is not None
            raise JobTimeout(self.job_id, state.status, self.timeout)

    def heard(self) -> None:
        """An event or an answer came: the connection works."""
        self.failures = 0

    def stream_heard(self) -> None:
        self.failures = 0
        self.drops = 0

    def dropped(self, error: Exception | None) -> float:
        """The stream ended before the final state, or a request failed (``error``, a
        ``ServiceUnreachable`` or a 5xx): seconds to wait before the next try."""
        self.failures += 1 if error is not None else 0
        if self.failures > self.attempts:
            raise ServiceUnreachable(f"job {self.job_id}: {error}") from error
        if self.streaming:
            self.drops += 1
            if self.drops >= self.stream_drops:
                self.streaming = False
        delay = self.poll_interval if error is None else self.backoff * 2.0 ** (self.failures - 1)
        left = self.remaining()
        return delay if left is None else min(delay, left)


__all__ = ["DEFAULT_TIMEOUT", "Call", "Retry", "ServiceError", "raise_for", "retry_after"]
