"""``Client`` and ``AsyncClient``: the same calls, sent with httpx's sync or async client.

Everything but sending (the request of each call, reading its answer, raising errors, deciding
retries) is in ``_core``, once. Each public method here is one line over a ``_core`` builder.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
    Mapping,
)
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, TypeVar, overload

import httpx

from . import _core
from ._core import DEFAULT_TIMEOUT, Call, Retry
from ._exceptions import ServiceUnreachable
from ._jobs import AsyncJob, Job
from ._models import (
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
#: Called after each chunk of an upload with (bytes sent, total bytes).
Progress = Callable[[int, int], None]

__version__ = "0.1.0"


def resolve_url(url: str | None) -> str:
    url = url or os.environ.get("LOGREG_URL")
    if not url:
        raise ValueError("url: give the service's URL, or set LOGREG_URL")
    return url.rstrip("/")


def client_options(
    url: str | None,
    api_key: str | None,
    timeout: float | httpx.Timeout,
    headers: Mapping[str, str] | None,
) -> dict[str, Any]:
    """Keyword arguments of ``httpx.Client`` / ``httpx.AsyncClient`` (the same for both)."""
    key = api_key if api_key is not None else os.environ.get("LOGREG_API_KEY")
    merged = {"user-agent": f"logreg-client/{__version__}", **(headers or {})}
    if key:
        merged["x-api-key"] = key
    return {"base_url": resolve_url(url), "timeout": timeout, "headers": merged}


def _chunks(path: Path, progress: Progress | None) -> Iterator[bytes]:
    total, sent = path.stat().st_size, 0
    with path.open("rb") as fh:
        while chunk := fh.read(_core.CHUNK):
            yield chunk
            sent += len(chunk)
            if progress is not None:
                progress(sent, total)


class Client:
    """The service's calls, synchronously.

    Parameters
    ----------
    url : str, optional
        The service, e.g. ``http://127.0.0.1:8000``; default ``$LOGREG_URL``.
    api_key : str, optional
        Sent as ``X-API-Key``; default ``$LOGREG_API_KEY``.
    timeout : float or httpx.Timeout
        Per request; the default waits up to 6 minutes for an answer (a training may run for the
        service's ``TRAIN_TIME_BUDGET``).
    retries : int or Retry
        How often a 429 or 503 is sent again, waiting as ``Retry-After`` says (``Retry``).
    sleep : callable
        How to wait between attempts (``time.sleep``); tests pass their own.
    transport : httpx.BaseTransport, optional
        E.g. ``httpx.MockTransport``.

    Use it as a context manager, or call ``close()``.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retries: int | Retry = 3,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        options = client_options(url, api_key, timeout, headers)
        self.url: str = options["base_url"]
        self.retry = _core.as_retry(retries)
        self._sleep = sleep
        self._http = httpx.Client(transport=transport, **options)

    # --- the calls: one line each over _core ---

    def train(
        self,
        X: Any,
        y: Any,
        *,
        name: str | None = None,
        feature_names: list[str] | None = None,
        sample_weight: Any = None,
        **params: Any,
    ) -> ModelSummary:
        """Train a model on rows ``X`` (NumPy, pandas, lists) and labels ``y``; ``params`` are
        the service's training settings (``l2=1e-3, solver="newton"``...)."""
        return self._run(
            _core.train(
                X,
                y,
                name=name,
                feature_names=feature_names,
                sample_weight=sample_weight,
                params=params,
            )
        )

    def train_csv(
        self,
        path: str | Path,
        *,
        label: str | None = None,
        name: str | None = None,
        progress: Progress | None = None,
        **params: Any,
    ) -> ModelSummary:
        """Train on a CSV file with a header row, streamed as it is read; ``label`` names the
        label column (default: the last)."""
        call = _core.train_csv(path, label=label, name=name, params=params)
        return self._run(call, progress=progress)

    def predict(
        self, ref: str, X: Any, *, threshold: float | None = None, explain: bool = False
    ) -> Prediction:
        """Labels and probabilities for rows ``X`` from the model ``ref``: an id, ``NAME``
        (its newest version), ``NAME:VERSION``, ``NAME@ALIAS`` or ``latest``. The answer names
        the model that served (``model_id``, ``name``, ``version``), and ``warnings`` on
        values outside the training range; ``explain=True`` adds each row's score split into
        ``contributions`` per term, from a ``baseline``."""
        return self._run(_core.predict(ref, X, threshold=threshold, explain=explain))

    def predict_proba(self, ref: str, X: Any) -> list[list[float]]:
        """Probabilities, one column per class in the order of the model's ``classes``."""
        return self.predict(ref, X).probabilities

    def predict_csv(
        self,
        ref: str,
        path: str | Path,
        *,
        threshold: float | None = None,
        progress: Progress | None = None,
    ) -> bytes:
        """A CSV file's rows classified, as CSV: ``prediction,proba_<class>,...``."""
        return self._run(_core.predict_csv(ref, path, threshold=threshold), progress=progress)

    def evaluate(
        self,
        ref: str,
        X: Any,
        y: Any,
        *,
        threshold: float | None = None,
        positive_label: Any = None,
    ) -> Evaluation:
        """How good the model ``ref`` is on rows ``X`` (NumPy, pandas, lists; columns in the
        model's feature order) with true labels ``y``: log loss, accuracy, ROC AUC, confusion
        matrix, per-class scores, calibration. The service keeps it (``evaluations``)."""
        call = _core.evaluate(ref, X, y, threshold=threshold, positive_label=positive_label)
        return self._run(call)

    def evaluate_csv(
        self,
        ref: str,
        path: str | Path,
        *,
        label: str | None = None,
        threshold: float | None = None,
        positive_label: Any = None,
        progress: Progress | None = None,
    ) -> Evaluation:
        """``evaluate`` on a CSV file with a header row (streamed): the model's features by
        name, and the ``label`` column (default: the last)."""
        call = _core.evaluate_csv(
            ref, path, label=label, threshold=threshold, positive_label=positive_label
        )
        return self._run(call, progress=progress)

    def evaluate_dataset(
        self,
        ref: str,
        dataset_id: str,
        *,
        label: str,
        threshold: float | None = None,
        positive_label: Any = None,
    ) -> Evaluation:
        """``evaluate`` on a stored dataset (``upload``), read on the service."""
        call = _core.evaluate_dataset(
            ref, dataset_id, label=label, threshold=threshold, positive_label=positive_label
        )
        return self._run(call)

    def evaluations(self, ref: str) -> EvaluationList:
        """The model's last evaluations, newest first."""
        return self._run(_core.list_evaluations(ref))

    def report_url(self, ref: str) -> str:
        """The address of the model's report page (HTML charts, for a browser); nothing is
        sent."""
        return f"{self.url}{_core.report_path(ref)}"

    def models(self, *, limit: int = 50, offset: int = 0) -> ModelList:
        """One page of the stored models, newest first."""
        return self._run(_core.list_models(limit=limit, offset=offset))

    def model(self, ref: str) -> ModelDetail:
        """A model's summary, training settings and learned parameters."""
        return self._run(_core.get_model(ref))

    def delete(self, ref: str) -> None:
        """Delete a model."""
        return self._run(_core.delete_model(ref))

    def health(self) -> dict[str, Any]:
        return self._run(_core.health())

    def names(self, *, limit: int = 50, offset: int = 0) -> NameList:
        """One page of the registered names: newest version, number of versions, aliases."""
        return self._run(_core.list_names(limit=limit, offset=offset))

    def name(self, name: str) -> NameDetail:
        """A registered name, its aliases and every version (newest first)."""
        return self._run(_core.get_name(name))

    def set_alias(self, name: str, alias: str, version: int) -> AliasChange:
        """Point ``NAME@ALIAS`` at a version; it serves that version once this returns."""
        return self._run(_core.set_alias(name, alias, version))

    def delete_alias(self, name: str, alias: str) -> None:
        """Delete an alias (its history stays: ``rollback`` brings it back)."""
        return self._run(_core.delete_alias(name, alias))

    def alias_history(self, name: str, alias: str) -> AliasHistory:
        """Every change of an alias, newest first, with the id of the key that made it."""
        return self._run(_core.alias_history(name, alias))

    def rollback(self, name: str, alias: str) -> AliasChange:
        """Point an alias back at the version before its last change; each rollback goes one
        change further back. ``Conflict`` when there is none. Never resent after a 503."""
        return self._run(_core.rollback_alias(name, alias))

    def audit(self, since: datetime | str | None = None, *, limit: int = 100) -> AuditList:
        """The audit log (admin key): entries at or after ``since``, oldest first; without
        ``since``, the last ``limit``. A naive datetime is UTC."""
        return self._run(_core.audit(since=since, limit=limit))

    # --- datasets ---

    def upload(
        self,
        path: str | Path,
        *,
        label: str | None = None,
        name: str | None = None,
        progress: Progress | None = None,
    ) -> Dataset:
        """Upload a file as a dataset, streamed as it is read: CSV with a header row, a
        ``.csv.gz`` (sent compressed, with ``Content-Encoding: gzip``) or ``.parquet``.
        ``label`` names the label column (default: the last); ``progress(sent, total)`` is
        called with the bytes sent."""
        return self._run(_core.upload(path, label=label, name=name), progress=progress)

    def datasets(self, *, limit: int = 50, offset: int = 0) -> DatasetList:
        """One page of the stored datasets, newest first."""
        return self._run(_core.list_datasets(limit=limit, offset=offset))

    def dataset(self, dataset_id: str) -> Dataset:
        """A dataset's summary: rows, and per column its type, range, mean and missing cells."""
        return self._run(_core.get_dataset(dataset_id))

    def delete_dataset(self, dataset_id: str) -> None:
        """Delete a dataset (the models trained on it stay)."""
        return self._run(_core.delete_dataset(dataset_id))

    def train_dataset(
        self,
        dataset_id: str,
        *,
        label: str,
        features: list[str] | None = None,
        name: str | None = None,
        **params: Any,
    ) -> ModelSummary:
        """Train on a stored dataset: ``label`` and ``features`` (default: every other column)
        name its columns. Followed as a job (``submit_dataset``, then ``wait``): the service
        makes a job of a dataset over its ``TRAIN_SYNC_MAX_ROWS`` whatever was asked."""
        job = self.submit_dataset(dataset_id, label=label, features=features, name=name, **params)
        return job.wait()

    def submit_dataset(
        self,
        dataset_id: str,
        *,
        label: str,
        features: list[str] | None = None,
        name: str | None = None,
        **params: Any,
    ) -> Job:
        """``train_dataset`` as a job: returns at once with a ``Job``."""
        call = _core.submit_dataset(
            dataset_id, label=label, features=features, name=name, params=params
        )
        return Job(self, self._run(call))

    @overload
    def train_file(
        self,
        path: str | Path,
        *,
        label: str | None = ...,
        name: str | None = ...,
        features: list[str] | None = ...,
        wait: Literal[True] = ...,
        progress: Progress | None = ...,
        **params: Any,
    ) -> ModelSummary: ...

    @overload
    def train_file(
        self,
        path: str | Path,
        *,
        label: str | None = ...,
        name: str | None = ...,
        features: list[str] | None = ...,
        wait: Literal[False],
        progress: Progress | None = ...,
        **params: Any,
    ) -> Job: ...

    def train_file(
        self,
        path: str | Path,
        *,
        label: str | None = None,
        name: str | None = None,
        features: list[str] | None = None,
        wait: bool = True,
        progress: Progress | None = None,
        **params: Any,
    ) -> ModelSummary | Job:
        """Upload a file as a dataset (``upload``), then train on it: the model, or with
        ``wait=False`` a ``Job`` at once (``job.wait()`` gives the model). The dataset stays
        (``model.dataset_id``) to train on again; ``delete_dataset`` removes it."""
        dataset = self.upload(path, label=label, name=name, progress=progress)
        column = _core.dataset_label(dataset, label)
        if not wait:
            return self.submit_dataset(
                dataset.id, label=column, features=features, name=name, **params
            )
        return self.train_dataset(dataset.id, label=column, features=features, name=name, **params)

    # --- training jobs ---

    def submit(
        self,
        X: Any,
        y: Any,
        *,
        name: str | None = None,
        feature_names: list[str] | None = None,
        sample_weight: Any = None,
        **params: Any,
    ) -> Job:
        """``train`` as a job (``Prefer: respond-async``): returns at once with a ``Job``;
        ``job.wait(progress=...)`` gives the model. Bad input of a small body is refused here,
        as ``train`` refuses it. A service without jobs trains at once: the ``Job`` is then
        already succeeded (``id`` None)."""
        call = _core.submit(
            X, y, name=name, feature_names=feature_names, sample_weight=sample_weight, params=params
        )
        return Job(self, self._run(call))

    def submit_csv(
        self,
        path: str | Path,
        *,
        label: str | None = None,
        name: str | None = None,
        progress: Progress | None = None,
        **params: Any,
    ) -> Job:
        """``train_csv`` as a job: the upload streams (``progress``), then returns a ``Job``."""
        call = _core.submit_csv(path, label=label, name=name, params=params)
        return Job(self, self._run(call, progress=progress))

    def jobs(self, *, status: str | None = None, limit: int = 50, offset: int = 0) -> JobList:
        """One page of the training jobs, newest first; ``status`` keeps those in that state."""
        return self._run(_core.list_jobs(status=status, limit=limit, offset=offset))

    def job(self, job_id: str) -> Job:
        """A handle on a job (``GET /jobs/{id}``): ``.state``, ``.wait()``, ``.cancel()``."""
        state = self._run(_core.get_job(job_id))
        return Job(self, state)

    def cancel(self, job_id: str) -> JobState:
        """Cancel a queued or running job: ``cancelled``, or still ``running`` while it stops
        (within about a tenth of a second). ``Conflict`` once it has ended."""
        return self._run(_core.cancel_job(job_id))

    # --- sending ---

    def _job_events(self, job_id: str, follow: _core.Follow) -> Generator[JobState, None, None]:
        """The job's states from its event stream, as they come."""
        call = _core.job_events(job_id)
        timeout = httpx.Timeout(self._http.timeout.connect, read=follow.read_timeout_now())
        decoder = _core.EventStream()
        try:
            with self._http.stream(
                call.method, call.path, headers=call.headers, timeout=timeout
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    call.result(response)
                for line in response.iter_lines():
                    event = decoder.feed(line)
                    if event is not None:
                        yield _core.event_state(event)
        except httpx.TransportError as exc:
            raise ServiceUnreachable(f"{self.url}: {exc or type(exc).__name__}") from exc

    def _run(self, call: Call[T], *, progress: Progress | None = None) -> T:
        retries_done = 0
        while True:
            response = self._send(call, progress)
            delay = self.retry.delay(retries_done, response, call.retry_statuses)
            if delay is None:
                return call.result(response)
            self._sleep(delay)
            retries_done += 1

    def _send(self, call: Call[Any], progress: Progress | None) -> httpx.Response:
        headers = dict(call.headers)
        content: bytes | Iterator[bytes] | None = call.body
        if call.upload is not None:
            headers["content-length"] = str(call.upload.stat().st_size)
            content = _chunks(call.upload, progress)
        try:
            return self._http.request(
                call.method, call.path, params=call.params, content=content, headers=headers
            )
        except httpx.TransportError as exc:
            raise ServiceUnreachable(f"{self.url}: {exc or type(exc).__name__}") from exc

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClient:
    """``Client``'s calls for asyncio: the same arguments, each call awaited.

    ``sleep`` defaults to ``asyncio.sleep``; use it as ``async with`` or ``await aclose()``.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retries: int | Retry = 3,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        options = client_options(url, api_key, timeout, headers)
        self.url: str = options["base_url"]
        self.retry = _core.as_retry(retries)
        self._sleep = sleep
        self._http = httpx.AsyncClient(transport=transport, **options)

    async def train(
        self,
        X: Any,
        y: Any,
        *,
        name: str | None = None,
        feature_names: list[str] | None = None,
        sample_weight: Any = None,
        **params: Any,
    ) -> ModelSummary:
        """See ``Client.train``. The body is encoded in a thread (it grows with ``X``)."""
        call = await asyncio.to_thread(
            _core.train,
            X,
            y,
            name=name,
            feature_names=feature_names,
            sample_weight=sample_weight,
            params=params,
        )
        return await self._run(call)

    async def train_csv(
        self,
        path: str | Path,
        *,
        label: str | None = None,
        name: str | None = None,
        progress: Progress | None = None,
        **params: Any,
    ) -> ModelSummary:
        call = _core.train_csv(path, label=label, name=name, params=params)
        return await self._run(call, progress=progress)

    async def predict(
        self, ref: str, X: Any, *, threshold: float | None = None, explain: bool = False
    ) -> Prediction:
        call = await asyncio.to_thread(_core.predict, ref, X, threshold=threshold, explain=explain)
        return await self._run(call)

    async def predict_proba(self, ref: str, X: Any) -> list[list[float]]:
        return (await self.predict(ref, X)).probabilities

    async def predict_csv(
        self,
        ref: str,
        path: str | Path,
        *,
        threshold: float | None = None,
        progress: Progress | None = None,
    ) -> bytes:
        call = _core.predict_csv(ref, path, threshold=threshold)
        return await self._run(call, progress=progress)

    async def evaluate(
        self,
        ref: str,
        X: Any,
        y: Any,
        *,
        threshold: float | None = None,
        positive_label: Any = None,
    ) -> Evaluation:
        """See ``Client.evaluate``. The body is encoded in a thread (it grows with ``X``)."""
        call = await asyncio.to_thread(
            _core.evaluate, ref, X, y, threshold=threshold, positive_label=positive_label
        )
        return await self._run(call)

    async def evaluate_csv(
        self,
        ref: str,
        path: str | Path,
        *,
        label: str | None = None,
        threshold: float | None = None,
        positive_label: Any = None,
        progress: Progress | None = None,
    ) -> Evaluation:
        call = _core.evaluate_csv(
            ref, path, label=label, threshold=threshold, positive_label=positive_label
        )
        return await self._run(call, progress=progress)

    async def evaluate_dataset(
        self,
        ref: str,
        dataset_id: str,
        *,
        label: str,
        threshold: float | None = None,
        positive_label: Any = None,
    ) -> Evaluation:
        call = _core.evaluate_dataset(
            ref, dataset_id, label=label, threshold=threshold, positive_label=positive_label
        )
        return await self._run(call)

    async def evaluations(self, ref: str) -> EvaluationList:
        return await self._run(_core.list_evaluations(ref))

    def report_url(self, ref: str) -> str:
        """See ``Client.report_url`` (not a coroutine: nothing is sent)."""
        return f"{self.url}{_core.report_path(ref)}"

    async def models(self, *, limit: int = 50, offset: int = 0) -> ModelList:
        return await self._run(_core.list_models(limit=limit, offset=offset))

    async def model(self, ref: str) -> ModelDetail:
        return await self._run(_core.get_model(ref))

    async def delete(self, ref: str) -> None:
        return await self._run(_core.delete_model(ref))

    async def health(self) -> dict[str, Any]:
        return await self._run(_core.health())

    async def names(self, *, limit: int = 50, offset: int = 0) -> NameList:
        return await self._run(_core.list_names(limit=limit, offset=offset))

    async def name(self, name: str) -> NameDetail:
        return await self._run(_core.get_name(name))

    async def set_alias(self, name: str, alias: str, version: int) -> AliasChange:
        return await self._run(_core.set_alias(name, alias, version))

    async def delete_alias(self, name: str, alias: str) -> None:
        return await self._run(_core.delete_alias(name, alias))

    async def alias_history(self, name: str, alias: str) -> AliasHistory:
        return await self._run(_core.alias_history(name, alias))

    async def rollback(self, name: str, alias: str) -> AliasChange:
        return await self._run(_core.rollback_alias(name, alias))

    async def audit(self, since: datetime | str | None = None, *, limit: int = 100) -> AuditList:
        return await self._run(_core.audit(since=since, limit=limit))

    async def upload(
        self,
        path: str | Path,
        *,
        label: str | None = None,
        name: str | None = None,
        progress: Progress | None = None,
    ) -> Dataset:
        """See ``Client.upload``; the file is read in a thread."""
        return await self._run(_core.upload(path, label=label, name=name), progress=progress)

    async def datasets(self, *, limit: int = 50, offset: int = 0) -> DatasetList:
        return await self._run(_core.list_datasets(limit=limit, offset=offset))

    async def dataset(self, dataset_id: str) -> Dataset:
        return await self._run(_core.get_dataset(dataset_id))

    async def delete_dataset(self, dataset_id: str) -> None:
        return await self._run(_core.delete_dataset(dataset_id))

    async def train_dataset(
        self,
        dataset_id: str,
        *,
        label: str,
        features: list[str] | None = None,
        name: str | None = None,
        **params: Any,
    ) -> ModelSummary:
        job = await self.submit_dataset(
            dataset_id, label=label, features=features, name=name, **params
        )
        return await job.wait()

    async def submit_dataset(
        self,
        dataset_id: str,
        *,
        label: str,
        features: list[str] | None = None,
        name: str | None = None,
        **params: Any,
    ) -> AsyncJob:
        call = _core.submit_dataset(
            dataset_id, label=label, features=features, name=name, params=params
        )
        return AsyncJob(self, await self._run(call))

    @overload
    async def train_file(
        self,
        path: str | Path,
        *,
        label: str | None = ...,
        name: str | None = ...,
        features: list[str] | None = ...,
        wait: Literal[True] = ...,
        progress: Progress | None = ...,
        **params: Any,
    ) -> ModelSummary: ...

    @overload
    async def train_file(
        self,
        path: str | Path,
        *,
        label: str | None = ...,
        name: str | None = ...,
        features: list[str] | None = ...,
        wait: Literal[False],
        progress: Progress | None = ...,
        **params: Any,
    ) -> AsyncJob: ...

    async def train_file(
        self,
        path: str | Path,
        *,
        label: str | None = None,
        name: str | None = None,
        features: list[str] | None = None,
        wait: bool = True,
        progress: Progress | None = None,
        **params: Any,
    ) -> ModelSummary | AsyncJob:
        """See ``Client.train_file``."""
        dataset = await self.upload(path, label=label, name=name, progress=progress)
        column = _core.dataset_label(dataset, label)
        if not wait:
            return await self.submit_dataset(
                dataset.id, label=column, features=features, name=name, **params
            )
        return await self.train_dataset(
            dataset.id, label=column, features=features, name=name, **params
        )

    async def submit(
        self,
        X: Any,
        y: Any,
        *,
        name: str | None = None,
        feature_names: list[str] | None = None,
        sample_weight: Any = None,
        **params: Any,
    ) -> AsyncJob:
        call = await asyncio.to_thread(
            _core.submit,
            X,
            y,
            name=name,
            feature_names=feature_names,
            sample_weight=sample_weight,
            params=params,
        )
        return AsyncJob(self, await self._run(call))

    async def submit_csv(
        self,
        path: str | Path,
        *,
        label: str | None = None,
        name: str | None = None,
        progress: Progress | None = None,
        **params: Any,
    ) -> AsyncJob:
        call = _core.submit_csv(path, label=label, name=name, params=params)
        return AsyncJob(self, await self._run(call, progress=progress))

    async def jobs(self, *, status: str | None = None, limit: int = 50, offset: int = 0) -> JobList:
        return await self._run(_core.list_jobs(status=status, limit=limit, offset=offset))

    async def job(self, job_id: str) -> AsyncJob:
        state = await self._run(_core.get_job(job_id))
        return AsyncJob(self, state)

    async def cancel(self, job_id: str) -> JobState:
        return await self._run(_core.cancel_job(job_id))

    async def _job_events(
        self, job_id: str, follow: _core.Follow
    ) -> AsyncGenerator[JobState, None]:
        call = _core.job_events(job_id)
        timeout = httpx.Timeout(self._http.timeout.connect, read=follow.read_timeout_now())
        decoder = _core.EventStream()
        try:
            async with self._http.stream(
                call.method, call.path, headers=call.headers, timeout=timeout
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    call.result(response)
                async for line in response.aiter_lines():
                    event = decoder.feed(line)
                    if event is not None:
                        yield _core.event_state(event)
        except httpx.TransportError as exc:
            raise ServiceUnreachable(f"{self.url}: {exc or type(exc).__name__}") from exc

    async def _run(self, call: Call[T], *, progress: Progress | None = None) -> T:
        retries_done = 0
        while True:
            response = await self._send(call, progress)
            delay = self.retry.delay(retries_done, response, call.retry_statuses)
            if delay is None:
                return call.result(response)
            await self._sleep(delay)
            retries_done += 1

    async def _send(self, call: Call[Any], progress: Progress | None) -> httpx.Response:
        headers = dict(call.headers)
        content: bytes | AsyncIterator[bytes] | None = call.body
        if call.upload is not None:
            headers["content-length"] = str(call.upload.stat().st_size)
            content = _achunks(call.upload, progress)
        try:
            return await self._http.request(
                call.method, call.path, params=call.params, content=content, headers=headers
            )
        except httpx.TransportError as exc:
            raise ServiceUnreachable(f"{self.url}: {exc or type(exc).__name__}") from exc

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def _achunks(path: Path, progress: Progress | None) -> AsyncIterator[bytes]:
    """The file's chunks, each read in a thread (the event loop never waits on the disk)."""
    chunks = _chunks(path, progress)
    while (chunk := await asyncio.to_thread(next, chunks, b"")) != b"":
        yield chunk
