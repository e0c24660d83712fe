"""The ASGI application: ``uvicorn app.main:app``. Wiring only; logic lives in the service."""

from __future__ import annotations

import asyncio
import functools
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from model_store import JsonFileStore, ModelStore, open_store, store_folder

from . import metrics as prometheus
from .api import (
    audit,
    datasets,
    docs,
    docs_ui,
    errors,
    evaluation,
    health,
    jobs,
    metrics,
    models,
    names,
    prediction,
    report,
    training,
    v2,
)
from .api.front import auth
from .api.front.fast_predict import PredictFastPath
from .api.front.head import HeadAsGet
from .api.front.limits import BodyLimits
from .api.front.metrics import PrometheusMiddleware
from .api.front.request_id import install_logging
from .config import Settings
from .jobs import JobScheduler, JobService
from .keys import KeyTable
from .offload import Offload
from .schemas import EvaluateRequest, PredictRequest, TrainRequest
from .service import ModelService
from .training.job import dataset_store, job_store, models_folder
from .training.runner import TrainRunner

DESCRIPTION = """
Train logistic-regression classifiers from labelled rows, keep them, and serve predictions.

1. `POST /train` with `features` (rows of numbers) and `labels` -> a model `id`.
2. `POST /predict` with that `model_id` and rows -> labels and class probabilities.
3. `GET /models`, `GET /models/{id}`, `DELETE /models/{id}` to manage what is kept.
4. Long trainings: `POST /train` with `Prefer: respond-async` answers 202 and a job to watch at
   `GET /jobs/{id}` or `/jobs/{id}/events`, and to cancel with `POST /jobs/{id}/cancel`.
5. Large data: `POST /datasets` with a CSV or Parquet file, then `POST /train` with
   `{"dataset": id, "label": column}`.
6. `POST /models/{id}/evaluate` with labelled rows -> its metrics; `GET /models/{id}/report` -> a
   page of charts (coefficients, loss, ROC, calibration, confusion matrix, decision boundary).

Errors are JSON: `{"detail": "...", "errors": [{"field": ..., "message": ...}]}`.
"""


