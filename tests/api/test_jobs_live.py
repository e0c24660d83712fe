"""Training jobs on real servers: two replicas over one folder (or one PostgreSQL database),
``kill -9`` and a clean stop."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import orjson
import psycopg
import pytest

from tests.api.test_jobs import ASYNC, WAIT, ended, fitting, slow_body
from tests.conftest import STORES
from tests.live_server import LiveServer, children

pytestmark = pytest.mark.slow


def submit(url: str, body: dict) -> dict:
    r = httpx.post(f"{url}/train", json=body, headers=ASYNC, timeout=WAIT)
    assert r.status_code == 202, r.text
    return r.json()


def wait_for(url: str, job_id: str, done) -> dict:
    deadline = time.monotonic() + WAIT
    while True:
        job = httpx.get(f"{url}/jobs/{job_id}", timeout=WAIT).json()
        if done(job):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def models_on_disk(folder: Path, store_url: str | None = None) -> list[str]:
    """The models stored, read from the folder or the database (a server may be down)."""
    if store_url is None:
        return sorted(p.stem for p in folder.glob("*.json"))
    with psycopg.connect(store_url) as conn:
        return sorted(row[0] for row in conn.execute("SELECT id FROM models"))


def env_of(store_url: str | None) -> dict[str, str]:
    return {"MODEL_STORE_URL": store_url or ""}


@pytest.mark.parametrize("store_url", STORES, indirect=True)
def test_workers_and_replicas_share_jobs_run_each_once_and_cancel_across(tmp_path, store_url):
    """Replica ``a`` has two workers, ``b`` one: three runners over one folder or database."""
    folder, env = tmp_path / "models", env_of(store_url)
    with (
        LiveServer(folder, args=["--workers", "2"], env=env) as a,
        LiveServer(folder, env=env) as b,
    ):
        # accepted by one, seen, watched and cancelled through the other
        slow = submit(a.url, slow_body(max_iter=100_000))
        running = wait_for(b.url, slow["id"], fitting)
        assert running["status"] == "running"
        r = httpx.post(f"{b.url}/jobs/{slow['id']}/cancel", timeout=WAIT)
        assert r.status_code in (200, 202), r.text
        with httpx.stream("GET", f"{b.url}/jobs/{slow['id']}/events", timeout=WAIT) as s:
            events = [orjson.loads(line[6:]) for line in s.iter_lines() if line.startswith("data")]
        assert events[-1]["status"] == "cancelled" and events[-1]["model_id"] is None
        assert models_on_disk(folder, store_url) == []

        # jobs sent to both: each runs once, on either, and each makes one model
        jobs = [
            submit(url, slow_body(max_iter=500, seed=i)) for i, url in enumerate([a.url, b.url] * 3)
        ]
        done = [wait_for(b.url if i % 2 else a.url, j["id"], ended) for i, j in enumerate(jobs)]
        assert [j["status"] for j in done] == ["succeeded"] * 6
        assert models_on_disk(folder, store_url) == sorted(j["model_id"] for j in done)
        listed = httpx.get(f"{a.url}/jobs?status=succeeded", timeout=WAIT).json()
        assert sorted(j["id"] for j in listed["items"]) == sorted(j["id"] for j in jobs)
        assert a.log().count("Started server process") >= 2  # really two workers


def test_kill_during_a_job_then_restart(tmp_path):
    """A running job's server dies: its child stops too, nothing is stored, and after the
    restart the job is failed ("interrupted by a restart") while the queued one runs. (On
    PostgreSQL the queue's workers retry it once: tests/api/test_training_workers.py.)"""
    folder = tmp_path / "models"
    with LiveServer(folder) as server:
        running = submit(server.url, slow_body(max_iter=100_000))
        queued = submit(server.url, slow_body(max_iter=500, seed=1))
        wait_for(server.url, running["id"], fitting)
        pool = children(server.proc.pid)
        assert pool
        server.kill()
        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in pool):  # the orphaned training child exits by itself
            assert time.monotonic() < deadline, [p for p in pool if alive(p)]
            time.sleep(0.05)
        assert models_on_disk(folder) == []

        server.start()
        failed = wait_for(server.url, running["id"], ended)
        assert failed["status"] == "failed", failed
        assert failed["error"]["status"] == 503
        assert "interrupted by a restart" in failed["error"]["detail"]
        assert failed["progress"]["iteration"] < 100_000 and failed["model_id"] is None
        ran = wait_for(server.url, queued["id"], ended)
        assert ran["status"] == "succeeded", ran
        assert models_on_disk(folder) == [ran["model_id"]]
        assert not list(folder.rglob(".tmp-*"))
        assert "Traceback" not in server.log()


def test_a_clean_stop_puts_a_running_job_back_in_the_queue(tmp_path):
    """SIGTERM: the server stops its training child, so nothing else runs the job; it is queued
    again, and runs again after the restart (cancelled here once it does)."""
    folder = tmp_path / "models"
    with LiveServer(folder) as server:
        job = submit(server.url, slow_body(max_iter=100_000))
        first = wait_for(server.url, job["id"], fitting)
        server.stop()  # SIGTERM: uvicorn's clean shutdown
        record = orjson.loads((folder / "jobs" / f"{job['id']}.json").read_bytes())
        assert record["status"] == "queued" and record["progress"] is None
        server.start()
        again = wait_for(server.url, job["id"], fitting)
        assert again["status"] == "running" and again["started_at"] > first["started_at"]
        assert httpx.post(f"{server.url}/jobs/{job['id']}/cancel", timeout=WAIT).status_code in (
            200,
            202,
        )
        assert wait_for(server.url, job["id"], ended)["status"] == "cancelled"
        assert models_on_disk(folder) == []
