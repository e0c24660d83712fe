"""The one place where domain errors become HTTP status codes and JSON error bodies."""

from __future__ import annotations

import errno
import logging
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from ..errors import (
    CorruptModel,
    CsvEncodingError,
    CsvError,
    EngineError,
    InvalidModelId,
    LimitExceeded,
    ModelNotFound,
    ProtocolError,
    StoreError,
    StoreUnavailable,
    StoreWriteFailed,
    TrainingBusy,
    TrainingCrashed,
    UnknownVersion,
    UnsupportedMediaType,
)

log = logging.getLogger("app.errors")


def field_path(loc: Sequence[Any]) -> str:
    """``('body', 'features', 3, 2)`` -> ``features[3][2]``."""
    parts = [p for p in loc if p != "body"]
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif p in ("int", "str", "float", "constrained-str", "function-after[...]"):
            continue  # union branch names that pydantic adds to the location
        else:
            out += f".{p}" if out else str(p)
    return out or "body"


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


def validation_errors(exc: RequestValidationError) -> tuple[int, str, list[dict[str, str]]]:
    raw = exc.errors()
    if any(e.get("type") == "json_invalid" for e in raw):
        e = next(e for e in raw if e.get("type") == "json_invalid")
        reason = (e.get("ctx") or {}).get("error", "invalid JSON")
        return 400, f"body: malformed JSON ({reason})", []
    items: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for e in raw:
        msg = str(e.get("msg", "invalid"))
        if msg.startswith("Value error, "):
            # our own model validators already name the field in the message
            msg = msg.removeprefix("Value error, ")
            field, _, rest = msg.partition(": ")
            key = (field, rest) if rest else (field_path(e.get("loc", ())), msg)
        else:
            key = (field_path(e.get("loc", ())), msg)
        if key not in seen:
            seen.add(key)
            items.append({"field": key[0], "message": key[1]})
    shown = "; ".join(f"{i['field']}: {i['message']}" for i in items[:5])
    if len(items) > 5:
        shown += f"; and {len(items) - 5} more"
    return 422, shown, items


METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route accepts at this request's path (asked of the routes themselves,
    so that routers included in any way, and routes added later, are all seen)."""
    routes = request.app.router.routes
    return [
        method
        for method in METHODS
        if any(r.matches({**request.scope, "method": method})[0] == Match.FULL for r in routes)
    ]


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONBytes:
        return error_for(request, *validation_errors(exc))

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

    @app.exception_handler(TrainingCrashed)
    async def _crashed(request: Request, exc: TrainingCrashed) -> JSONBytes:
        log.error("a training child process died: %s", exc)
        return error(503, str(exc))

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError) -> JSONBytes:
        if isinstance(exc, (ModelNotFound, InvalidModelId)):
            return error_for(request, 404, str(exc))
        if isinstance(exc, CorruptModel):
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
        resp = error_for(request, exc.status_code, str(exc.detail))
        if exc.headers:
            resp.headers.update(exc.headers)
        if exc.status_code == 405:
            # Starlette names only the first route that matched the path; list them all
            resp.headers["Allow"] = ", ".join(allowed_methods(request))
        return resp

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONBytes:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_for(request, 500, "internal server error")
