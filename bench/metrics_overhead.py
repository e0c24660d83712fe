"""Cost of the Prometheus metrics per request, measured by calling ASGI apps directly (no
sockets): ``PrometheusMiddleware`` around a bare ASGI app and around a bare Starlette endpoint,
the service's ``GET /health`` and 1-row ``POST /predict`` with and without it (started by its
lifespan, as a server starts it), and the counting calls a prediction makes. Prints microseconds
per request (or per call).

    python bench/metrics_overhead.py [n_requests]   # after pip install -e . (or PYTHONPATH=.)
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from app import metrics
from app.api.front.metrics import PrometheusMiddleware
from app.config import Settings
from app.main import create_app

ROWS = b'{"features": [[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 1.0]], "labels": [0, 0, 1, 1]}'


def request(method: str, path: str, body: bytes) -> tuple[dict[str, Any], Any]:
    headers = [(b"host", b"bench")]
    if body:
        headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    return scope, receive


async def per_request(app: Any, method: str, path: str, body: bytes, n: int) -> float:
    if hasattr(app, "router"):  # the service: started as a server starts it (watcher, metrics)
        async with app.router.lifespan_context(app):
            return await requests(app, method, path, body, n)
    return await requests(app, method, path, body, n)


async def requests(app: Any, method: str, path: str, body: bytes, n: int) -> float:
    scope, receive = request(method, path, body)
    answers: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answers.append(message["status"])

    for _ in range(min(n, 1000)):  # warm up
        await app(dict(scope), receive, send)
    assert answers[-1] < 300, answers[-1]
    start = time.perf_counter()
    for _ in range(n):
        await app(dict(scope), receive, send)
    return (time.perf_counter() - start) / n * 1e6


async def bare_asgi(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def bare() -> Starlette:
    async def ping(request: Any) -> Response:
        return Response(b"ok")

    return Starlette(routes=[Route("/ping", ping)])


class Uncounted:
    """The metrics layer's place without its work: no request id, nothing counted."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    def begin(self, scope: Any) -> tuple[float, bytes, Any]:
        return 0.0, b"-", None

    def end(self, *args: Any) -> None:
        pass


def service(*, instrumented: bool) -> Any:
    app = create_app(Settings(model_store_dir=Path(tempfile.mkdtemp())))
    if not instrumented:
        fast = app.front  # the predict fast path, which counts what it answers itself
        assert isinstance(fast.counted, PrometheusMiddleware)
        fast.app = fast.counted = Uncounted(fast.counted.app)
    return app


def predict_body(app: Any) -> bytes:
    """Trains a model on ``app`` and returns a 1-row predict body for it."""
    answer: list[bytes] = []
    scope, receive = request("POST", "/train", ROWS)

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            answer.append(message.get("body", b""))

    asyncio.run(app(scope, receive, send))
    model_id = b"".join(answer).split(b'"id":"')[1].split(b'"')[0]
    return b'{"model_id": "%s", "features": [[1.5, 0.5]]}' % model_id


def per_call(call: Callable[[], object], n: int) -> float:
    for _ in range(min(n, 1000)):
        call()
    start = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    plain, counted = service(instrumented=False), service(instrumented=True)
    plain_body, counted_body = predict_body(plain), predict_body(counted)
    cases: list[tuple[str, Callable[[], Any], str, str, bytes]] = [
        ("bare ASGI app", lambda: bare_asgi, "GET", "/ping", b""),
        (
            "bare ASGI app + PrometheusMiddleware",
            lambda: PrometheusMiddleware(bare_asgi),
            "GET",
            "/ping",
            b"",
        ),
        ("bare Starlette endpoint", bare, "GET", "/ping", b""),
        (
            "bare Starlette endpoint + PrometheusMiddleware",
            lambda: PrometheusMiddleware(bare()),
            "GET",
            "/ping",
            b"",
        ),
        ("service GET /health, no middleware", lambda: plain, "GET", "/health", b""),
        ("service GET /health, with PrometheusMiddleware", lambda: counted, "GET", "/health", b""),
        (
            "service POST /predict 1 row, no middleware",
            lambda: plain,
            "POST",
            "/predict",
            plain_body,
        ),
        (
            "service POST /predict 1 row, with middleware",
            lambda: counted,
            "POST",
            "/predict",
            counted_body,
        ),
    ]
    for name, make, method, path, body in cases:
        best = min(asyncio.run(per_request(make(), method, path, body, n)) for _ in range(3))
        print(f"{name:50s} {best:8.2f} us/request (best of 3 x {n})")
    calls: list[tuple[str, Callable[[], object]]] = [
        (
            "record_predictions(model_id, 1, ...)",
            lambda: metrics.record_predictions("m", 1, max_model_ids=100),
        ),
        ("CACHE_HITS.inc()", metrics.CACHE_HITS.inc),
    ]
    for name, call in calls:
        best = min(per_call(call, 10 * n) for _ in range(3))
        print(f"{name:50s} {best:8.3f} us/call (best of 3 x {10 * n})")


if __name__ == "__main__":
    main()
