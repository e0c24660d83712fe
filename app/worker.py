"""``python -m app.worker``: a process that runs training jobs from the queue in PostgreSQL
(``app.job_queue``), on any machine that reaches the database and the datasets' volume. Run as
many as you like; each runs up to ``--concurrency`` (default ``TRAIN_CONCURRENCY``) trainings
at once, each in a child process, as a server does.

Configured by the server's environment (``MODEL_STORE_URL``, ``MODEL_STORE_DIR`` for the
datasets, ``TRAIN_CONCURRENCY``, ``WORKER_STALLED_SECONDS``, the limits). SIGTERM or SIGINT stops
it cleanly: its running trainings stop and their jobs go back to the queue for another worker.

An entry point like ``app.main``: it uses the web layer's one mapping of errors to statuses
(``app.api.errors``) for the status a failed job reports, and serves nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import TYPE_CHECKING

# Nothing else at the top: each training child is spawned and imports this module (the
# parent's main) before its initializer limits the BLAS threads to one; NumPy imported here
# would give every child a BLAS thread per core (tests/engine/test_layering.py).
if TYPE_CHECKING:
    from model_store import ModelStore

    from .config import Settings

log = logging.getLogger("app.worker")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m app.worker",
        description="Run training jobs from the PostgreSQL queue (MODEL_STORE_URL).",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="trainings at once (default: TRAIN_CONCURRENCY)",
    )
    parser.add_argument("--name", default=None, help="this worker's name in the queue's tables")
    return parser.parse_args(argv)


async def run(settings: Settings, store: ModelStore, *, name: str | None) -> None:
    from . import job_queue
    from .api.errors import job_describer
    from .jobs import JobScheduler, JobService
    from .training.job import job_store
    from .training.runner import TrainRunner

    assert settings.model_store_url is not None
    queue = job_queue.JobQueue(settings.model_store_url)
    jobs = JobService(job_store(settings, store), settings, audit=store.audit, queue=queue)
    runner = TrainRunner(settings)
    scheduler = JobScheduler(jobs, runner, describe=job_describer())
    await runner.children.warm()  # the training children start now, not with the first job
    work = asyncio.get_running_loop().create_task(job_queue.work(scheduler, name=name))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info("worker %s: up to %d trainings at once", name or "", settings.train_concurrency)
    try:
        done, _ = await asyncio.wait(
            [work, loop.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        if work in done:
            work.result()  # the queue failed: say why
    finally:
        await scheduler.stop()  # running trainings stop, their jobs go back to the queue
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
        queue.close()
        jobs.store.close()
        runner.shutdown()


def main(argv: list[str] | None = None) -> int:
    from model_store import open_store, store_folder

    from .config import Settings

    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    overrides = {} if args.concurrency is None else {"train_concurrency": args.concurrency}
    settings = Settings(**overrides)
    if store_folder(settings.model_store_url, settings.model_store_dir) is not None:
        print(
            "app.worker: training workers need the PostgreSQL store "
            "(MODEL_STORE_URL=postgresql://...); with the folder store the server runs its jobs",
            file=sys.stderr,
        )
        return 2
    store = open_store(settings.model_store_url, settings.model_store_dir)  # migrates
    try:
        asyncio.run(run(settings, store, name=args.name))
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
