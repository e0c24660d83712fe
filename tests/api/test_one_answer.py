"""Every front end gives a row one answer: JSON ``/predict`` (the fast path), CSV ``/predict`` and
``/v2`` infer, the row alone or inside any batch: the same status and, when it is scored, the same
probabilities to the last bit. And ``latest`` names the same model on each of them."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from app.config import Settings
from app.main import create_app
from tests.asgi_client import ASGIClient
from tests.conftest import make_blobs

VALUES = st.one_of(
    st.floats(-1e3, 1e3, allow_nan=False),
    st.floats(-1.7e308, 1.7e308, allow_nan=False, allow_infinity=False),
)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    folder = tmp_path_factory.mktemp("one-answer") / "models"
    client = ASGIClient(create_app(Settings(model_store_dir=folder)))
    models = {}
    for name, k, multiclass in (("binary", 2, "ovr"), ("multinomial", 3, "multinomial")):
        X, y = make_blobs(n=120, d=3, k=k, seed=11)
        body = {
            "features": X.tolist(),
            "labels": [f"c{v}" for v in y],
            "params": {"multiclass": multiclass},
        }
        r = client.post("/train", json=body)
        assert r.status_code == 201, r.text
        models[name] = r.json()["id"]
    yield client, models
    client.close()


def via_json(client, model_id, X):
    body = orjson.dumps({"model_id": model_id, "features": X.tolist()})
    return client.post("/predict", content=body, headers={"content-type": "application/json"})


def via_csv(client, model_id, X):
    text = "x0,x1,x2\n" + "".join(",".join(repr(v) for v in row) + "\n" for row in X.tolist())
    return client.post(
        f"/predict?model_id={model_id}", content=text, headers={"content-type": "text/csv"}
    )


def via_v2(client, model_id, X):
    tensor = {"name": "features", "shape": list(X.shape), "datatype": "FP64"}
    body = {"inputs": [{**tensor, "data": X.ravel().tolist()}]}
    return client.post(f"/v2/models/{model_id}/infer", content=orjson.dumps(body))


def outcome(r):
    """``(True, probabilities, labels)`` or ``(False, the error's text)``."""
    body = r.json()
    if r.status_code != 200:
        return (False, body.get("detail") or body.get("error"))
    if "outputs" in body:  # /v2
        out = {o["name"]: o for o in body["outputs"]}
        P = np.array(out["predict_proba"]["data"]).reshape(out["predict_proba"]["shape"])
        return (True, P, out["predict"]["data"])
    return (True, np.array(body["probabilities"]), body["predictions"])


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
@pytest.mark.parametrize("kind", ["binary", "multinomial"])
def test_a_row_gets_one_answer_alone_in_a_batch_and_on_every_front_end(service, kind, data):
    client, models = service
    model_id = models[kind]
    n = data.draw(st.integers(1, 20), label="rows")
    X = data.draw(arrays(np.float64, (n, 3), elements=VALUES), label="X")
    fronts = (via_json, via_csv, via_v2)
    alone = [[outcome(front(client, model_id, X[i : i + 1])) for front in fronts] for i in range(n)]
    for i, answers in enumerate(alone):
        ok = answers[0][0]
        assert all(a[0] == ok for a in answers), (i, answers)
        if ok:  # the three front ends agree to the last bit
            assert all(a[1].tobytes() == answers[0][1].tobytes() for a in answers)
            assert all(a[2] == answers[0][2] for a in answers)
        else:
            assert all("features[0]" in a[1] and "too large" in a[1] for a in answers)
    refused = [i for i, answers in enumerate(alone) if not answers[0][0]]
    for front in fronts:
        batch = outcome(front(client, model_id, X))
        if refused:
            assert not batch[0] and f"features[{refused[0]}]" in batch[1], batch
            continue
        assert batch[0], batch
        for i in range(n):
            assert batch[1][i].tobytes() == alone[i][0][1][0].tobytes()
            assert batch[2][i] == alone[i][0][2][0]


def test_latest_names_the_newest_model_on_every_front_end(service):
    client, models = service
    newest = models["multinomial"]  # trained last
    X = np.array([[0.5, -1.0, 2.0]])
    for front in (via_json, via_csv):
        r = front(client, "latest", X)
        assert r.status_code == 200 and r.json()["model_id"] == newest
    r = via_v2(client, "latest", X)
    assert r.status_code == 200 and r.json()["model_name"] == newest
    assert client.get("/v2/models/latest").json()["name"] == newest
    assert client.get("/v2/models/latest/ready").json() == {"name": newest, "ready": True}
    assert client.get("/models/latest").json()["id"] == newest
