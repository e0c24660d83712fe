"""Serving follows an alias live across workers and replicas; the audit log survives SIGKILL
(issue 13). Real uvicorn processes over one model folder, or one PostgreSQL database."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.conftest import STORES, make_blobs, record_figures
from tests.live_server import LiveServer

ROWS = [[0.5, -0.5], [1.0, 2.0]]


def train(c: httpx.Client, name: str, seed: int, **headers: str) -> dict:
    X, y = make_blobs(n=60, d=2, seed=seed)
    r = c.post(
        "/train", json={"features": X.tolist(), "labels": y.tolist(), "name": name}, headers=headers
    )
    assert r.status_code == 201, r.text
    return r.json()


@pytest.mark.parametrize("store_url", STORES, indirect=True)
def test_predictions_on_an_alias_follow_every_move_across_workers_and_replicas(tmp_path, store_url):
    """2 replicas x 2 workers over one folder (or database). Clients predict on NAME@ALIAS
    without pause through both replicas while the alias is moved back and forth through either:
    no request fails, and on the folder no request sent after a move returned is answered by the
    old version. On PostgreSQL the other replicas hear of a move asynchronously (NOTIFY): the
    figure is how long after a move returned an old answer was still sent (target 100 ms)."""
    folder = tmp_path / "models"
    store = "postgres" if store_url else "folder"
    env = {"MODEL_STORE_URL": store_url or ""}
    with (
        LiveServer(folder, env=env, args=["--workers", "2"]) as one,
        LiveServer(folder, env=env, args=["--workers", "2"]) as two,
        httpx.Client(base_url=one.url, timeout=30) as admin,
        httpx.Client(base_url=two.url, timeout=30) as admin_two,
    ):
        ids = {v: train(admin, "churn", seed=v)["id"] for v in (1, 2)}
        admin.put("/names/churn/aliases/prod", json={"version": 1})
        # (when the PUT was sent, when it returned, version)
        moves: list[tuple[float, float, int]] = [(0.0, time.monotonic(), 1)]
        answers: list[tuple[float, float, str]] = []  # (sent, answered, model id)
        failures: list[str] = []
        stop = threading.Event()

        def client(url: str) -> None:
            with httpx.Client(base_url=url, timeout=30) as c:
                while not stop.is_set():
                    sent = time.monotonic()
                    r = c.post("/predict", json={"model_id": "churn@prod", "features": ROWS})
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text}")
                    else:
                        answers.append((sent, time.monotonic(), r.json()["model_id"]))

        threads = [threading.Thread(target=client, args=(s.url,)) for s in (one, two, one, two)]
        for t in threads:
            t.start()
        try:
            for i in range(40):
                version = 2 if i % 2 == 0 else 1
                via = admin if i % 3 else admin_two
                put_sent = time.monotonic()
                r = via.put("/names/churn/aliases/prod", json={"version": version})
                assert r.status_code == 200, r.text
                moves.append((put_sent, time.monotonic(), version))
                time.sleep(0.02)
        finally:
            stop.set()
            for t in threads:
                t.join()

    stale = 0
    worst = 0.0  # seconds from a move returning to a request sent then and answered stale
    for sent, answered, model_id in answers:
        # the version of the last move that had returned before this request was sent...
        last = max((m for m in moves if m[1] < sent), key=lambda m: m[1])
        # ...or of a move that overlapped the request (it may have applied first)
        overlapping = {m[2] for m in moves if m[0] < answered and m[1] >= sent}
        if model_id not in {ids[v] for v in {last[2]} | overlapping}:
            stale += 1
            worst = max(worst, sent - last[1])
    record_figures(
        f"alias moves under load ({store})",
        moves=len(moves) - 1,
        predictions=len(answers),
        stale_answers=stale,
        worst_stale_ms=round(1000 * worst, 1),
    )
    assert not failures, failures[:3]
    if store == "folder":  # inotify is synchronous; NOTIFY is not (the figure above)
        assert stale == 0
    assert len(answers) > 100


def test_the_audit_log_holds_every_acknowledged_change_after_sigkill(tmp_path):
    folder = tmp_path / "models"
    acknowledged: list[str] = []
    server = LiveServer(folder)
    with server:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            train(c, "churn", seed=0)
            done = threading.Event()

            def changes() -> None:
                i = 0
                while not done.is_set():
                    rid = f"change-{i}"
                    try:
                        if i % 3 == 0:
                            train(c, "churn", seed=i, **{"X-Request-ID": rid})
                        else:
                            r = c.put(
                                "/names/churn/aliases/prod",
                                json={"version": 1},
                                headers={"X-Request-ID": rid},
                            )
                            if r.status_code != 200:
                                return
                    except (httpx.TransportError, AssertionError):
                        return
                    acknowledged.append(rid)
                    i += 1

            t = threading.Thread(target=changes)
            t.start()
            while len(acknowledged) < 15:
                time.sleep(0.01)
            server.kill()
            done.set()
            t.join()
        server.start()
        with httpx.Client(base_url=server.url, timeout=30) as c:
            logged = {e["request_id"] for e in c.get("/audit?limit=10000").json()["items"]}
            versions = c.get("/names/churn").json()["items"]
    record_figures("audit after SIGKILL", acknowledged=len(acknowledged))
    assert set(acknowledged) <= logged
    # every version listed has its model; versions are distinct
    assert len({v["version"] for v in versions}) == len(versions)
    assert all(v["training"] is not None for v in versions)
