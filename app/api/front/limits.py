"""Request body size limit, and the body's content coding, as a pure ASGI middleware.

Pure ASGI (not Starlette's ``BaseHTTPMiddleware``) so that it costs a header scan and a counter on
the hot predict path, and sees the body as it streams: a declared ``Content-Length`` over the
limit is refused before anything is read, and a chunked body is refused as soon as the bytes
received pass the limit, so a client can never make the server buffer more than the limit.

A body sent with a ``Content-Encoding`` other than ``identity`` (gzip, ...) is refused with 415
before it is read: the service does not inflate bodies (docs/DEVELOPING.md says why).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ...errors import LimitExceeded
from ..errors import error_content, route_path


class BodyTooLarge(LimitExceeded):
    """Raised inside ``receive`` to stop the application reading a body past the limit. A
    ``LimitExceeded``, so that the app's handler takes it quietly (not as an unexpected error,
    logged with a traceback); the layer discards that answer for its own 413."""


async def send_error(
    scope: Scope,
    send: Any,
    status: int,
    detail: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """Answer a JSON error straight over ASGI, in the shape the path's routes use (the service's
    ``{"detail": ...}``, or ``{"error": ...}`` under ``/v2``; see ``errors.error_content``)."""
    status, content = error_content(route_path(scope), status, detail)
    body = orjson.dumps(content)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Refusal:
    """A layer's own error answer, decided while the app reads the body: the layer's ``receive``
    sets ``answer`` and raises, and ``serve`` drops whatever the app then sends and answers
    that instead (unless the app had already started its answer)."""

    __slots__ = ("answer",)

    def __init__(self) -> None:
        #: ``(status, detail, headers)`` of the answer, once the layer refuses the request.
        self.answer: tuple[int, str, Sequence[tuple[bytes, bytes]]] | None = None

    async def serve(
        self,
        app: ASGIApp,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        raised: type[BaseException],
    ) -> None:
        """Run ``app`` with ``receive`` (the layer's); ``raised``: what that raises on refusal."""
        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if self.answer is not None:
                return  # whatever the app made of the interrupted read, the answer is ours
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await app(scope, receive, guarded_send)
        except raised:
            if self.answer is None:
                raise
        if self.answer is not None and not started:
            await send_error(scope, send, *self.answer)


#: ``Content-Encoding`` values that mean "not encoded": the only bodies the service reads.
IDENTITY = (b"", b"identity")


#: Uploads to this path (``POST``) are datasets: limited by ``dataset_max_bytes`` instead, and
#: their route reads compressed bodies (it decides which codings).
DATASETS = "/datasets"


class BodySizeLimit:
    """Refuse request bodies larger than ``max_bytes`` with 413 and a JSON error, and compressed
    ones with 415; dataset uploads (``POST /datasets``) have their own limit,
    ``dataset_max_bytes``, and may be compressed."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, dataset_max_bytes: int | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.dataset_max_bytes = max_bytes if dataset_max_bytes is None else dataset_max_bytes

    def message(self, what: str, *, dataset: bool = False) -> str:
        if dataset:
            limit, setting = self.dataset_max_bytes, "MAX_DATASET_BYTES"
        else:
            limit, setting = self.max_bytes, "MAX_BODY_BYTES"
        return f"body: {what}; the limit is {limit} bytes (setting {setting})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        dataset = scope["method"] == "POST" and route_path(scope) == DATASETS
        max_bytes = self.dataset_max_bytes if dataset else self.max_bytes
        declared = chunked = False
        size = 0
        encoding: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    size = int(value)
                except ValueError:
                    await send_error(scope, send, 400, "Content-Length: not a number")
                    return
                if size > max_bytes:
                    too_big = f"Content-Length {size} is too large"
                    await send_error(scope, send, 413, self.message(too_big, dataset=dataset))
                    return
                declared = True
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"content-encoding":
                encoding = value
        if (
            encoding is not None
            and not dataset
            and (size or chunked)
            and encoding.strip().lower() not in IDENTITY
        ):
            coding = encoding.decode("latin-1")
            detail = f"Content-Encoding {coding!r} is not supported; send the body uncompressed"
            await send_error(scope, send, 415, detail, [(b"accept-encoding", b"identity")])
            return
        if declared and not chunked:
            # the server reads exactly Content-Length bytes: nothing to count (the fast path)
            await self.app(scope, receive, send)
            return
        received = 0
        refusal = Refusal()

        async def limited_receive() -> Message:
            nonlocal received
            message: Message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    refusal.answer = (
                        413,
                        self.message(f"{received} bytes received is too many", dataset=dataset),
                        (),
                    )
                    raise BodyTooLarge
            return message

        await refusal.serve(self.app, scope, limited_receive, send, raised=Exception)
