"""Replicas on one PostgreSQL are told of changes (app.pg_listen): the listener in-process,
through a lost connection and back; a database lost while running is a 503, and the service
recovers when it returns; and, with real uvicorn replicas, the delay from a change returning to
another replica no longer serving the old version (the ``figures`` section prints the worst)."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable

import httpx
import psycopg
import pytest

from app.config import Settings
from app.main import create_app
from app.model_cache import ModelCache
from app.pg_listen import PgListener
from model_store import new_model_id
from model_store.postgres import PostgresStore
from tests.asgi_client import ASGIClient
from tests.conftest import make_blobs, record_figures
from tests.live_server import LiveServer

ROWS = [[0.5, -0.5], [1.0, 2.0]]


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the timeout"
        await asyncio.sleep(0.005)


def terminate(url: str, application_name: str) -> int:
    """End the database's connections named ``application_name``; how many there were."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = %s",
            (application_name,),
        ).fetchall()
    return len(rows)


def test_the_listener_drops_changed_models_and_clears_the_cache_while_lost(pg_url):
    store = PostgresStore(pg_url)
    cache: ModelCache[dict] = ModelCache(store, lambda record: record, size=8)
    a, b = ({"id": new_model_id(), "name": None} for _ in range(2))
    store.save(a)
    store.save(b)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        assert cache.watch(loop, functools.partial(PgListener, pg_url), store.model_id_of)
        watcher = cache._watcher
        assert watcher is not None
        await until(lambda: watcher.alive)
        await asyncio.to_thread(cache.get, a["id"])
        await asyncio.to_thread(cache.get, b["id"])
        assert cache.peek(a["id"]) == a  # served without asking the database
        await asyncio.to_thread(store.delete, a["id"])
        await until(lambda: cache.peek(a["id"]) is None)
        assert cache.peek(b["id"]) == b  # only the changed model left
        # the listener's connection dies: the cache forgets all, every hit checks, until back
        assert terminate(pg_url, "logreg-listen") == 1
        await until(lambda: not watcher.alive)
        assert len(cache) == 0 and cache.peek(b["id"]) is None
        await until(lambda: watcher.alive)
        await asyncio.to_thread(cache.get, b["id"])
        assert cache.peek(b["id"]) == b
        cache.unwatch()

    asyncio.run(scenario())
    store.close()


def test_a_database_lost_while_running_is_a_503_and_the_service_recovers(
    pg_cluster, pg_url, tmp_path
):
    store = PostgresStore(pg_url, timeout=0.5)
    client = ASGIClient(create_app(Settings(model_store_dir=tmp_path), store=store))
    db = pg_url.rsplit("/", 1)[1]
    try:
        assert client.get("/health").status_code == 200
        with psycopg.connect(pg_cluster.url(), autocommit=True) as admin:
            # the database goes away: new connections refused, open ones cut
            admin.execute(f"ALTER DATABASE {db} WITH ALLOW_CONNECTIONS false")
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (db,)
            )
            for path in ("/health", "/models", "/names/churn"):
                r = client.get(path)
                assert r.status_code == 503, r.text
                assert "the model database cannot be used" in r.json()["detail"]
            admin.execute(f"ALTER DATABASE {db} WITH ALLOW_CONNECTIONS true")
        back = time.monotonic()
        while client.get("/health").status_code != 200:  # the pool's retry is backing off
            assert time.monotonic() - back < 30, "the service did not recover"
            time.sleep(0.1)
        record_figures("database back -> /health 200", seconds=round(time.monotonic() - back, 2))
    finally:
        client.close()
        store.close()


def test_a_server_refuses_to_start_on_an_unreachable_database(tmp_path):
    from tests.live_server import free_port

    server = LiveServer(
        tmp_path / "models",
        env={"MODEL_STORE_URL": f"postgresql://u:pw@127.0.0.1:{free_port()}/db"},
        startup_timeout=20,
    )
    with pytest.raises(RuntimeError, match="the model database cannot be used"):
        server.start()


