"""Soak: many clients train, predict, list and delete against a real uvicorn process for a while;
prints the server's resident memory (RSS) at the start, along the way and at the end.

    python bench/soak.py --seconds 300 --clients 8

Memory is read from ``/proc/<pid>/status`` (Linux) of the server process (with ``--workers N``,
of the supervisor's children). Clients keep at most ``--keep`` models each, deleting the oldest,
so the folder stays the same size and any growth is the server's own. A 429 (training capacity,
``TRAIN_CONCURRENCY``) is counted, and the client backs off briefly. Exit status 1 on any 5xx,
lost or mixed-up model, or a request that hangs past its timeout.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.live_server import LiveServer, children

CENTERS = [[-4.0, 0.0], [4.0, 0.0], [0.0, 5.0]]


def rss_kib(pid: int, workers: int) -> int:
    """Resident memory of the serving processes, in KiB: the server itself with one worker, or
    uvicorn's worker processes with several. Training runs in short-lived child processes
    (app.training) that come and go; they are not the server's memory and are left out."""
    total = 0
    for p in [pid] if workers == 1 else children(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:  # gone between the listing and the read
            continue
    return total


class Client(threading.Thread):
    def __init__(self, url: str, number: int, stop: threading.Event, keep: int) -> None:
        super().__init__(daemon=True)
        self.url, self.number, self.stop, self.keep = url, number, stop, keep
        self.rng = random.Random(number)
        self.models: list[tuple[str, list[str]]] = []
        self.ops: Counter[str] = Counter()
        self.problems: list[str] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as c:
            n = 0
            while not self.stop.is_set():
                try:
                    self.step(c, n)
                except Exception as exc:
                    self.problems.append(f"{type(exc).__name__}: {exc}")
                    return
                n += 1

    def check(self, what: str, r: httpx.Response, status: int) -> bool:
        self.ops[f"{what} {r.status_code}"] += 1
        if r.status_code == 429 and "retry-after" in r.headers:
            time.sleep(0.2)  # documented back-pressure (TRAIN_CONCURRENCY): try again later
            return False
        if r.status_code != status:
            self.problems.append(f"{what}: {r.status_code} {r.text[:200]}")
        return r.status_code == status

    def step(self, c: httpx.Client, n: int) -> None:
        op = self.rng.choice(["train", "predict", "predict", "predict", "list"])
        if op == "predict" and not self.models:
            op = "train"
        if op == "train":
            rng = np.random.default_rng(n)
            y = np.arange(60) % 3
            X = np.asarray(CENTERS)[y] + rng.normal(scale=0.5, size=(60, 2))
            names = [f"c{self.number}n{n}-{k}" for k in "abc"]
            body = {"features": X.tolist(), "labels": [names[v] for v in y]}
            r = c.post("/train", json=body)
            if self.check("train", r, 201):
                self.models.append((r.json()["id"], names))
            if len(self.models) > self.keep:
                old, _ = self.models.pop(0)
                self.check("delete", c.delete(f"/models/{old}"), 204)
        elif op == "predict":
            model_id, names = self.rng.choice(self.models)
            r = c.post("/predict", json={"model_id": model_id, "features": CENTERS})
            if self.check("predict", r, 200) and r.json()["predictions"] != names:
                self.problems.append(f"{model_id}: predicted {r.json()['predictions']}")
        else:
            self.check("list", c.get("/models", params={"limit": 20}), 200)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--keep", type=int, default=5, help="models each client keeps")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--sample-every", type=float, default=15.0)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        server = LiveServer(Path(tmp) / "models", args=["--workers", str(args.workers)])
        with server:
            assert server.proc is not None
            pid = server.proc.pid
            start_rss = rss_kib(pid, args.workers)
            print(f"soak: {args.clients} clients, {args.seconds:.0f} s, workers={args.workers}")
            print(f"RSS at start (idle, after startup): {start_rss / 1024:.1f} MiB")
            stop = threading.Event()
            clients = [Client(server.url, i, stop, args.keep) for i in range(args.clients)]
            t0 = time.monotonic()
            for cl in clients:
                cl.start()
            samples = []
            while (elapsed := time.monotonic() - t0) < args.seconds:
                time.sleep(min(args.sample_every, max(0.0, args.seconds - elapsed)))
                samples.append((time.monotonic() - t0, rss_kib(pid, args.workers)))
                print(f"  t={samples[-1][0]:6.0f} s  RSS {samples[-1][1] / 1024:7.1f} MiB")
            stop.set()
            for cl in clients:
                cl.join(timeout=90)
            end_rss = rss_kib(pid, args.workers)
            ops = sum((cl.ops for cl in clients), Counter())
            problems = [p for cl in clients for p in cl.problems]
            hung = sum(cl.is_alive() for cl in clients)

    first_loaded = samples[0][1] if samples else start_rss
    print(f"RSS first sample under load: {first_loaded / 1024:.1f} MiB")
    print(f"RSS at end:                  {end_rss / 1024:.1f} MiB")
    print(f"RSS max:                     {max(s for _, s in samples) / 1024:.1f} MiB")
    print(f"growth from first loaded sample to end: {(end_rss - first_loaded) / 1024:+.1f} MiB")
    print(
        f"requests: {sum(ops.values())}  " + "  ".join(f"{k}: {v}" for k, v in sorted(ops.items()))
    )
    print(f"problems: {len(problems)}  hung clients: {hung}")
    for p in problems[:10]:
        print("  ", p)
    return 1 if problems or hung or any(" 5" in k for k in ops) else 0


if __name__ == "__main__":
    raise SystemExit(main())