class ServiceApp(FastAPI):
    """FastAPI, behind the service's own pure ASGI layers (``front``).

    Every request goes through ``front``: the predict fast path, then its id and metrics, the
    API key, the body's limits (size, coding, read time), and only then FastAPI's own stack
    (error handling, routing).
    A plain ``POST /predict`` is answered by the fast path, which applies those layers' checks
    itself, without entering them or FastAPI: FastAPI's built-in middlewares cost a 1-row
    prediction about 15% of its throughput, and each layer of ours several per cent
    (bench/serve.py; docs/DEVELOPING.md).
    """

    front: ASGIApp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.front(scope, receive, send)

    async def fastapi(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None, *, store: ModelStore | None = None) -> ServiceApp:
    """The service; ``store`` defaults to the one ``settings.model_store_url`` names (the folder
    ``settings.model_store_dir`` when unset). A database that cannot be reached raises
    ``DatabaseUnavailable``: the server does not start."""
    settings = settings or Settings()
    store = store or open_store(settings.model_store_url, settings.model_store_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # this worker's counts go to the server's folder, where every process's are totalled
        prometheus.share(prometheus.folder_for(settings.prometheus_multiproc_dir))
        install_logging()
        app.state.datasets.remove_stale_files()
        cache = app.state.service.cache
        names = app.state.service.names
        loop = asyncio.get_running_loop()
        if isinstance(store, JsonFileStore):
            store.remove_stale_temporaries()
            cache.watch(loop, str(store.root), store.model_id_of)
            store.names.root.mkdir(exist_ok=True)
            names.watch(loop, str(store.names.root), store.names.name_of)
        else:  # psycopg is imported only by servers on another store
            from model_store.postgres import PostgresStore

            from .pg_listen import PgListener

            if isinstance(store, PostgresStore):
                listener = functools.partial(PgListener, store.url)
                cache.watch(loop, listener, store.model_id_of)
                names.watch(loop, listener, store.names.name_of)
        # Everything built so far (FastAPI, pydantic schemas, the app) lives as long as the
        # process: keep it out of the cyclic collector's full passes.
        gc.freeze()
        scheduler = app.state.job_scheduler
        job_worker = None
        if queue is None:
            scheduler.start()  # queued jobs run, also those left by a restart
        elif settings.train_jobs_in_server:  # this process takes jobs from the database's queue
            from . import job_queue

            job_worker = loop.create_task(job_queue.work(scheduler))
        yield
        cache.unwatch()
        await scheduler.stop()  # its running jobs go back to the queue
        if job_worker is not None:
            job_worker.cancel()
            await asyncio.gather(job_worker, return_exceptions=True)
        if queue is not None:
            await asyncio.to_thread(queue.close)
        app.state.service.names.unwatch()
        app.state.trainer.shutdown()
        app.state.offload.shutdown()
        app.state.jobs.store.close()
        store.close()
        prometheus.unshare()

    app = ServiceApp(
        title="Logistic regression service",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by api/docs_ui.py from app/static, not from a CDN
        redirect_slashes=False,  # /predict/ is a JSON 404 naming /predict, not an empty 307
        redoc_url=None,
        telemetry={
            "tracing": settings.opentelemetry,
            "metrics": settings.opentelemetry,
            "logs": settings.opentelemetry,
        },
    )
    app.state.settings = settings
    app.state.service = ModelService(store, settings)
    app.state.trainer = TrainRunner(settings)
    if not isinstance(store, JsonFileStore):
        # datasets' files (and bodies of jobs being received) stay in MODEL_STORE_DIR with a
        # database: made here, as the folder store makes its own at start
        models_folder(settings).mkdir(parents=True, exist_ok=True)
    queue = None
    if store_folder(settings.model_store_url, settings.model_store_dir) is None:
        from .job_queue import JobQueue  # procrastinate is imported only on PostgreSQL

        assert settings.model_store_url is not None
        queue = JobQueue(settings.model_store_url)
    app.state.jobs = JobService(
        job_store(settings, store), settings, audit=store.audit, queue=queue
    )
    app.state.job_scheduler = JobScheduler(
        app.state.jobs, app.state.trainer, describe=errors.describer(app)
    )
    app.state.datasets = dataset_store(settings, store)
    app.state.offload = Offload()
    errors.install(app)
    for module in (
        training,
        jobs,
        datasets,
        prediction,
        models,
        evaluation,
        report,
        names,
        audit,
        health,
        metrics,
        v2,
    ):
        app.include_router(module.router)
    # bodies the routes parse themselves
    docs.install(app, [PredictRequest, TrainRequest, EvaluateRequest])
    docs_ui.install(app)
    # The front layers, innermost first. Per-request policy (auth, limits) must be a layer here,
    # not a route dependency, and the fast path must ask it (it answers in front of them).
    limits = BodyLimits(
        HeadAsGet(app.fastapi),
        max_bytes=settings.max_body_bytes,
        dataset_max_bytes=settings.max_dataset_bytes,
        read_seconds=settings.body_read_timeout,
    )
    front: ASGIApp = limits
    key_check = None
    if settings.api_key is not None or settings.api_keys_file is not None:
        keys = KeyTable(
            path=settings.api_keys_file,
            api_key=None if settings.api_key is None else settings.api_key.get_secret_value(),
        )
        front = key_check = auth.APIKeyAuth(front, keys=keys)
        app.openapi = auth.secure_openapi(app)  # type: ignore[method-assign]
    # every answer is counted and carries its X-Request-ID: refusals (401, 413) too, and the
    # fast path's, which it counts with this layer's own functions
    counted = PrometheusMiddleware(front, routes_of=app)
    app.front = PredictFastPath(
        counted,
        fastapi=app,
        service=app.state.service,
        offload=app.state.offload,
        limits=limits,
        auth=key_check,
    )
    return app


app = create_app()
