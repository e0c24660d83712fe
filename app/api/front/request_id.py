"""``X-Request-ID`` on every answer, and in the server's log lines.

A request's id is the one its client sent (visible ASCII, at most 128 characters: a proxy's or
a caller's trace id), or one made here (32 hex digits). It is kept in the ASGI scope's
``state`` (where the audit log reads it) and in a context variable that the log records of the
request carry (``RequestIdFilter``): uvicorn's access lines end with ``request_id=...``.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import secrets
from contextvars import ContextVar, Token

from starlette.types import Scope

HEADER = b"x-request-id"
_VALID = re.compile(rb"[\x21-\x7e]{1,128}")
REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")
#: Ids made here: 16 random hex digits per process, then a counter (unique across processes and
#: restarts, and no system call per request, as ``secrets.token_hex`` would make).
_PREFIX = secrets.token_hex(8).encode()
_COUNTER = itertools.count()


def _new_prefix() -> None:  # a forked worker must not repeat its parent's ids
    global _PREFIX
    _PREFIX = secrets.token_hex(8).encode()


os.register_at_fork(after_in_child=_new_prefix)


def begin(scope: Scope) -> tuple[bytes, Token[str]]:
    """The request's id (its client's, or a new one), put in ``scope["state"]`` and in the
    context of its log records; ``end(token)`` when the request is over. Called by the
    metrics layer (``PrometheusMiddleware.begin``), which also puts the id on the answer: one
    layer, one ``send`` wrapper for both (a layer of its own cost a 1-row prediction ~3 us)."""
    raw = None
    for name, value in scope["headers"]:
        if name == HEADER:
            raw = value if _VALID.fullmatch(value) else None
            break
    if raw is None:
        raw = b"%s%016x" % (_PREFIX, next(_COUNTER))
    rid = raw.decode()
    scope.setdefault("state", {})["request_id"] = rid
    return raw, REQUEST_ID.set(rid)


def end(token: Token[str]) -> None:
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
