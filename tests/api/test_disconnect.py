"""A client that goes away mid-upload is the client's doing: counted as 499 (as nginx does), one
log line, no 500 and no traceback (issue 12, item 9)."""

from __future__ import annotations

import re
import socket
import time

import httpx

from tests.live_server import LiveServer


def abandon_upload(port: int, path: str) -> None:
    """Send the head of a POST that promises 1 MB, 1 KB of it, then hang up."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000000\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + b'{"features": [' + b"[1.0, 2.0], " * 80)
        time.sleep(0.3)  # the server is reading the body


def counted(metrics: str, route: str) -> dict[str, float]:
    """Requests counted for POST ``route``, by status."""
    pattern = rf'logreg_http_requests_total{{method="POST",route="{route}",status="(\d+)"}} (\S+)'
    return {m[0]: float(m[1]) for m in re.findall(pattern, metrics)}


def test_a_client_that_hangs_up_mid_upload_is_a_499_not_a_500(tmp_path):
    with LiveServer(tmp_path / "models") as server:
        for path in ("/train", "/predict"):
            abandon_upload(server.port, path)
        deadline = time.monotonic() + 10
        while True:
            text = httpx.get(f"{server.url}/metrics", timeout=5).text
            statuses = {route: counted(text, route) for route in ("/train", "/predict")}
            if all(statuses.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        log = server.log()
    assert statuses == {"/train": {"499": 1.0}, "/predict": {"499": 1.0}}, statuses
    assert "Traceback" not in log and "unhandled error" not in log, log[-3000:]
    assert log.count("client disconnected") == 2, log[-3000:]
