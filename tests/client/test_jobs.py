"""Training jobs from the client: ``submit``, ``jobs``, ``job``, ``cancel`` and ``job.wait``
following the event stream, against a real server (and ``httpx.MockTransport`` for a stream
that drops and a service without jobs); the ``logreg`` job commands through subprocess.

Trainings are slow on purpose and without sleeps: gradient descent on 3,000 nearly collinear
rows (as tests/api/test_jobs.py's ``slow_body``), ``max_iter`` setting how long they run.
"""

from __future__ import annotations

import asyncio
import json
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from logreg_client import (
    AsyncClient,
    Client,
    Conflict,
    InvalidInput,
    Job,
    JobCancelled,
    JobState,
    JobTimeout,
    ModelDetail,
    NotFound,
    ServiceUnavailable,
)
from logreg_client._core import EventStream
from tests.client.test_cli import cells, logreg
from tests.client.test_retry import SUMMARY
from tests.live_server import LiveServer

SLOW = {"solver": "gd", "tol": 1e-10, "l2": 0}
#: Long enough to be cancelled while it runs (the service's limit is 100,000).
LONG = 100_000


def slow_data(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 1))
    X = np.hstack([base + 1e-3 * rng.normal(size=(n, 1)) for _ in range(10)])
    y = (X[:, 0] - 0.5 * X[:, 1] + 0.3 * rng.normal(size=n) > 0).astype(int)
    return X, y


X, Y = slow_data()


@pytest.fixture
def client(url: str) -> Iterator[Client]:
    with Client(url) as c:
        yield c


def test_submit_then_wait_follows_the_events_to_the_model(client: Client) -> None:
    job = client.submit(X, Y, name="slow", max_iter=1500, **SLOW)
    assert job.id is not None and job.status in ("queued", "running")
    seen: list[JobState] = []
    model = job.wait(progress=seen.append)
    assert isinstance(model, ModelDetail) and model.name == "slow"
    assert model.training.iterations == 1500 and model.id == job.model_id
    # the states as they came: iterations never go back, the last one is the end
    iterations = [s.progress.iteration for s in seen if s.progress is not None]
    assert iterations == sorted(iterations) and len(set(iterations)) > 1
    assert seen[-1].status == "succeeded" and seen[-1].progress is not None
    assert seen[-1].progress.iteration == seen[-1].progress.max_iter == 1500
    assert job.status == "succeeded" and job.state == seen[-1]

    again = client.job(job.id)  # a handle from the id: a finished job's wait answers at once
    assert again.state == seen[-1] and again.wait().id == model.id
    listed = client.jobs(status="succeeded", limit=1000)
    assert job.id in [j.id for j in listed.items] and listed.total >= 1
    assert job.id not in [j.id for j in client.jobs(status="running").items]
    with pytest.raises(Conflict, match="already ended"):  # nothing left to cancel
        client.cancel(job.id)


def test_a_failed_job_raises_what_train_raises(client: Client) -> None:
    too_many = {**SLOW, "max_iter": 200_000}  # past MAX_ITER: found when the job reads its body
    job = client.submit(X, Y, **too_many)
    with pytest.raises(InvalidInput) as from_job:
        job.wait()
    with pytest.raises(InvalidInput) as at_once:
        client.train(X, Y, **too_many)
    assert from_job.value.status == at_once.value.status == 422
    assert from_job.value.detail == at_once.value.detail and "max_iter" in at_once.value.detail
    assert job.status == "failed" and job.state is not None and job.state.error is not None
    # a small body is checked before any job is made: refused by submit itself
    with pytest.raises(InvalidInput, match="labels"):
        client.submit([[0.0], [1.0]], [0, 1, 1])
    with pytest.raises(NotFound):
        client.job("0" * 32)
    with pytest.raises(ValueError, match="status"):
        client.jobs(status="done")


def test_cancel_while_waiting_raises_job_cancelled(client: Client) -> None:
    job = client.submit(X, Y, max_iter=LONG, **SLOW)
    cancels: list[JobState] = []

    def cancel_once_fitting(state: JobState) -> None:
        if not cancels and state.progress is not None and state.progress.phase == "fitting":
            cancels.append(client.cancel(state.id))  # another request while the stream is open

    with pytest.raises(JobCancelled) as info:
        job.wait(progress=cancel_once_fitting)
    assert info.value.job_id == job.id and cancels[0].status in ("cancelled", "running")
    assert job.status == "cancelled" and job.model_id is None
    assert job.state is not None and job.state.progress is not None
    assert job.state.progress.iteration < LONG
    assert job.id in [j.id for j in client.jobs(status="cancelled").items]
    error = pickle.loads(pickle.dumps(info.value))
    assert isinstance(error, JobCancelled) and error.job_id == job.id


