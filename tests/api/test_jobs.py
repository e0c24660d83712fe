"""Training jobs (issue 14): ``POST /train`` with ``Prefer: respond-async``, ``/jobs``.

Trainings that take long enough to watch and cancel are made of data that needs many iterations
(gradient descent on nearly collinear columns, no penalty, a tolerance it never reaches), not of
sleeps. The app runs in-process with its event loop in a thread of its own (``LoopClient``), as
under uvicorn: its job runner works between the test's requests. Real servers (several workers,
``kill -9`` and a restart) are in ``test_jobs_live.py``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from app.config import Settings
from app.main import create_app
from app.prefer import preferences, prefers_async
from tests.conftest import STORES, store_url_for

#: Generous: only a job that never gets there fails the test.
WAIT = 120.0
ASYNC = {"Prefer": "respond-async"}


def slow_body(*, max_iter: int, n: int = 3000, seed: int = 0, **params: Any) -> dict:
    """A training that runs ``max_iter`` gradient-descent iterations (~0.1 ms each here)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 1))
    X = np.hstack([base + 1e-3 * rng.normal(size=(n, 1)) for _ in range(10)])
    y = (X[:, 0] - 0.5 * X[:, 1] + 0.3 * rng.normal(size=n) > 0).astype(int)
    params = {"solver": "gd", "max_iter": max_iter, "tol": 1e-10, "l2": 0, **params}
    return {"features": X.tolist(), "labels": y.tolist(), "params": params}


