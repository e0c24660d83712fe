"""Optional API-key authentication, as a pure ASGI middleware in front of every route.

Off unless the ``API_KEY`` setting is set. Then every request needs the key, in the ``X-API-Key``
header or as ``Authorization: Bearer <key>``, except the paths in ``OPEN_PATHS`` / under
``OPEN_PREFIXES`` (health checks, and the docs page with its schema so a user can read the docs
and enter the key there). Being a middleware over the whole application, it also covers routes
added later (``/metrics``, ``/v2/...``) without them doing anything; only a new *open* route must
be added here. The key is compared in constant time (``hmac.compare_digest``).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import is_open_inference, route_path
from .limits import send_error

#: Paths anyone may reach: orchestrator health checks and the documentation.
OPEN_PATHS = frozenset(
    {
        "/health",
        "/v2/health/live",
        "/v2/health/ready",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
    }
)
#: Path prefixes anyone may reach (the docs pages' own scripts and styles, ``docs_ui.STATIC_PATH``).
OPEN_PREFIXES = ("/docs/", "/static/")

HEADER = b"x-api-key"
SCHEME_HEADER = "APIKeyHeader"
SCHEME_BEARER = "BearerAuth"
CHALLENGE = (b"www-authenticate", b'Bearer realm="logreg", ApiKey header="X-API-Key"')


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


class APIKeyAuth:
    """Answer 401 (JSON error, ``WWW-Authenticate``) unless the request carries ``api_key``."""

    def __init__(self, app: ASGIApp, *, api_key: str) -> None:
        if not api_key:
            raise ValueError("API_KEY: must not be empty when set")
        self.app = app
        self.key = api_key.encode()

    def authorised(self, headers: list[tuple[bytes, bytes]]) -> bool:
        ok = False
        for name, value in headers:
            if name == HEADER:
                candidate = value
            elif name == b"authorization" and value[:7].lower() == b"bearer ":
                candidate = value[7:].strip()
            else:
                continue
            # no early exit: the time taken does not depend on which header held what
            ok |= hmac.compare_digest(candidate, self.key)
        return ok

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # behind a proxy that strips a prefix (uvicorn --root-path), the path still carries it
        path = route_path(scope)
        if scope["type"] not in ("http", "websocket") or is_open(path):
            await self.app(scope, receive, send)
            return
        if self.authorised(scope["headers"]):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        given = any(n in (HEADER, b"authorization") for n, _ in scope["headers"])
        await send_error(
            scope,
            send,
            401,
            ("API key is wrong" if given else "API key missing")
            + ": send it in the X-API-Key header or as 'Authorization: Bearer <key>'",
            [CHALLENGE],
        )


def secure_openapi(app: Any) -> Callable[[], dict[str, Any]]:
    """Wrap ``app.openapi`` so the schema declares the key (the docs page's Authorize button),
    requires it on every operation but the open ones, and documents their 401 answer."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema: dict[str, Any] = build()
        components = schema.setdefault("components", {})
        components.setdefault("securitySchemes", {}).update(
            {
                SCHEME_HEADER: {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                SCHEME_BEARER: {"type": "http", "scheme": "bearer"},
            }
        )
        schema["security"] = [{SCHEME_HEADER: []}, {SCHEME_BEARER: []}]
        error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
        # the Open Inference Protocol's routes answer errors in its own shape (errors.error_content)
        v2_error = {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string"}},
        }
        for path, item in schema.get("paths", {}).items():
            for operation in item.values():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                if is_open(path):
                    operation["security"] = []
                else:
                    operation["responses"].setdefault(
                        "401",
                        {
                            "description": "No API key, or a wrong one",
                            "content": {
                                "application/json": {
                                    "schema": v2_error if is_open_inference(path) else error_ref
                                }
                            },
                        },
                    )
        app.openapi_schema = schema
        return schema

    return openapi
