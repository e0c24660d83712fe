"""Optional API-key authentication with scopes, as a pure ASGI middleware in front of every route.

Off unless ``API_KEY`` or ``API_KEYS_FILE`` is set (``app.keys``). Then every request needs a
key, in the ``X-API-Key`` header, as ``Authorization: Bearer <key>``, or as the password of HTTP
Basic credentials (what a browser sends: the report page, which a browser opens, asks for them),
except the paths in
``OPEN_PATHS`` / under ``OPEN_PREFIXES`` (health checks, and the docs page with its schema so a
user can read the docs and enter the key there); and the key needs the scope the route needs
(``scope_needed``): none or a wrong key is a 401, a key without the scope a 403 naming it.
Being a middleware over the whole application, it also covers routes added later (the predict
fast path, in front of it, asks ``admits``); a new route that changes state must be added to
``scope_needed``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from ...keys import Key, KeyTable
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
#: Pages a browser opens by navigating, where it cannot send a header of its own: their 401
#: asks for Basic credentials (the browser's login dialog; any user name, the key as password).
#: Not on JSON routes: there the dialog would pop over the docs page's own key box.
BROWSER_PAGES = re.compile(r"/models/[^/]+/report")
BASIC_CHALLENGE = (b"www-authenticate", b'Basic realm="logreg", charset="UTF-8"')

#: (method, path pattern, scope), first match wins; anything else needs ``predict``.
RULES: list[tuple[frozenset[str], re.Pattern[str], str]] = [
    (frozenset({"DELETE"}), re.compile(r"/models/[^/]+"), "admin"),
    (frozenset({"PUT", "DELETE"}), re.compile(r"/names/[^/]+/aliases/[^/]+"), "admin"),
    (frozenset({"POST"}), re.compile(r"/names/[^/]+/aliases/[^/]+/rollback"), "admin"),
    (frozenset({"GET", "HEAD"}), re.compile(r"/audit"), "admin"),
    (frozenset({"DELETE"}), re.compile(r"/datasets/[^/]+"), "admin"),
    (frozenset({"POST"}), re.compile(r"/train"), "train"),
    # issue 15: an evaluation is kept with the model (labelled data, a change of state)
    (frozenset({"POST"}), re.compile(r"/models/[^/]+/evaluate"), "train"),
    (frozenset({"GET", "HEAD", "POST"}), re.compile(r"/(jobs|datasets)(/.*)?"), "train"),
]


def scope_needed(method: str, path: str) -> str:
    for methods, pattern, scope in RULES:
        if method in methods and pattern.fullmatch(path):
            return scope
    return "predict"


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


class APIKeyAuth:
    """Answer 401 (JSON error, ``WWW-Authenticate``) unless the request carries a known key,
    403 unless that key has the scope the route needs."""

    def __init__(self, app: ASGIApp, *, keys: KeyTable) -> None:
        self.app = app
        self.keys = keys

    def _candidate(self, headers: list[tuple[bytes, bytes]]) -> bytes | None:
        for name, value in headers:
            if name == HEADER:
                return value
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                return value[7:].strip()
            if name == b"authorization" and value[:6].lower() == b"basic ":
                try:
                    user_password = base64.b64decode(value[6:].strip(), validate=True)
                except (binascii.Error, ValueError):
                    return b""  # not Basic credentials: a wrong key
                return user_password.partition(b":")[2]  # the user name is not looked at
        return None

    def _verdict(self, scope: Scope) -> tuple[bytes | None, Key | None, str | None]:
        """``(candidate, key, needed)``: the credential sent, the key it is (if any) and the
        scope the route needs; ``needed`` is ``None`` when the request may go on (an open path,
        or a key with that scope, whose id is then put in ``scope["state"]``)."""
        # behind a proxy that strips a prefix (uvicorn --root-path), the path still carries it
        path = route_path(scope)
        if is_open(path):
            return None, None, None
        candidate = self._candidate(scope["headers"])
        key = None if candidate is None else self.keys.find(candidate)
        needed = scope_needed(scope.get("method", "GET"), path)
        if key is not None and key.allows(needed):
            scope.setdefault("state", {})["key_id"] = key.key_id
            return candidate, key, None
        return candidate, key, needed

    def admits(self, scope: Scope) -> bool:
        """Whether the HTTP request ``scope`` may go on: what this layer checks before passing a
        request on, for the predict fast path, which answers in front of this layer."""
        return self._verdict(scope)[2] is None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        candidate, key, needed = self._verdict(scope)
        if needed is None:
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if key is not None:
            await send_error(
                scope,
                send,
                403,
                f"API key {key.key_id!r} lacks the scope {needed!r} that "
                f"{scope['method']} {path} needs",
            )
            return
        challenges = [CHALLENGE]
        if BROWSER_PAGES.fullmatch(path) and scope.get("method") in ("GET", "HEAD"):
            challenges.insert(0, BASIC_CHALLENGE)
        await send_error(
            scope,
            send,
            401,
            ("API key is wrong" if candidate is not None else "API key missing")
            + ": send it in the X-API-Key header or as 'Authorization: Bearer <key>'",
            challenges,
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
