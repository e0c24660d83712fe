"""The job store: records, claims that exclude each other across processes, the queue bound;
against both stores (``jobs``: the folder's ``JsonJobStore``, PostgreSQL's ``PgJobStore``),
one contract. What only one store has is at the end."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from model_store import (
    DatabaseUnavailable,
    JobNotFound,
    JobQueueFull,
    JobStore,
    JsonJobStore,
    new_model_id,
    postgres_jobs,
)
from model_store.postgres import CHANNEL, PostgresStore
from model_store.postgres_jobs import PgJobStore
from tests.conftest import STORES

#: Generous: only a process that never gets there fails a test.
WAIT = 30.0

#: Where a store is, so that another process can open it: ("folder", path) or ("postgres", url).
Where = tuple[str, str]


def open_jobs(where: Where) -> JobStore:
    kind, location = where
    if kind == "folder":
        return JsonJobStore(location)
    return PgJobStore(PostgresStore(location, create=False))


def close_jobs(store: JobStore) -> None:
    store.close()
    if isinstance(store, PgJobStore):
        store.db.close()


@pytest.fixture(params=STORES)
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Where:
    if request.param == "folder":
        return ("folder", str(tmp_path / "jobs"))
    url = request.getfixturevalue("pg_url")
    PostgresStore(url).close()  # migrated, as a server does at start
    return ("postgres", url)


@pytest.fixture
def store(where: Where) -> Iterator[JobStore]:
    opened = open_jobs(where)
    yield opened
    close_jobs(opened)


def queued(job_id: str | None = None, **extra: object) -> dict:
    return {"id": job_id or new_model_id(), "status": "queued", "progress": None, **extra}


def add(store: JobStore, *, max_queued: int = 10, body: bytes = b"{}", **extra: object) -> str:
    record = queued(**extra)
    pending = store.new_body()
    pending.write(body)
    store.create(record, pending, max_queued=max_queued, retry_after=5)
    return str(record["id"])


def test_create_get_list(store):
    first = add(store, body=b"one", actor={"name": "Zo\u00eb \u2603"})  # not ASCII: kept as is
    second = add(store, body=b"two")
    assert store.get(first) == queued(first, actor={"name": "Zo\u00eb \u2603"})
    assert store.read_body(second) == b"two"
    page, total = store.list(limit=10)
    assert [r["id"] for r in page] == [second, first] and total == 2  # newest first
    assert store.list(limit=1, offset=1) == ([store.get(first)], 2)
    assert store.pending() == [first, second]  # oldest first
    assert store.list(status="running") == ([], 0)
    assert store.list(status="queued")[1] == 2
    for bad in ("../etc/passwd", "x'; DROP TABLE jobs; --", new_model_id()):
        with pytest.raises(JobNotFound):
            store.get(bad)
        with pytest.raises(JobNotFound):
            store.fingerprint(bad)


def test_a_large_body_of_any_bytes_comes_back_whole(store, monkeypatch):
    monkeypatch.setattr(postgres_jobs, "READ_SLICE", 1 << 20)  # read back in several slices
    body = os.urandom(3 << 20) + b"\x00\xff\\\n"  # not text, over several writes of the copy
    pending = store.new_body()
    for i in range(0, len(body), 65536):
        pending.write(body[i : i + 65536])
    record = queued()
    store.create(record, pending, max_queued=10, retry_after=5)
    assert store.read_body(record["id"]) == body


def test_queue_bound_refuses_and_keeps_nothing(store):
    add(store, max_queued=1)
    with pytest.raises(JobQueueFull) as info:
        add(store, max_queued=1)
    assert info.value.retry_after == 5 and info.value.queued == 1
    assert len(store.list()[0]) == 1 and len(store.pending()) == 1


def test_the_queue_bound_holds_under_concurrent_creates(store):
    """Eight creations at once against a bound of three: exactly three are kept."""
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def create() -> None:
        record, pending = queued(), store.new_body()
        pending.write(b"x" * 1000)
        barrier.wait()
        try:
            store.create(record, pending, max_queued=3, retry_after=5)
            outcomes.append("kept")
        except JobQueueFull:
            outcomes.append("full")

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["full"] * 5 + ["kept"] * 3
    assert store.list()[1] == 3 and len(store.pending()) == 3


def test_claim_is_exclusive_and_finish_ends_the_job(store, where):
    job_id = add(store, body=b"the request")
    other = open_jobs(where)  # another process's view: another connection, another file
    try:
        claim = store.claim(job_id)
        assert claim is not None and claim.record["status"] == "queued"
        assert store.claim(job_id) is None and other.claim(job_id) is None  # held: refused
        claim.save({**claim.record, "status": "running"})
        assert other.get(job_id)["status"] == "running"
        assert other.pending() == [job_id]
        claim.finish({**claim.record, "status": "succeeded", "model_id": "m"})
        claim.release()  # a no-op after finish, as the scheduler calls it
        assert other.claim(job_id) is None  # ended: never claimed again
        assert other.pending() == [] and other.get(job_id)["status"] == "succeeded"
        assert other.list(status="succeeded")[1] == 1 and other.list(status="running")[1] == 0
        with pytest.raises(JobNotFound):
            other.read_body(job_id)  # the body went with the end; the record stays
        assert other.get(job_id)["model_id"] == "m"
    finally:
        close_jobs(other)


def test_count_queued_counts_only_jobs_waiting_to_run(store):
    ids = [add(store) for _ in range(3)]
    assert store.count_queued() == 3
    claim = store.claim(ids[0])
    assert claim is not None
    claim.save({**claim.record, "status": "running"})
    assert store.count_queued() == 2
    claim.finish({**claim.record, "status": "succeeded"})
    claim = store.claim(ids[1])
    assert claim is not None
    claim.finish({**claim.record, "status": "cancelled"})
    assert store.count_queued() == 1


def test_remove_ended_deletes_only_jobs_that_ended_before_the_time(store, where):
    def ended(status: str, finished_at: str) -> str:
        job_id = add(store)
        claim = store.claim(job_id)
        assert claim is not None
        claim.finish({**claim.record, "status": status, "finished_at": finished_at})
        return job_id

    old = [ended(s, "2026-01-01T00:00:00+00:00") for s in ("succeeded", "failed", "cancelled")]
    recent = ended("succeeded", "2026-06-01T00:00:00.5+00:00")
    waiting = add(store, finished_at="2025-01-01T00:00:00+00:00")  # queued: never removed
    running = add(store)
    claim = store.claim(running)
    assert claim is not None
    claim.save({**claim.record, "status": "running"})
    other = open_jobs(where)  # another process's sweep finds nothing left to remove
    try:
        assert store.remove_ended("2026-03-01T00:00:00+00:00") == 3
        assert other.remove_ended("2026-03-01T00:00:00+00:00") == 0
    finally:
        close_jobs(other)
    for job_id in old:
        with pytest.raises(JobNotFound):
            store.get(job_id)
    assert store.get(recent)["status"] == "succeeded"
    assert store.get(waiting)["status"] == "queued" and store.get(running)["status"] == "running"
    assert store.list()[1] == 3 and store.count_queued() == 1
    claim.release()


def test_a_released_claim_can_be_taken_again(store):
    job_id = add(store)
    claim = store.claim(job_id)
    assert claim is not None
    claim.release()
    again = store.claim(job_id)
    assert again is not None and again.record["status"] == "queued"
    again.release()


def test_progress_updates_change_the_fingerprint(store, where):
    job_id = add(store)
    claim = store.claim(job_id)
    assert claim is not None
    claim.save({**claim.record, "status": "running"})
    before = store.fingerprint(job_id)
    child = open_jobs(where)  # the training child's own store
    try:
        child.update({**claim.record, "progress": {"iteration": 3}})
        assert store.get(job_id)["progress"] == {"iteration": 3}
        assert store.fingerprint(job_id) != before
    finally:
        close_jobs(child)
        claim.release()


def test_cancel_is_seen_by_another_process(store, where):
    job_id = add(store)
    other = open_jobs(where)
    try:
        assert not other.cancel_requested(job_id)
        store.request_cancel(job_id)
        assert other.cancel_requested(job_id) and store.cancel_requested(job_id)
        assert not other.cancel_requested(add(store))  # another job's is its own
    finally:
        close_jobs(other)


def _hold_until_killed(where: Where, job_id: str, ready: multiprocessing.synchronize.Event) -> None:
    store = open_jobs(where)
    claim = store.claim(job_id)
    assert claim is not None
    ready.set()
    time.sleep(WAIT * 4)  # killed by the test long before


def test_a_claim_is_held_while_its_holder_lives_and_freed_when_it_is_killed(store, where):
    job_id = add(store)
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    child = ctx.Process(target=_hold_until_killed, args=(where, job_id, ready), daemon=True)
    child.start()
    try:
        assert ready.wait(WAIT)
        assert store.claim(job_id) is None  # another process holds it
        assert store.pending() == [job_id]
    finally:
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join(WAIT)
    # the kernel closes a killed process's files and sockets; the database then ends its
    # session, which lets its lock go (a moment after the process is gone)
    deadline = time.monotonic() + WAIT
    while (claim := store.claim(job_id)) is None:
        assert time.monotonic() < deadline, "the dead holder's claim was never freed"
        time.sleep(0.01)
    assert claim.record["status"] == "queued"
    claim.release()


def _runner(where: Where, log: str, start: multiprocessing.synchronize.Event) -> None:
    """Run queued jobs as a server's scheduler does, until none is left; log each one run."""
    store = open_jobs(where)
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
    close_jobs(store)


