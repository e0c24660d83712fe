"""The ASGI application: ``uvicorn app.main:app``. Wiring only; logic lives in the service."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from model_store import JsonFileStore

from . import metrics as prometheus
from .api import auth, docs, docs_ui, errors, health, metrics, models, prediction, training, v2
from .api.limits import BodySizeLimit
from .config import Settings
from .schemas import PredictRequest, TrainRequest
from .service import ModelService
from .train_runner import TrainRunner

DESCRIPTION = """
Train logistic-regression classifiers from labelled rows, keep them, and serve predictions.

1. `POST /train` with `features` (rows of numbers) and `labels` -> a model `id`.
2. `POST /predict` with that `model_id` and rows -> labels and class probabilities.
3. `GET /models`, `GET /models/{id}`, `DELETE /models/{id}` to manage what is kept.

Errors are JSON: `{"detail": "...", "errors": [{"field": ..., "message": ...}]}`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    store = JsonFileStore(settings.model_store_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store.remove_stale_temporaries()
        # Everything built so far (FastAPI, pydantic schemas, the app) lives as long as the
        # process: keep it out of the cyclic collector's full passes.
        gc.freeze()
        yield
        app.state.trainer.shutdown()

    app = FastAPI(
        title="Logistic regression service",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by api/docs_ui.py from app/static, not from a CDN
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
    errors.install(app)
    for module in (training, prediction, models, health, metrics, v2):
        app.include_router(module.router)
    docs.install(app, [PredictRequest, TrainRequest])  # bodies the routes parse themselves
    # Innermost middleware: answers plain POST /predict bodies before FastAPI's routing (see
    # PredictFastPath). Per-request policy (auth, limits) must be pure ASGI middleware added
    # after it, not a route dependency, or valid predictions would bypass it.
    app.add_middleware(prediction.PredictFastPath, service=app.state.service)
    docs_ui.install(app)
    # pure ASGI middlewares (cheap on the predict path); the last added runs first
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    if settings.api_key is not None:
        app.add_middleware(auth.APIKeyAuth, api_key=settings.api_key.get_secret_value())
        app.openapi = auth.secure_openapi(app)  # type: ignore[method-assign]
    # outermost, so every answer is counted: the fast path's, and refusals (401, 413) too
    app.add_middleware(prometheus.PrometheusMiddleware)
    return app


app = create_app()
