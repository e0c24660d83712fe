"""Limits on what a request may cost beyond its size: the time its body takes to arrive, the
memory its fit needs and the model it would write, the memory the model cache holds (issue 12)."""

from __future__ import annotations

import asyncio
import select
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson
import pytest

from app.config import Settings
from app.main import create_app
from tests.asgi_client import ASGIClient
from tests.conftest import record_figures
from tests.live_server import LiveServer

GOOD = {"features": [[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 3.0]], "labels": [0, 0, 1, 1]}

# ---- BODY_READ_TIMEOUT (item 10) ------------------------------------------------------------

#: How long a trickling client waits for an answer at most: a safety net for a server that never
#: answers (the defect), not a measurement.
PATIENCE = 30.0


def trickle(
    port: int,
    path: str,
    *,
    content_type: str = "application/json",
    chunked: bool = False,
    interval: float = 0.2,
    stop: threading.Event | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """A client that declares a 100 kB body and sends it one byte every ``interval`` seconds,
    until the server answers. Returns the answer's status, headers and body."""
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
    head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else "Content-Length: 100000\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=PATIENCE) as sock:
        sock.sendall(head.encode())
        given_up = time.monotonic() + PATIENCE
        while time.monotonic() < given_up and not (stop and stop.is_set()):
            readable, _, _ = select.select([sock], [], [], interval)
            if readable:
                return read_answer(sock)
            try:
                sock.sendall(b"1\r\n \r\n" if chunked else b" ")
            except OSError:  # the server answered and closed: read what it said
                return read_answer(sock)
    raise AssertionError(f"no answer to a slow body on {path} within {PATIENCE} s")


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split(" ", 2)[1]), headers, body


def test_a_slow_body_is_a_408_on_every_route_and_never_holds_the_training_slot(tmp_path):
    """Issue 12, item 10: a /train upload of one byte every 5 s held the worker's only training
    slot (every other /train got 429) for as long as it went on. The slot is now taken once the
    body is in, and no body may take longer than BODY_READ_TIMEOUT: 408 on every route that reads
    one (the predict fast path, the routes behind it, /v2), chunked or with a Content-Length."""
    env = {"BODY_READ_TIMEOUT": "2", "TRAIN_CONCURRENCY": "1"}
    cases = [
        ("/train", "application/json", False),
        ("/train", "text/csv", True),
        ("/predict", "application/json", False),  # answered by the fast path
        ("/predict", "text/csv", False),  # answered by the route
        ("/v2/models/latest/infer", "application/json", True),
    ]
    stop = threading.Event()
    with (
        LiveServer(tmp_path / "models", env=env) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
        ThreadPoolExecutor(len(cases)) as pool,
    ):
        try:
            started = time.monotonic()
            slow = [
                pool.submit(
                    trickle, server.port, path, content_type=ctype, chunked=chunked, stop=stop
                )
                for path, ctype, chunked in cases
            ]
            time.sleep(0.5)  # the slow uploads are under way (if not, the 201 below proves less)
            r = client.post("/train", json=GOOD)
            assert r.status_code == 201, r.text  # was 429: the slow upload held the slot
            answers = [f.result() for f in slow]
            seconds = time.monotonic() - started
        finally:
            stop.set()
        for (path, _, _), (status, headers, body) in zip(cases, answers, strict=True):
            assert status == 408, (path, status, body)
            assert headers.get("connection") == "close", (path, headers)
            content = orjson.loads(body)
            message = content["error"] if path.startswith("/v2") else content["detail"]
            assert message == (
                "body: not received in full within 2 s (setting BODY_READ_TIMEOUT)"
            ), (path, content)
        assert client.get("/health").status_code == 200
        assert client.post("/train", json=GOOD).status_code == 201
        assert "Traceback" not in server.log()
    record_figures(
        "slow bodies (tests/api/test_limits.py)",
        routes=len(cases),
        body_read_timeout_s=2,
        seconds_until_every_408=round(seconds, 2),
    )


@pytest.mark.parametrize("delay", [0.0, 0.3])
def test_a_body_within_the_timeout_is_read_whole(tmp_path, delay):
    """The bound is on the whole body, not on a pause: bodies sent in pieces well within it are
    read as usual."""
    client = ASGIClient(create_app(Settings(model_store_dir=tmp_path / "m", body_read_timeout=5)))
    body = orjson.dumps(GOOD)

    async def pieces():
        for i in range(0, len(body), 16):
            if delay:
                await asyncio.sleep(delay / 10)
            yield body[i : i + 16]

    r = client.post("/train", content=pieces(), headers={"content-type": "application/json"})
    assert r.status_code == 201, r.text
    client.close()
