"""Datasets: upload CSV (plain, gzip, multipart) or Parquet once, train on it by column names.
On both stores (``store_url``): metadata beside the files, or in PostgreSQL."""

from __future__ import annotations

import gzip
import io
import os

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.config import Settings
from app.main import create_app
from tests.asgi_client import ASGIClient
from tests.conftest import STORES, make_blobs, store_url_for, train
from tests.live_server import LiveServer

CSV = {"content-type": "text/csv"}
PARQUET = {"content-type": "application/vnd.apache.parquet"}


def exam_csv(n: int = 60, seed: int = 0) -> tuple[bytes, np.ndarray, list[str]]:
    X, y = make_blobs(n=n, d=3, seed=seed)
    labels = ["pass" if v else "fail" for v in y]
    lines = ["a,b,c,result"] + [
        ",".join([*(repr(float(v)) for v in row), lab]) for row, lab in zip(X, labels, strict=True)
    ]
    return ("\n".join(lines) + "\n").encode(), X, labels


def upload(client: ASGIClient, body: bytes, headers: dict[str, str], **params: str) -> dict:
    r = client.post("/datasets", content=body, headers=headers, params=params)
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest) -> str | None:
    return store_url_for(request)


def files_of(settings: Settings, *ids: str) -> list[str]:
    """The files datasets ``ids`` keep: data and metadata, or only data (PostgreSQL keeps the
    metadata)."""
    suffixes = (".json", ".arrow") if settings.model_store_url is None else (".arrow",)
    return sorted(f"{i}{s}" for i in ids for s in suffixes)


def stored(settings: Settings) -> list[str]:
    """Files in the datasets folder (temporaries included); the folder is made by the first
    upload that reaches the route."""
    folder = settings.model_store_dir / "datasets"
    return sorted(os.listdir(folder)) if folder.exists() else []


def test_csv_upload_answers_rows_and_column_statistics(client, settings):
    body = b"x, y ,label\n1,2,a\n3,,b\n5,6.5,a\n"
    d = upload(client, body, CSV, name="tiny")
    assert d["rows"] == 3 and d["name"] == "tiny" and d["bytes"] > 0
    x, y, label = d["columns"]
    assert x == {"name": "x", "dtype": "float64", "min": 1, "max": 5, "mean": 3, "missing": 0}
    assert y == {"name": "y", "dtype": "float64", "min": 2, "max": 6.5, "mean": 4.25, "missing": 1}
    assert label["dtype"] == "string" and label["missing"] == 0
    assert client.get(f"/datasets/{d['id']}").json() == d
    listing = client.get("/datasets").json()
    assert listing["total"] == 1 and listing["items"] == [d]
    assert stored(settings) == files_of(settings, d["id"])


def test_gzip_parquet_and_multipart_give_the_same_dataset(client):
    body, X, labels = exam_csv()
    plain = upload(client, body, CSV)
    zipped = upload(client, gzip.compress(body), {**CSV, "content-encoding": "gzip"})
    table = pa.table({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "result": labels})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    parquet = upload(client, sink.getvalue(), PARQUET)
    form = client.post("/datasets", files={"file": ("exam.csv.gz", gzip.compress(body))})
    assert form.status_code == 201, form.text
    form_parquet = client.post("/datasets", files={"file": ("exam.parquet", sink.getvalue())})
    assert form_parquet.status_code == 201, form_parquet.text
    for other in (zipped, parquet, form.json(), form_parquet.json()):
        assert other["rows"] == plain["rows"] == 60
        assert other["columns"] == plain["columns"]


def test_train_from_dataset_equals_training_on_the_same_rows(client):
    body, X, labels = exam_csv()
    d = upload(client, body, CSV)
    params = {"l2": 0.01, "tol": 1e-10}
    r = client.post(
        "/train",
        json={"dataset": d["id"], "label": "result", "features": ["c", "a"], "params": params},
    )
    assert r.status_code == 201, r.text
    from_dataset = r.json()
    assert from_dataset["dataset"] == {"id": d["id"], "label": "result"}
    assert from_dataset["feature_names"] == ["c", "a"]
    direct = train(client, X[:, [2, 0]], labels, feature_names=["c", "a"], params=params)
    rows = X[:5, [2, 0]].tolist()
    p1 = client.post("/predict", json={"model_id": from_dataset["id"], "features": rows}).json()
    p2 = client.post("/predict", json={"model_id": direct["id"], "features": rows}).json()
    assert p1["classes"] == p2["classes"] == ["fail", "pass"]
    np.testing.assert_allclose(p1["probabilities"], p2["probabilities"], atol=1e-9)
    # the input profile is read block by block: out-of-range warnings and explanations agree
    far = [[1e6, 0.0]]
    w1, w2 = (
        client.post("/predict", json={"model_id": m["id"], "features": far, "explain": True}).json()
        for m in (from_dataset, direct)
    )
    assert w1["warnings"] == w2["warnings"] and w1["warnings"][0]["feature"] == "c"
    np.testing.assert_allclose(w1["baseline"], w2["baseline"], atol=1e-9)
    # default features: every column but the label, in the file's order
    r = client.post("/train", json={"dataset": d["id"], "label": "result"})
    assert r.status_code == 201, r.text
    assert r.json()["feature_names"] == ["a", "b", "c"]
    detail = client.get(f"/models/{r.json()['id']}").json()
    assert detail["dataset"] == {"id": d["id"], "label": "result"}


