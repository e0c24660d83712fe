"""Asynchronous training jobs: accept, list, cancel (``JobService``) and run (``JobScheduler``).

No FastAPI here. A job is a record in the job store (``model_store.jobs``) shared by every worker
and replica over the model folder; any of them may accept a job, answer for it or cancel it, and
whichever has a free training slot first runs it, once: it claims the job (an exclusive lock the
runner holds while the job runs), marks it ``running`` and trains in a child process through the
``TrainRunner`` (``app.training.job.train_job``), at the children's low priority. The request
that trains a job is stored with it (its body, content type and query), so a training from a
dataset (whose body names the dataset) is a job by the same path.

With the PostgreSQL store the jobs wait in a queue in the database (``app.job_queue``): a server
only defers them, and whichever process runs a queue worker (a server, or ``python -m
app.worker``) takes each through ``JobScheduler.run``, the same claim, run and end.

After a crash: a queued job runs when a server is back; a job whose record says ``running``
while nobody holds its lock was being run by a process that died. On the folder store it becomes
``failed`` with "interrupted by a restart" and is not run again: a server cannot tell a dead
runner from one it merely cannot see (another replica whose lock is not shared, a process frozen
mid-save), and running a training twice could store two models for one job; the client decides
to resubmit. On PostgreSQL the lock is the database's (a session's advisory lock, freed when the
session ends), so a free lock does mean that its runner is gone: the job runs again once
(``QUEUE_RETRIES``), unless it was saving its model when its runner died (whether the model was
stored cannot be told), and fails the second time.
A server that shuts down cleanly puts its running jobs back in the queue (their children were
stopped, so nothing else runs them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from model_store import (
    AuditLog,
    JobClaim,
    JobQueueFull,
    JobStore,
    PendingBody,
    Record,
    StoreError,
    new_model_id,
)
from model_store.jobs import CANCELLED, FAILED, FINAL, QUEUED, RUNNING, SUCCEEDED

from .audit import Actor, audit_entry
from .config import Settings
from .errors import JobCancelled, JobFinished
from .training.runner import TrainRunner

log = logging.getLogger("app.jobs")

#: Seconds between two looks at the queue by each worker (a job accepted by this worker is
#: looked at at once): a job accepted elsewhere waits at most this long for a free worker here.
POLL_SECONDS = 0.5
#: Seconds ``cancel`` waits for a running job to stop before answering that it is stopping.
CANCEL_WAIT = 2.0
#: Seconds a clean shutdown waits for its running jobs to be put back in the queue.
STOP_WAIT = 10.0
#: With the PostgreSQL queue, times a job whose runner died is run again by another.
QUEUE_RETRIES = 1
#: Seconds between two deletions of the records of jobs ended ``JOB_RETENTION_DAYS`` ago.
RETENTION_SECONDS = 3600.0
#: The detail of a job found ``running`` with no live runner.
INTERRUPTED = "interrupted by a restart: the process running it stopped; nothing was stored"
#: Its status: that of a training whose process died (``TrainingCrashed``).
INTERRUPTED_STATUS = 503


class Deferrer(Protocol):
    """A queue that runs jobs elsewhere (``app.job_queue.JobQueue``)."""

    def defer(self, job_id: str) -> None: ...


def now() -> str:
    return datetime.now(UTC).isoformat()


def runner_name() -> str:
    """Who runs a job, in its record: ``host/pid`` of the process holding it."""
    return f"{socket.gethostname()}/{os.getpid()}"


def ended(record: Record, status: str, **fields: Any) -> Record:
    """``record`` in its final ``status``."""
    return {**record, "status": status, "finished_at": now(), **fields}


def view(record: Record) -> Record:
    """The job as the API shows it: the record without the stored request."""
    return {k: v for k, v in record.items() if k != "request"}


class JobService:
    """Accept, read, list and cancel jobs. Every method does file I/O: call it off the event
    loop (``asyncio.to_thread``)."""

    def __init__(
        self,
        store: JobStore,
        settings: Settings,
        *,
        audit: AuditLog | None = None,
        queue: Deferrer | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.audit = audit  # where cancels are recorded (the model store's audit log)
        self.queue = queue  # None: the servers' schedulers look at the store themselves

    def enqueue(self, job_id: str) -> None:
        """Hand the job to the queue, if there is one. A failure is logged, not raised: the job
        is stored, and the queue workers' sweep defers any job left queued
        (``app.job_queue``)."""
        if self.queue is None:
            return
        try:
            self.queue.defer(job_id)
        except Exception:
            log.warning("job %s: could not be put in the queue now; the sweep will", job_id)

    def _audit(self, job_id: str, actor: Actor | None, outcome: str) -> None:
        if self.audit is None:
            return
        try:
            self.audit.append(audit_entry("job.cancelled", {"id": job_id}, actor, outcome=outcome))
        except StoreError:
            log.error("audit log: could not record the cancel of job %s", job_id, exc_info=True)

    def check_queue(self) -> None:
        """``JobQueueFull`` now, before a body is uploaded for nothing (``submit`` decides)."""
        queued = self.store.count_queued()
        if queued >= self.settings.max_queued_jobs:
            raise JobQueueFull(queued, self.settings.train_retry_after)

    def status_of(self, job_id: str) -> str | None:
        """The job's status, or ``None`` if it cannot be read (gone, half made)."""
        with contextlib.suppress(StoreError, KeyError):
            return str(self.store.get(job_id)["status"])
        return None

    def submit(
        self,
        body: PendingBody,
        *,
        content_type: str | None,
        query: Sequence[tuple[str, str]],
        actor: Actor | None = None,
    ) -> Record:
        """A new ``queued`` job training on ``body`` (sent with ``content_type`` and ``query`` by
        ``actor``, who the audit log names for the model the job stores)."""
        record: Record = {
            "id": new_model_id(),
            "status": QUEUED,
            "created_at": now(),
            "started_at": None,
            "finished_at": None,
            "progress": None,
            "model_id": None,
            "error": None,
            "request": {
                "content_type": content_type,
                "query": [list(q) for q in query],
                "actor": None if actor is None else asdict(actor),
            },
        }
        self.store.create(
            record,
            body,
            max_queued=self.settings.max_queued_jobs,
            retry_after=self.settings.train_retry_after,
        )
        self.enqueue(record["id"])
        return record

    def get(self, job_id: str) -> Record:
        return self.store.get(job_id)

    def list(self, *, status: str | None, limit: int, offset: int) -> tuple[list[Record], int]:
        return self.store.list(status=status, limit=limit, offset=offset)

    def cancel(
        self, job_id: str, *, actor: Actor | None = None, wait: float = CANCEL_WAIT
    ) -> Record:
        """Cancel a queued or running job; the job as it is once settled, or after ``wait``
        seconds (still ``running``: it will stop). ``JobFinished`` if it had already ended, or
        ended otherwise meanwhile (a training already saving its model completes). Recorded in
        the audit log either way."""
        try:
            record = self._cancel(job_id, wait=wait)
        except JobFinished as exc:
            self._audit(job_id, actor, f"refused: {exc}")
            raise
        self._audit(job_id, actor, "ok")
        return record

    def _cancel(self, job_id: str, *, wait: float) -> Record:
        record = self.store.get(job_id)
        if record["status"] in FINAL:
            raise JobFinished(job_id, record["status"])
        # The word first, then the claim: a runner claiming the job from now on sees the word.
        self.store.request_cancel(job_id)
        claim = self.store.claim(job_id)
        if claim is not None:  # nobody runs it: queued, or left by a dead runner
            try:
                if claim.record["status"] in FINAL:
                    raise JobFinished(job_id, claim.record["status"])
                final = ended(claim.record, CANCELLED)
                claim.finish(final)
                return final
            finally:
                claim.release()
        deadline = time.monotonic() + wait
        while True:  # a runner holds it: its child stops at its next check (~50 ms)
            record = self.store.get(job_id)
            if record["status"] in FINAL or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        if record["status"] in (SUCCEEDED, FAILED):
            raise JobFinished(job_id, record["status"])
        return record


