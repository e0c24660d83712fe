"""The one place where domain errors become HTTP status codes and JSON error bodies."""

from __future__ import annotations

import errno
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from ..decode import request_error
from ..errors import (
    AliasConflict,
    AliasNotFound,
    ChildCrashed,
    CorruptDataset,
    CorruptModel,
    CsvEncodingError,
    CsvError,
    DatasetNotFound,
    EngineError,
    InvalidModelId,
    InvalidName,
    InvalidRequest,
    JobFinished,
    JobNotFound,
    JobQueueFull,
    LimitExceeded,
    MalformedJSON,
    ModelNotFound,
    NameNotFound,
    ProtocolError,
    StoreError,
    StoreUnavailable,
    StoreWriteFailed,
    TrainingBusy,
    TrainingCrashed,
    UnknownVersion,
    UnsupportedMediaType,
    VersionNotFound,
)

log = logging.getLogger("app.errors")

#: The status of a request whose client went away before its answer (nginx's 499).
CLIENT_CLOSED = 499


def log_disconnect(scope: Any) -> None:
    log.warning("%s %s: client disconnected before the answer", scope["method"], route_path(scope))


class JSONBytes(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error(status: int, detail: str, errors: list[dict[str, str]] | None = None) -> JSONBytes:
    return JSONBytes(status_code=status, content=error_content("", status, detail, errors)[1])


def is_open_inference(path: str) -> bool:
    """Paths of the Open Inference Protocol, whose errors have their own shape."""
    return path == "/v2" or path.startswith("/v2/")


def error_content(
    path: str, status: int, detail: str, errors: list[dict[str, str]] | None = None
) -> tuple[int, dict[str, Any]]:
    """Status and body of an error answer at ``path``: ours (``{"detail", "errors"}``), or under
    ``/v2`` the Open Inference Protocol's ``{"error": "..."}``, where bad input is a 400 (as
    Triton and KServe answer). Also for pure ASGI middleware that answers errors itself."""
    if is_open_inference(path):
        return (400 if status == 422 else status), {"error": detail}
    body: dict[str, Any] = {"detail": detail}
    if errors:
        body["errors"] = errors
    return status, body


def route_path(scope: Any) -> str:
    """The request's path without the server's ``--root-path`` prefix: what routes match, and
    what decides the shape of an error (``error_content``)."""
    return str(scope["path"]).removeprefix(scope.get("root_path", ""))


def error_for(
    request: Request, status: int, detail: str, errors: list[dict[str, str]] | None = None
) -> JSONBytes:
    """The error response to ``request`` (see ``error_content``)."""
    status, body = error_content(route_path(request.scope), status, detail, errors)
    return JSONBytes(status_code=status, content=body)


METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route accepts at this request's path (asked of the routes themselves,
    so that routers included in any way, and routes added later, are all seen)."""
    routes = request.app.router.routes
    allowed = [
        method
        for method in METHODS
        if any(r.matches({**request.scope, "method": method})[0] == Match.FULL for r in routes)
    ]
    if "GET" in allowed and "HEAD" not in allowed:
        allowed.insert(allowed.index("GET") + 1, "HEAD")  # served by app.api.front.head
    return allowed


def trailing_slash_hint(request: Request) -> str | None:
    """For ``/predict/``: the 404's message naming ``/predict``, when a route serves it."""
    path = route_path(request.scope)
    if len(path) < 2 or not path.endswith("/"):
        return None
    scope = {**request.scope, "path": str(request.scope["path"]).rstrip("/") or "/"}
    if not any(r.matches(scope)[0] != Match.NONE for r in request.app.router.routes):
        return None
    return f"Not Found: {path} has a trailing slash; the route is {route_path(scope)}"


