"""The per-process model cache: hits never read the file, yet a replaced or deleted file wins."""

from __future__ import annotations

import numpy as np

from app.config import Settings
from app.main import create_app
from app.model_cache import ModelCache
from model_store import JsonFileStore, ModelNotFound
from tests.asgi_client import ASGIClient
from tests.conftest import make_blobs, train


def predict(client, mid, X):
    return client.post("/predict", json={"model_id": mid, "features": np.asarray(X).tolist()})


def test_hits_do_not_read_the_file(client, monkeypatch):
    X, y = make_blobs()
    mid = train(client, X, y.tolist())["id"]
    cache = client._client._transport.app.state.service.cache
    assert predict(client, mid, X[:3]).status_code == 200
    reads = []
    real = JsonFileStore.load_with_fingerprint
    monkeypatch.setattr(
        JsonFileStore, "load_with_fingerprint", lambda s, m: reads.append(m) or real(s, m)
    )
    for _ in range(5):
        assert predict(client, mid, X[:3]).status_code == 200
    assert reads == []
    assert cache.stats.misses == 1 and cache.stats.hits == 5


def test_a_replaced_file_is_served_at_once(client, settings):
    """Another worker or replica retrains under the same file: the new model is used."""
    X, y = make_blobs()
    a = train(client, X, y.tolist())["id"]
    b = train(client, X, (1 - y).tolist())["id"]  # the opposite model
    before = predict(client, a, X[:5]).json()["predictions"]
    store = JsonFileStore(settings.model_store_dir)  # as another process would
    record = store.load(b)
    record["id"] = a
    store.save(record)
    after = predict(client, a, X[:5]).json()["predictions"]
    assert after == [1 - p for p in before]


def test_a_file_deleted_elsewhere_gives_404(client, settings):
    X, y = make_blobs()
    mid = train(client, X, y.tolist())["id"]
    assert predict(client, mid, X[:2]).status_code == 200
    (settings.model_store_dir / f"{mid}.json").unlink()
    r = predict(client, mid, X[:2])
    assert r.status_code == 404 and "no model" in r.json()["detail"]
    assert len(client._client._transport.app.state.service.cache) == 0


def test_least_recently_used_is_evicted(tmp_path):
    app = create_app(Settings(model_store_dir=tmp_path / "m", model_cache_size=2))
    client = ASGIClient(app)
    X, y = make_blobs()
    ids = [train(client, X, y.tolist())["id"] for _ in range(3)]
    cache = app.state.service.cache
    for mid in (ids[0], ids[1], ids[0], ids[2]):  # ids[1] is the least recently used
        assert predict(client, mid, X[:1]).status_code == 200
    assert cache.stats.evictions == 1 and len(cache) == 2
    assert predict(client, ids[0], X[:1]).status_code == 200
    assert cache.snapshot()["hits"] == 2  # ids[0] twice; ids[1] was dropped
    client.close()


def test_size_zero_disables_caching(tmp_path):
    store = JsonFileStore(tmp_path)
    builds = []
    cache = ModelCache(store, lambda r: builds.append(r["id"]) or r["id"], size=0)
    store.save({"id": "a" * 32, "x": 1})
    assert cache.get("a" * 32) == "a" * 32 and cache.get("a" * 32) == "a" * 32
    assert builds == ["a" * 32] * 2 and len(cache) == 0


def test_cache_over_a_store_without_fingerprints_always_reloads(tmp_path):
    class Plain(JsonFileStore):
        fingerprint = JsonFileStore.__bases__[0].fingerprint  # the interface's default
        load_with_fingerprint = JsonFileStore.__bases__[0].load_with_fingerprint

    store = Plain(tmp_path)
    store.save({"id": "b" * 32})
    cache = ModelCache(store, lambda r: r["id"], size=4)
    cache.get("b" * 32)
    cache.get("b" * 32)
    assert cache.stats.misses == 2
    store.delete("b" * 32)
    try:
        cache.get("b" * 32)
        raise AssertionError("deleted model still served")
    except ModelNotFound:
        pass
