import numpy as np
from sklearn.datasets import load_digits, load_iris
from sklearn.linear_model import LogisticRegression

from app.main import create_app
from tests.asgi_client import ASGIClient
from tests.conftest import make_blobs, train


def test_train_answers_201_location_and_summary(client, blobs):
    X, y = blobs
    r = client.post(
        "/train",
        json={
            "features": X.tolist(),
            "labels": y.tolist(),
            "feature_names": ["a", "b", "c"],
            "name": "blobs",
        },
    )
    assert r.status_code == 201
    body = r.json()
    assert r.headers["location"] == f"/models/{body['id']}"
    assert body["name"] == "blobs" and body["classes"] == [0, 1]
    assert body["n_features"] == 3 and body["feature_names"] == ["a", "b", "c"]
    t = body["training"]
    assert set(t) == {
        "solver",
        "iterations",
        "converged",
        "loss",
        "accuracy",
        "seconds",
        "n_samples",
        "warnings",
    }
    assert t["converged"] is True and t["warnings"] == []
    reference = LogisticRegression().fit(X, y).score(X, y)
    assert t["n_samples"] == 200 and abs(t["accuracy"] - reference) <= 0.02


def test_predict_gives_labels_and_probabilities_in_class_order(client, blobs):
    X, y = blobs
    names = np.array(["no", "yes"])[y].tolist()
    model = train(client, X, names)
    r = client.post("/predict", json={"model_id": model["id"], "features": X[:10].tolist()})
    assert r.status_code == 200
    body = r.json()
    assert body["classes"] == ["no", "yes"]
    P = np.array(body["probabilities"])
    assert P.shape == (10, 2)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    assert body["predictions"] == [["no", "yes"][int(p >= 0.5)] for p in P[:, 1]]


def test_threshold_changes_binary_predictions(client, blobs):
    X, y = blobs
    model = train(client, X, y.tolist())
    rows = X.tolist()
    low = client.post(
        "/predict", json={"model_id": model["id"], "features": rows, "threshold": 0.01}
    )
    high = client.post(
        "/predict", json={"model_id": model["id"], "features": rows, "threshold": 0.99}
    )
    assert sum(low.json()["predictions"]) > sum(high.json()["predictions"])


def test_list_get_delete_lifecycle(client, blobs):
    X, y = blobs
    ids = [train(client, X, y.tolist(), name=f"m{i}")["id"] for i in range(3)]
    listing = client.get("/models", params={"limit": 2}).json()
    assert listing["total"] == 3
    assert [m["id"] for m in listing["items"]] == ids[::-1][:2]
    second = client.get("/models", params={"limit": 2, "offset": 2}).json()
    assert [m["id"] for m in second["items"]] == [ids[0]]

    detail = client.get(f"/models/{ids[1]}").json()
    assert detail["name"] == "m1"
    assert detail["parameters"]["multiclass"] == "binary"
    assert len(detail["parameters"]["coef"][0]) == 3
    assert detail["params"]["solver"] == "auto"
    assert 1 <= len(detail["loss_history"]) <= 100

    assert client.delete(f"/models/{ids[1]}").status_code == 204
    for _ in range(2):
        assert client.get(f"/models/{ids[1]}").status_code == 404
        assert client.delete(f"/models/{ids[1]}").status_code == 404
        r = client.post("/predict", json={"model_id": ids[1], "features": [[0, 0, 0]]})
        assert r.status_code == 404
    assert client.get("/models").json()["total"] == 2


def test_predictions_are_bit_identical_after_a_restart(settings, blobs):
    X, y = make_blobs(k=4, seed=11)
    first = ASGIClient(create_app(settings))
    model = train(first, X, y.tolist())
    before = first.post("/predict", json={"model_id": model["id"], "features": X.tolist()}).json()
    first.close()
    second = ASGIClient(create_app(settings))
    after = second.post("/predict", json={"model_id": model["id"], "features": X.tolist()}).json()
    second.close()
    assert before == after
    assert [p.hex() for row in before["probabilities"] for p in row] == [
        p.hex() for row in after["probabilities"] for p in row
    ]


def test_tutorial_digits_is_it_a_two_through_the_api(client):
    X, y = load_digits(return_X_y=True)
    labels = (y == 2).astype(int).tolist()
    model = train(client, X[:-797], labels[:-797])
    r = client.post("/predict", json={"model_id": model["id"], "features": X[-797:].tolist()})
    held_out = np.mean(np.array(r.json()["predictions"]) == np.array(labels[-797:]))
    assert held_out >= 0.95


def test_three_class_iris_one_vs_all_through_the_api(client):
    X, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y].tolist()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    tr, te = order[:100], order[100:]
    model = train(client, X[tr], [names[i] for i in tr], params={"max_iter": 3000})
    assert model["classes"] == ["setosa", "versicolor", "virginica"]
    r = client.post("/predict", json={"model_id": model["id"], "features": X[te].tolist()}).json()
    P = np.array(r["probabilities"])
    assert P.shape == (50, 3)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    assert np.mean(np.array(r["predictions"]) == np.array([names[i] for i in te])) >= 0.9


def test_health_and_docs(client):
    assert client.get("/health").json() == {"status": "ok", "models": 0}
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path, method in [
        ("/train", "post"),
        ("/predict", "post"),
        ("/models", "get"),
        ("/models/{model_id}", "get"),
        ("/models/{model_id}", "delete"),
        ("/health", "get"),
    ]:
        assert method in paths[path], (path, method)
        assert paths[path][method].get("description") or paths[path][method].get("summary")
    schemas = spec["components"]["schemas"]
    assert schemas["TrainRequest"]["examples"][0]["labels"]
    assert schemas["PredictRequest"]["examples"][0]["features"]


def test_the_docs_example_trains(client):
    spec = client.get("/openapi.json").json()
    example = spec["components"]["schemas"]["TrainRequest"]["examples"][0]
    r = client.post("/train", json=example)
    assert r.status_code == 201, r.text
    assert r.json()["training"]["accuracy"] >= 0.75
