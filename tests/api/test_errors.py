"""Every class of bad input gets a 4xx whose message names what is wrong; nothing is stored."""

import pytest

from tests.conftest import train

GOOD = {"features": [[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 3.0]], "labels": [0, 0, 1, 1]}


def with_(**changes):
    return {**GOOD, **changes}


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (with_(features=[[0.0, 1.0], [1.0], [2.0, 2.0], [3.0, 3.0]]), 422, "features[1]"),
        (with_(features=[[0.0, 1.0], [1.0, "x"], [2.0, 2.0], [3.0, 3.0]]), 422, "features[1][1]"),
        (with_(features=[[0.0, 1.0], [1.0, True], [2.0, 2.0], [3.0, 3.0]]), 422, "features[1][1]"),
        (with_(features=[[0.0, 1.0], [1.0, None], [2.0, 2.0], [3.0, 3.0]]), 422, "features[1][1]"),
        (with_(features=[], labels=[]), 422, "features"),
        (with_(features=[[], [], [], []]), 422, "features[0]"),
        (with_(labels=[0, 0, 0, 0]), 422, "two distinct classes"),
        (with_(labels=[0, 1, 1]), 422, "labels"),
        (with_(labels=[0, "a", 1, 1]), 422, "labels"),
        (with_(labels=[0, True, 1, 1]), 422, "labels[1]"),
        (with_(labels=[0, 1.5, 1, 1]), 422, "labels[1]"),
        (with_(feature_names=["a"]), 422, "feature_names"),
        (with_(feature_names=["a", "a"]), 422, "feature_names"),
        (with_(params={"learning_rate": -0.1}), 422, "params.learning_rate"),
        (with_(params={"learning_rate": 0}), 422, "params.learning_rate"),
        (with_(params={"max_iter": 0}), 422, "params.max_iter"),
        (with_(params={"max_iter": "10"}), 422, "params.max_iter"),
        (with_(params={"solver": "magic"}), 422, "params.solver"),
        (with_(params={"l2": -1}), 422, "params.l2"),
        (with_(params={"standardize": 1}), 422, "params.standardize"),
        (with_(params={"unknown": 1}), 422, "params.unknown"),
        (with_(extra_field=1), 422, "extra_field"),
        ({"labels": [0, 1]}, 422, "features"),
        (with_(params={"max_iter": 10**9}), 422, "params.max_iter"),
        (with_(params={"solver": "gd", "learning_rate": 1e6, "l2": 1.0}), 422, "diverged"),
    ],
)
def test_bad_training_input(client, body, status, needle):
    r = client.post("/train", json=body)
    assert r.status_code == status, r.text
    assert needle in r.json()["detail"]
    assert client.get("/models").json()["total"] == 0  # nothing half-written


