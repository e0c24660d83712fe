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