def test_many_runners_run_each_queued_job_once(store, where, tmp_path):
    ids = [add(store, max_queued=100) for _ in range(30)]
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    log = tmp_path / "ran.log"
    runners = [ctx.Process(target=_runner, args=(where, str(log), start)) for _ in range(4)]
    for p in runners:
        p.start()
    start.set()
    for p in runners:
        p.join(60)
        assert p.exitcode == 0
    assert sorted(log.read_text().split()) == sorted(ids)  # each once, none missed
    assert {r["status"] for r in store.list(limit=100)[0]} == {"succeeded"}


def test_records_survive_the_store(store, where):
    job_id = add(store, body=b"kept")
    close_jobs(store)
    reopened = open_jobs(where)
    try:
        assert reopened.get(job_id)["status"] == "queued"
        assert reopened.read_body(job_id) == b"kept" and reopened.pending() == [job_id]
    finally:
        close_jobs(reopened)


# --- the folder store only ----------------------------------------------------------------------


def test_the_folder_store_leaves_no_temporary_body(tmp_path):
    store = JsonJobStore(tmp_path / "jobs")
    first, second = add(store), add(store)
    with pytest.raises(JobQueueFull):
        add(store, max_queued=2)
    assert sorted(os.listdir(store.pending_dir)) == sorted(
        [".queue"] + [f"{i}{s}" for i in (first, second) for s in (".lock", ".body")]
    )