def test_wait_with_a_timeout_leaves_the_job_running(client: Client) -> None:
    job = client.submit(X, Y, max_iter=LONG, **SLOW)
    with pytest.raises(JobTimeout) as info:
        job.wait(timeout=0.2)
    assert isinstance(info.value, TimeoutError) and info.value.job_id == job.id
    error = pickle.loads(pickle.dumps(info.value))
    assert (error.job_id, error.timeout, str(error)) == (job.id, 0.2, str(info.value))
    assert job.refresh().status in ("queued", "running")
    assert job.cancel().status in ("cancelled", "running")
    with pytest.raises(JobCancelled):
        job.wait()


def test_async_client(url: str) -> None:
    async def scenario() -> None:
        async with AsyncClient(url) as client:
            job = await client.submit(X, Y, max_iter=1000, **SLOW)
            seen: list[JobState] = []
            model = await job.wait(progress=seen.append)
            assert model.training.iterations == 1000 and seen[-1].status == "succeeded"
            assert (await client.job(job.id or "")).status == "succeeded"
            assert job.id in [j.id for j in (await client.jobs(status="succeeded")).items]

            long = await client.submit(X, Y, max_iter=LONG, **SLOW)
            with pytest.raises(JobTimeout):
                await long.wait(timeout=0.2)
            assert (await client.cancel(long.id or "")).status in ("cancelled", "running")
            with pytest.raises(JobCancelled):
                await long.wait()

    asyncio.run(scenario())


def test_wait_reconnects_across_a_server_restart(server: LiveServer, client: Client) -> None:
    """The server is killed while a job runs and started again (same port, same folder):
    ``wait`` reconnects and ends with what the service made of the job (failed, 503,
    interrupted by a restart: the same ``ServiceUnavailable`` as a training whose process
    died under a synchronous ``train``)."""
    job = client.submit(X, Y, max_iter=LONG, **SLOW)
    restarted: list[JobState] = []

    def restart_once_fitting(state: JobState) -> None:
        if not restarted and state.progress is not None and state.progress.phase == "fitting":
            restarted.append(state)
            server.kill()
            server.start()

    with pytest.raises(ServiceUnavailable) as info:
        job.wait(progress=restart_once_fitting)
    assert restarted and info.value.status == 503 and "restart" in info.value.detail
    assert client.job(job.id or "").status == "failed"


# --- without a server: the stream's protocol, and what wait does when it drops -----------------


def test_event_stream_parsing() -> None:
    stream = EventStream()
    lines = [": keep-alive", "", "event: running", "id: 1", 'data: {"a":', "data:1}", ""]
    lines += ["data: x", "retry: 10", "unknown: y", "", "event: only a name", ""]
    events = [e for e in map(stream.feed, lines) if e is not None]
    assert [(e.event, e.data, e.id) for e in events] == [
        ("running", '{"a":\n1}', "1"),
        ("message", "x", "1"),  # the last id stays
    ]


def job_json(status: str, **extra: Any) -> dict[str, Any]:
    return {"id": "f" * 32, "status": status, "created_at": "2026-12-01T10:00:00Z", **extra}


def sse(*jobs: dict[str, Any]) -> bytes:
    return b"".join(f"event: {j['status']}\ndata: {json.dumps(j)}\n\n".encode() for j in jobs)


def test_a_stream_that_keeps_dropping_falls_back_to_polling() -> None:
    """A stream that ends before the final state is opened again; after a second drop (here:
    it cannot connect, a failed try, waited for with backoff) the job is polled instead."""
    model = {**SUMMARY, "params": {}, "parameters": {"multiclass": "ovr", "coef": [[1.0]]}}
    model["parameters"]["intercept"] = [0.0]
    answers = iter(
        [
            httpx.Response(200, content=sse(job_json("running"))),  # ends: opened again
            httpx.ConnectError("refused"),  # the second drop: polling from now on
            httpx.Response(200, json=job_json("running")),
            httpx.Response(200, json=job_json("succeeded", model_id="a" * 32)),
            httpx.Response(200, json=model),
        ]
    )
    sent: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    waits: list[float] = []
    transport = httpx.MockTransport(handle)
    with Client("http://svc", transport=transport, sleep=waits.append) as client:
        job = Job(client, JobState.from_json(job_json("queued")))
        seen: list[str] = []
        result = job.wait(progress=lambda s: seen.append(s.status))
    events, state = "/jobs/" + "f" * 32 + "/events", "/jobs/" + "f" * 32
    assert sent == [events, events, state, state, "/models/" + "a" * 32]
    assert result.id == "a" * 32 and seen == ["running", "succeeded"]
    assert waits == [0.5, 0.25, 0.5]


