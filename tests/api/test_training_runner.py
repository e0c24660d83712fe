"""Training off the event loop: child processes, a bounded number at a time, same answers."""

from __future__ import annotations

import asyncio
import os
import time

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from tests.asgi_client import ASGIClient
from tests.conftest import make_blobs


@pytest.fixture(scope="module")
def child_client(tmp_path_factory):
    """Every training in a spawned child process (TRAIN_INLINE_MAX_BYTES=0); one pool for all."""
    folder = tmp_path_factory.mktemp("child") / "m"
    app = create_app(Settings(model_store_dir=folder, train_inline_max_bytes=0))
    client = ASGIClient(app)
    yield client, app
    app.state.trainer.shutdown()
    client.close()


def test_training_in_a_child_process_gives_the_same_model(child_client, client):
    c, app = child_client
    X, y = make_blobs(n=300, d=4)
    body = {"features": X.tolist(), "labels": y.tolist(), "name": "child"}
    a = c.post("/train", json=body)
    b = client.post("/train", json=body)  # in a thread of the same process
    assert a.status_code == b.status_code == 201, a.text
    assert a.headers["location"] == f"/models/{a.json()['id']}"
    assert a.json()["training"] == b.json()["training"] | {
        "seconds": a.json()["training"]["seconds"]
    }
    assert app.state.trainer.children.processes  # it did use the pool
    p = c.post("/predict", json={"model_id": a.json()["id"], "features": X[:4].tolist()})
    assert p.status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"features": [[1.0], [2.0]], "labels": [0, 0]}, 422, "two distinct classes"),
        ({"features": [[1.0], [2.0, 1.0]], "labels": [0, 1]}, 422, "features[1]"),
        (
            {"features": [[1.0], [2.0]], "labels": [0, 1], "params": {"max_iter": 10**9}},
            422,
            "params.max_iter",
        ),
        ({"features": [[1.0, True]], "labels": [0]}, 422, "features[0][1]"),
    ],
)
def test_errors_from_the_child_keep_their_status_and_message(child_client, body, status, needle):
    c, _ = child_client
    r = c.post("/train", json=body)
    assert r.status_code == status and needle in r.json()["detail"], r.text
    bad = c.post("/train", content=b"{oops", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and "malformed JSON" in bad.json()["detail"]


def test_limits_apply_in_the_child(tmp_path):
    app = create_app(Settings(model_store_dir=tmp_path / "m", train_inline_max_bytes=0, max_rows=3))
    c = ASGIClient(app)
    r = c.post("/train", json={"features": [[0.0]] * 4, "labels": [0, 1, 0, 1]})
    assert r.status_code == 413 and "rows" in r.json()["detail"]
    app.state.trainer.shutdown()
    c.close()


def test_past_train_concurrency_answers_429_with_retry_after(client):
    trainer = client._client._transport.app.state.trainer
    trainer.acquire()  # the only slot is taken by a training in progress
    try:
        r = client.post("/train", json={"features": [[0.0], [1.0]], "labels": [0, 1]})
        assert r.status_code == 429
        assert r.headers["retry-after"] == "5"
        assert "TRAIN_CONCURRENCY" in r.json()["detail"]
    finally:
        trainer.release()
    assert (
        client.post("/train", json={"features": [[0.0], [1.0]], "labels": [0, 1]}).status_code
        == 201
    )


def test_predictions_flow_while_a_training_runs(tmp_path):
    """A training that runs 3 s (its time budget); the event loop keeps serving predictions."""
    app = create_app(
        Settings(model_store_dir=tmp_path / "m", train_inline_max_bytes=0, train_time_budget=3)
    )
    X, y = make_blobs(n=40_000, d=20, spread=3.0)

    async def scenario() -> tuple[bool, int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            small = await c.post(
                "/train", json={"features": X[:50].tolist(), "labels": y[:50].tolist()}
            )
            mid = small.json()["id"]
            long = asyncio.create_task(
                c.post(
                    "/train",
                    json={
                        "features": X.tolist(),
                        "labels": y.tolist(),
                        "params": {"max_iter": 3000, "tol": 0.0},
                    },
                )
            )
            await asyncio.sleep(0.3)
            assert app.state.trainer.running == 1
            for _ in range(50):
                r = await c.post("/predict", json={"model_id": mid, "features": X[:2].tolist()})
                assert r.status_code == 200
            busy = await c.post("/train", json={"features": [[0.0], [1.0]], "labels": [0, 1]})
            still_training = not long.done()
            r = await long
            assert r.status_code == 201, r.text
            assert r.json()["training"]["converged"] is False  # it ran to its time budget
            return still_training, busy.status_code

    try:
        still_training, busy_status = asyncio.run(scenario())
    finally:
        app.state.trainer.shutdown()
    assert still_training  # 50 predictions answered while the fit was running
    assert busy_status == 429  # and a second training was refused, not queued


def _child_state() -> tuple[int, int | None, str | None]:
    policy = os.sched_getscheduler(0) if hasattr(os, "sched_getscheduler") else None
    return os.nice(0), policy, os.environ.get("OPENBLAS_NUM_THREADS")


def test_training_children_run_at_the_lowest_priority_with_one_blas_thread():
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    from app.training.job import CHILD_NICENESS, init_child

    with ProcessPoolExecutor(
        1, mp_context=multiprocessing.get_context("spawn"), initializer=init_child
    ) as pool:
        niceness, policy, blas = pool.submit(_child_state).result(timeout=60)
    assert niceness == min(19, os.nice(0) + CHILD_NICENESS) == 19
    if hasattr(os, "SCHED_IDLE"):  # Linux
        assert policy == os.SCHED_IDLE
    assert blas == "1"


def _leave_priority_alone(*args) -> None:
    """A training child's initializer that does not lower the child's priority."""


def _report_policy(settings, content_type, body, query, actor=None) -> int:
    """Stands in for ``train_from_body``: the scheduling policy the child runs the job under."""
    return os.sched_getscheduler(0)


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux scheduling policies")
def test_the_runner_lowers_a_new_child_s_priority_before_the_child_does(monkeypatch, tmp_path):
    """A new child runs Python's start-up and its imports before its initializer: the worker
    lowers the child's priority itself, as soon as it has spawned it."""
    from app.training import runner as training

    assert os.sched_getscheduler(0) != os.SCHED_IDLE  # so the child cannot inherit it
    monkeypatch.setattr(training, "init_child", _leave_priority_alone)
    monkeypatch.setattr(training, "train_from_body", _report_policy)
    runner = training.TrainRunner(Settings(model_store_dir=tmp_path))
    try:
        policy = asyncio.run(runner.run("application/json", [], "spill-path"))
    finally:
        runner.shutdown()
    assert policy == os.SCHED_IDLE


def _die(settings, content_type, body, query, actor=None) -> None:
    """Stands in for ``train_from_body``: the child is killed before it answers."""
    os._exit(1)


def test_a_killed_training_child_is_a_503_and_leaves_nothing_behind(monkeypatch, tmp_path):
    """As when the kernel kills a child for memory: a clear 503 (not a 500), no spilled body
    left, nothing stored, and the next training gets a new child."""
    import tempfile

    from app.training import runner as training

    spills = tmp_path / "spills"
    spills.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spills))
    app = create_app(Settings(model_store_dir=tmp_path / "m", train_inline_max_bytes=0))
    c = ASGIClient(app)
    X, y = make_blobs(n=50, d=3)
    body = {"features": X.tolist(), "labels": y.tolist()}
    try:
        monkeypatch.setattr(training, "train_from_body", _die)
        r = c.post("/train", json=body)
        assert r.status_code == 503, r.text
        assert "stopped before it finished" in r.json()["detail"]
        assert list(spills.iterdir()) == []
        assert c.get("/models").json()["total"] == 0
        monkeypatch.undo()
        monkeypatch.setattr(tempfile, "tempdir", str(spills))
        assert c.post("/train", json=body).status_code == 201
        assert list(spills.iterdir()) == []
    finally:
        app.state.trainer.shutdown()
        c.close()


