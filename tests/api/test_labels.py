"""Class labels through every way in (JSON, the training child, CSV): kept exactly as sent and
answered the same way by every prediction path, or refused with a 422 naming the label.
Never merged with another label, never a 500 (issue 12, items 1, 2 and 14)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from app.config import Settings
from app.main import create_app
from tests.asgi_client import ASGIClient

CSV = {"content-type": "text/csv"}
WAYS = ["json", "child", "csv"]


@pytest.fixture(scope="module")
def child_client(tmp_path_factory):
    """Every training in a spawned child process (TRAIN_INLINE_MAX_BYTES=0); one pool for all."""
    folder = tmp_path_factory.mktemp("labels-child") / "m"
    app = create_app(Settings(model_store_dir=folder, train_inline_max_bytes=0))
    client = ASGIClient(app)
    yield client
    app.state.trainer.shutdown()
    client.close()


class Way:
    """One way to send a training set: a JSON body trained in a thread, the same body trained
    in the child process, or a CSV body (labels written as text, in the last column)."""

    def __init__(self, name: str, client: ASGIClient) -> None:
        self.name = name
        self.client = client

    def train(
        self,
        X: list[list[float]],
        labels: list[Any],
        *,
        params: dict[str, Any] | None = None,
        csv_labels: list[str] | None = None,
    ) -> httpx.Response:
        if self.name != "csv":
            body: dict[str, Any] = {"features": X, "labels": labels}
            if params:
                body["params"] = params
            return self.client.post("/train", json=body)
        text = csv_labels if csv_labels is not None else [str(v) for v in labels]
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow([f"x{j}" for j in range(len(X[0]))] + ["label"])
        writer.writerows([*row, label] for row, label in zip(X, text, strict=True))
        query = "&".join(f"{k}={v}" for k, v in (params or {}).items())
        return self.client.post(f"/train?{query}", content=out.getvalue().encode(), headers=CSV)

    def predict(self, model_id: str, X: list[list[float]]) -> dict[str, Any]:
        r = self.client.post("/predict", json={"model_id": model_id, "features": X})
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture(params=WAYS)
def way(request, client, child_client) -> Way:
    return Way(request.param, child_client if request.param == "child" else client)


def created(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 201, r.text
    return r.json()


def csv_predictions(client: ASGIClient, model_id: str, X: list[list[float]]) -> list[list[str]]:
    out = io.StringIO()
    csv.writer(out).writerows([[f"x{j}" for j in range(len(X[0]))], *X])
    r = client.post(
        f"/predict?model_id={model_id}",
        content=out.getvalue().encode(),
        headers={**CSV, "accept": "text/csv"},
    )
    assert r.status_code == 200, r.text
    return list(csv.reader(io.StringIO(r.text)))


def v2_predictions(client: ASGIClient, model_id: str, X: list[list[float]]) -> dict[str, Any]:
    body = {
        "inputs": [{"name": "features", "shape": [len(X), len(X[0])], "datatype": "FP64",
                    "data": np.ravel(X).tolist()}],
        "outputs": [{"name": "predict"}],
    }  # fmt: skip
    r = client.post(f"/v2/models/{model_id}/infer", content=orjson.dumps(body))
    assert r.status_code == 200, r.text
    return r.json()["outputs"][0]


# ---- item 1: a label made of NUL characters -------------------------------------------------

LINE = [[0.0], [1.0], [2.0], [3.0]]


def test_a_label_made_of_nul_characters_is_kept_and_predicted(way):
    """Was a 500 with the model stored (NumPy's ``<U`` arrays strip trailing NULs: the class
    became ``""``), listed as unreadable, a 409 on GET, and predicted as ``""``."""
    model = created(way.train(LINE, ["\x00", "\x00", "x", "x"]))
    assert model["classes"] == ["\x00", "x"]
    c = way.client
    listing = c.get("/models").json()
    assert model["id"] in [m["id"] for m in listing["items"]] and listing["unreadable"] == []
    detail = c.get(f"/models/{model['id']}")
    assert detail.status_code == 200 and detail.json()["classes"] == ["\x00", "x"], detail.text
    answer = way.predict(model["id"], [[0.0], [3.0]])
    assert answer["classes"] == ["\x00", "x"] and answer["predictions"] == ["\x00", "x"]
    rows = csv_predictions(c, model["id"], [[0.0], [3.0]])
    assert rows[0] == ["prediction", "proba_\x00", "proba_x"]
    assert [row[0] for row in rows[1:]] == ["\x00", "x"]
    assert v2_predictions(c, model["id"], [[0.0], [3.0]])["data"] == ["\x00", "x"]


def test_a_nul_label_survives_the_model_file_and_a_restart(client, settings):
    labels = ["\x00", "\x00", "x\x00", "x\x00"]
    model = created(client.post("/train", json={"features": LINE, "labels": labels}))
    stored = json.loads((settings.model_store_dir / f"{model['id']}.json").read_bytes())
    assert stored["model"]["classes"] == ["\x00", "x\x00"]
    fresh = ASGIClient(create_app(settings))  # nothing cached: read back from the file
    try:
        assert fresh.get(f"/models/{model['id']}").json()["classes"] == ["\x00", "x\x00"]
        r = fresh.post("/predict", json={"model_id": model["id"], "features": [[0.0], [3.0]]})
        assert r.status_code == 200 and r.json()["predictions"] == ["\x00", "x\x00"], r.text
    finally:
        fresh.close()


def test_a_summary_that_cannot_be_built_leaves_nothing_stored(client, monkeypatch):
    """The answer is built before the model is saved: a failure there stores nothing."""

    def broken(record):
        raise ValueError("cannot build the summary")

    monkeypatch.setattr("app.service.summary_from_record", broken)
    with pytest.raises(ValueError, match="cannot build the summary"):
        client.post("/train", json={"features": LINE, "labels": [0, 0, 1, 1]})
    monkeypatch.undo()
    assert client.get("/models").json()["total"] == 0


# ---- item 2: labels that differ only by trailing NULs ---------------------------------------

SIX = [[0.0], [1.0], [10.0], [11.0], [20.0], [21.0]]


@pytest.mark.parametrize(
    ("labels", "classes"),
    [
        (["a", "a", "a\x00", "a\x00", "b", "b"], ["a", "a\x00", "b"]),  # was ["a", "b"]
        (["a", "a", "a\x00\x00", "a\x00\x00", "b", "b"], ["a", "a\x00\x00", "b"]),
        (["a", "a", "a\x00\x00", "a\x00\x00", "a\x00", "a\x00"], ["a", "a\x00", "a\x00\x00"]),
    ],
)
def test_labels_that_differ_only_by_trailing_nuls_are_not_merged(way, labels, classes):
    model = created(way.train(SIX, labels, params={"multiclass": "multinomial", "l2": 0.001}))
    assert model["classes"] == classes
    assert model["training"]["accuracy"] == 1.0
    assert way.predict(model["id"], SIX)["predictions"] == labels


def test_two_labels_that_differ_only_by_trailing_nuls_are_two_classes(way):
    """Was a 422 "only one class": ``a`` and ``a\\0\\0`` were the same ``<U`` string."""
    model = created(way.train(LINE, ["a", "a", "a\x00\x00", "a\x00\x00"]))
    assert model["classes"] == ["a", "a\x00\x00"]
    assert way.predict(model["id"], LINE)["predictions"] == ["a", "a", "a\x00\x00", "a\x00\x00"]


# ---- item 14: float and boolean labels ------------------------------------------------------

NOT_A_LABEL = "is not a class label; labels are integers, strings or booleans"


def test_whole_number_floats_are_integer_classes(way):
    """What ``y.tolist()`` of a pandas column gives (``[0.0, 1.0, ...]``) was "labels[0].
    constrained-int: Input should be a valid integer; ... and 59 more"."""
    model = created(way.train(LINE, [0.0, 0.0, 1.0, 1.0], csv_labels=["0.0", "0", "1.0", "1."]))
    assert model["classes"] == [0, 1] and all(type(c) is int for c in model["classes"])
    answer = way.predict(model["id"], LINE)
    assert answer["predictions"] == [0, 0, 1, 1]
    assert all(type(p) is int for p in answer["predictions"])
    assert v2_predictions(way.client, model["id"], LINE)["datatype"] == "INT64"


