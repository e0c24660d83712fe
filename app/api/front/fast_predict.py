"""The common ``POST /predict`` answered in front of FastAPI's middleware, routing and dependency
machinery (most of a 1-row prediction's cost otherwise).

It takes a request by its headers alone: ``Content-Type: application/json``, no query string and
no CSV answer wanted. A request it takes, it answers, errors included (through the app's own
exception handlers, the one mapping of errors to statuses); a request it does not take goes on
to the route untouched. No request is decoded or predicted twice.
"""

from __future__ import annotations

import inspect

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ... import media
from ...offload import Offload
from ...service import ModelService
from ..errors import CLIENT_CLOSED, log_disconnect
from ..prediction import predict_json


class PredictFastPath:
    """Pure ASGI layer; the innermost of the service's front layers (app.main), so that metrics,
    the API key and the body size limit see every request it answers."""

    def __init__(
        self, app: ASGIApp, *, fastapi: FastAPI, service: ModelService, offload: Offload
    ) -> None:
        self.app = app
        self.fastapi = fastapi
        self.service = service
        self.offload = offload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != "/predict"
            or scope["method"] != "POST"
            or scope["query_string"]  # the route refuses query parameters with JSON
        ):
            await self.app(scope, receive, send)
            return
        # Headers(scope=scope).get, for the two names, in one pass (ASGI names are lowercase)
        ctype = accept = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                ctype = value.decode("latin-1") if ctype is None else ctype
            elif name == b"accept":
                accept = value.decode("latin-1") if accept is None else accept
        if not media.is_json(ctype) or media.wants_csv(accept):
            await self.app(scope, receive, send)  # CSV bodies and CSV answers are the route's
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                log_disconnect(scope)
                # nobody reads it (the server drops it), but the metrics count its status
                await send({"type": "http.response.start", "status": CLIENT_CLOSED, "headers": []})
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        try:
            out = await predict_json(self.service, self.offload, ctype, b"".join(chunks))
        except Exception as exc:
            response = await self._error(scope, exc)
            await response(scope, receive, send)
            return
        head = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(out))]
        await send({"type": "http.response.start", "status": 200, "headers": head})
        await send({"type": "http.response.body", "body": out})

    async def _error(self, scope: Scope, exc: Exception) -> Response:
        """The answer of the app's exception handler for ``exc`` (the nearest class in its MRO,
        as Starlette's ExceptionMiddleware looks handlers up)."""
        handlers = self.fastapi.exception_handlers
        for cls in type(exc).__mro__:
            handler = handlers.get(cls)
            if handler is not None:
                response = handler(Request(scope), exc)
                return await response if inspect.isawaitable(response) else response
        raise exc
