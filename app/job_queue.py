"""Training jobs on PostgreSQL: a queue in the same database, run by any number of workers on
any machines. No FastAPI here.

The queue is procrastinate's (a PostgreSQL task queue: ``LISTEN``/``NOTIFY`` wake-ups, ``FOR
UPDATE SKIP LOCKED`` fetches, worker heartbeats and stalled-job detection, a CLI to inspect it),
not one of our own. It carries only a job's id: the job itself (its record, request body, cancel
word and progress) stays in the job store (``model_store.postgres_jobs.PgJobStore``), where
the API reads it. A task takes a job through ``app.jobs.JobScheduler.run``, the very path the folder
store's in-process jobs take: claim the job (the store's session-level advisory lock, held
while it runs and freed by the database when the holder's connection closes, even after ``kill
-9``), train it in a training child, record its end. So a job never runs twice at once, whatever
the queue does: a second task for it finds it held, or ended, and returns.

What can go wrong, and who mends it (``sweep``, every ``SWEEP_SECONDS`` in each queue worker):

* A worker dies mid-job: procrastinate sees its heartbeat stop and the sweep retries its task
  (``get_stalled_jobs``); the task finds the job ``running`` with its lock free, and runs it
  again once, or fails it (``app.jobs.QUEUE_RETRIES``).
* A job stored but never deferred (the server died between the two, or the queue was down), or
  ``running`` with nobody holding it while its task ended (a runner that lost its connection):
  the sweep defers it again. ``queueing_lock`` (the job's id) keeps one waiting task per job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued

from .jobs import JobScheduler

log = logging.getLogger("app.job_queue")

#: The queue's name, and the task's.
QUEUE = "training"
TASK = "logreg.train"
#: Seconds between two sweeps of each worker, and how long a job may stay ``queued`` with no
#: task before a sweep defers it again.
SWEEP_SECONDS = 5.0
UNDEFERRED_SECONDS = 10.0


async def train(context: procrastinate.JobContext, job_id: str) -> None:
    """Run training job ``job_id`` (a no-op if it is held elsewhere or has ended)."""
    scheduler: JobScheduler = context.additional_context["scheduler"]
    await scheduler.run(job_id)


def queue_app(url: str, *, sync: bool) -> procrastinate.App:
    """The procrastinate app on the database ``url``: ``sync`` for a server's defers (from a
    thread), else for a worker (asyncio)."""
    options: dict[str, Any] = {"conninfo": url, "min_size": 1, "max_size": 4}
    connector = (
        procrastinate.SyncPsycopgConnector(**options)
        if sync
        else procrastinate.PsycopgConnector(**options)
    )
    app = procrastinate.App(connector=connector)
    app.task(name=TASK, queue=QUEUE, pass_context=True)(train)
    return app


class JobQueue:
    """A server's side of the queue: defer jobs (``app.jobs.JobService.queue``)."""

    def __init__(self, url: str) -> None:
        self.app = queue_app(url, sync=True)
        self.opened = False

    def defer(self, job_id: str) -> None:
        if not self.opened:
            self.app.open()
            self.opened = True
        with contextlib.suppress(AlreadyEnqueued):  # a task for it waits already
            self.app.configure_task(TASK, queueing_lock=job_id).defer(job_id=job_id)

    def close(self) -> None:
        if self.opened:
            self.app.close()
            self.opened = False


async def defer(app: procrastinate.App, job_id: str) -> None:
    with contextlib.suppress(AlreadyEnqueued):
        await app.configure_task(TASK, queueing_lock=job_id).defer_async(job_id=job_id)


async def sweep(app: procrastinate.App, scheduler: JobScheduler, *, stalled_after: float) -> None:
    """Retry the tasks of dead workers; defer again the jobs no task will run (module
    docstring)."""
    stalled = await app.job_manager.get_stalled_jobs(
        queue=QUEUE, seconds_since_heartbeat=stalled_after
    )
    for job in stalled:
        log.warning("training task %s: its worker stopped; retrying it", job.id)
        with contextlib.suppress(Exception):  # another worker's sweep retried it first
            await app.job_manager.retry_job(job)
    for job_id in await asyncio.to_thread(scheduler.orphans, UNDEFERRED_SECONDS):
        log.warning("job %s: no task runs it; deferring it again", job_id)
        await defer(app, job_id)


async def work(scheduler: JobScheduler, *, name: str | None = None) -> None:
    """Run queued training jobs until cancelled, each through ``scheduler``, as its settings
    say (``MODEL_STORE_URL``, ``TRAIN_CONCURRENCY`` at once, ``WORKER_STALLED_SECONDS``);
    sweep meanwhile. Signals are the caller's: a server's, or ``app.worker``'s."""
    settings = scheduler.service.settings
    assert settings.model_store_url is not None
    stalled_after = settings.worker_stalled_seconds
    app = queue_app(settings.model_store_url, sync=False)
    async with app.open_async():
        sweeper = asyncio.get_running_loop().create_task(
            _sweep_loop(app, scheduler, stalled_after=stalled_after)
        )
        try:
            await app.run_worker_async(
                queues=[QUEUE],
                name=name or "logreg-worker",
                concurrency=settings.train_concurrency,
                additional_context={"scheduler": scheduler},
                delete_jobs="successful",
                update_heartbeat_interval=stalled_after / 3,
                stalled_worker_timeout=stalled_after,
                install_signal_handlers=False,
            )
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper


async def _sweep_loop(
    app: procrastinate.App, scheduler: JobScheduler, *, stalled_after: float
) -> None:
    failing = False
    expiry_due = 0.0
    while True:
        expiry_due = await scheduler.expire_now_and_then(expiry_due)
        try:
            await sweep(app, scheduler, stalled_after=stalled_after)
        except Exception as exc:  # the database away for a while: said once
            if not failing:
                log.warning("the job queue's sweep failed (%s); trying again", exc)
            failing = True
        else:
            failing = False
        await asyncio.sleep(SWEEP_SECONDS)
