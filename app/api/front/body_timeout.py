"""A bound on the time a request body may take to arrive, as a pure ASGI layer.

uvicorn waits for a body as long as its client keeps the connection open: a client sending one
byte every few seconds held a connection, its buffers and (on ``/train``) a training slot for as
long as it liked. Here a read of the body may wait only until ``seconds`` after the request
began; past that the read is abandoned and the answer is 408 with ``Connection: close`` (the
rest of the body is never read). Only reads of the body are bounded: once it is complete, an app
waiting for the client to disconnect waits as long as it needs.

No timer per request: a timer armed and cancelled around each read (``asyncio.timeout``) costs
more than the rest of this layer. Instead, a read that has to wait is listed with its deadline
(a read of bytes already received is not), and one sweep every ``SWEEP_SECONDS`` (running only
while some read waits) cancels the reads past theirs: a late body is refused up to that much
after its deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Generator
from typing import Any, cast

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ...errors import BodyTimeout
from .limits import Refusal

#: The 408 closes the connection: the rest of the body is never read.
CLOSE = ((b"connection", b"close"),)
#: How often waiting reads are checked against their deadline (the 408's lateness at most).
SWEEP_SECONDS = 0.5


class BodyReadTimeout:
    """Answer 408 to a request whose body is not complete ``seconds`` after it began."""

    def __init__(self, app: ASGIApp, *, seconds: float) -> None:
        self.app = app
        self.seconds = seconds
        self.detail = f"body: not received in full within {seconds:g} s (setting BODY_READ_TIMEOUT)"
        self._waiting: dict[asyncio.Task[object], float] = {}  # task reading a body -> deadline
        self._expired: set[asyncio.Task[object]] = set()
        self._sweep: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the one the above belong to

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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = time.monotonic() + self.seconds
        body_done = False
        refusal = Refusal()

        async def timed_receive() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()  # a disconnect, whenever it comes
            read = _ListedIfWaiting(receive(), self, deadline)
            try:
                message: Message = await read
            except asyncio.CancelledError:
                task = read.task
                if task is None or task not in self._expired:
                    raise
                self._expired.discard(task)
                task.uncancel()
                refusal.answer = (408, self.detail, CLOSE)
                raise BodyTimeout(self.detail) from None
            finally:
                if read.task is not None:
                    self._waiting.pop(read.task, None)
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await refusal.serve(self.app, scope, timed_receive, send, raised=BodyTimeout)


class _ListedIfWaiting:
    """Await a read of the body (``read``, a coroutine); only if it has to wait is its task
    listed with ``deadline``. A read of bytes already received (a small body, the common case)
    returns without suspending, and then costs no listing at all."""

    __slots__ = ("deadline", "layer", "read", "task")

    def __init__(self, read: Awaitable[Message], layer: BodyReadTimeout, deadline: float) -> None:
        self.read = read
        self.layer = layer
        self.deadline = deadline
        self.task: asyncio.Task[object] | None = None

    def __await__(self) -> Generator[Any, Any, Message]:
        steps = self.read.__await__()
        try:
            pending = steps.send(None)
        except StopIteration as done:
            return cast(Message, done.value)
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
