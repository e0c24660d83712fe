"""The front layer that gives every HTTP request its id (``request_id``) and counts and times it
(``app.metrics``): as a layer for every request that reaches it, and with ``begin`` and ``end``
for those that the predict fast path, in front of it, answers."""

from __future__ import annotations

from contextvars import Token
from time import perf_counter
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ... import metrics
from . import request_id

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "<unmatched>"


def _template(route: Any) -> str | None:
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) else None


def route_template(scope: Scope) -> str | None:
    """The matched route's path template (``/models/{model_id}``, ``/static/{path}``), never the
    raw path, so the number of label values stays bounded whatever paths clients send; ``None``
    when the router did not match the request."""
    route = scope.get("route")
    path = None if route is None else _template(route)
    if path is not None:
        return path
    # FastAPI sets scope["route"] for its own routes only; for plain Starlette routes and mounts
    # (/openapi.json, /static) find the route whose endpoint or app handled the request.
    endpoint = scope.get("endpoint")
    if endpoint is not None:
        for route in getattr(scope.get("app"), "routes", ()):
            if (
                getattr(route, "endpoint", None) is endpoint
                or getattr(route, "app", None) is endpoint
            ):
                return _template(route)
    return None


class PrometheusMiddleware:
    """Counts and times every HTTP request by method, route template and status, and puts its
    ``X-Request-ID`` on the answer; the predict fast path, in front of it, does the same for
    the requests it answers with ``begin`` and ``end``.

    A plain ASGI middleware (no ``BaseHTTPMiddleware``: no extra task or body copying), whose
    cost per request is finding the route's label and one ``metrics.record_request``.
    """

    def __init__(self, app: ASGIApp, *, routes_of: Any = None) -> None:
        self.app = app
        self.routes_of = routes_of  # the app whose routes name requests answered before routing
        self._fixed_paths: dict[str, str] | None = None

    def _route(self, scope: Scope) -> str:
        template = route_template(scope)
        if template is not None:
            return template
        # Answered before routing (e.g. a fast path in front of the router), or not found: a
        # route without parameters is known by its path; anything else is one bounded label.
        if self._fixed_paths is None:
            app = self.routes_of or scope.get("app")
            paths = [_template(route) for route in getattr(app, "routes", ())]
            # routers included in FastAPI apps are not flattened into app.routes; the OpenAPI
            # document lists their full paths
            openapi = getattr(app, "openapi", None)
            paths += list(openapi().get("paths", {})) if callable(openapi) else []
            self._fixed_paths = {p: p for p in paths if p is not None and "{" not in p}
        return self._fixed_paths.get(scope["path"], UNMATCHED)

    def begin(self, scope: Scope) -> tuple[float, bytes, Token[str]]:
        """A request's start time and id (``request_id.begin``), for ``end``."""
        rid, token = request_id.begin(scope)
        return perf_counter(), rid, token

    def end(
        self, scope: Scope, started: float, token: Token[str], status: int, route: str | None
    ) -> None:
        """Count and time a request answered with ``status``; ``route``: its label, if known."""
        request_id.end(token)
        method = scope["method"] if scope["method"] in METHODS else "OTHER"
        labels = (method, route or self._route(scope), str(status))
        metrics.record_request(labels, perf_counter() - started)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, rid, token = self.begin(scope)
        status = 500  # if the app raises before answering, the server answers 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (request_id.HEADER, rid)]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.end(scope, started, token, status, None)