#: Maps an error a training raised to the status and detail its HTTP answer would have had
#: (``app.api.errors``, the one place that decides them).
Describe = Callable[[BaseException], Awaitable[tuple[int, str]]]


class JobScheduler:
    """This worker's runner of jobs: looks at the queue (every ``POLL_SECONDS``, and at once
    when this worker accepts a job or a training slot frees), claims queued jobs while it has
    free training slots, runs them, and settles jobs whose runner died."""

    def __init__(self, service: JobService, runner: TrainRunner, *, describe: Describe) -> None:
        self.service = service
        self.store = service.store
        self.runner = runner
        self.describe = describe
        # times a job whose runner died is run again: only where a free lock means a dead
        # runner, the queue's database (see the module docstring)
        self.retries = 0 if service.queue is None else QUEUE_RETRIES
        self.running: dict[str, asyncio.Task[None]] = {}
        self.stopping = False
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start looking at the queue (idempotent; needs the running event loop)."""
        if self._task is None and not self.stopping:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._loop())

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def stop(self) -> None:
        """Stop looking at the queue, stop the running trainings and put their jobs back in
        the queue (a clean shutdown: nothing else runs them, so they may run again)."""
        self.stopping = True
        if self._task is not None:
            self.wake()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.running:
            await asyncio.to_thread(self.runner.shutdown)  # the children, and their fits
            # bounded: a job not put back is found "running" with no runner after the restart
            await asyncio.wait(list(self.running.values()), timeout=STOP_WAIT)

    def remove_expired(self) -> int:
        """Delete the records of jobs that ended more than ``JOB_RETENTION_DAYS`` ago (none
        when it is 0); how many. Reads the store: call it off the event loop."""
        days = self.service.settings.job_retention_days
        if days <= 0:
            return 0
        before = (datetime.now(UTC) - timedelta(days=days)).isoformat()
        removed = self.store.remove_ended(before)
        if removed:
            log.info("deleted the records of %d jobs ended before %s", removed, before)
        return removed

    async def expire_now_and_then(self, due: float) -> float:
        """``remove_expired`` in a thread if ``due`` (``time.monotonic``) has come; the next
        time it is due. A failure is logged and tried again at the next."""
        if time.monotonic() < due:
            return due
        try:
            await asyncio.to_thread(self.remove_expired)
        except Exception as exc:
            log.warning("could not delete the records of old jobs (%s)", exc)
        return time.monotonic() + RETENTION_SECONDS

    async def _loop(self) -> None:
        assert self._wake is not None
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.store.remove_stale_temporaries)
        unreadable = False
        expiry_due = 0.0
        while not self.stopping:
            self._wake.clear()
            expiry_due = await self.expire_now_and_then(expiry_due)
            try:
                await self.scan()
            except (StoreError, OSError) as exc:  # the folder unreadable for a while: said once
                if not unreadable:
                    log.warning("the job queue cannot be read (%s); trying again", exc)
                unreadable = True
            except Exception:
                log.exception("looking at the job queue failed")
            else:
                unreadable = False
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancel that
            # comes as its timeout expires, and stop() would wait for this loop forever
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_SECONDS):
                    await self._wake.wait()

    async def scan(self) -> None:
        for job_id in await asyncio.to_thread(self.store.pending):
            if self.stopping:
                return
            if job_id in self.running:
                continue
            status = await asyncio.to_thread(self.service.status_of, job_id)
            start = status == QUEUED and self.runner.has_capacity()
            if status == QUEUED and not start:
                continue
            claim = await self._claim(job_id, start)  # no await since the capacity check
            if claim is not None:
                self.running[job_id] = asyncio.get_running_loop().create_task(self._run(claim))

    async def _claim(self, job_id: str, start: bool) -> JobClaim | None:
        """``_take`` in a thread, holding a training slot for it if ``start`` (taken at once,
        let go unless a claim to run the job comes back)."""
        if start:
            self.runner.acquire()
        try:
            claim = await asyncio.to_thread(self._take, job_id, start)
        except BaseException:
            if start:
                self.runner.release()
            raise
        if claim is None and start:
            self.runner.release()
        return claim

    async def run(self, job_id: str) -> None:
        """Run job ``job_id`` here and now, to its end (a queue's task: ``app.job_queue``); does
        nothing if another process holds it or it has ended."""
        # the queue worker takes no more jobs at once than there are slots
        claim = await self._claim(job_id, True)
        if claim is None:
            return
        task = asyncio.get_running_loop().create_task(self._run(claim))
        self.running[job_id] = task
        await asyncio.shield(task)  # a worker shutting down stops the child, not the bookkeeping

    def orphans(self, older_than: float) -> list[str]:
        """Unfinished jobs no queue task may be about to run: ``queued`` for more than
        ``older_than`` seconds, or ``running`` with nobody holding them (their runner died).
        The queue workers' sweep defers them again (``app.job_queue``)."""
        found = []
        limit = datetime.now(UTC).timestamp() - older_than
        for job_id in self.store.pending():
            try:
                record = self.store.get(job_id)
            except StoreError:
                continue
            if record["status"] == QUEUED:
                if datetime.fromisoformat(record["created_at"]).timestamp() < limit:
                    found.append(job_id)
            elif record["status"] == RUNNING and job_id not in self.running:
                claim = self.store.claim(job_id)
                if claim is not None:
                    claim.release()
                    found.append(job_id)
        return found

    def _take(self, job_id: str, start: bool) -> JobClaim | None:
        """Claim the job; a claim to run it if ``start`` and it is to be run, else ``None``
        (having settled it, if its runner died or it was cancelled before it started)."""
        claim = self.store.claim(job_id)
        if claim is None:
            return None
        record = claim.record
        status = record["status"]
        retry = status == RUNNING and self._may_retry(record)
        try:
            if status == RUNNING and not retry:  # its runner died: the lock was free
                log.warning("job %s: %s", job_id, INTERRUPTED)
                error = {"status": INTERRUPTED_STATUS, "detail": INTERRUPTED}
                claim.finish(ended(record, FAILED, error=error))
            elif status in FINAL:  # ended, but a crash left its pending files
                claim.finish(record)
            elif self.store.cancel_requested(job_id):
                claim.finish(ended(record, CANCELLED))
            elif start:
                attempt = record.get("attempts", 1) + 1 if retry else 1
                if retry:
                    log.warning("job %s: its runner stopped; attempt %d", job_id, attempt)
                claim.save(
                    {
                        **record,
                        "status": RUNNING,
                        "started_at": now(),
                        "progress": None,
                        "attempts": attempt,
                        "runner": runner_name(),
                    }
                )
                return claim
        finally:
            if not start or claim.record["status"] != RUNNING:
                claim.release()
        return None

    def _may_retry(self, record: Record) -> bool:
        """Whether a job whose runner died is run again: while it has retries left, unless it
        died saving its model (stored or not, nobody can tell)."""
        progress = record.get("progress") or {}
        return record.get("attempts", 1) <= self.retries and progress.get("phase") != "saving"

    async def _run(self, claim: JobClaim) -> None:
        job_id = claim.record["id"]
        fields: dict[str, Any]
        try:
            try:
                summary = await self.runner.run_job(job_id)
            except JobCancelled:
                status, fields = CANCELLED, {}
            except Exception as exc:
                if self.stopping:  # a clean shutdown stopped the child: run it another time
                    await asyncio.to_thread(self._requeue, claim)
                    return
                code, detail = await self.describe(exc)
                status, fields = FAILED, {"error": {"status": code, "detail": detail}}
            else:
                status, fields = SUCCEEDED, {"model_id": summary.id}
            await asyncio.to_thread(self._finish, claim, status, fields)
        except Exception:
            log.exception("job %s: could not record its end", job_id)
        finally:
            claim.release()  # a no-op after finish; lets the job go if the end was not recorded
            self.runner.release()
            self.running.pop(job_id, None)
            self.wake()

    def _finish(self, claim: JobClaim, status: str, fields: dict[str, Any]) -> None:
        # the record as the child left it (its last progress report), then the end
        record = self.store.get(claim.record["id"])
        claim.finish(ended(record, status, **fields))

    def _requeue(self, claim: JobClaim) -> None:
        record = self.store.get(claim.record["id"])
        claim.save({**record, "status": QUEUED, "started_at": None, "progress": None})
        claim.release()
        self.service.enqueue(record["id"])
