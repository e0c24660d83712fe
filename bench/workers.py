"""Training jobs per minute: 1 vs 2 training workers on the PostgreSQL queue, beside the
reference of one server running its own jobs on the folder store, in one run.

Each round, for each setup, on a fresh database (or folder): one API server (one uvicorn worker;
on PostgreSQL ``TRAIN_JOBS_IN_SERVER=false``, so only the workers train), the workers started
and ready (their training children started), one job run untimed (the reference's child starts
with its first job), then ``--jobs`` small trainings submitted at once with ``Prefer:
respond-async``, timed from the first submit until every job has succeeded. Then the
workers' own rate, with the queue filled before they start (``postgres_drain``): with small
jobs the API's taking of the bodies, not the workers, sets the pace of the first measure. The
setups alternate, ``--rounds`` times; best and median jobs per minute of each.

    python bench/workers.py [--rounds 3] [--jobs 20] [--rows 2000] [--features 20]

Needs PostgreSQL's server binaries (Debian's ``postgresql`` package), as the tests do.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.live_server import LiveServer, WorkerProcess  # noqa: E402
from tests.pg import PostgresCluster, find_bin  # noqa: E402

ASYNC = {"Prefer": "respond-async", "Content-Type": "application/json"}


def bodies(n: int, rows: int, features: int) -> list[bytes]:
    """``n`` training bodies, JSON-encoded once here: encoding a 20,000 x 50 body with the
    standard library's ``json`` (httpx's ``json=``) took 0.42 s, more than the service takes to
    store it, and made the client the bottleneck of the first measure."""
    out = []
    for seed in range(n):
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(rows, features))
        y = (X @ rng.normal(size=features) + rng.normal(size=rows) > 0).astype(int)
        out.append(orjson.dumps({"features": X.round(6).tolist(), "labels": y.tolist()}))
    return out


def run_queue(url: str, jobs: list[bytes]) -> float:
    """Submit every job, wait until all succeeded; the seconds it took."""
    with httpx.Client(timeout=120) as client:
        start = time.perf_counter()
        ids = []
        for body in jobs:
            r = client.post(f"{url}/train", content=body, headers=ASYNC)
            r.raise_for_status()
            ids.append(r.json()["id"])
        waiting = set(ids)
        while waiting:
            for job_id in list(waiting):
                job = client.get(f"{url}/jobs/{job_id}").json()
                if job["status"] == "succeeded":
                    waiting.discard(job_id)
                elif job["status"] in ("failed", "cancelled"):
                    raise RuntimeError(f"job {job_id}: {job}")
            time.sleep(0.02)
        return time.perf_counter() - start


def folder_reference(jobs: list[bytes]) -> float:
    folder = Path(tempfile.mkdtemp(prefix="bench-workers-")) / "models"
    with LiveServer(folder) as api:
        run_queue(api.url, jobs[:1])  # its training child starts with its first job: not timed
        return run_queue(api.url, jobs)


def postgres_workers(cluster: PostgresCluster, workers: int) -> Callable[[list[bytes]], float]:
    def run(jobs: list[bytes]) -> float:
        url = cluster.new_database()
        folder = Path(tempfile.mkdtemp(prefix="bench-workers-")) / "models"
        env = {"MODEL_STORE_URL": url}
        with LiveServer(folder, env={**env, "TRAIN_JOBS_IN_SERVER": "false"}) as api:
            procs = [WorkerProcess(folder, env=env).start() for _ in range(workers)]
            try:
                run_queue(api.url, jobs[:1])  # as for the reference (workers start theirs)
                return run_queue(api.url, jobs)
            finally:
                for p in procs:
                    p.stop()

    return run


def postgres_drain(cluster: PostgresCluster, workers: int) -> Callable[[list[bytes]], float]:
    """The workers' own rate: every job queued first (no worker running), then the workers
    started together; the seconds from the first job's start to the last one's end, from the
    jobs' records (submitting 20 bodies costs the API more than small jobs cost the workers)."""

    def run(jobs: list[bytes]) -> float:
        url = cluster.new_database()
        folder = Path(tempfile.mkdtemp(prefix="bench-workers-")) / "models"
        env = {"MODEL_STORE_URL": url}
        with (
            LiveServer(folder, env={**env, "TRAIN_JOBS_IN_SERVER": "false"}) as api,
            httpx.Client(timeout=120) as client,
        ):
            ids = [
                client.post(f"{api.url}/train", content=body, headers=ASYNC).json()["id"]
                for body in jobs
            ]
            procs = [WorkerProcess(folder, env=env) for _ in range(workers)]
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(WorkerProcess.start, procs))
            try:
                records = []
                for job_id in ids:
                    while (job := client.get(f"{api.url}/jobs/{job_id}").json())["status"] not in (
                        "succeeded",
                        "failed",
                        "cancelled",
                    ):
                        time.sleep(0.1)  # the times come from the records: poll gently
                    if job["status"] != "succeeded":
                        raise RuntimeError(f"job {job_id}: {job}")
                    records.append(job)
            finally:
                for p in procs:
                    p.stop()
        start = min(datetime.fromisoformat(r["started_at"]) for r in records)
        end = max(datetime.fromisoformat(r["finished_at"]) for r in records)
        return (end - start).total_seconds()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--features", type=int, default=20)
    args = parser.parse_args()
    bin_dir = find_bin()
    if bin_dir is None:
        sys.exit("PostgreSQL's server binaries were not found (apt-get install postgresql)")
    jobs = bodies(args.jobs, args.rows, args.features)
    cluster = PostgresCluster(bin_dir).start()
    setups: dict[str, Callable[[list[bytes]], float]] = {
        "folder store, jobs in the server (reference)": folder_reference,
        "PostgreSQL, 1 worker": postgres_workers(cluster, 1),
        "PostgreSQL, 2 workers": postgres_workers(cluster, 2),
        "PostgreSQL, 1 worker, queue filled first": postgres_drain(cluster, 1),
        "PostgreSQL, 2 workers, queue filled first": postgres_drain(cluster, 2),
    }
    rates: dict[str, list[float]] = {name: [] for name in setups}
    try:
        for r in range(args.rounds):
            for name, run in setups.items():
                seconds = run(jobs)
                rates[name].append(60 * args.jobs / seconds)
                print(f"round {r + 1}: {name}: {seconds:.2f} s", flush=True)
    finally:
        cluster.stop()
    load = os.getloadavg()
    print(
        f"\n{args.jobs} jobs of {args.rows} x {args.features} (lbfgs), {args.rounds} rounds, "
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
    )
    ref = statistics.median(rates[next(iter(setups))])
    print(f"{'setup':48} {'best/min':>9} {'median/min':>11} {'vs ref':>7}")
    for name, values in rates.items():
        med = statistics.median(values)
        print(f"{name:48} {max(values):9.1f} {med:11.1f} {med / ref:7.2f}")
    drained = [statistics.median(v) for k, v in rates.items() if k.endswith("filled first")]
    print(f"queue filled first: 2 workers / 1 worker = {drained[1] / drained[0]:.2f}")


if __name__ == "__main__":
    main()
