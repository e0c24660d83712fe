"""Inputs the model never saw (issue 15): out-of-range values listed in ``warnings`` (at most
20, plus a count) without changing the prediction; the Prometheus counter of out-of-range values
and the PSI gauge over the last DRIFT_WINDOW rows, on a real server with two workers, after a
shifted batch; models stored before profiles existed get no warnings."""

from __future__ import annotations

import time

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from app.engine.profile import bin_counts, bins, profile, psi
from model_store import JsonFileStore, new_model_id
from tests.conftest import make_blobs, train
from tests.live_server import LiveServer

NAMES = ["a", "b", "c"]


def test_out_of_range_values_are_listed_and_the_answer_is_unchanged(client, settings):
    X, y = make_blobs(n=150, d=3, k=2, seed=1)
    model = train(client, X, y.tolist(), feature_names=NAMES)
    lo, hi = X.min(axis=0), X.max(axis=0)
    inside = client.post("/predict", json={"model_id": model["id"], "features": X[:5].tolist()})
    assert "warnings" not in inside.json()
    shifted = X[:30] + (hi - lo)  # every value of the first two columns beyond the maximum...
    shifted[:, 2] = X[:30, 2]  # ...the third left as it was
    body = {"model_id": model["id"], "features": shifted.tolist()}
    r = client.post("/predict", json=body).json()
    assert r["warnings_total"] == 60 and len(r["warnings"]) == 20
    assert r["warnings"][:3] == [
        {"row": 0, "feature": "a", "value": shifted[0, 0], "min": lo[0], "max": hi[0]},
        {"row": 0, "feature": "b", "value": shifted[0, 1], "min": lo[1], "max": hi[1]},
        {"row": 1, "feature": "a", "value": shifted[1, 0], "min": lo[0], "max": hi[0]},
    ]
    engine = client.app.state.service.served(model["id"]).model
    proba, index = engine.classify(shifted)
    assert r["probabilities"] == proba.tolist()
    assert r["predictions"] == engine.labels[index].tolist()
    # a large batch goes through NumPy rather than Python floats: the same warnings
    big = np.vstack([shifted] * 10)
    r2 = client.post("/predict", json={"model_id": model["id"], "features": big.tolist()}).json()
    assert r2["warnings_total"] == 600 and r2["warnings"] == r["warnings"]

    # a model stored before profiles existed: no warnings, the same answer otherwise
    store = JsonFileStore(settings.model_store_dir)
    record = store.load(model["id"])
    del record["inputs"], record["design_mean"]
    record["id"] = new_model_id()
    store.save(record)
    old = client.post("/predict", json={**body, "model_id": record["id"]}).json()
    assert "warnings" not in old and old["probabilities"] == r["probabilities"]
    explained = client.post("/predict", json={**body, "model_id": record["id"], "explain": True})
    assert explained.status_code == 200 and "warnings" not in explained.json()


def test_the_training_profile():
    X, _ = make_blobs(n=1000, d=2, seed=3)
    p = profile(X)
    assert np.array_equal(p.minimum, X.min(axis=0)) and np.allclose(p.std, X.std(axis=0))
    assert p.edges.shape == (2, 9) and np.allclose(p.fractions, 0.1)
    assert np.allclose(psi(p.fractions, bin_counts(X, p.edges) / len(X)), 0.0)
    # the metrics' broadcast binning and the training's searchsorted agree
    b = bins(X, p.edges)
    assert all(
        np.array_equal(np.bincount(b[:, j], minlength=10), bin_counts(X, p.edges)[j])
        for j in range(2)
    )
    # more rows than DECILE_ROWS: deciles from a sample, the range from every row
    big, _ = make_blobs(n=50_000, d=2, seed=4)
    q = profile(big)
    assert np.array_equal(q.maximum, big.max(axis=0)) and np.allclose(q.fractions, 0.1)
    assert np.all(np.abs(bin_counts(big, q.edges) / len(big) - 0.1) < 0.01)


def samples(text: str, name: str) -> dict[tuple[str, str], float]:
    return {
        (s.labels["model_id"], s.labels["feature"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def test_drift_metrics_after_a_shifted_batch(tmp_path):
    X, y = make_blobs(n=400, d=3, k=2, seed=2)
    env = {"DRIFT_WINDOW": "400", "METRICS_MAX_FEATURES": "2"}
    with (
        LiveServer(tmp_path / "models", env=env, args=["--workers", "2"]) as server,
        httpx.Client(base_url=server.url) as c,
    ):
        model = train(c, X, y.tolist(), feature_names=NAMES)["id"]
        for start in range(0, 400, 100):  # the training rows: the deciles' own shares
            rows = X[start : start + 100].tolist()
            assert c.post("/predict", json={"model_id": model, "features": rows}).is_success
        c.post("/predict", json={"model_id": model, "features": X[:1].tolist()})  # 1 row

        def scrape_until(done) -> str:
            """A scrape once ``done(text)``: each worker writes its counts every second, and a
            scrape reaches one of the two (the other's are read from its file)."""
            deadline = time.monotonic() + 10
            while True:
                text = c.get("/metrics").text
                if done(text) or time.monotonic() > deadline:
                    return text
                time.sleep(0.1)

        def mine(text: str, name: str) -> dict[str, float]:
            return {k[1]: v for k, v in samples(text, name).items() if k[0] == model}

        text = scrape_until(lambda t: len(mine(t, "logreg_input_psi")) == 2)
        before = mine(text, "logreg_input_psi")
        assert set(before) == {"a", "b"}  # METRICS_MAX_FEATURES
        assert before["a"] < 0.05 and before["b"] < 0.05
        assert not mine(text, "logreg_out_of_range_values_total")

        shifted = X + 3 * X.std(axis=0)
        for _ in range(2):  # 800 rows, more than the window: every process sees only these
            for start in range(0, 400, 100):
                rows = shifted[start : start + 100].tolist()
                c.post("/predict", json={"model_id": model, "features": rows})
        beyond = 2 * (shifted > X.max(axis=0)).sum(axis=0)
        text = scrape_until(
            lambda t: sum(mine(t, "logreg_out_of_range_values_total").values()) == beyond.sum()
        )
        counted = mine(text, "logreg_out_of_range_values_total")
        assert counted == {"a": beyond[0], "b": beyond[1], "_other": beyond[2]}  # c: no label
        after = mine(text, "logreg_input_psi")
        assert after["a"] > 1.0 and after["b"] > 1.0
