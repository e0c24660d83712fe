"""POST /models/{ref}/evaluate: every number equal to scikit-learn's on the same rows (binary,
multi-class, a class-weighted model, a non-default positive label), unknown labels refused by
name, CSV bodies, and the evaluations kept with the model (issue 15)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as M  # noqa: N812
from sklearn.calibration import calibration_curve

from tests.asgi_client import ASGIClient
from tests.conftest import STORES, make_blobs, train

TOL = 1e-9


def predict(client: ASGIClient, model_id: str, X: np.ndarray, **extra: Any) -> dict:
    r = client.post("/predict", json={"model_id": model_id, "features": X.tolist(), **extra})
    assert r.status_code == 200, r.text
    return r.json()


def close(a: float, b: float) -> bool:
    return abs(a - b) <= TOL


def check_parity(ev: dict, y: list, P: np.ndarray, pred: list, classes: list, pos: Any) -> None:
    assert ev["n"] == len(y)
    assert close(ev["log_loss"], M.log_loss(y, P, labels=classes))
    assert close(ev["accuracy"], M.accuracy_score(y, pred))
    assert close(ev["balanced_accuracy"], M.balanced_accuracy_score(y, pred))
    cm = M.confusion_matrix(y, pred, labels=classes)
    assert ev["confusion_matrix"] == {"labels": classes, "matrix": cm.tolist()}
    p, r, f, s = M.precision_recall_fscore_support(y, pred, labels=classes, zero_division=0)
    for k, row in enumerate(ev["per_class"]):
        assert row["label"] == classes[k]
        assert close(row["precision"], p[k]) and close(row["recall"], r[k])
        assert close(row["f1"], f[k]) and row["support"] == s[k]
    if len(classes) == 2:
        k = classes.index(pos)
        yb = np.array([v == pos for v in y])
        assert ev["positive_label"] == pos
        assert close(ev["brier"], M.brier_score_loss(y, P[:, k], pos_label=pos))
        assert close(ev["roc_auc"], M.roc_auc_score(yb, P[:, k]))
        assert close(ev["average_precision"], M.average_precision_score(y, P[:, k], pos_label=pos))
        true, predicted = calibration_curve(yb, P[:, k], n_bins=10)
        assert np.allclose([b["fraction_positive"] for b in ev["calibration"]], true, atol=TOL)
        assert np.allclose([b["mean_predicted"] for b in ev["calibration"]], predicted, atol=TOL)
        fpr, tpr, _ = M.roc_curve(yb, P[:, k], drop_intermediate=False)
        curve = ev["roc_curves"][0]
        assert curve["label"] == pos
        if len(fpr) <= 101:  # not thinned: scikit-learn's points, (0, 0) first
            assert np.allclose(curve["fpr"], fpr, atol=TOL)
            assert np.allclose(curve["tpr"], tpr, atol=TOL)
    else:
        assert close(ev["brier"], M.brier_score_loss(y, P, labels=classes))
        assert close(ev["roc_auc"], M.roc_auc_score(y, P, multi_class="ovr", labels=classes))
        weighted = M.roc_auc_score(y, P, multi_class="ovr", average="weighted", labels=classes)
        assert close(ev["roc_auc_weighted"], weighted)
        Y = np.array([[v == c for c in classes] for v in y])
        assert close(ev["average_precision"], M.average_precision_score(Y, P))
        for k, c in enumerate(classes):
            bins = [b for b in ev["calibration"] if b["label"] == c]
            true, predicted = calibration_curve(Y[:, k], P[:, k], n_bins=10)
            assert np.allclose([b["fraction_positive"] for b in bins], true, atol=TOL)
            assert np.allclose([b["mean_predicted"] for b in bins], predicted, atol=TOL)


@pytest.mark.parametrize(
    ("k", "names", "params", "positive", "threshold"),
    [
        (2, ["no", "yes"], {}, None, None),
        (2, [3, 7], {"class_weight": "balanced"}, 3, 0.3),  # non-default positive label
        (3, ["a", "b", "c"], {}, None, None),
        (4, [0, 1, 2, 3], {"multiclass": "multinomial", "class_weight": {"0": 5}}, None, None),
    ],
)
def test_metrics_equal_scikit_learn(client, k, names, params, positive, threshold):
    X, yi = make_blobs(n=300, d=3, k=k, seed=k, spread=2.5)
    labels = [names[i] for i in yi]
    model = train(client, X[:200], labels[:200], params=params)
    body: dict[str, Any] = {"features": X[200:].tolist(), "labels": labels[200:]}
    if positive is not None:
        body["positive_label"] = positive
    if threshold is not None:
        body["threshold"] = threshold
    r = client.post(f"/models/{model['id']}/evaluate", json=body)
    assert r.status_code == 200, r.text
    ev = r.json()
    extra = {} if threshold is None else {"threshold": threshold}
    p = predict(client, model["id"], X[200:], **extra)
    P = np.array(p["probabilities"])
    check_parity(ev, labels[200:], P, p["predictions"], names, positive or names[-1])
    assert ev["model_id"] == model["id"] and ev["threshold"] == threshold

    kept = client.get(f"/models/{model['id']}/evaluations").json()
    assert kept["model_id"] == model["id"] and kept["items"] == [ev]


def test_unknown_labels_are_named(client):
    X, yi = make_blobs(n=60, k=2)
    model = train(client, X, [["cat", "dog"][i] for i in yi])
    r = client.post(
        f"/models/{model['id']}/evaluate",
        json={"features": X[:3].tolist(), "labels": ["cat", "cow", "emu"]},
    )
    assert r.status_code == 422
    assert "'cow', 'emu'" in r.json()["detail"] and "labels" in r.json()["detail"]
    r = client.post(
        f"/models/{model['id']}/evaluate",
        json={"features": X[:2].tolist(), "labels": ["cat", "dog"], "positive_label": "emu"},
    )
    assert r.status_code == 422 and "positive_label" in r.json()["detail"]
    assert client.get(f"/models/{model['id']}/evaluations").json()["items"] == []


@pytest.mark.parametrize("store_url", STORES, indirect=True)  # evaluations in PostgreSQL too
def test_csv_body_by_feature_names_and_the_newest_kept_first(client):
    X, yi = make_blobs(n=80, d=2, k=2, seed=3)
    labels = [int(v) for v in yi]
    model = train(client, X, labels, feature_names=["a", "b"], name="csv-eval")
    rows = zip(X.tolist(), labels, strict=True)
    lines = ["label,b,a"] + [f"{y},{x[1]!r},{x[0]!r}" for x, y in rows]
    r = client.post(
        "/models/csv-eval/evaluate?label=label&threshold=0.4",
        content="\n".join(lines).encode(),
        headers={"content-type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    via_json = client.post(
        "/models/csv-eval:1/evaluate",
        json={"features": X.tolist(), "labels": labels, "threshold": 0.4},
    ).json()
    ev = r.json()
    for key in ("log_loss", "accuracy", "roc_auc", "confusion_matrix", "per_class"):
        assert ev[key] == via_json[key]
    items = client.get("/models/csv-eval@latest/evaluations")
    assert items.status_code == 404  # 'latest' is not an alias
    items = client.get(f"/models/{model['id']}/evaluations").json()["items"]
    assert [i["evaluated_at"] for i in items] == [via_json["evaluated_at"], ev["evaluated_at"]]


def test_evaluations_of_a_deleted_model_are_gone(client, settings):
    X, yi = make_blobs(n=40, k=2)
    model = train(client, X, [int(v) for v in yi])
    url = f"/models/{model['id']}"
    r = client.post(f"{url}/evaluate", json={"features": X.tolist(), "labels": yi.tolist()})
    assert r.status_code == 200
    assert (settings.model_store_dir / "evaluations" / f"{model['id']}.json").exists()
    assert client.delete(url).status_code == 204
    assert client.get(f"{url}/evaluations").status_code == 404
    assert not (settings.model_store_dir / "evaluations" / f"{model['id']}.json").exists()


def test_csv_labels_of_a_model_trained_on_strings_that_look_like_numbers(client):
    X, yi = make_blobs(n=60, d=2, k=2, seed=8)
    labels = [["1", "2.0"][i] for i in yi]  # strings in JSON: CSV cells would read as numbers
    model = train(client, X, labels)
    lines = ["x0,x1,y"] + [f"{a!r},{b!r},{c}" for (a, b), c in zip(X.tolist(), labels, strict=True)]
    r = client.post(
        f"/models/{model['id']}/evaluate?positive_label=1",
        content="\n".join(lines).encode(),
        headers={"content-type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["positive_label"] == "1" and r.json()["n"] == 60
    missing = client.post(
        f"/models/{'0' * 32}/evaluate", content=b"", headers={"content-type": "text/csv"}
    )
    assert missing.status_code == 404  # before the (empty) body is looked at


def test_large_bodies_are_decoded_off_the_event_loop_with_the_same_answers(client):
    """Over 1 MiB: the fast decoder in a thread; a body it declines goes to the ordinary path
    in a child process (app.offload), whose errors come back as the same 422."""
    X, yi = make_blobs(n=20_000, d=3, k=2, seed=5)
    model = train(client, X[:200], yi[:200].tolist())
    body = {"features": X.tolist(), "labels": yi.tolist()}
    url = f"/models/{model['id']}/evaluate"
    r = client.post(url, json=body)
    assert len(r.request.content) > 1024 * 1024 and r.status_code == 200
    assert r.json()["n"] == 20_000
    # a duplicate key: the fast decoder declines; the ordinary path (in a child) answers
    dup = r.request.content[:-1] + b', "labels": ' + json.dumps(yi.tolist()).encode() + b"}"
    again = client.post(url, content=dup, headers={"content-type": "application/json"})
    assert again.status_code == 200 and again.json()["log_loss"] == r.json()["log_loss"]
    bad = r.request.content[:-1] + b', "extra": 1}'
    refused = client.post(url, content=bad, headers={"content-type": "application/json"})
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "extra"
