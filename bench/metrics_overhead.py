"""Cost of the Prometheus request middleware per request, measured by calling ASGI apps directly
(no sockets): a bare Starlette endpoint, the same wrapped in ``PrometheusMiddleware``, and the
service's ``GET /health`` with and without it. Prints microseconds per request.

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

from app.config import Settings
from app.main import create_app
from app.metrics import PrometheusMiddleware


async def per_request(app: Any, path: str, n: int) -> float:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    for _ in range(min(n, 1000)):  # warm up
        await app(dict(scope), receive, send)
    start = time.perf_counter()
    for _ in range(n):
        await app(dict(scope), receive, send)
    return (time.perf_counter() - start) / n * 1e6


def bare() -> Starlette:
    async def ping(request: Any) -> Response:
        return Response(b"ok")

    return Starlette(routes=[Route("/ping", ping)])


def service(*, instrumented: bool) -> Any:
    app = create_app(Settings(model_store_dir=Path(tempfile.mkdtemp())))
    if not instrumented:
        assert isinstance(app.front, PrometheusMiddleware)  # the outermost front layer
        app.front = app.front.app
    return app


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    cases: list[tuple[str, Callable[[], Any], str]] = [
        ("bare Starlette endpoint", bare, "/ping"),
        (
            "bare Starlette endpoint + PrometheusMiddleware",
            lambda: PrometheusMiddleware(bare()),
            "/ping",
        ),
        ("service GET /health, no middleware", lambda: service(instrumented=False), "/health"),
        (
            "service GET /health, with PrometheusMiddleware",
            lambda: service(instrumented=True),
            "/health",
        ),
    ]
    for name, make, path in cases:
        best = min(asyncio.run(per_request(make(), path, n)) for _ in range(3))
        print(f"{name:50s} {best:8.1f} us/request (best of 3 x {n})")


if __name__ == "__main__":
    main()
