"""``params.polynomial_degree`` and the statistics of ``GET /models/{id}``, over HTTP."""

import numpy as np
import pytest
import statsmodels.api as sm
from sklearn.datasets import load_breast_cancer, load_iris

from app.config import Settings
from app.main import create_app
from app.records import STATISTICS_NOT_STORED
from app.schemas import ModelDetail
from model_store.json_store import JsonFileStore
from tests.asgi_client import ASGIClient
from tests.conftest import train
from tests.engine.test_polynomial import make_circles
from tests.engine.test_statistics import CANCER_COLUMNS


def accuracy(client, model_id, X, y) -> float:
    r = client.post("/predict", json={"model_id": model_id, "features": X.tolist()})
    assert r.status_code == 200, r.text
    return float(np.mean(np.array(r.json()["predictions"]) == np.asarray(y)))


def test_degree_two_separates_circles_through_the_api(client):
    X, y = make_circles(seed=0)
    X_test, y_test = make_circles(seed=1)
    linear = train(client, X, y.tolist())
    quadratic = train(client, X, y.tolist(), params={"polynomial_degree": 2})
    assert quadratic["n_features"] == 2
    assert accuracy(client, linear["id"], X_test, y_test) <= 0.7
    assert accuracy(client, quadratic["id"], X_test, y_test) >= 0.97

    detail = client.get(f"/models/{quadratic['id']}").json()
    assert detail["params"]["polynomial_degree"] == 2
    poly = detail["parameters"]["polynomial"]
    assert poly["degree"] == 2
    assert poly["features"] == ["x0", "x1", "x0^2", "x0 x1", "x1^2"]
    assert len(detail["parameters"]["coef"][0]) == len(detail["parameters"]["mean"]) == 5
    assert len(poly["mean"]) == len(poly["scale"]) == 2
    assert client.get(f"/models/{linear['id']}").json()["parameters"]["polynomial"] is None

    r = client.post("/predict", json={"model_id": quadratic["id"], "features": [[1, 2, 3, 4, 5]]})
    assert r.status_code == 422 and "expects 2" in r.json()["detail"]


def test_polynomial_predictions_are_bit_identical_after_a_store_round_trip(settings):
    X, y = make_circles(n=200, seed=2)
    first = ASGIClient(create_app(settings))
    model = train(
        first, X, y.tolist(), params={"polynomial_degree": 3}, feature_names=["east", "north"]
    )
    before = first.post("/predict", json={"model_id": model["id"], "features": X.tolist()}).json()
    first.close()
    second = ASGIClient(create_app(settings))  # a fresh app: the model comes from its JSON file
    after = second.post("/predict", json={"model_id": model["id"], "features": X.tolist()}).json()
    features = second.get(f"/models/{model['id']}").json()["parameters"]["polynomial"]["features"]
    second.close()
    assert [p.hex() for row in before["probabilities"] for p in row] == [
        p.hex() for row in after["probabilities"] for p in row
    ]
    assert features[-4:] == ["east^3", "east^2 north", "east north^2", "north^3"]


def test_models_stored_before_polynomials_and_statistics_still_load(settings, client):
    X, y = make_circles(n=100, seed=3)
    model = train(client, X, y.tolist())
    before = client.post("/predict", json={"model_id": model["id"], "features": X.tolist()}).json()
    store = JsonFileStore(settings.model_store_dir)
    record = store.load(model["id"])
    for key in ("statistics", "statistics_note"):
        del record[key]
    del record["model"]["polynomial"]
    del record["params"]["polynomial_degree"]
    store.save(record)  # the old shape, with a valid checksum

    after = client.post("/predict", json={"model_id": model["id"], "features": X.tolist()}).json()
    assert after == before
    detail = client.get(f"/models/{model['id']}").json()
    assert detail["params"]["polynomial_degree"] == 1
    assert detail["parameters"]["polynomial"] is None
    assert detail["statistics"] is None and detail["statistics_note"] == STATISTICS_NOT_STORED


@pytest.mark.parametrize("degree", [0, 11, "2", 2.5, True])
def test_bad_degree_is_a_422_naming_the_field(client, degree):
    X, y = make_circles(n=20, seed=4)
    body = {"features": X.tolist(), "labels": y.tolist(), "params": {"polynomial_degree": degree}}
    r = client.post("/train", json=body)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "params.polynomial_degree"