def test_the_spilled_body_is_deleted_whatever_the_outcome(child_client, monkeypatch, tmp_path):
    """A 201, a 422 and a 400 from the child: no spilled body is left in the temp folder."""
    import tempfile

    c, _ = child_client
    spills = tmp_path / "spills"
    spills.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spills))  # where mkstemp puts the spilled body
    X, y = make_blobs(n=50, d=3)
    ok = c.post("/train", json={"features": X.tolist(), "labels": y.tolist()})
    assert ok.status_code == 201, ok.text
    assert list(spills.iterdir()) == []
    bad = c.post("/train", json={"features": X.tolist(), "labels": [0] * len(X)})
    assert bad.status_code == 422, bad.text
    assert list(spills.iterdir()) == []
    malformed = c.post("/train", content=b"{oops", headers={"content-type": "application/json"})
    assert malformed.status_code == 400
    assert list(spills.iterdir()) == []


def test_the_child_deletes_the_spilled_body_once_read(tmp_path):
    """Freeing a big file's pages costs a core tens of ms: the child does it, at its priority."""
    from app.training.job import train_from_body

    (tmp_path / "m").mkdir()
    spill = tmp_path / "train-body-x"
    spill.write_bytes(b'{"features": [[0.0], [1.0]], "labels": [0, 1]}')
    summary = train_from_body(
        Settings(model_store_dir=tmp_path / "m"), "application/json", str(spill)
    )
    assert summary.n_features == 1
    assert not spill.exists()