def install(app: FastAPI) -> None:
    @app.exception_handler(InvalidRequest)
    async def _invalid(request: Request, exc: InvalidRequest) -> JSONBytes:
        return error_for(request, 422, str(exc), exc.errors)

    @app.exception_handler(MalformedJSON)
    async def _malformed(request: Request, exc: MalformedJSON) -> JSONBytes:
        return error_for(request, 400, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONBytes:
        # FastAPI's own, for the parameters routes declare (query, path): the same answers
        error = request_error(exc.errors())
        if isinstance(error, MalformedJSON):
            return await _malformed(request, error)
        return await _invalid(request, error)

    @app.exception_handler(UnsupportedMediaType)
    async def _media(request: Request, exc: UnsupportedMediaType) -> JSONBytes:
        return error_for(request, 415, str(exc))

    @app.exception_handler(EngineError)
    async def _engine(request: Request, exc: EngineError) -> JSONBytes:
        return error_for(request, 422, str(exc))

    @app.exception_handler(CsvError)
    async def _csv(request: Request, exc: CsvError) -> JSONBytes:
        # not UTF-8 is like malformed JSON (400); everything else like JSON's invalid rows (422)
        return error_for(request, 400 if isinstance(exc, CsvEncodingError) else 422, str(exc))

    @app.exception_handler(ProtocolError)
    async def _protocol(request: Request, exc: ProtocolError) -> JSONBytes:
        return error_for(request, 404 if isinstance(exc, UnknownVersion) else 400, str(exc))

    @app.exception_handler(LimitExceeded)
    async def _limit(request: Request, exc: LimitExceeded) -> JSONBytes:
        return error_for(request, 413, str(exc))

    @app.exception_handler(TrainingBusy)
    async def _busy(request: Request, exc: TrainingBusy) -> JSONBytes:
        resp = error(429, str(exc))
        resp.headers["Retry-After"] = str(exc.retry_after)
        return resp

    @app.exception_handler(JobQueueFull)
    async def _queue_full(request: Request, exc: JobQueueFull) -> JSONBytes:
        resp = error(429, str(exc))
        resp.headers["Retry-After"] = str(exc.retry_after)
        return resp

    @app.exception_handler(JobFinished)
    async def _job_finished(request: Request, exc: JobFinished) -> JSONBytes:
        return error_for(request, 409, str(exc))

    @app.exception_handler(TrainingCrashed)
    @app.exception_handler(ChildCrashed)
    async def _crashed(request: Request, exc: Exception) -> JSONBytes:
        log.error("a child process died: %s", exc)
        return error_for(request, 503, str(exc))

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError) -> JSONBytes:
        if isinstance(
            exc,
            (
                ModelNotFound,
                InvalidModelId,
                NameNotFound,
                VersionNotFound,
                AliasNotFound,
                JobNotFound,
                DatasetNotFound,
            ),
        ):
            return error_for(request, 404, str(exc))
        if isinstance(exc, InvalidName):
            return error_for(request, 422, str(exc), [{"field": exc.field, "message": str(exc)}])
        if isinstance(exc, (CorruptModel, CorruptDataset, AliasConflict)):
            return error_for(request, 409, str(exc))
        if isinstance(exc, StoreUnavailable):
            log.error("%s", exc)
            return error_for(request, 503, str(exc))  # health checks fail, so orchestrators act
        if isinstance(exc, StoreWriteFailed):
            log.error("%s", exc)
            # 507 when the disk is full: the operator's problem, and retrying later may work
            return error_for(
                request, 507 if exc.errno in (errno.ENOSPC, errno.EDQUOT) else 503, str(exc)
            )
        log.exception("store error")
        return error_for(request, 500, "internal error in the model store")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONBytes:
        hint = trailing_slash_hint(request) if exc.status_code == 404 else None
        resp = error_for(request, exc.status_code, hint or str(exc.detail))
        if exc.headers:
            resp.headers.update(exc.headers)
        if exc.status_code == 405:
            # Starlette names only the first route that matched the path; list them all
            resp.headers["Allow"] = ", ".join(allowed_methods(request))
        return resp

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> Response:
        # The client's doing, not the server's: nobody reads this answer, but the metrics
        # count its status, 499 as nginx names it (not a 500 that would trip alerts).
        log_disconnect(request.scope)
        return Response(status_code=CLIENT_CLOSED)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONBytes:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_for(request, 500, "internal server error")


def describer(app: FastAPI) -> Callable[[BaseException], Awaitable[tuple[int, str]]]:
    """``describe(exc)``: the status and detail of the answer ``POST /train`` would have given
    for ``exc``, by the handlers above (a job that fails keeps them: ``app.jobs``)."""
    scope = {"type": "http", "method": "POST", "path": "/train", "root_path": "", "headers": []}

    async def describe(exc: BaseException) -> tuple[int, str]:
        for cls in type(exc).__mro__:
            handler = app.exception_handlers.get(cls)
            if handler is not None:
                break
        if handler is None or cls is Exception:
            log.error("a training job failed", exc_info=exc)
            return 500, "internal server error"
        response = handler(Request(scope), exc)
        if inspect.isawaitable(response):
            response = await response
        body = orjson.loads(response.body) if response.body else {}
        return response.status_code, str(body.get("detail", ""))

    return describe


def job_describer() -> Callable[[BaseException], Awaitable[tuple[int, str]]]:
    """``describer`` for a process with no web app of its own (``python -m app.worker``): the
    same handlers, installed on an app that serves nothing."""
    app = FastAPI()
    install(app)
    return describer(app)
