"""The job store: records, claims that exclude each other across processes, the queue bound."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from model_store import JobNotFound, JobQueueFull, JsonJobStore, new_model_id


def queued(job_id: str | None = None) -> dict:
    return {"id": job_id or new_model_id(), "status": "queued", "progress": None}


def add(store: JsonJobStore, *, max_queued: int = 10, body: bytes = b"{}") -> str:
    record = queued()
    pending = store.new_body()
    pending.write(body)
    store.create(record, pending, max_queued=max_queued, retry_after=5)
    return str(record["id"])


def test_create_get_list(tmp_path):
    store = JsonJobStore(tmp_path / "jobs")
    first, second = add(store, body=b"one"), add(store, body=b"two")
    assert store.get(first)["status"] == "queued"
    assert store.read_body(second) == b"two"
    page, total = store.list(limit=10)
    assert [r["id"] for r in page] == [second, first] and total == 2  # newest first
    assert store.pending() == [first, second]  # oldest first
    assert store.list(status="running") == ([], 0)
    with pytest.raises(JobNotFound):
        store.get("../etc/passwd")
    with pytest.raises(JobNotFound):
        store.get(new_model_id())
    # no temporary body is left behind
    assert sorted(os.listdir(store.pending_dir)) == sorted(
        [".queue"] + [f"{i}{s}" for i in (first, second) for s in (".lock", ".body")]
    )


def test_queue_bound_refuses_and_keeps_nothing(tmp_path):
    store = JsonJobStore(tmp_path / "jobs")
    add(store, max_queued=1)
    with pytest.raises(JobQueueFull) as info:
        add(store, max_queued=1)
    assert info.value.retry_after == 5
    assert len(store.list()[0]) == 1
    assert not [n for n in os.listdir(store.pending_dir) if n.startswith(".tmp-")]


def test_claim_is_exclusive_and_finish_ends_the_job(tmp_path):
    store = JsonJobStore(tmp_path / "jobs")
    job_id = add(store)
    claim = store.claim(job_id)
    assert claim is not None and claim.record["status"] == "queued"
    assert store.claim(job_id) is None  # another open file description: refused
    claim.finish({**claim.record, "status": "succeeded"})
    assert store.claim(job_id) is None  # ended: never claimed again
    assert store.pending() == [] and store.get(job_id)["status"] == "succeeded"
    with pytest.raises(JobNotFound):
        store.read_body(job_id)


def _hold_and_die(root: str, job_id: str, ready: multiprocessing.synchronize.Event) -> None:
    claim = JsonJobStore(root).claim(job_id)
    assert claim is not None
    ready.set()
    os._exit(0)  # no release: the kernel drops the lock as the process ends


def test_a_dead_holders_lock_is_free(tmp_path):
    store = JsonJobStore(tmp_path / "jobs")
    job_id = add(store)
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    child = ctx.Process(target=_hold_and_die, args=(store.root, job_id, ready))
    child.start()
    child.join(30)
    assert ready.is_set()
    claim = store.claim(job_id)
    assert claim is not None
    claim.release()


def test_cancel_marker(tmp_path):
    store = JsonJobStore(tmp_path / "jobs")
    job_id = add(store)
    assert not store.cancel_requested(job_id)
    store.request_cancel(job_id)
    assert store.cancel_requested(job_id)


def _runner(root: str, log: str, start: multiprocessing.synchronize.Event) -> None:
    """Run queued jobs as a server's scheduler does, until none is left; log each one run."""
    store = JsonJobStore(root)
    start.wait()
    while pending := store.pending():
        for job_id in pending:
            claim = store.claim(job_id)
            if claim is None:
                continue
            if claim.record["status"] != "queued":
                claim.release()
                continue
            claim.save({**claim.record, "status": "running"})
            with open(log, "a") as fh:  # O_APPEND: whole lines, whoever writes
                fh.write(f"{job_id}\n")
            claim.finish({**claim.record, "status": "succeeded"})


def test_many_runners_run_each_queued_job_once(tmp_path):
    store = JsonJobStore(tmp_path / "jobs")
    ids = [add(store, max_queued=100) for _ in range(60)]
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    log = tmp_path / "ran.log"
    runners = [ctx.Process(target=_runner, args=(store.root, str(log), start)) for _ in range(4)]
    for p in runners:
        p.start()
    start.set()
    for p in runners:
        p.join(60)
        assert p.exitcode == 0
    assert sorted(log.read_text().split()) == sorted(ids)  # each once, none missed
    assert {r["status"] for r in store.list(limit=100)[0]} == {"succeeded"}