def _sleep(settings, content_type, body, query, actor=None) -> None:
    """Stands in for ``train_from_body``: a fit that would run for a minute."""
    import time

    time.sleep(60)


def test_shutdown_stops_a_running_training_child(monkeypatch, tmp_path):
    """A server shutting down does not wait for a fit: its child is terminated."""
    import multiprocessing
    import time

    from app.training import runner as training

    monkeypatch.setattr(training, "train_from_body", _sleep)
    runner = training.TrainRunner(Settings(model_store_dir=tmp_path))

    others = set(multiprocessing.active_children())  # other tests' pools: left alone

    async def scenario() -> set[multiprocessing.Process]:
        job = asyncio.ensure_future(runner.run("application/json", [], "spill-path"))
        deadline = time.monotonic() + 60
        while not (children := set(multiprocessing.active_children()) - others):
            assert time.monotonic() < deadline, "no training child started"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # the child is in the job now
        runner.shutdown()
        job.cancel()
        return children

    children = asyncio.run(scenario())
    for child in children:
        child.join(timeout=10)
        assert not child.is_alive()
    assert all(other.is_alive() for other in others)


def test_a_child_s_domain_error_arrives_as_itself(tmp_path):
    """Errors cross the process boundary as the exceptions the job raised, attributes too."""
    from app.errors import InvalidRequest
    from app.training.runner import TrainRunner

    (tmp_path / "m").mkdir()
    runner = TrainRunner(Settings(model_store_dir=tmp_path / "m"))
    spill = tmp_path / "train-body-x"
    spill.write_bytes(b'{"features": [[0.0], ["a"]], "labels": [0, 1], "x": 1}')
    try:
        with pytest.raises(InvalidRequest) as caught:
            asyncio.run(runner.run("application/json", [], str(spill)))
    finally:
        runner.shutdown()
    assert type(caught.value) is InvalidRequest
    assert caught.value.errors == [
        {"field": "features[1][0]", "message": "Input should be a valid number"},
        {"field": "x", "message": "Extra inputs are not permitted"},
    ]
    assert caught.value.total == 2


def test_a_server_stopping_leaves_no_semaphores_or_children_behind(tmp_path):
    """Issue 12, item 20: stopping the server printed "resource_tracker: There appear to be 5
    leaked semaphore objects". Both pools (trainings, large predict bodies) are shut down whole."""
    import httpx

    from tests.live_server import LiveServer

    X, y = make_blobs(n=60, d=3)
    big = b'{"model_id": "latest", "features": [' + b",".join([b'["x"]'] * 400_000) + b"]}"
    with LiveServer(tmp_path / "models", env={"TRAIN_INLINE_MAX_BYTES": "0"}) as server:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            body = {"features": X.tolist(), "labels": y.tolist()}
            assert c.post("/train", json=body).status_code == 201  # the training pool
            r = c.post("/predict", content=big, headers={"content-type": "application/json"})
            assert r.status_code == 422  # decoded in the other pool's child
        pid = server.proc.pid
        children = [int(p) for p in _children_of(pid)]
        assert len(children) >= 2  # one child of each pool (and the resource tracker)
    log = server.log()
    assert "leaked semaphore" not in log and "Traceback" not in log, log[-2000:]
    deadline = time.monotonic() + 10  # the resource tracker leaves when its pipe closes
    while any(_alive(child) for child in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [child for child in children if _alive(child)]


def _children_of(pid: int) -> list[str]:
    import pathlib

    path = pathlib.Path(f"/proc/{pid}/task/{pid}/children")
    return path.read_text().split() if path.exists() else []


def _alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped has ended)."""
    import pathlib

    try:
        status = pathlib.Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status