def test_too_many_expanded_columns_is_a_413_naming_the_field(tmp_path):
    client = ASGIClient(create_app(Settings(model_store_dir=tmp_path, max_features=50)))
    X = np.random.default_rng(5).normal(size=(30, 8))
    y = [0, 1] * 15
    ok = client.post("/train", json={"features": X.tolist(), "labels": y})  # 8 columns: fine
    assert ok.status_code == 201
    r = client.post(
        "/train",
        json={"features": X.tolist(), "labels": y, "params": {"polynomial_degree": 2}},
    )  # C(10, 2) - 1 = 44 columns: fine
    assert r.status_code == 201
    r = client.post(
        "/train",
        json={"features": X.tolist(), "labels": y, "params": {"polynomial_degree": 3}},
    )  # C(11, 3) - 1 = 164 columns
    assert r.status_code == 413
    detail = r.json()["detail"]
    assert detail.startswith("params.polynomial_degree:") and "164 columns" in detail
    assert "limit of 50" in detail
    assert client.get("/models").json()["total"] == 2  # nothing stored for the refused one
    client.close()


def test_statistics_through_the_api_match_statsmodels(client):
    data = load_breast_cancer()
    X, y = data.data[:, CANCER_COLUMNS], data.target
    names = [str(data.feature_names[c]) for c in CANCER_COLUMNS]
    model = train(
        client,
        X,
        y.tolist(),
        feature_names=names,
        params={"l2": 0, "max_iter": 50_000, "tol": 1e-6},
    )
    detail = client.get(f"/models/{model['id']}").json()
    assert detail["statistics_note"] is None
    table = detail["statistics"]
    rows = table["coefficients"]
    assert [r["name"] for r in rows] == ["intercept", *names]

    res = sm.Logit(y.astype(float), sm.add_constant(X)).fit(disp=0)
    ci = np.asarray(res.conf_int())
    for column, ref in [
        ("coef", res.params),
        ("std_err", res.bse),
        ("z", res.tvalues),
        ("p_value", res.pvalues),
        ("ci_lower", ci[:, 0]),
        ("ci_upper", ci[:, 1]),
        ("odds_ratio", np.exp(res.params)),
    ]:
        np.testing.assert_allclose([r[column] for r in rows], ref, rtol=1e-4, err_msg=column)
    assert table["log_likelihood"] == pytest.approx(res.llf, rel=1e-4)
    assert table["n_samples"] == len(y)


def test_statistics_notes_through_the_api(client):
    X, y = make_circles(n=100, seed=6)
    penalised = train(client, X, y.tolist())  # the default l2 = 1e-4
    detail = client.get(f"/models/{penalised['id']}").json()
    assert detail["statistics"] is None
    assert detail["statistics_note"] == (
        "penalised model (l2=0.0001): statistics need l2=0 and no l1"
    )

    Xi, yi = load_iris(return_X_y=True)
    multi = train(client, Xi, yi.tolist(), params={"l2": 0})
    note = client.get(f"/models/{multi['id']}").json()["statistics_note"]
    assert note.startswith("multi-class model")

    # the circles are separable once squared: no finite unpenalised optimum
    separated = train(client, X, y.tolist(), params={"l2": 0, "polynomial_degree": 2})
    note = client.get(f"/models/{separated['id']}").json()["statistics_note"]
    assert note.startswith("singular Hessian (perfect separation or collinear features)")


def test_the_docs_statistics_example_trains_and_has_statistics(client):
    spec = client.get("/openapi.json").json()
    examples = spec["components"]["schemas"]["TrainRequest"]["examples"]
    by_name = {e["name"]: e for e in examples}
    r = client.post("/train", json=by_name["exam-pass-with-statistics"])
    assert r.status_code == 201, r.text
    detail = client.get(f"/models/{r.json()['id']}").json()
    example = spec["components"]["schemas"]["ModelDetail"]["examples"][0]
    ModelDetail.model_validate(example)  # the docs page shows a valid answer
    shown = example["statistics"]
    assert detail["statistics"]["n_samples"] == shown["n_samples"]
    for ours, doc in zip(detail["statistics"]["coefficients"], shown["coefficients"], strict=True):
        assert ours["name"] == doc["name"]
        for key in ("coef", "std_err", "p_value"):
            assert ours[key] == pytest.approx(doc[key], abs=1e-6)
    r = client.post("/train", json=by_name["rings"])
    assert r.status_code == 201 and r.json()["training"]["accuracy"] == 1.0