# --- PostgreSQL only ------------------------------------------------------------------------------


@pytest.fixture
def pg_jobs(pg_url: str) -> Iterator[PgJobStore]:
    jobs = PgJobStore(PostgresStore(pg_url))
    yield jobs
    close_jobs(jobs)


def test_pg_a_claim_whose_connection_died_cannot_write(pg_jobs, pg_url):
    job_id = add(pg_jobs)
    claim = pg_jobs.claim(job_id)
    assert claim is not None
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'logreg-job-claim'"
        )
    with pytest.raises(DatabaseUnavailable, match="claim was lost"):
        claim.save({**claim.record, "status": "running"})
    with pytest.raises(DatabaseUnavailable, match="let go"):
        claim.finish({**claim.record, "status": "succeeded"})
    assert pg_jobs.get(job_id)["status"] == "queued"  # nothing written
    deadline = time.monotonic() + WAIT
    while (again := pg_jobs.claim(job_id)) is None:  # the lock went with the session
        assert time.monotonic() < deadline
        time.sleep(0.01)
    again.release()


def test_pg_rows_after_finish_and_a_late_progress_report(pg_jobs, pg_url):
    job_id = add(pg_jobs, body=b"x" * 1000)
    claim = pg_jobs.claim(job_id)
    assert claim is not None
    pg_jobs.request_cancel(job_id)
    claim.finish({**claim.record, "status": "cancelled"})
    # a report from a training still winding down never overwrites the final record
    pg_jobs.update({**claim.record, "status": "running", "progress": {"iteration": 9}})
    assert pg_jobs.get(job_id)["status"] == "cancelled"
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            "SELECT status, body IS NULL, cancel FROM jobs WHERE id = %s", (job_id,)
        ).fetchone()
    assert row == ("cancelled", True, False)


def test_pg_a_cancel_is_announced_to_listeners(pg_jobs, pg_url):
    job_id = add(pg_jobs)
    with psycopg.connect(pg_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")
        pg_jobs.request_cancel(job_id)
        pg_jobs.request_cancel(job_id)  # once is enough: no second notification
        got = [n.payload for n in listener.notifies(timeout=0.5, stop_after=2)]
    assert got == [f"job:{job_id}"]


def test_pg_cancel_checks_survive_a_lost_connection(pg_jobs, pg_url):
    """The kept connection of a training's checks: lost, it says "no cancel" (a blip must not
    fail a long training) and reconnects."""
    job_id = add(pg_jobs)
    pg_jobs.request_cancel(job_id)
    assert pg_jobs.cancel_requested(job_id)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'logreg-job-progress'"
        )
    assert not pg_jobs.cancel_requested(job_id)  # lost: not known
    pg_jobs._kept_retry = 0.0  # (the retry waits RETRY_SECONDS)
    assert pg_jobs.cancel_requested(job_id)


def test_pg_a_cancels_notification_leaves_the_caches_alone(pg_jobs):
    """The caches' listeners hear ``job:<id>`` too: it names no model and no name."""
    from app.model_cache import ModelCache

    db = pg_jobs.db
    model = {"id": new_model_id(), "name": None}
    db.save(model)
    cache: ModelCache[dict] = ModelCache(db, lambda record: record, size=8)
    cache.get(model["id"])
    job_id = add(pg_jobs)
    assert db.model_id_of(f"job:{job_id}") is None and db.names.name_of(f"job:{job_id}") is None
    cache._changed(f"job:{job_id}")  # as the listener hands it over
    assert len(cache) == 1
