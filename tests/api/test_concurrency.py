"""Many clients train, predict, list and delete at once against the real server, for a bounded
time: no 5xx, no lost or mixed-up model, no deadlock (every request answers within its timeout)."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import httpx
import numpy as np
import pytest

from tests.conftest import record_figures
from tests.live_server import LiveServer

CLIENTS = 10
SECONDS = 6.0
TIMEOUT = 30.0  # a request slower than this counts as a deadlock


def training_set(tag: str, rng: np.random.Generator) -> tuple[dict, list[list[float]], list[str]]:
    """Three well-separated clusters labelled with ``tag``: its predictions name their model."""
    centers = np.array([[-4.0, 0.0], [4.0, 0.0], [0.0, 5.0]])
    y = np.arange(60) % 3
    X = centers[y] + rng.normal(scale=0.5, size=(60, 2))
    names = [f"{tag}-{k}" for k in "abc"]
    body = {"features": X.tolist(), "labels": [names[v] for v in y], "params": {"max_iter": 200}}
    return body, centers.tolist(), names


class Client(threading.Thread):
    def __init__(self, url: str, number: int, stop: threading.Event) -> None:
        super().__init__()
        self.url, self.number, self.stop = url, number, stop
        self.rng = random.Random(number)
        self.alive: dict[str, list[str]] = {}  # model id -> its class names
        self.deleted: list[str] = []
        self.ops: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.problems: list[str] = []

    def expect(self, what: str, r: httpx.Response, status: int) -> bool:
        self.statuses[r.status_code] += 1
        if r.status_code != status:
            self.problems.append(f"{what}: {r.status_code} {r.text[:200]}")
            return False
        return True

    def run(self) -> None:
        try:
            with httpx.Client(base_url=self.url, timeout=TIMEOUT) as c:
                n = 0
                while not self.stop.is_set():
                    self.step(c, n)
                    n += 1
        except Exception as exc:  # a timeout is a deadlock; anything else a failure too
            self.problems.append(f"{type(exc).__name__}: {exc}")

    def step(self, c: httpx.Client, n: int) -> None:
        op = self.rng.choice(["train", "train", "predict", "predict", "predict", "list", "delete"])
        if op in ("predict", "delete") and not self.alive:
            op = "train"
        self.ops[op] += 1
        if op == "train":
            body, centers, names = training_set(f"c{self.number}n{n}", np.random.default_rng(n))
            r = c.post("/train", json=body)
            if self.expect("train", r, 201):
                self.alive[r.json()["id"]] = names
        elif op == "predict":
            model_id, names = self.rng.choice(list(self.alive.items()))
            centers = [[-4.0, 0.0], [4.0, 0.0], [0.0, 5.0]]
            r = c.post("/predict", json={"model_id": model_id, "features": centers})
            if self.expect("predict", r, 200) and r.json()["predictions"] != names:
                self.problems.append(f"{model_id} answered {r.json()['predictions']}, not {names}")
        elif op == "list":
            r = c.get("/models", params={"limit": 50})
            if self.expect("list", r, 200) and r.json()["unreadable"]:
                self.problems.append(f"unreadable models listed: {r.json()['unreadable']}")
        else:
            model_id = self.rng.choice(list(self.alive))
            if self.expect("delete", c.delete(f"/models/{model_id}"), 204):
                del self.alive[model_id]
                self.deleted.append(model_id)
                self.expect("get deleted", c.get(f"/models/{model_id}"), 404)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_many_clients_at_once(tmp_path, workers):
    """With 2 worker processes, the processes share the folder as replicas share a volume."""
    # TRAIN_CONCURRENCY above the number of clients: this test is about correctness under
    # load, not the 429 back-pressure (tests of the serving work cover that)
    env = {"TRAIN_CONCURRENCY": str(CLIENTS)}
    with LiveServer(tmp_path / "models", env=env, args=["--workers", str(workers)]) as server:
        stop = threading.Event()
        clients = [Client(server.url, i, stop) for i in range(CLIENTS)]
        for t in clients:
            t.start()
        time.sleep(SECONDS)
        stop.set()
        for t in clients:
            t.join(timeout=TIMEOUT + 10)
        assert not any(t.is_alive() for t in clients), "a client is stuck: deadlock"
        problems = [p for t in clients for p in t.problems]
        assert problems == []

        alive = {i: names for t in clients for i, names in t.alive.items()}
        deleted = [i for t in clients for i in t.deleted]
        with httpx.Client(base_url=server.url, timeout=TIMEOUT) as c:
            listing = c.get("/models", params={"limit": 1000}).json()
            assert listing["unreadable"] == []
            assert {m["id"] for m in listing["items"]} == set(alive), "lost or ghost models"
            assert listing["total"] == len(alive)
            for model_id, names in alive.items():
                r = c.post("/predict", json={"model_id": model_id, "features": [[4.0, 0.0]]})
                assert r.json()["predictions"] == [names[1]], model_id
            for model_id in deleted:
                assert c.get(f"/models/{model_id}").status_code == 404

    ops = sum((t.ops for t in clients), Counter())
    statuses = sum((t.statuses for t in clients), Counter())
    assert not [s for s in statuses if s >= 500]
    assert ops["train"] and ops["predict"] and ops["list"] and ops["delete"]
    record_figures(
        f"concurrency ({workers} worker{'s' if workers > 1 else ''})",
        clients=CLIENTS,
        seconds=SECONDS,
        requests=sum(statuses.values()),
        **{f"{op}s": count for op, count in sorted(ops.items())},
        statuses=dict(sorted(statuses.items())),
        models_left=len(alive),
        models_deleted=len(deleted),
    )
