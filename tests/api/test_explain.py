"""``"explain": true`` on POST /predict: the same answer whichever decoder reads the body (the
front fast path's small and large decoders, the ordinary path), the baseline plus each row's
contributions equal to the engine's score, terms named as the model names its columns; off by
default, with the answer unchanged (issue 15)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.main import create_app
from tests.asgi_client import ASGIClient
from tests.conftest import make_blobs, train


@pytest.fixture
def app(settings):
    return create_app(settings)


@pytest.fixture
def client(app):
    c = ASGIClient(app)
    yield c
    c.close()


def scores(client, model_id: str, X: np.ndarray) -> np.ndarray:
    """The engine's own scores (its one prediction implementation)."""
    return client.app.state.service.served(model_id).model.decision_function(X)


@pytest.fixture
def model(client):
    X, y = make_blobs(n=100, d=2, k=3, seed=2)
    return train(client, X, [int(v) for v in y], feature_names=["age", "income"])


def check(client, model_id: str, X: np.ndarray, answer: dict) -> None:
    Z = scores(client, model_id, X)
    C = np.array(answer["contributions"])
    base = np.array(answer["baseline"])
    assert C.shape == (len(X), Z.shape[1], 2)
    assert np.allclose(base[None, :] + C.sum(axis=2), Z, rtol=0, atol=1e-9)


def test_every_decoder_gives_the_same_explanation(client, model):
    X = make_blobs(n=200, d=2, k=3, seed=9)[0]
    small = {"model_id": model["id"], "features": X[:2].tolist(), "explain": True}
    r = client.post("/predict", json=small)
    assert r.status_code == 200, r.text
    assert r.json()["terms"] == ["age", "income"]
    check(client, model["id"], X[:2], r.json())
    large = {"model_id": model["id"], "features": X.tolist(), "explain": True}
    assert len(json.dumps(large)) > 4096  # simdjson, not the small decoder
    big = client.post("/predict", json=large).json()
    check(client, model["id"], X, big)
    assert big["contributions"][:2] == r.json()["contributions"]
    # a duplicate key: the fast decoders decline, the ordinary path answers the same
    body = json.dumps(small)[:-1] + ', "explain": true}'
    r2 = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert r2.status_code == 200 and r2.json() == r.json()


def test_off_by_default_and_refused_when_not_a_boolean_or_for_csv(client, model):
    body = {"model_id": model["id"], "features": [[1.0, 2.0]]}
    plain = client.post("/predict", json=body).json()
    assert set(plain) == {"model_id", "name", "version", "classes", "predictions", "probabilities"}
    assert client.post("/predict", json={**body, "explain": False}).json() == plain
    r = client.post("/predict", json={**body, "explain": "yes"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "explain"
    r = client.post("/predict", json={**body, "explain": True}, headers={"accept": "text/csv"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "explain"


def test_polynomial_terms_are_named_as_the_coefficients(client):
    X, y = make_blobs(n=80, d=2, k=2, seed=4)
    model = train(client, X, [int(v) for v in y], params={"polynomial_degree": 2})
    r = client.post(
        "/predict", json={"model_id": model["id"], "features": X[:3].tolist(), "explain": True}
    )
    detail = client.get(f"/models/{model['id']}").json()
    assert r.json()["terms"] == detail["parameters"]["polynomial"]["features"]
    check_poly = np.array(r.json()["contributions"])
    assert check_poly.shape == (3, 1, 5)
    Z = scores(client, model["id"], X[:3])
    total = np.array(r.json()["baseline"])[None, :] + check_poly.sum(axis=2)
    assert np.allclose(total, Z, rtol=0, atol=1e-9)
