"""The event loop never waits on disk or on big CPU work: while a model file read hangs, or a huge
invalid body is being refused, ``/health`` still answers at once (issue 11)."""

from __future__ import annotations

import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import uvicorn

from app.config import Settings
from app.main import create_app
from model_store import JsonFileStore
from tests.conftest import record_figures
from tests.live_server import LiveServer, free_port

GOOD = {"features": [[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 3.0]], "labels": [0, 0, 1, 1]}


class HangingStore(JsonFileStore):
    """A model folder whose file reads hang while ``gate`` is closed, like a hung network mount."""

    def __init__(self, root: os.PathLike[str]) -> None:
        super().__init__(root)
        self.gate = threading.Event()
        self.gate.set()
        self.waiting = 0

    def _read(self, model_id):  # every model read goes through here
        if not self.gate.is_set():
            self.waiting += 1
            self.gate.wait(timeout=60)
        return super()._read(model_id)


def health_latencies(url: str, n: int = 10) -> list[float]:
    out = []
    with httpx.Client(base_url=url, timeout=5) as c:
        c.get("/health")  # the connection, once
        for _ in range(n):
            t0 = time.perf_counter()
            assert c.get("/health").status_code == 200
            out.append(time.perf_counter() - t0)
    return out


@pytest.fixture
def hanging_server(tmp_path):
    store = HangingStore(tmp_path / "models")
    app = create_app(Settings(model_store_dir=tmp_path / "models"), store=store)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    yield url, store
    store.gate.set()
    server.should_exit = True
    thread.join(timeout=15)


def test_health_answers_while_model_reads_hang(hanging_server):
    url, store = hanging_server
    model_id = httpx.post(f"{url}/train", json=GOOD, timeout=30).json()["id"]
    store.gate.clear()  # from now on every model read hangs
    calls = [
        ("POST", "/predict", {"model_id": model_id, "features": [[1.0, 2.0]]}),
        ("POST", "/predict", {"model_id": "latest", "features": [[1.0, 2.0]]}),
        ("GET", f"/models/{model_id}", None),
        ("GET", f"/v2/models/{model_id}", None),
        ("POST", "/predict", {"model_id": model_id, "features": [[1.0, 2.0]] * 1000}),
    ]
    with ThreadPoolExecutor(len(calls)) as pool:
        pending = [
            pool.submit(httpx.request, method, f"{url}{path}", json=body, timeout=60)
            for method, path, body in calls
        ]
        deadline = time.monotonic() + 10
        while store.waiting < len(calls) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert store.waiting == len(calls)  # every one of them is stuck in a read
        latencies = health_latencies(url)
        assert not any(f.done() for f in pending)  # ... and still stuck while /health answered
        store.gate.set()
        statuses = [f.result().status_code for f in pending]
    assert statuses == [200] * len(calls)
    record_figures(
        "health while model reads hang",
        median_ms=round(statistics.median(latencies) * 1000, 1),
        max_ms=round(max(latencies) * 1000, 1),
    )
    assert statistics.median(latencies) < 0.1


def test_a_fifo_in_the_model_folder_is_an_unreadable_model_not_a_hang(tmp_path):
    folder = tmp_path / "models"
    with LiveServer(folder) as server, httpx.Client(base_url=server.url, timeout=10) as c:
        model_id = c.post("/train", json=GOOD).json()["id"]
        fifo_id = "f" * 32
        os.mkfifo(folder / f"{fifo_id}.json")
        r = c.post("/predict", json={"model_id": fifo_id, "features": [[1.0, 2.0]]})
        assert r.status_code == 409 and "not a regular file" in r.json()["detail"]
        assert c.get(f"/models/{fifo_id}").status_code == 409
        assert c.get(f"/v2/models/{fifo_id}").status_code == 409
        listing = c.get("/models").json()
        assert fifo_id in listing["unreadable"] and listing["items"][0]["id"] == model_id
        assert c.get("/health").status_code == 200
        r = c.post("/predict", json={"model_id": model_id, "features": [[1.0, 2.0]]})
        assert r.status_code == 200


def test_health_answers_while_a_70_mb_invalid_body_is_refused(tmp_path):
    """Parsing and validating it hold the GIL for seconds (an 8.8 MB body of strings blocked
    /health for 18 s and made a 149 MB error body): it is done in a child process, and the error
    lists 20 problems and counts the rest."""
    row = b'["x","y","z","w","v"]'
    n = 70_000_000 // (len(row) + 1)
    body = b'{"model_id":"latest","features":[' + b",".join([row] * n) + b"]}"
    with LiveServer(tmp_path / "models") as server:
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(
                httpx.post,
                f"{server.url}/predict",
                content=body,
                headers={"content-type": "application/json"},
                timeout=120,
            )
            latencies = []
            with httpx.Client(base_url=server.url, timeout=5) as c:
                c.get("/health")
                while not pending.done():
                    t0 = time.perf_counter()
                    assert c.get("/health").status_code == 200
                    latencies.append(time.perf_counter() - t0)
                    time.sleep(0.02)
            r = pending.result()
        assert r.status_code == 422
        assert len(r.content) < 8192
        detail = r.json()["detail"]
        assert detail.startswith("features[0][0]: ") and f"and {5 * n - 5} more" in detail
        assert len(r.json()["errors"]) == 20
    record_figures(
        "health during a 70 MB invalid body",
        probes=len(latencies),
        median_ms=round(statistics.median(latencies) * 1000, 1),
        max_ms=round(max(latencies) * 1000, 1),
    )
    assert len(latencies) >= 10  # /health was asked while the body was being refused
    assert statistics.median(latencies) < 0.1