def test_integer_labels_stay_integers(client):
    body = b"x,y\n" + b"".join(b"%d,%d\n" % (i, i % 2) for i in range(20))
    d = upload(client, body, CSV)
    r = client.post("/train", json={"dataset": d["id"], "label": "y"})
    assert r.status_code == 201, r.text
    assert r.json()["classes"] == [0, 1]


@pytest.mark.parametrize(
    ("tail", "message"),
    [
        (b"1,zz,0\n", "line 42, column 2 ('b'): 'zz' is not a number"),
        (b"1,inf,0\n", "line 42, column 2 ('b'): 'inf' is not a finite number"),
        (b"1,2\n", "line 42: has 2 fields but the header (line 1) has 3"),
    ],
)
def test_a_bad_cell_names_its_line_and_column_and_stores_nothing(client, settings, tail, message):
    body = b"a,b,label\n" + b"1,2,0\n" * 40 + tail
    r = client.post("/datasets", content=body, headers=CSV)
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == message
    assert stored(settings) == []


def test_a_bad_cell_far_into_a_large_file_is_found(client, settings):
    rows = 200_000  # more than one block of pyarrow's reader
    body = b"a,b,label\n" + b"1.5,2.25,1\n" * rows + b"3,x7,0\n"
    r = client.post("/datasets", content=body, headers=CSV)
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == f"line {rows + 2}, column 2 ('b'): 'x7' is not a number"
    assert stored(settings) == []


def test_an_upload_over_max_dataset_bytes_stores_nothing(settings):
    settings = settings.model_copy(update={"max_dataset_bytes": 1000})
    client = ASGIClient(create_app(settings))
    try:
        body = b"a,label\n" + b"1,0\n" * 400
        r = client.post("/datasets", content=body, headers=CSV)
        assert r.status_code == 413, r.text
        assert "MAX_DATASET_BYTES" in r.json()["detail"]

        async def chunks():  # no Content-Length: counted as it streams
            yield body[:600]
            yield body[600:]

        r = client.post("/datasets", content=chunks(), headers=CSV)
        assert r.status_code == 413, r.text
        assert stored(settings) == []
        # a small gzip body that inflates past the limit once parsed
        r = client.post(
            "/datasets",
            content=gzip.compress(b"a,label\n" + b"1,0\n" * 5000),
            headers={**CSV, "content-encoding": "gzip"},
        )
        assert r.status_code == 413, r.text
        assert stored(settings) == []
    finally:
        client.close()


def test_max_body_bytes_does_not_limit_datasets(settings):
    settings = settings.model_copy(update={"max_body_bytes": 100})
    client = ASGIClient(create_app(settings))
    try:
        body, _, _ = exam_csv()
        assert len(body) > 100
        upload(client, body, CSV)
        r = client.post("/train", content=body, headers=CSV)
        assert r.status_code == 413
    finally:
        client.close()


def test_training_errors_name_the_column(client):
    body = b"x,y,z,label\n1,2,,a\n3,4,5,b\n5,6,7,a\n"
    d = upload(client, body, CSV)

    def refused(payload: dict, status: int = 422) -> str:
        r = client.post("/train", json={"dataset": d["id"], **payload})
        assert r.status_code == status, r.text
        return r.json()["detail"]

    assert "the dataset has no column 'nope'" in refused({"label": "nope"})
    assert refused({"label": "label", "features": ["x", "w"]}).startswith(
        "features[1]: the dataset has no column 'w'"
    )
    assert "column 'z' has 1 missing values" in refused({"label": "label"})
    assert "label column, kept as text" in refused({"label": "x", "features": ["label"]})
    assert refused({"label": "label", "labels": ["a", "b"]}).startswith(
        "labels: cannot be sent with dataset"
    )
    assert refused({"label": "label", "features": [[1.0, 2.0]]}).startswith(
        "features: with dataset, features lists column names"
    )
    unknown = "0" * 32
    r = client.post("/train", json={"dataset": unknown, "label": "label"})
    assert r.status_code == 404 and unknown in r.json()["detail"]


