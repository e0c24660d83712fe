"""Issue 12, item 19: a model that did not converge is kept (201) but says so in words: the
training summary's ``warnings``, in the answer to ``POST /train`` and on ``GET /models`` and
``GET /models/{id}``, stored with the model. Models stored before the field have none."""

from __future__ import annotations

import numpy as np
import pytest

from app.config import Settings
from app.main import create_app
from tests.asgi_client import ASGIClient
from tests.conftest import make_blobs

X, Y = make_blobs(n=60, d=3, seed=3, spread=2.0)
BODY = {"features": X.tolist(), "labels": Y.tolist()}


def trained(client, **params):
    r = client.post("/train", json={**BODY, "params": params})
    assert r.status_code == 201, r.text
    return r.json()


def shown_everywhere(client, model, warnings):
    assert model["training"]["warnings"] == warnings
    assert client.get(f"/models/{model['id']}").json()["training"]["warnings"] == warnings
    listed = {m["id"]: m for m in client.get("/models").json()["items"]}
    assert listed[model["id"]]["training"]["warnings"] == warnings


@pytest.mark.parametrize("solver", ["newton", "lbfgs", "gd"])
def test_max_iter_reached_is_a_warning(client, solver):
    model = trained(client, solver=solver, max_iter=1, tol=0)
    assert model["training"]["converged"] is False
    shown_everywhere(
        client, model, ["did not converge in 1 iteration; raise max_iter or use solver auto"]
    )


def test_with_solver_auto_the_advice_is_max_iter_alone(client):
    model = trained(client, max_iter=2, tol=0)
    shown_everywhere(client, model, ["did not converge in 2 iterations; raise max_iter"])


def test_a_converged_model_has_no_warnings(client):
    model = trained(client)
    assert model["training"]["converged"] is True
    shown_everywhere(client, model, [])


@pytest.fixture
def budgeted(tmp_path):
    client = ASGIClient(create_app(Settings(model_store_dir=tmp_path, train_time_budget=0.05)))
    yield client
    client.close()


def test_the_time_budget_is_named(budgeted):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5000, 20))
    y = (X[:, 0] + rng.normal(size=5000) > 0).astype(int).tolist()
    r = budgeted.post(
        "/train",
        json={"features": X.tolist(), "labels": y, "params": {"max_iter": 100_000, "tol": 0}},
    )
    assert r.status_code == 201, r.text
    training = r.json()["training"]
    assert training["converged"] is False
    [warning] = training["warnings"]
    assert warning.startswith("did not converge: stopped by the time budget")
    assert "TRAIN_TIME_BUDGET" in warning


def test_a_model_stored_before_warnings_existed_shows_none(client):
    model = trained(client, max_iter=1, tol=0)
    store = client._client._transport.app.state.service.store
    record = store.load(model["id"])
    del record["training"]["warnings"]
    store.save(record)
    assert client.get(f"/models/{model['id']}").json()["training"]["warnings"] == []
    assert client.get("/models").json()["items"][0]["training"]["warnings"] == []
