"""The service as users run it: a real uvicorn process on a free loopback port."""

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    port = free_port()
    env = {**os.environ, "MODEL_STORE_DIR": str(tmp_path / "models")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"server did not start: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.05)
    yield base, tmp_path / "models"
    proc.terminate()
    proc.wait(timeout=10)
    proc.stderr.close()


def test_train_predict_list_delete_over_real_http(server):
    base, folder = server
    with httpx.Client(base_url=base, timeout=30) as c:
        r = c.post(
            "/train",
            json={"features": [[0.0], [1.0], [2.0], [3.0]], "labels": ["lo", "lo", "hi", "hi"]},
        )
        assert r.status_code == 201
        mid = r.json()["id"]
        assert (folder / f"{mid}.json").is_file()
        p = c.post("/predict", json={"model_id": mid, "features": [[0.0], [3.0]]}).json()
        assert p["predictions"] == ["lo", "hi"]
        assert [m["id"] for m in c.get("/models").json()["items"]] == [mid]
        assert c.delete(f"/models/{mid}").status_code == 204
        assert c.get(f"/models/{mid}").status_code == 404
        bad = c.post("/train", content=b"{oops", headers={"content-type": "application/json"})
        assert bad.status_code == 400 and "Traceback" not in bad.text
        assert c.get("/docs").status_code == 200
