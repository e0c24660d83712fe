"""The sans-IO core: what to send for each call and what its answer means, shared by ``Client``
and ``AsyncClient``, which only send.

A call is a ``Call``: method, path, query, body and a ``parse`` for the success answer. Errors
become exceptions here (``raise_for``), and ``Retry`` decides whether and how long to wait before
sending a call again. Adding a route is one builder here and one line in each client::

    def names() -> Call[NameList]:
        return Call("GET", "/names", parse=lambda r: NameList.from_json(r.json()))
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from . import _data
from ._exceptions import ServiceError, error_type
from ._models import ModelDetail, ModelList, ModelSummary, Prediction

T = TypeVar("T")

JSON = "application/json"
CSV = "text/csv"
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
        status, detail, errors, retry_after=retry_after(response.headers.get("retry-after"))
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

    def delay(self, retries_done: int, response: httpx.Response) -> float | None:
        """Seconds to wait before sending again, or ``None`` to stop here."""
        if response.status_code not in self.statuses or retries_done >= self.attempts:
            return None
        told = retry_after(response.headers.get("retry-after"))
        if told is not None:
            return told if told <= self.max_wait else None
        return min(self.backoff * 2.0**retries_done, self.max_wait)


def as_retry(retries: int | Retry) -> Retry:
    return retries if isinstance(retries, Retry) else Retry(attempts=retries)


def ref_path(ref: str) -> str:
    """A model reference (an id, ``latest``; later ``NAME:VERSION``, ``NAME@ALIAS``) as one
    path segment."""
    if not ref:
        raise ValueError("ref: a model reference must not be empty")
    return quote(ref, safe="@:")


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


def train(
    X: Any,
    y: Any,
    *,
    name: str | None = None,
    feature_names: list[str] | None = None,
    sample_weight: Any = None,
    params: Mapping[str, Any] | None = None,
) -> Call[ModelSummary]:
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
    return Call(
        "POST",
        "/train",
        _json(ModelSummary.from_json),
        body=encode_json(body),
        headers={"content-type": JSON},
    )


def train_csv(
    path: str | Path,
    *,
    label: str | None = None,
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> Call[ModelSummary]:
    query = {k: query_value(v) for k, v in (params or {}).items() if v is not None}
    if label is not None:
        query["label"] = label
    if name is not None:
        query["name"] = name
    return Call(
        "POST",
        "/train",
        _json(ModelSummary.from_json),
        params=query,
        upload=Path(path),
        headers={"content-type": CSV},
    )


def predict(ref: str, X: Any, *, threshold: float | None = None) -> Call[Prediction]:
    body: dict[str, Any] = {"model_id": ref, "features": _data.rows(X)}
    if threshold is not None:
        body["threshold"] = threshold
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


__all__ = ["DEFAULT_TIMEOUT", "Call", "Retry", "ServiceError", "raise_for", "retry_after"]
