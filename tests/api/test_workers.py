"""Several uvicorn workers, and several replicas, over one model folder."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import make_blobs
from tests.live_server import LiveServer

pytestmark = pytest.mark.slow


def check_shared(urls: list[str]) -> None:
    X, y = make_blobs(n=60)
    body = {"features": X.tolist(), "labels": y.tolist()}
    rows = {"features": X[:5].tolist()}
    clients = [httpx.Client(base_url=u, timeout=30) for u in urls]
    try:
        for i, trainer in enumerate(clients):
            mid = trainer.post("/train", json=body).json()["id"]
            answers = set()
            # new connections each time: with --workers, the kernel spreads them over workers
            for _ in range(8):
                for url in urls:
                    r = httpx.post(f"{url}/predict", json={"model_id": mid, **rows}, timeout=30)
                    assert r.status_code == 200, r.text
                    answers.add(tuple(r.json()["predictions"]))
            assert len(answers) == 1
            assert clients[(i + 1) % len(clients)].delete(f"/models/{mid}").status_code == 204
            for _ in range(8):
                for url in urls:
                    r = httpx.post(f"{url}/predict", json={"model_id": mid, **rows}, timeout=30)
                    assert r.status_code == 404, r.text
    finally:
        for c in clients:
            c.close()


def test_two_workers_share_models(tmp_path):
    with LiveServer(tmp_path / "models", args=["--workers", "2"]) as server:
        check_shared([server.url])
        log = server.log()
    assert log.count("Started server process") >= 2  # really two workers


def test_two_replicas_over_one_folder(tmp_path):
    folder = tmp_path / "models"
    with LiveServer(folder) as a, LiveServer(folder) as b:
        check_shared([a.url, b.url])
