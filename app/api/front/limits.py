"""The request body's limits, as one pure ASGI layer: its size, its content coding, and the time
it may take to arrive.

Pure ASGI (not Starlette's ``BaseHTTPMiddleware``), and it sees the body as it streams:

- **Size.** A declared ``Content-Length`` over the limit is refused (413) before anything is
  read, and a chunked body as soon as the bytes received pass the limit, so a client can never
  make the server buffer more than the limit.
- **Coding.** A body sent with a ``Content-Encoding`` other than ``identity`` (gzip, ...) is
  refused with 415 before it is read: the service does not inflate bodies (docs/DEVELOPING.md
  says why).
- **Time.** uvicorn waits for a body as long as its client keeps the connection open: a client
  sending one byte every few seconds held a connection, its buffers and (on ``/train``) a
  training slot for as long as it liked. Here a read of the body may wait only until ``seconds``
  after the request began; past that the read is abandoned and the answer is 408 with
  ``Connection: close`` (the rest of the body is never read). Only reads of the body are
  bounded: once it is complete, an app waiting for the client to disconnect waits as long as it
  needs.

The layer reads the body's first part itself. When that is the whole body (any body that fits
in the server's buffer: every ordinary request), the app gets it and the original ``send``, with
nothing left to count or bound; only a body still arriving gets the counting, timed reads.

No timer per request: a timer armed and cancelled around each read (``asyncio.timeout``) costs
more than the rest of this layer. Instead, a read that has to wait is listed with its deadline
(a read of bytes already received is not), and one sweep every ``SWEEP_SECONDS`` (running only
while some read waits) cancels the reads past theirs: a late body is refused up to that much
after its deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Generator, Sequence
from typing import Any, cast

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ...errors import BodyTimeout, LimitExceeded
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


def _body_headers(headers: Sequence[tuple[bytes, bytes]]) -> tuple[int | None, bool, bytes | None]:
    """``(Content-Length, chunked, Content-Encoding)`` of a request's headers: the declared
    length (``None``: none), whether the body comes chunked, and its coding (``None``: none).
    ``ValueError`` for a ``Content-Length`` that is not a number."""
    size = encoding = None
    chunked = False
    for name, value in headers:
        if name == b"content-length":
            size = int(value)
        elif name == b"transfer-encoding":
            chunked = True
        elif name == b"content-encoding":
            encoding = value
    return size, chunked, encoding


#: Uploads to this path (``POST``) are datasets: limited by ``dataset_max_bytes`` instead, and
#: their route reads compressed bodies (it decides which codings).
DATASETS = "/datasets"
#: The 408 closes the connection: the rest of the body is never read.
CLOSE = ((b"connection", b"close"),)
#: How often waiting reads are checked against their deadline (the 408's lateness at most).
SWEEP_SECONDS = 0.5


class BodyLimits:
    """Refuse request bodies larger than ``max_bytes`` with 413 and a JSON error, compressed ones
    with 415, and bodies not complete ``read_seconds`` after the request began with 408; dataset
    uploads (``POST /datasets``) have their own size limit, ``dataset_max_bytes``, and may be
    compressed."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        dataset_max_bytes: int | None = None,
        read_seconds: float,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.dataset_max_bytes = max_bytes if dataset_max_bytes is None else dataset_max_bytes
        self.smallest = min(self.max_bytes, self.dataset_max_bytes)  # within both: any route
        self.seconds = read_seconds
        self.late = (
            f"body: not received in full within {read_seconds:g} s (setting BODY_READ_TIMEOUT)"
        )
        self._waiting: dict[asyncio.Task[object], float] = {}  # task reading a body -> deadline
        self._expired: set[asyncio.Task[object]] = set()
        self._sweep: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the one the above belong to

    def admits(self, scope: Scope) -> bool:
        """Whether the HTTP request ``scope``, not a dataset upload, needs nothing of this layer
        but the read deadline (``deadline``, ``read``): a declared ``Content-Length`` within
        the limit, not chunked, no ``Content-Encoding``. What the predict fast path, which
        answers in front of this layer, asks."""
        try:
            size, chunked, encoding = _body_headers(scope["headers"])
        except ValueError:  # not a number: this layer's 400
            return False
        return size is not None and 0 <= size <= self.max_bytes and not chunked and not encoding

    def deadline(self) -> float:
        """The deadline of the body of a request beginning now (``time.monotonic``)."""
        return time.monotonic() + self.seconds

    async def refuse_late(
        self, scope: Scope, send: Send, headers: Sequence[tuple[bytes, bytes]] = ()
    ) -> None:
        """The 408 for a body not received by its deadline; it closes the connection."""
        await send_error(scope, send, 408, self.late, [*CLOSE, *headers])

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
        deadline = self.deadline()
        try:
            length, chunked, encoding = _body_headers(scope["headers"])
        except ValueError:
            await send_error(scope, send, 400, "Content-Length: not a number")
            return
        declared = length is not None
        size = length or 0
        dataset = False
        if size > self.smallest or encoding is not None or chunked:
            dataset = scope["method"] == "POST" and route_path(scope) == DATASETS
            if size > (self.dataset_max_bytes if dataset else self.max_bytes):
                too_big = f"Content-Length {size} is too large"
                await send_error(scope, send, 413, self.message(too_big, dataset=dataset))
                return
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
        first = await self.read(receive, deadline)
        if first is None:
            await self.refuse_late(scope, send)
            return
        # the server reads at most a declared Content-Length: only chunked bodies are counted
        counted = chunked or not declared
        received = len(first.get("body", b"")) if counted else 0
        max_bytes = self.dataset_max_bytes if dataset else self.max_bytes
        if received > max_bytes:
            too_many = self.message(f"{received} bytes received is too many", dataset=dataset)
            await send_error(scope, send, 413, too_many)
            return
        given = False
        if first["type"] != "http.request" or not first.get("more_body", False):
            # the whole body (or the client gone): nothing left to count or bound

            async def whole_receive() -> Message:
                nonlocal given
                if given:
                    return await receive()  # a disconnect, whenever it comes
                given = True
                return first

            await self.app(scope, whole_receive, send)
            return
        body_done = False
        refusal = Refusal()

        async def limited_receive() -> Message:
            nonlocal given, body_done, received
            if not given:
                given = True
                return first
            if body_done:
                return await receive()
            message = await self.read(receive, deadline)
            if message is None:
                refusal.answer = (408, self.late, CLOSE)
                raise BodyTimeout(self.late)
            if message["type"] == "http.request":
                if counted:
                    received += len(message.get("body", b""))
                    if received > max_bytes:
                        too_many = f"{received} bytes received is too many"
                        refusal.answer = (413, self.message(too_many, dataset=dataset), ())
                        raise BodyTooLarge
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        await refusal.serve(self.app, scope, limited_receive, send, raised=Exception)

    async def read(self, receive: Receive, deadline: float) -> Message | None:
        """``receive()``, or ``None`` if it has to wait past ``deadline``."""
        read = _ListedIfWaiting(receive(), self, deadline)
        try:
            return await read
        except asyncio.CancelledError:
            task = read.task
            if task is None or task not in self._expired:
                raise
            self._expired.discard(task)
            task.uncancel()
            return None
        finally:
            if read.task is not None:
                self._waiting.pop(read.task, None)

    def _wait(self, task: asyncio.Task[object], deadline: float) -> None:
        """List ``task`` as waiting for body bytes until ``deadline`` (``time.monotonic``)."""
        loop = task.get_loop()
        if loop is not self._loop:  # a server has one loop; tests may run an app on several
            self._loop, self._waiting, self._expired, self._sweep = loop, {}, set(), None
        self._waiting[task] = deadline
        if self._sweep is None:
            self._sweep = loop.call_later(SWEEP_SECONDS, self._cancel_late)

    def _cancel_late(self) -> None:
        now = time.monotonic()
        for task, deadline in self._waiting.items():
            if now >= deadline and task not in self._expired:
                self._expired.add(task)
                task.cancel()  # raised in its read of the body, the only place it can wait
        self._sweep = None
        if self._waiting and self._loop is not None:
            self._sweep = self._loop.call_later(SWEEP_SECONDS, self._cancel_late)


class _ListedIfWaiting:
    """Await a read of the body (``read``, a coroutine); only if it has to wait is its task
    listed with ``deadline``. A read of bytes already received (a small body, the common case)
    returns without suspending, and then costs no listing at all."""

    __slots__ = ("deadline", "layer", "read", "task")

    def __init__(self, read: Awaitable[Message], layer: BodyLimits, deadline: float) -> None:
        self.read = read
        self.layer = layer
        self.deadline = deadline
        self.task: asyncio.Task[object] | None = None

    def __await__(self) -> Generator[Any, Any, Message]:
        steps = self.read.__await__()
        try:
            pending = steps.send(None)
        except StopIteration as done:
            message: Message = done.value  # the common case: no ``cast`` call on it
            return message
        self.task = asyncio.current_task()  # it waits: list it, then go on as ``await`` does
        assert self.task is not None
        self.layer._wait(self.task, self.deadline)
        while True:
            try:
                sent = yield pending
            except BaseException as exc:  # a cancellation (the deadline's, or another)
                try:
                    pending = steps.throw(exc)
                except StopIteration as done:
                    return cast(Message, done.value)
            else:
                try:
                    pending = steps.send(sent)
                except StopIteration as done:
                    return cast(Message, done.value)
