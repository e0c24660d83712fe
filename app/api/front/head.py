"""``HEAD`` wherever ``GET`` is served, as a pure ASGI layer in front of FastAPI.

FastAPI's routes answer only the methods they declare, so ``HEAD /health`` was a 405. Declaring
``HEAD`` on every ``GET`` route would also put a ``head`` operation for each into the OpenAPI
document; instead this layer hands FastAPI a ``HEAD`` request as a ``GET`` and drops the body of
the answer, keeping its status and headers (``Content-Length`` included, as RFC 9110 allows).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    """Innermost of the front layers (app.main): only FastAPI's routing needs it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        # a copy: the server still knows the request as HEAD, and sends no body
        inner = {**scope, "method": "GET"}

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b""}
            await send(message)

        try:
            await self.app(inner, receive, without_body)
        finally:
            # what routing adds to the scope (the matched route, ...), as for a GET; the outer
            # layers read it (the metrics' route label)
            scope.update({k: v for k, v in inner.items() if k not in scope})