def test_a_training_child_stores_its_model_in_the_database(pg_url, tmp_path):
    """Bodies trained in a child process (``TRAIN_INLINE_MAX_BYTES=0``): the child opens the
    store ``MODEL_STORE_URL`` names, and writes no file."""
    settings = Settings(
        model_store_dir=tmp_path / "models", model_store_url=pg_url, train_inline_max_bytes=0
    )
    app = create_app(settings)
    client = ASGIClient(app)
    try:
        X, y = make_blobs(n=60, d=2)
        body = {"features": X.tolist(), "labels": y.tolist(), "name": "churn"}
        got = [client.post("/train", json=body).json() for _ in range(2)]
        assert [m["version"] for m in got] == [1, 2]
        r = client.post("/predict", json={"model_id": "churn:1", "features": ROWS})
        assert r.status_code == 200 and r.json()["model_id"] == got[0]["id"]
        assert not list((tmp_path / "models").glob("*.json"))  # no model file
    finally:
        client.close()
        app.state.trainer.shutdown()
        app.state.service.store.close()


def train(c: httpx.Client, name: str, seed: int) -> dict:
    X, y = make_blobs(n=60, d=2, seed=seed)
    r = c.post("/train", json={"features": X.tolist(), "labels": y.tolist(), "name": name})
    assert r.status_code == 201, r.text
    return r.json()


def first_fresh(c: httpx.Client, ref: str, fresh: Callable[[httpx.Response], bool]) -> float:
    """Seconds from now until ``c`` sends the first request whose answer is ``fresh`` (an upper
    bound of the delay: a stale answer's own round trip counts in it); each stale answer sent
    is counted in ``STALE``."""
    start = time.monotonic()
    while True:
        sent = time.monotonic()
        r = c.post("/predict", json={"model_id": ref, "features": ROWS})
        if fresh(r):
            return sent - start
        STALE.append(sent - start)
        assert sent - start < 10, "the other replica kept serving the old version"


STALE: list[float] = []


def test_a_change_through_one_replica_stops_being_served_by_the_other(tmp_path, pg_url):
    """2 replicas on one database. An alias moved (40 times) or a model deleted through one:
    how long after the change returned does the other still serve the old version?"""
    env = {"MODEL_STORE_URL": pg_url}
    STALE.clear()
    with (
        LiveServer(tmp_path / "a", env=env) as one,
        LiveServer(tmp_path / "b", env=env) as two,
        httpx.Client(base_url=one.url, timeout=30) as admin,
        httpx.Client(base_url=two.url, timeout=30) as other,
    ):
        ids = {v: train(admin, "churn", seed=v)["id"] for v in (1, 2)}
        with psycopg.connect(pg_url) as conn:  # each replica's two caches listen
            listening = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'logreg-listen'"
                " AND datname = current_database()"
            ).fetchone()
        assert listening == (4,)
        delays = []
        for i in range(40):
            version = 1 + i % 2
            r = admin.put("/names/churn/aliases/prod", json={"version": version})
            assert r.status_code == 200, r.text
            delays.append(
                first_fresh(
                    other, "churn@prod", lambda r, v=version: r.json()["model_id"] == ids[v]
                )
            )
            # warm: the other replica serves it from its cache before the next move
            assert other.post("/predict", json={"model_id": "churn@prod", "features": ROWS})
        deletes = []
        for seed in range(3, 8):
            model_id = train(admin, "scratch", seed=seed)["id"]
            r = other.post("/predict", json={"model_id": model_id, "features": ROWS})
            assert r.status_code == 200
            assert admin.delete(f"/models/{model_id}").status_code == 204
            deletes.append(first_fresh(other, model_id, lambda r: r.status_code == 404))
    record_figures(
        "PostgreSQL NOTIFY, change returned -> other replica stops serving the old version",
        alias_moves=len(delays),
        worst_alias_ms=round(1000 * max(delays), 1),
        median_alias_ms=round(1000 * sorted(delays)[len(delays) // 2], 1),
        deletes=len(deletes),
        worst_delete_ms=round(1000 * max(deletes), 1),
        stale_answers=len(STALE),
        target_ms=100,
    )