@pytest.mark.parametrize(
    ("raw", "status", "needle"),
    [
        (b'{"features": [[1.0, NaN]], "labels": [0]}', 422, "features[0][1]"),
        (b'{"features": [[1.0, Infinity]], "labels": [0]}', 422, "features[0][1]"),
        (b'{"features": [[1.0, 2.0]', 400, "malformed JSON"),
        (b"", 422, "body"),
        (b"[1, 2]", 422, "body"),
    ],
)
def test_malformed_bodies(client, raw, status, needle):
    r = client.post("/train", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert needle in r.json()["detail"]


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type(client, ctype):
    import json

    headers = {"content-type": ctype} if ctype else {}
    for path in ("/train", "/predict"):
        r = client.post(path, content=json.dumps(GOOD).encode(), headers=headers)
        assert r.status_code == 415, r.text
        assert "application/json" in r.json()["detail"]


def test_bad_prediction_input(client):
    model = train(client, GOOD["features"], GOOD["labels"])
    mid = model["id"]
    cases = [
        ({"model_id": mid, "features": [[1.0, 2.0, 3.0]]}, 422, "expects 2"),
        ({"model_id": mid, "features": [[1.0, 2.0], [1.0]]}, 422, "features[1]"),
        ({"model_id": mid, "features": [[1.0, "a"]]}, 422, "features[0][1]"),
        ({"model_id": mid, "features": []}, 422, "features"),
        ({"model_id": mid, "features": [[1.0, 2.0]], "threshold": 1.5}, 422, "threshold"),
        ({"model_id": "f" * 32, "features": [[1.0, 2.0]]}, 404, "no model"),
        ({"model_id": "../../etc/passwd", "features": [[1.0, 2.0]]}, 404, "not valid"),
        ({"features": [[1.0, 2.0]]}, 422, "model_id"),
    ]
    for body, status, needle in cases:
        r = client.post("/predict", json=body)
        assert r.status_code == status, (body, r.text)
        assert needle in r.json()["detail"], (body, r.text)


def test_threshold_is_refused_for_multiclass(client):
    model = train(
        client, [[0.0], [1.0], [2.0], [3.0], [4.0], [5.0]], ["a", "a", "b", "b", "c", "c"]
    )
    r = client.post(
        "/predict", json={"model_id": model["id"], "features": [[1.0]], "threshold": 0.3}
    )
    assert r.status_code == 422 and "binary" in r.json()["detail"]


@pytest.mark.parametrize("bad", ["..%2F..%2Fetc%2Fpasswd", "x" * 32, "F" * 32, "%00"])
def test_bad_ids_in_urls(client, bad):
    assert client.get(f"/models/{bad}").status_code == 404
    assert client.delete(f"/models/{bad}").status_code == 404


def test_limits_give_413(client, settings):
    settings.max_rows = 3
    r = client.post("/train", json=GOOD)
    assert r.status_code == 413 and "rows" in r.json()["detail"]


def test_bad_pagination(client):
    assert client.get("/models", params={"limit": 0}).status_code == 422
    assert client.get("/models", params={"offset": -1}).status_code == 422
    assert "limit" in client.get("/models", params={"limit": "x"}).json()["detail"]


def test_corrupt_model_is_a_clear_409_and_listing_survives(client, settings):
    good = train(client, GOOD["features"], GOOD["labels"])
    bad = train(client, GOOD["features"], GOOD["labels"])
    path = settings.model_store_dir / f"{bad['id']}.json"
    path.write_bytes(path.read_bytes()[:100])
    r = client.post("/predict", json={"model_id": bad["id"], "features": [[1.0, 2.0]]})
    assert r.status_code == 409 and "corrupt" in r.json()["detail"]
    listing = client.get("/models").json()
    assert [m["id"] for m in listing["items"]] == [good["id"]]
    assert listing["unreadable"] == [bad["id"]]
    ok = client.post("/predict", json={"model_id": good["id"], "features": [[1.0, 2.0]]})
    assert ok.status_code == 200


def test_a_vanished_model_folder_is_a_503_not_a_500(client, settings):
    """The folder removed or unmounted under a running service: health says so (orchestrators
    restart or alert), reads and writes answer 503 naming the cause, and all is well once the
    folder is back."""
    model = train(client, GOOD["features"], GOOD["labels"])
    folder = settings.model_store_dir
    aside = folder.with_name("moved-away")
    folder.rename(aside)
    try:
        for method, path, body in (
            ("GET", "/health", None),
            ("GET", "/models", None),
            ("POST", "/train", GOOD),
            ("GET", "/v2/health/ready", None),
        ):
            r = client.request(method, path, json=body)
            assert r.status_code == 503, (path, r.text)
            message = r.json()["error" if path.startswith("/v2") else "detail"]
            assert "model folder" in message or "could not be stored" in message, message
        assert not folder.exists()  # nothing recreated a half-empty folder behind the operator
    finally:
        aside.rename(folder)
    assert client.get("/health").json() == {"status": "ok", "models": 1}
    r = client.post("/predict", json={"model_id": model["id"], "features": [[1.0, 2.0]]})
    assert r.status_code == 200


@pytest.mark.parametrize("path", ["/predict", "/train"])
def test_the_list_of_errors_is_capped_whatever_the_input(client, path):
    """100,000 bad cells: a 422 of a few hundred bytes that counts the rest (an 8.8 MB body of
    400,000 bad rows once made a 149 MB error body)."""
    from app.errors import MAX_IN_MESSAGE, MAX_LISTED

    rows = [["x"] * 10] * 10_000
    body = {"model_id": "latest", "features": rows} if path == "/predict" else {"features": rows}
    if path == "/train":
        body["labels"] = [0, 1] * 5_000
    r = client.post(path, json=body)
    assert r.status_code == 422, r.text[:500]
    assert len(r.content) < 4096
    errors = r.json()["errors"]
    assert len(errors) == MAX_LISTED
    assert errors[0] == {"field": "features[0][0]", "message": "Input should be a valid number"}
    assert r.json()["detail"].endswith(f"; and {100_000 - MAX_IN_MESSAGE} more")
