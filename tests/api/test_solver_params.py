"""Solvers, multi-class modes, regularisation and weights through HTTP."""

import numpy as np
import pytest

from app.engine import FitParams, fit
from app.main import create_app
from tests.asgi_client import ASGIClient
from tests.conftest import make_blobs, train


def test_multinomial_model_is_stored_and_predicts_the_softmax(client, settings):
    X, y = make_blobs(n=150, d=3, k=3, seed=2, spread=2.0)
    names = np.array(["a", "b", "c"])[y].tolist()
    params = {"solver": "newton", "multiclass": "multinomial", "l2": 0.01, "tol": 1e-10}
    model = train(client, X, names, params=params)
    assert model["training"]["solver"] == "newton" and model["training"]["converged"]
    detail = client.get(f"/models/{model['id']}").json()
    assert detail["parameters"]["multiclass"] == "multinomial"
    assert detail["params"]["multiclass"] == "multinomial"
    expected = fit(X, names, params=FitParams(**params)).model.predict_proba(X[:7])
    body = {"model_id": model["id"], "features": X[:7].tolist()}
    P = np.array(client.post("/predict", json=body).json()["probabilities"])
    np.testing.assert_allclose(P, expected, rtol=1e-12)
    # a fresh app over the same folder reads the model back as multinomial
    other = ASGIClient(create_app(settings))
    try:
        again = np.array(other.post("/predict", json=body).json()["probabilities"])
    finally:
        other.close()
    np.testing.assert_array_equal(again, P)


def test_l1_model_has_exact_zeros(client):
    X, y = make_blobs(n=200, d=6, seed=3, spread=3.0)
    model = train(client, X, y.tolist(), params={"l1": 0.05, "l2": 0.0})
    assert model["training"]["solver"] == "proximal-newton"
    coef = client.get(f"/models/{model['id']}").json()["parameters"]["coef"][0]
    assert 0.0 in coef and any(c != 0.0 for c in coef)


def test_class_and_sample_weights_change_the_model_as_the_engine_does(client):
    X, y = make_blobs(n=120, d=2, seed=4, spread=2.5)
    labels = np.array(["no", "yes"])[y].tolist()
    sw = np.random.default_rng(0).uniform(0.0, 2.0, size=len(y)).round(3).tolist()
    params = {"class_weight": {"yes": 3.0}, "tol": 1e-10}
    model = train(client, X, labels, params=params, sample_weight=sw)
    coef = client.get(f"/models/{model['id']}").json()["parameters"]["coef"]
    ref = fit(X, labels, params=FitParams(**params), sample_weight=sw).model.coef
    np.testing.assert_allclose(coef, ref, rtol=1e-12)
    plain = client.get(f"/models/{train(client, X, labels)['id']}").json()["parameters"]["coef"]
    assert not np.allclose(coef, plain)
    balanced = train(client, X, labels, params={"class_weight": "balanced"})
    assert balanced["training"]["converged"]


def test_integer_labels_take_class_weight_keys_as_strings(client):
    X, y = make_blobs(n=90, d=2, k=3, seed=5)
    model = train(client, X, y.tolist(), params={"class_weight": {"0": 2.0, "2": 0.5}})
    assert model["training"]["converged"]


GOOD = {"features": [[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 3.0]], "labels": [0, 0, 1, 1]}


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"sample_weight": [1.0, 1.0, 1.0]}, "sample_weight: has 3 entries for 4 rows"),
        ({"sample_weight": [1.0, 1.0, -1.0, 1.0]}, "sample_weight[2]"),
        ({"sample_weight": [1.0, 1.0, "x", 1.0]}, "sample_weight[2]"),
        ({"sample_weight": [0, 0, 0, 0]}, "sample_weight: all weights are zero"),
        ({"params": {"solver": "lbfgs", "l1": 0.1}}, "params.solver"),
        ({"params": {"solver": "sgd"}}, "params.solver"),
        ({"params": {"multiclass": "softmax"}}, "params.multiclass"),
        ({"params": {"l1": -0.1}}, "params.l1"),
        ({"params": {"class_weight": "auto"}}, "params.class_weight"),
        ({"params": {"class_weight": {"7": 1.0}}}, "params.class_weight.7"),
        ({"params": {"class_weight": {"0": -1.0}}}, "params.class_weight"),
        ({"params": {"learning_rate": 0.1, "solver": "lbfgs"}}, "params.learning_rate"),
    ],
)
def test_bad_solver_params_and_weights_are_named(client, extra, needle):
    r = client.post("/train", json={**GOOD, **extra})
    assert r.status_code == 422, r.text
    assert needle in r.json()["detail"]
    assert client.get("/models").json()["total"] == 0


@pytest.mark.parametrize("multiclass", ["multinomial", "ovr"])
@pytest.mark.parametrize("k", [2, 3])
def test_a_separable_fit_never_reports_a_negative_loss(client, multiclass, k):
    """Issue 12, item 4: a separable multinomial fit reported ``loss: -2.5e-14`` (the sum of
    the rows' log-sum-exp minus the sum of their true-class scores cancelled). The reported
    loss is the mean cross-entropy of the model's own probabilities."""
    X = [[float(i)] for i in range(6)]
    y = [i * k // 6 for i in range(6)]
    params = {"solver": "newton", "multiclass": multiclass, "l2": 0, "tol": 0, "max_iter": 60}
    model = train(client, X, y, params=params)
    loss = model["training"]["loss"]
    assert loss >= 0
    r = client.post("/predict", json={"model_id": model["id"], "features": X})
    P = np.array(r.json()["probabilities"])
    if multiclass == "ovr" and k > 2:
        return  # one-vs-all's loss is the sum of K binary losses, not softmax's
    reference = -np.mean(np.log(P[np.arange(6), y]))
    assert abs(loss - reference) <= 1e-15


@pytest.mark.parametrize("multiclass", ["multinomial", "ovr"])
def test_lbfgs_to_tol_0_on_separable_data_stops_instead_of_a_500(client, multiclass):
    """Found while reproducing issue 12, item 4: once the gradient's changes underflow, a
    curvature pair with ``y . y == 0`` was kept and L-BFGS divided by it (ZeroDivisionError)."""
    X = [[float(i)] for i in range(6)]
    params = {"solver": "lbfgs", "multiclass": multiclass, "l2": 0, "tol": 0}
    model = train(client, X, [0, 0, 0, 1, 1, 1], params=params)
    assert model["training"]["accuracy"] == 1.0 and model["training"]["loss"] >= 0
