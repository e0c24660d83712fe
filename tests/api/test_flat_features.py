"""Issue 12, item 15: ``"features": [1, 2, 3]`` (one flat list instead of a list of rows) is one
mistake, said once, on every path that reads ``features``."""

from __future__ import annotations

import pytest

from tests.conftest import train

GOOD = {"features": [[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 3.0]], "labels": [0, 0, 1, 1]}
FLAT = "features: must be a list of rows, e.g. [[1, 2, 3]]"


def said_once(r):
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["detail"] == FLAT
    assert body["errors"] == [{"field": "features", "message": FLAT.removeprefix("features: ")}]


@pytest.mark.parametrize("flat", [[1, 2, 3], [1.5, "x", None], list(range(3000))])
def test_a_flat_features_list_is_one_error_on_train(client, flat):
    said_once(client.post("/train", json={"features": flat, "labels": [0, 1, 0]}))


@pytest.mark.parametrize("flat", [[1, 2, 3], list(range(3000))])
def test_a_flat_features_list_is_one_error_on_predict(client, flat):
    model = train(client, GOOD["features"], GOOD["labels"])
    said_once(client.post("/predict", json={"model_id": model["id"], "features": flat}))
    said_once(client.post("/predict", json={"model_id": "latest", "features": flat}))


def test_rows_that_are_not_lists_among_rows_are_still_named_one_by_one(client):
    r = client.post("/train", json={"features": [[1.0], 2, 3], "labels": [0, 1, 0]})
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["features[1]", "features[2]"]
