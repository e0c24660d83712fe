"""Training jobs: what watching a fit costs it, and how soon a cancel stops it.

1. Monitor overhead, in one process: the same fits with no monitor and with a job's
   ``JobProgress`` (progress written to a real job record at most every 0.1 s, the cancel marker
   and the parent looked at every 0.05 s), alternated, ``--rounds`` times; best and median seconds
   of each and their ratio. Gradient descent (many cheap iterations: the callback's worst case)
   and L-BFGS on a larger set.
2. Cancel latency, on real servers (``uvicorn``, one worker each, one model folder): a job that
   would run for minutes is cancelled once it is fitting; the time from sending
   ``POST /jobs/{id}/cancel`` until its record says ``cancelled`` (polled every 5 ms), through the
   server that runs it and through another one (the cancel crosses processes by a marker file).
3. Predictions while a job fits: 1-row ``POST /predict`` latency, idle and during a job (whose
   child runs under SCHED_IDLE, as large synchronous trainings do).

    python bench/jobs.py [--rounds 5] [--cancels 5]    # after pip install -e '.[bench]'
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.engine import FitParams, fit  # noqa: E402
from app.training.job import JobProgress  # noqa: E402
from model_store import JsonJobStore, new_model_id  # noqa: E402
from tests.live_server import LiveServer  # noqa: E402


def collinear(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Nearly collinear columns: gradient descent needs very many iterations on them."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 1))
    X = np.hstack([base + 1e-3 * rng.normal(size=(n, 1)) for _ in range(d)])
    y = (X[:, 0] - 0.5 * X[:, 1] + 0.3 * rng.normal(size=n) > 0).astype(int)
    return X, y


def monitor_overhead(rounds: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    store = JsonJobStore(folder / "jobs")
    record = {
        "id": new_model_id(),
        "status": "running",
        "started_at": datetime.now(UTC).isoformat(),
    }
    store._make_folders()
    store.update(record)
    rng = np.random.default_rng(1)
    Xl = rng.normal(size=(50_000, 50))
    yl = (Xl @ rng.normal(size=50) + rng.normal(size=50_000) > 0).astype(int)
    cases = [
        ("gd, 3,000 x 10, 20,000 iterations", *collinear(3000, 10), "gd", 20_000, 1e-12, 0.0),
        ("lbfgs, 50,000 x 50, to |g| <= 1e-8", Xl, yl, "lbfgs", 1000, 1e-8, 1e-4),
    ]
    print("fit with a job's progress monitor against none (seconds; best, median)")
    for name, X, y, solver, max_iter, tol, l2 in cases:
        times: dict[str, list[float]] = {"none": [], "job": []}
        iters = 0
        for i in range(rounds):
            for kind in ("none", "job") if i % 2 == 0 else ("job", "none"):
                monitor = JobProgress(store, record) if kind == "job" else None
                params = FitParams(
                    solver=solver, max_iter=max_iter, tol=tol, l2=l2, monitor=monitor
                )
                t = time.perf_counter()
                result = fit(X, y, params=params)
                times[kind].append(time.perf_counter() - t)
                iters = result.report.iterations
        none, job = times["none"], times["job"]
        print(
            f"  {name} ({iters} it): none {min(none):.3f} / {statistics.median(none):.3f}, "
            f"job {min(job):.3f} / {statistics.median(job):.3f}, "
            f"ratio of bests {min(job) / min(none):.3f}"
        )


def monitor_calls(n: int = 200_000) -> None:
    """The pieces apart: one call per iteration, one record write, one cancel check."""
    folder = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    store = JsonJobStore(folder / "jobs")
    store._make_folders()
    record = {
        "id": new_model_id(),
        "status": "running",
        "started_at": datetime.now(UTC).isoformat(),
    }
    store.update(record)
    progress = JobProgress(store, record)
    t = time.perf_counter()
    for i in range(n):
        progress.iteration(i, 1.0, 1.0)
    per_call = (time.perf_counter() - t) / n
    t = time.perf_counter()
    for _ in range(500):
        store.update(record)
    write = (time.perf_counter() - t) / 500
    t = time.perf_counter()
    for _ in range(5000):
        store.cancel_requested(record["id"])
    check = (time.perf_counter() - t) / 5000
    print(
        f"  per iteration {per_call * 1e6:.2f} us (checks and writes included); one record "
        f"write {write * 1e3:.2f} ms (at most 10 a second: {write * 10 * 100:.2f}% of a core); "
        f"one cancel check {check * 1e6:.1f} us (at most 20 a second)"
    )


def slow_job() -> dict:
    X, y = collinear(3000, 10)
    params = {"solver": "gd", "max_iter": 100_000, "tol": 1e-10, "l2": 0}
    return {"features": X.tolist(), "labels": y.tolist(), "params": params}


def cancel_latency(cancels: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-jobs-")) / "models"
    body = slow_job()
    with LiveServer(folder) as a, LiveServer(folder) as b:
        for label, via in (("the server running it", a), ("another server", b)):
            latencies = []
            for _ in range(cancels):
                r = httpx.post(f"{a.url}/train", json=body, headers={"Prefer": "respond-async"})
                job_id = r.json()["id"]
                while True:  # wait until it fits (a's runner: only a runs jobs it accepted first)
                    job = httpx.get(f"{a.url}/jobs/{job_id}").json()
                    if job["progress"] and job["progress"]["iteration"] > 0:
                        break
                    time.sleep(0.02)
                t = time.perf_counter()
                with httpx.Client(timeout=30) as c:
                    c.post(f"{via.url}/jobs/{job_id}/cancel")
                    while c.get(f"{a.url}/jobs/{job_id}").json()["status"] != "cancelled":
                        time.sleep(0.005)
                latencies.append(time.perf_counter() - t)
            shown = ", ".join(f"{x * 1000:.0f}" for x in latencies)
            print(
                f"  cancel through {label}: median {statistics.median(latencies) * 1000:.0f} ms, "
                f"max {max(latencies) * 1000:.0f} ms ({shown})"
            )


def latencies(client: httpx.Client, body: dict, seconds: float) -> list[float]:
    out = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        client.post("/predict", json=body).raise_for_status()
        out.append(time.perf_counter() - t)
    return out


def predict_latency(seconds: float) -> None:
    """1-row predictions, one after another on one connection: idle, then while a job fits."""
    folder = Path(tempfile.mkdtemp(prefix="bench-jobs-")) / "models"
    X, y = collinear(200, 10)
    with LiveServer(folder) as server, httpx.Client(base_url=server.url, timeout=30) as c:
        model = c.post("/train", json={"features": X.tolist(), "labels": y.tolist()}).json()
        body = {"model_id": model["id"], "features": X[:1].tolist()}
        latencies(c, body, 1.0)  # warm up
        idle = latencies(c, body, seconds)
        job_id = c.post("/train", json=slow_job(), headers={"Prefer": "respond-async"}).json()["id"]
        while not (c.get(f"/jobs/{job_id}").json()["progress"] or {}).get("iteration"):
            time.sleep(0.02)
        busy = latencies(c, body, seconds)
        still = c.get(f"/jobs/{job_id}").json()["status"]
        c.post(f"/jobs/{job_id}/cancel")

    def q(xs: list[float], p: float) -> float:
        return sorted(xs)[min(len(xs) - 1, int(p * len(xs)))] * 1000

    for name, xs in (("idle", idle), (f"job fitting ({still} at the end)", busy)):
        print(f"  {name}: n={len(xs)}, p50 {q(xs, 0.5):.2f} ms, p99 {q(xs, 0.99):.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cancels", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0, help="per latency window")
    args = parser.parse_args()
    monitor_overhead(args.rounds)
    monitor_calls()
    print("cancel latency (POST .../cancel sent -> record says cancelled)")
    cancel_latency(args.cancels)
    print("1-row predict latency, one connection, while idle and while a job fits")
    predict_latency(args.seconds)


if __name__ == "__main__":
    main()