def test_an_integer_and_the_same_whole_float_are_one_class(client):
    model = created(client.post("/train", json={"features": LINE, "labels": [0, 0.0, 1, 1e0]}))
    assert model["classes"] == [0, 1]


def test_boolean_labels_are_boolean_classes_and_predictions(way):
    """Booleans are stored as JSON booleans and every predict path answers booleans: JSON
    ``true``/``false``, V2 datatype BOOL, CSV ``True``/``False`` (as pandas writes them)."""
    model = created(
        way.train(LINE, [False, False, True, True], csv_labels=["false", "False", "TRUE", "true"])
    )
    assert model["classes"] == [False, True] and all(type(c) is bool for c in model["classes"])
    c = way.client
    assert c.get(f"/models/{model['id']}").json()["classes"] == [False, True]
    answer = way.predict(model["id"], LINE)
    assert answer["classes"] == [False, True]
    assert answer["predictions"] == [False, False, True, True]
    assert all(type(p) is bool for p in answer["predictions"])
    rows = csv_predictions(c, model["id"], LINE)
    assert rows[0] == ["prediction", "proba_False", "proba_True"]
    assert [row[0] for row in rows[1:]] == ["False", "False", "True", "True"]
    tensor = v2_predictions(c, model["id"], LINE)
    assert tensor["datatype"] == "BOOL" and tensor["data"] == [False, False, True, True]
    meta = c.get(f"/v2/models/{model['id']}").json()
    assert meta["outputs"][0]["datatype"] == "BOOL"


