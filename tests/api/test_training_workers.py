"""Training workers on the PostgreSQL queue (``python -m app.worker``): real processes, a real
database. The API server only queues (``TRAIN_JOBS_IN_SERVER=false``); the workers run the jobs
each once, a cancel reaches the worker that runs the job, and a worker killed mid-job has its
job run again by another, once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.test_jobs import WAIT, ended, fitting, slow_body
from tests.api.test_jobs_live import submit, wait_for
from tests.live_server import LiveServer, WorkerProcess

pytestmark = pytest.mark.slow

#: Dead workers are found within this many seconds (their heartbeat stops).
STALLED = "2"


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str) -> Iterator[tuple[LiveServer, list[WorkerProcess]]]:
    """One API server that only queues, and two workers, on one database and one folder."""
    folder = tmp_path / "models"
    env = {"MODEL_STORE_URL": pg_url, "WORKER_STALLED_SECONDS": STALLED}
    api = LiveServer(folder, env={**env, "TRAIN_JOBS_IN_SERVER": "false"})
    workers = [WorkerProcess(folder, env=env, args=["--name", f"w{i}"]) for i in range(2)]
    with api:
        for w in workers:
            w.start()
        try:
            yield api, workers
        finally:
            for w in workers:
                w.stop()


def runner_pid(job: dict) -> int:
    return int(job["runner"].rsplit("/", 1)[1])


def test_the_worker_needs_the_postgresql_store(tmp_path, monkeypatch, capsys):
    from app.worker import main

    monkeypatch.delenv("MODEL_STORE_URL", raising=False)
    monkeypatch.setenv("MODEL_STORE_DIR", str(tmp_path / "models"))
    assert main([]) == 2
    assert "MODEL_STORE_URL=postgresql://" in capsys.readouterr().err


def test_workers_run_each_job_once_and_a_cancel_reaches_the_worker(cluster):
    api, workers = cluster
    pids = {w.pid for w in workers}
    jobs = [submit(api.url, slow_body(max_iter=300, seed=i, n=500)) for i in range(6)]
    done = [wait_for(api.url, j["id"], ended) for j in jobs]
    assert [j["status"] for j in done] == ["succeeded"] * 6, done
    assert {runner_pid(j) for j in done} <= pids
    assert all(j["attempts"] == 1 for j in done)
    models = {j["model_id"] for j in done}
    assert len(models) == 6
    listed = httpx.get(f"{api.url}/models?limit=100", timeout=WAIT).json()
    assert {m["id"] for m in listed["items"]} == models  # one model per job, none more

    slow = submit(api.url, slow_body(max_iter=100_000))
    running = wait_for(api.url, slow["id"], fitting)
    assert running["status"] == "running", running
    assert runner_pid(running) in pids
    r = httpx.post(f"{api.url}/jobs/{slow['id']}/cancel", timeout=WAIT)
    assert r.status_code in (200, 202), r.text
    final = wait_for(api.url, slow["id"], ended)
    assert final["status"] == "cancelled" and final["model_id"] is None
    assert httpx.get(f"{api.url}/models", timeout=WAIT).json()["total"] == 6


def test_a_worker_killed_mid_job_has_its_job_run_again_by_another_once(cluster):
    api, workers = cluster
    job = submit(api.url, slow_body(max_iter=4000, n=2000))
    running = wait_for(api.url, job["id"], fitting)
    victim = next(w for w in workers if w.pid == runner_pid(running))
    survivor = next(w for w in workers if w is not victim)
    victim.kill()
    final = wait_for(api.url, job["id"], ended)
    assert final["status"] == "succeeded", (final, survivor.log()[-2000:])
    assert final["attempts"] == 2
    assert runner_pid(final) == survivor.pid
    listed = httpx.get(f"{api.url}/models", timeout=WAIT).json()
    assert [m["id"] for m in listed["items"]] == [final["model_id"]]


def test_a_job_whose_second_worker_dies_too_fails_and_is_not_lost(cluster):
    api, workers = cluster
    job = submit(api.url, slow_body(max_iter=100_000))
    first = wait_for(api.url, job["id"], fitting)
    next(w for w in workers if w.pid == runner_pid(first)).kill()
    second = wait_for(api.url, job["id"], lambda j: fitting(j) and j.get("attempts") == 2)
    next(w for w in workers if w.pid == runner_pid(second)).kill()
    # no worker is left: the API server's own sweep is not running (it only queues); start one
    folder = api.model_dir
    with WorkerProcess(folder, env={"MODEL_STORE_URL": api.env["MODEL_STORE_URL"]}) as fresh:
        final = wait_for(api.url, job["id"], ended)
        assert final["status"] == "failed", (final, fresh.log()[-2000:])
        assert final["error"]["status"] == 503
        assert "interrupted" in final["error"]["detail"]
    assert httpx.get(f"{api.url}/models", timeout=WAIT).json()["total"] == 0


def test_a_server_on_postgresql_runs_queued_jobs_itself_by_default(tmp_path, pg_url):
    """No worker process: ``TRAIN_JOBS_IN_SERVER`` (true by default) makes each server worker a
    queue worker too, so one machine on PostgreSQL needs nothing more than the server."""
    with LiveServer(tmp_path / "models", env={"MODEL_STORE_URL": pg_url}) as api:
        job = submit(api.url, slow_body(max_iter=200, n=300))
        final = wait_for(api.url, job["id"], ended)
        assert final["status"] == "succeeded", (final, api.log()[-2000:])
        assert final["runner"].endswith(f"/{api.proc.pid}")
        model = httpx.get(f"{api.url}/models/{final['model_id']}", timeout=WAIT)
        assert model.status_code == 200