def test_delete_and_unknown_ids(client, settings):
    d = upload(client, b"a,label\n1,0\n2,1\n", CSV)
    assert client.delete(f"/datasets/{d['id']}").status_code == 204
    assert client.get(f"/datasets/{d['id']}").status_code == 404
    assert client.delete(f"/datasets/{d['id']}").status_code == 404
    assert client.get("/datasets/not-an-id").status_code == 404
    assert stored(settings) == []


def test_media_types_and_codings(client):
    r = client.post("/datasets", content=b"{}", headers={"content-type": "application/json"})
    assert r.status_code == 415
    r = client.post(
        "/datasets", content=b"x", headers={"content-type": "text/csv", "content-encoding": "br"}
    )
    assert r.status_code == 415 and "Content-Encoding 'br'" in r.json()["detail"]
    r = client.post("/datasets", files={"other": ("a.csv", b"a,b\n1,2\n")})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "file"
    form = {"content-type": "multipart/form-data; boundary=xyz"}
    r = client.post("/datasets", content=b"--xyz\r\nContent-[Disposition: x\r\n\r\n", headers=form)
    assert r.status_code == 422 and "malformed multipart/form-data" in r.json()["detail"]


def test_a_real_server_takes_a_streamed_gzip_upload_and_trains_on_it(tmp_path, settings):
    """Through uvicorn: a chunked gzip body (no Content-Length) is counted and stored, and the
    training child trains on it; a body cut off over the limit leaves nothing."""
    body, _, _ = exam_csv(n=200)
    zipped = gzip.compress(body)
    env = {  # the upload as sent, and as stored (~9 kB)
        "MAX_DATASET_BYTES": "20000",
        "MODEL_STORE_URL": settings.model_store_url or "",
    }
    with (
        LiveServer(tmp_path / "models", env=env) as server,
        httpx.Client(base_url=server.url, timeout=60) as c,
    ):

        def chunks(data: bytes):
            for i in range(0, len(data), 700):
                yield data[i : i + 700]

        headers = {**CSV, "content-encoding": "gzip"}
        r = c.post("/datasets", content=chunks(zipped), headers=headers, params={"label": "result"})
        assert r.status_code == 201, r.text
        d = r.json()
        assert d["rows"] == 200 and r.headers["location"] == f"/datasets/{d['id']}"
        r = c.post("/train", json={"dataset": d["id"], "label": "result"})
        assert r.status_code == 201, r.text
        assert r.json()["training"]["n_samples"] == 200
        r = c.post("/datasets", content=chunks(zipped + b"\0" * 20_000), headers=headers)
        assert r.status_code == 413, r.text
        assert sorted(os.listdir(tmp_path / "models" / "datasets")) == files_of(settings, d["id"])


def test_parquet_refusals_name_the_row_or_column(client, settings):
    def parquet(table: pa.Table) -> bytes:
        sink = io.BytesIO()
        pq.write_table(table, sink)
        return sink.getvalue()

    body = parquet(pa.table({"a": [1.0, 2.0, float("inf")], "label": ["x", "y", "x"]}))
    r = client.post("/datasets", content=body, headers=PARQUET)
    assert r.status_code == 422 and r.json()["detail"] == (
        "row 3, column 1 ('a'): inf is not a finite number"
    )
    body = parquet(pa.table({"city": ["a", "b"], "label": ["x", "y"]}))
    r = client.post("/datasets", content=body, headers=PARQUET)
    assert r.status_code == 422 and r.json()["detail"].startswith("column 1 ('city'): is string")
    r = client.post("/datasets", content=b"PAR1 not really", headers=PARQUET)
    assert r.status_code == 422 and "not a readable Parquet file" in r.json()["detail"]
    assert stored(settings) == []


def test_evaluate_on_a_dataset_equals_evaluating_its_rows(client):
    """Issue 15's third form of an evaluation body, once datasets exist."""
    body, X, labels = exam_csv(n=80, seed=4)
    d = upload(client, body, CSV)
    model = train(client, X[:40], labels[:40], feature_names=["a", "b", "c"])
    ref = f"/models/{model['id']}/evaluate"
    by_rows = client.post(ref, json={"features": X.tolist(), "labels": labels, "threshold": 0.4})
    by_dataset = client.post(ref, json={"dataset": d["id"], "label": "result", "threshold": 0.4})
    assert by_rows.status_code == 200 and by_dataset.status_code == 200, by_dataset.text
    a, b = by_rows.json(), by_dataset.json()
    for key in ("n", "log_loss", "accuracy", "roc_auc", "brier", "confusion_matrix", "per_class"):
        assert a[key] == b[key], key
    # what is wrong is named: the column, the dataset
    r = client.post(ref, json={"dataset": d["id"], "label": "nope"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "label", r.text
    r = client.post(ref, json={"dataset": "0" * 32, "label": "result"})
    assert r.status_code == 404, r.text
    r = client.post(ref, json={"dataset": d["id"], "label": "result", "extra": 1})
    assert r.status_code == 422, r.text