def test_a_service_without_jobs_trains_at_once() -> None:
    """RFC 7240: a server may ignore ``Prefer``; then ``submit`` has the model already."""
    transport = httpx.MockTransport(lambda request: httpx.Response(201, json=SUMMARY))
    with Client("http://svc", transport=transport, sleep=pytest.fail) as client:
        job = client.submit([[0.0], [1.0]], [0, 1])
        assert job.id is None and job.status == "succeeded" and job.model_id == SUMMARY["id"]
        assert job.wait().id == SUMMARY["id"]
        with pytest.raises(ValueError, match="no job"):
            job.cancel()


# --- the command line ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slow_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("jobs") / "slow.csv"
    header = ",".join(f"x{i}" for i in range(X.shape[1])) + ",label"
    rows = (
        ",".join(map(repr, row)) + f",{label}"
        for row, label in zip(X.tolist(), Y.tolist(), strict=True)
    )
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def slow_params(max_iter: int) -> list[str]:
    params = {**SLOW, "max_iter": max_iter}
    return [arg for k, v in params.items() for arg in ("--param", f"{k}={v}")]


def test_cli_jobs(url: str, slow_csv: Path) -> None:
    # without --wait: the job's id at once
    started = logreg("train", str(slow_csv), "--label", "label", *slow_params(1000), url=url)
    assert started.returncode == 0, started.stderr
    job_id = started.stdout.strip()
    assert len(job_id) == 32

    # `jobs --watch` shows the list until every job in it has ended
    watched = logreg("jobs", "--watch", "--interval", "0.2", url=url)
    assert watched.returncode == 0, watched.stderr
    last = [cells(line) for line in watched.stdout.strip().split("\n\n")[-1].splitlines()[1:]]
    assert [job_id, "succeeded"] in [row[:2] for row in last]
    assert {row[1] for row in last} <= {"succeeded", "failed", "cancelled"}

    shown = logreg("job", job_id, url=url)
    assert shown.returncode == 0 and "succeeded" in shown.stdout and "1000/1000" in shown.stdout
    model_id = json.loads(logreg("--json", "job", job_id, url=url).stdout)["model_id"]
    assert logreg("job", job_id, "--wait", url=url).stdout.strip() == model_id
    as_json = logreg("jobs", "--json", "--status", "succeeded", url=url)
    assert job_id in [j["id"] for j in json.loads(as_json.stdout)]

    # --wait: the model, as `logreg train` printed it before jobs
    waited = logreg("--json", "train", str(slow_csv), "--label", "label", "--name", "cli-job",
                    *slow_params(500), "--wait", url=url)  # fmt: skip
    assert waited.returncode == 0, waited.stderr
    model = json.loads(waited.stdout)
    assert model["name"] == "cli-job" and model["training"]["iterations"] == 500

    # refusals: a job that fails, a cancelled job, a cancel too late (exit 1, the message)
    failed = logreg("train", str(slow_csv), "--label", "label", *slow_params(200_000), "--wait",
                    url=url)  # fmt: skip
    assert failed.returncode == 1 and "422: params.max_iter" in failed.stderr
    long = logreg("train", str(slow_csv), "--label", "label", *slow_params(LONG), url=url)
    long_id = long.stdout.strip()
    cancelled = logreg("cancel", long_id, url=url)
    assert cancelled.returncode == 0 and long_id in cancelled.stdout
    gone = logreg("job", long_id, "--wait", url=url)
    assert gone.returncode == 1 and f"job {long_id} was cancelled" in gone.stderr
    late = logreg("cancel", job_id, url=url)
    assert late.returncode == 1 and "409" in late.stderr and "succeeded" in late.stderr
    assert logreg("jobs", "--status", "done", url=url).returncode == 2