def test_boolean_labels_as_v2_binary_data_are_one_byte_each(client):
    labels = [True, True, False, False]
    model = created(client.post("/train", json={"features": LINE, "labels": labels}))
    body = {
        "inputs": [{"name": "features", "shape": [4, 1], "datatype": "FP64", "data": [0, 1, 2, 3]}],
        "outputs": [{"name": "predict", "parameters": {"binary_data": True}}],
    }
    r = client.post(f"/v2/models/{model['id']}/infer", content=orjson.dumps(body))
    assert r.status_code == 200, r.text
    size = int(r.headers["inference-header-content-length"])
    header = json.loads(r.content[:size])
    assert header["outputs"][0]["datatype"] == "BOOL"
    assert list(r.content[size:]) == [1, 1, 0, 0]


def test_class_weights_of_boolean_labels_are_keyed_as_json_writes_them(client):
    X = [[0.0], [1.0], [2.0], [3.0], [1.5], [1.6]]
    labels = [False, False, True, True, True, False]
    plain = created(client.post("/train", json={"features": X, "labels": labels}))
    weighted = created(
        client.post(
            "/train",
            json={"features": X, "labels": labels, "params": {"class_weight": {"true": 5}}},
        )
    )
    assert weighted["training"]["loss"] != plain["training"]["loss"]


@pytest.mark.parametrize(
    ("bad", "shown"),
    [(0.5, "0.5"), (None, "null"), ([1], "a list"), ({"a": 1}, "an object"), (-2.25, "-2.25")],
)
def test_a_value_that_is_not_a_label_is_one_plain_sentence(client, child_client, bad, shown):
    for c in (client, child_client):
        r = c.post("/train", json={"features": LINE, "labels": [0, 0, 1, bad]})
        assert r.status_code == 422, r.text
        assert r.json()["detail"] == f"labels[3]: {shown} {NOT_A_LABEL}"
        assert r.json()["errors"] == [{"field": "labels[3]", "message": f"{shown} {NOT_A_LABEL}"}]


def test_a_csv_column_of_numbers_that_are_not_whole_is_refused_like_json(client):
    r = Way("csv", client).train(LINE, [0, 0, 1, 0.5])
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == f"line 5, column 2 ('label'): 0.5 {NOT_A_LABEL}"


@pytest.mark.parametrize(
    ("labels", "detail"),
    [
        ([0, 0, 1, True], "labels[3]: a boolean, but labels[0] is an integer"),
        (["a", "a", "b", 1.0], "labels[3]: an integer, but labels[0] is a string"),
        ([True, False, "x", "y"], "labels[2]: a string, but labels[0] is a boolean"),
    ],
)
def test_labels_of_two_kinds_name_the_first_odd_one(client, labels, detail):
    r = client.post("/train", json={"features": LINE, "labels": labels})
    assert r.status_code == 422, r.text
    expected = f"{detail}; labels must be all integers, all strings or all booleans"
    assert r.json()["detail"] == expected


@pytest.mark.parametrize(
    ("bad", "detail"),
    [
        (2**70, "labels[3]: 1180591620717411303424 is out of range; integer labels must fit in 64 bits"),  # noqa: E501
        (1e300, "labels[3]: 1e+300 is out of range; integer labels must fit in 64 bits"),
        ("", "labels[3]: the empty string is not a class label; string labels have 1 to 200 characters"),  # noqa: E501
        ("x" * 201, "labels[3]: a string of 201 characters is too long; string labels have 1 to 200 characters"),  # noqa: E501
    ],
)  # fmt: skip
def test_labels_out_of_range_are_one_plain_sentence(client, bad, detail):
    kind = "x" if isinstance(bad, str) else 0
    r = client.post("/train", json={"features": LINE, "labels": [kind, kind, kind, bad]})
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == detail
