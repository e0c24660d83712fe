"""The common ``POST /predict``, answered by the outermost front layer: in front of FastAPI's
middleware, routing and dependency machinery, and of the service's own layers (most of a 1-row
prediction's cost otherwise; each layer cost several per cent at the server).

It takes a request by its headers alone: ``Content-Type: application/json``, no query string, no
CSV answer wanted, and nothing the policy layers behind it would act on: it asks each of them
(``APIKeyAuth.admits``, ``BodyLimits.admits``) with their own checks. A request it takes, it
answers, errors included (through the app's own exception handlers, the one mapping of errors to
statuses): counted, timed and given its id by the metrics layer's own ``begin`` and ``end``, its
body read under the body's deadline (``BodyLimits.read``). A request it does not take goes on
to those layers untouched. No request is decoded or predicted twice.
"""

from __future__ import annotations

import inspect

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ... import media
from ...offload import Offload
from ...service import ModelService
from ..errors import CLIENT_CLOSED, log_disconnect
from ..prediction import predict_json
from . import request_id
from .auth import APIKeyAuth
from .limits import BodyLimits
from .metrics import PrometheusMiddleware

#: The metrics' route label of what this layer answers (the route's path template).
ROUTE = "/predict"


class PredictFastPath:
    """Pure ASGI layer, the outermost (app.main). ``app`` is the chain behind it: the metrics
    layer (``counted``), then the policy layers ``auth`` and ``limits``, whose checks it applies.
    A new policy layer must be asked here too (``tests/api/test_fast_paths.py`` checks that the
    chain holds no other)."""

    def __init__(
        self,
        app: PrometheusMiddleware,
        *,
        fastapi: FastAPI,
        service: ModelService,
        offload: Offload,
        limits: BodyLimits,
        auth: APIKeyAuth | None = None,
    ) -> None:
        self.app = self.counted = app
        self.fastapi = fastapi
        self.service = service
        self.offload = offload
        self.limits = limits
        self.auth = auth

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
        if (
            not media.is_json(ctype)
            or media.wants_csv(accept)  # CSV bodies and CSV answers are the route's
            or not self.limits.admits(scope)
            or (self.auth is not None and not self.auth.admits(scope))
        ):
            await self.app(scope, receive, send)
            return
        started, rid, token = self.counted.begin(scope)
        status = 500  # if answering raises, the server answers 500
        try:
            status = await self._answer(scope, receive, send, ctype, rid)
        finally:
            self.counted.end(scope, started, token, status, ROUTE)

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, ctype: str | None, rid: bytes
    ) -> int:
        """Read the body, predict and answer, the request's id on the answer; its status."""
        deadline = self.limits.deadline()
        chunks: list[bytes] = []
        while True:
            message = await self.limits.read(receive, deadline)
            if message is None:
                await self.limits.refuse_late(scope, send, [(request_id.HEADER, rid)])
                return 408
            if message["type"] != "http.request":  # the client went away: nobody to answer
                log_disconnect(scope)
                return CLIENT_CLOSED
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        try:
            out = await predict_json(self.service, self.offload, ctype, b"".join(chunks))
        except Exception as exc:
            response = await self._error(scope, exc)
            response.raw_headers.append((request_id.HEADER, rid))
            await response(scope, receive, send)
            return response.status_code
        head = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(out)),
            (request_id.HEADER, rid),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": head})
        await send({"type": "http.response.body", "body": out})
        return 200

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