class LoopClient:
    """httpx over the ASGI app, whose event loop (and lifespan) runs in a thread of its own."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver", timeout=WAIT
        )
        self.lifespan = app.router.lifespan_context(app)
        self.call(self.lifespan.__aenter__())

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(WAIT)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.call(self.client.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def close(self) -> None:
        try:
            self.call(self.lifespan.__aexit__(None, None, None))
            self.call(self.client.aclose())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest) -> str | None:
    """Every test that stores anything runs on both stores: jobs in a folder or in PostgreSQL."""
    return store_url_for(request)


@pytest.fixture
def jobs_client(settings: Settings) -> Iterator[LoopClient]:
    c = LoopClient(create_app(settings))
    yield c
    c.close()


def submit(client: Any, body: dict, **headers: str) -> dict:
    r = client.post("/train", json=body, headers={**ASYNC, **headers})
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/jobs/{job['id']}"
    assert r.headers["preference-applied"] == "respond-async"
    assert job["status"] == "queued" and job["progress"] is None and job["model_id"] is None
    return job


def wait_for(client: Any, job_id: str, done: Any, *, seen: list | None = None) -> dict:
    """Poll the job until ``done(job)``; every job seen is appended to ``seen``."""
    deadline = time.monotonic() + WAIT
    while True:
        job = client.get(f"/jobs/{job_id}").json()
        if seen is not None:
            seen.append(job)
        if done(job):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.02)


def ended(job: dict) -> bool:
    return job["status"] in ("succeeded", "failed", "cancelled")


def fitting(job: dict) -> bool:
    p = job["progress"]
    return ended(job) or (p is not None and p["phase"] == "fitting" and p["iteration"] > 0)


# --- the Prefer header ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (["respond-async"], True),
        (["Respond-Async"], True),  # tokens are case-insensitive
        (["  respond-async  "], True),
        (["wait=10, respond-async"], True),
        (["handling=lenient", "RESPOND-ASYNC; foo=bar"], True),  # several headers, parameters
        (['return=minimal; x="a,b", respond-async'], True),
        (['foo="respond-async"'], False),  # a quoted value is not a preference
        (['foo="a, respond-async"'], False),  # nor the comma inside it
        (["respond-asynchronously"], False),
        (["return=representation"], False),
        ([""], False),
        ([",,;"], False),
        ([], False),
    ],
)
def test_prefer_header(headers, expected):
    assert prefers_async(headers) is expected


def test_prefer_values():
    assert preferences(['wait=10, return="minimal"; a=b', "wait=20"]) == {
        "wait": "10",  # the first of a repeated preference
        "return": "minimal",
    }


def test_other_preferences_train_as_today(client):
    body = slow_body(max_iter=50)
    r = client.post("/train", json=body, headers={"Prefer": "return=minimal, wait=5"})
    assert r.status_code == 201, r.text
    assert "preference-applied" not in r.headers


# --- jobs in one worker ---------------------------------------------------------------------


def test_a_job_reports_progress_and_succeeds_with_a_model(jobs_client):
    c = jobs_client
    job = submit(c, slow_body(max_iter=20_000), **{"X-Request-ID": "job-test-1"})
    seen: list[dict] = []
    job = wait_for(c, job["id"], ended, seen=seen)
    assert job["status"] == "succeeded", job
    assert job["error"] is None and job["finished_at"] >= job["started_at"] >= job["created_at"]
    iterations = [j["progress"]["iteration"] for j in seen if j["progress"]]
    assert iterations == sorted(iterations) and len(set(iterations)) > 1
    p = job["progress"]
    assert p["iteration"] == p["max_iter"] == 20_000 and p["rows_read"] == 3000
    assert p["loss"] > 0 and p["grad_norm"] > 0 and p["elapsed_s"] > 0
    model = c.get(f"/models/{job['model_id']}")
    assert model.status_code == 200 and model.json()["training"]["iterations"] == 20_000
    # the audit log names the model's maker: who sent the job (issue 13's audit)
    (stored,) = [e for e in c.get("/audit").json()["items"] if e["action"] == "model.stored"]
    assert stored["target"]["id"] == job["model_id"] and stored["request_id"] == "job-test-1"
    # listed, newest first, filtered by state
    listed = c.get("/jobs").json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == job["id"]
    assert c.get("/jobs?status=succeeded").json()["total"] == 1
    assert c.get("/jobs?status=queued").json() == {
        "items": [],
        "total": 0,
        "limit": 50,
        "offset": 0,
    }
    # an ended job cannot be cancelled
    r = c.post(f"/jobs/{job['id']}/cancel")
    assert r.status_code == 409 and "succeeded" in r.json()["detail"]
    assert c.get(f"/jobs/{job['id']}").json() == job


def test_cancel_stops_a_running_job_and_stores_nothing(jobs_client, settings):
    c = jobs_client
    job = submit(c, slow_body(max_iter=100_000))
    wait_for(c, job["id"], fitting)
    r = c.post(f"/jobs/{job['id']}/cancel")
    assert r.status_code in (200, 202), r.text
    job = wait_for(c, job["id"], ended)
    assert job["status"] == "cancelled" and job["model_id"] is None
    assert job["progress"]["iteration"] < 100_000
    assert c.get("/models").json()["total"] == 0
    assert list((settings.model_store_dir / "jobs" / "pending").glob("[0-9a-f]*")) == []
    assert c.app.state.jobs.store.pending() == []  # its body is gone, on either store
    assert c.post(f"/jobs/{job['id']}/cancel").status_code == 409
    # both cancels are in the audit log, the refused one as such
    cancels = [e for e in c.get("/audit").json()["items"] if e["action"] == "job.cancelled"]
    assert [(e["target"], e["outcome"].split(":")[0]) for e in cancels] == [
        ({"id": job["id"]}, "ok"),
        ({"id": job["id"]}, "refused"),
    ]


def test_queue_bound_and_cancelling_a_queued_job(settings):
    c = LoopClient(create_app(settings.model_copy(update={"max_queued_jobs": 1})))
    try:
        running = submit(c, slow_body(max_iter=100_000))
        wait_for(c, running["id"], lambda j: j["status"] != "queued")
        queued = submit(c, slow_body(max_iter=10))
        r = c.post("/train", json=slow_body(max_iter=10), headers=ASYNC)
        assert r.status_code == 429 and r.headers["retry-after"] == "5", r.text
        assert "MAX_QUEUED_JOBS" in r.json()["detail"]
        assert c.get("/jobs").json()["total"] == 2  # the refused one left nothing
        r = c.post(f"/jobs/{queued['id']}/cancel")  # nobody runs it: cancelled at once
        assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
        assert c.post(f"/jobs/{running['id']}/cancel").status_code in (200, 202)
        assert wait_for(c, running["id"], ended)["status"] == "cancelled"
        assert c.get("/models").json()["total"] == 0
    finally:
        c.close()


def test_the_event_stream_ends_with_the_final_state(jobs_client):
    c = jobs_client
    job = submit(c, slow_body(max_iter=5_000))
    # httpx's ASGI transport hands the body over once the stream has ended
    r = c.get(f"/jobs/{job['id']}/events")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = [e for e in r.text.split("\n\n") if e.strip()]
    parsed = []
    for event in events:
        fields = dict(line.split(": ", 1) for line in event.splitlines())
        parsed.append((fields["event"], orjson.loads(fields["data"])))
    names = [name for name, _ in parsed]
    assert names[-1] == "succeeded" and set(names[:-1]) <= {"queued", "running"}
    final = parsed[-1][1]
    assert final == c.get(f"/jobs/{job['id']}").json()
    assert c.get(f"/models/{final['model_id']}").status_code == 200
    # a finished job's stream is its final state alone
    again = c.get(f"/jobs/{job['id']}/events").text
    assert again.startswith("event: succeeded\n") and again.count("data: ") == 1


def test_a_bad_body_makes_a_failed_job_with_the_status_it_would_have_had(jobs_client, settings):
    c = jobs_client
    body = slow_body(max_iter=10)
    body["labels"] = body["labels"][:-1]
    job = wait_for(c, submit(c, body)["id"], ended)
    assert job["status"] == "failed" and job["error"]["status"] == 422, job
    assert "labels" in job["error"]["detail"]
    # what is refused before a job is made stays refused at once, and makes no job
    r = c.post("/train", content=b"a,b\n1,2\n", headers={**ASYNC, "Content-Type": "text/plain"})
    assert r.status_code == 415
    # a small body is decoded before the job is made: the same answer as without the header
    r = c.post("/train", content=b"\x00", headers={**ASYNC, "Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    r = c.post("/train", json={"features": [[1.0]], "labels": "x"}, headers=ASYNC)
    assert r.status_code == 422 and "labels" in r.text
    assert c.get("/jobs").json()["total"] == 1
    assert not list((settings.model_store_dir / "jobs" / "pending").glob(".tmp-*"))


def test_a_large_bad_body_is_decoded_by_the_job(settings):
    c = LoopClient(create_app(settings.model_copy(update={"train_inline_max_bytes": 0})))
    try:
        r = c.post("/train", content=b"\x00", headers={**ASYNC, "Content-Type": "application/json"})
        assert r.status_code == 202, r.text
        job = wait_for(c, r.json()["id"], ended)
        assert job["status"] == "failed" and job["error"]["status"] == 400, job
        assert "malformed JSON" in job["error"]["detail"]
    finally:
        c.close()


def test_records_of_jobs_ended_past_the_retention_are_deleted_and_their_models_kept(settings):
    # JOB_RETENTION_DAYS of ~86 ms: a record is old 0.2 s after its job ended
    c = LoopClient(create_app(settings.model_copy(update={"job_retention_days": 1e-6})))
    try:
        job = wait_for(c, submit(c, slow_body(max_iter=50))["id"], ended)
        assert job["status"] == "succeeded", job
        time.sleep(0.2)
        scheduler = c.app.state.job_scheduler
        keep = scheduler.service.settings
        scheduler.service.settings = keep.model_copy(update={"job_retention_days": 0.0})
        assert c.call(asyncio.to_thread(scheduler.remove_expired)) == 0  # 0: kept for ever
        scheduler.service.settings = keep
        running = submit(c, slow_body(max_iter=100_000))  # seconds: cancelled below
        wait_for(c, running["id"], fitting)
        assert c.call(asyncio.to_thread(scheduler.remove_expired)) == 1
        assert c.get(f"/jobs/{job['id']}").status_code == 404
        assert c.get(f"/models/{job['model_id']}").status_code == 200  # the model stays
        assert c.get(f"/jobs/{running['id']}").json()["status"] == "running"
        assert c.post(f"/jobs/{running['id']}/cancel").status_code in (200, 202)
        wait_for(c, running["id"], ended)
        time.sleep(0.2)
        assert c.call(asyncio.to_thread(scheduler.remove_expired)) == 1
        assert c.get("/jobs").json()["total"] == 0
    finally:
        c.close()


def test_unknown_jobs_are_404(jobs_client):
    c = jobs_client
    for bad in ("0" * 32, "nope", "0" * 31 + "G", "..%2Fmodels"):
        assert c.get(f"/jobs/{bad}").status_code == 404
        assert c.get(f"/jobs/{bad}/events").status_code == 404
        assert c.post(f"/jobs/{bad}/cancel").status_code == 404
    assert c.get("/jobs?status=nonsense").status_code == 422


def test_a_body_read_already_becomes_a_job(jobs_client):
    """The hook for trainings that must be jobs whatever the header (a large dataset's): the
    route, having read the body, hands it over as chunks."""
    from starlette.requests import Request

    from app.api.training import replay, train_as_job

    body = orjson.dumps(slow_body(max_iter=10))
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/train",
        "headers": [],
        "query_string": b"",
        "app": jobs_client.app,
        "client": ("127.0.0.1", 1),
    }

    async def make() -> Any:
        chunks = replay([body[:100], body[100:]])
        return await train_as_job(Request(scope), "application/json", [], chunks)

    response = jobs_client.call(make())
    assert response.status_code == 202
    job = wait_for(jobs_client, orjson.loads(response.body)["id"], ended)
    assert job["status"] == "succeeded", job


def test_a_training_from_a_dataset_over_train_sync_max_rows_is_always_a_job(settings):
    from tests.api.test_datasets import CSV, exam_csv

    c = LoopClient(create_app(settings.model_copy(update={"train_sync_max_rows": 50})))
    try:
        small, _, _ = exam_csv(n=50)
        large, _, _ = exam_csv(n=51, seed=1)
        ids = []
        for body in (small, large):
            r = c.post("/datasets", content=body, headers=CSV)
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        r = c.post("/train", json={"dataset": ids[0], "label": "result"})
        assert r.status_code == 201, r.text  # at the limit: answered with the model
        r = c.post("/train", json={"dataset": ids[1], "label": "result", "name": "big"})
        assert r.status_code == 202 and r.headers["location"].startswith("/jobs/"), r.text
        job = wait_for(c, r.json()["id"], ended)
        assert job["status"] == "succeeded", job
        assert c.get(f"/models/{job['model_id']}").json()["version"] == 1
        # what is wrong is still said at once, not by a failed job
        r = c.post("/train", json={"dataset": ids[1], "label": "nope"})
        assert r.status_code == 422, r.text
        r = c.post("/train", json={"dataset": "0" * 32, "label": "result"})
        assert r.status_code == 404, r.text
    finally:
        c.close()
