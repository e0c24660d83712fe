"""``X-Request-ID`` on every answer, and in the server's log lines: the outermost front layer.

A request's id is the one its client sent (visible ASCII, at most 128 characters: a proxy's or
a caller's trace id), or one made here. It is kept in the ASGI scope's ``state`` (where the audit
log reads it) and in a context variable that the log records of the request carry
(``RequestIdFilter``): uvicorn's access lines end with ``request_id=...``.
"""

from __future__ import annotations

import logging
import re
import secrets
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
_VALID = re.compile(rb"[\x21-\x7e]{1,128}")
REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")


class RequestId:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = None
        for name, value in scope["headers"]:
            if name == HEADER:
                raw = value if _VALID.fullmatch(value) else None
                break
        if raw is None:
            raw = secrets.token_hex(16).encode()
        rid = raw.decode()
        scope.setdefault("state", {})["request_id"] = rid
        token = REQUEST_ID.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (HEADER, raw)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)


class RequestIdFilter(logging.Filter):
    """Gives every log record ``request_id``: the id of the request being handled, or ``-``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


#: uvicorn's default access line, and the same with the request's id.
UVICORN_ACCESS_FORMAT = '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s'
APP_FORMAT = "%(levelname)s:     %(name)s: %(message)s request_id=%(request_id)s"


def install_logging() -> None:
    """Put the request's id in the server's log lines: uvicorn's access lines (when it runs
    with its default log format) and the service's own (``app.*`` loggers)."""
    id_filter = RequestIdFilter()
    for handler in logging.getLogger("uvicorn.access").handlers:
        handler.addFilter(id_filter)
        fmt = getattr(handler.formatter, "_fmt", None)
        if fmt == UVICORN_ACCESS_FORMAT and handler.formatter is not None:
            handler.formatter._fmt = fmt + " request_id=%(request_id)s"
            handler.formatter._style._fmt = handler.formatter._fmt
    app_log = logging.getLogger("app")
    if not app_log.handlers:
        handler = logging.StreamHandler()
        handler.addFilter(id_filter)
        handler.setFormatter(logging.Formatter(APP_FORMAT))
        app_log.addHandler(handler)
