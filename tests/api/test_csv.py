"""CSV in, CSV out: the same models and answers as JSON, and errors that name line and column."""

from __future__ import annotations

import csv
import io
import time

import numpy as np
import pytest

from app.config import Settings
from app.main import create_app
from tests.asgi_client import ASGIClient
from tests.conftest import make_blobs, record_figures, train

CSV = {"content-type": "text/csv"}
EXAM = b"""hours_studied,hours_slept,result
0.5,8.0,fail
1.0,6.5,fail
1.5,7.0,fail
2.0,5.0,pass
3.0,7.5,fail
3.5,6.0,pass
4.0,8.0,pass
5.0,7.0,pass
"""


def to_csv(header, rows) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows([header, *rows])
    return out.getvalue().encode()


def read_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_csv_training_equals_json_training(client):
    r = client.post("/train?max_iter=3000&l2=0.001&name=exam", content=EXAM, headers=CSV)
    assert r.status_code == 201, r.text
    from_csv = r.json()
    assert r.headers["location"] == f"/models/{from_csv['id']}"
    assert from_csv["name"] == "exam"
    assert from_csv["feature_names"] == ["hours_studied", "hours_slept"]
    assert from_csv["classes"] == ["fail", "pass"]
    rows = read_csv(EXAM.decode())[1:]
    from_json = train(
        client,
        [[float(a), float(b)] for a, b, _ in rows],
        [label for *_, label in rows],
        params={"max_iter": 3000, "l2": 0.001},
    )
    a = client.get(f"/models/{from_csv['id']}").json()
    b = client.get(f"/models/{from_json['id']}").json()
    assert a["params"] == b["params"] == {**a["params"], "max_iter": 3000, "l2": 0.001}
    assert a["parameters"] == b["parameters"]  # the same fit, bit for bit


def test_label_column_by_name_and_integer_labels(client):
    X, y = make_blobs(n=60, d=3, k=3, seed=1)
    body = to_csv(["kind", "x1", "x2", "x3"], [[int(k), *row] for k, row in zip(y, X, strict=True)])
    r = client.post("/train?label=kind", content=body, headers=CSV)
    assert r.status_code == 201, r.text
    model = r.json()
    assert model["classes"] == [0, 1, 2]  # integers, not "0", "1", "2"
    assert model["feature_names"] == ["x1", "x2", "x3"]
    p = client.post("/predict", json={"model_id": model["id"], "features": X[:3].tolist()})
    assert p.json()["predictions"] == [int(v) for v in y[:3]]


def test_labels_that_are_not_all_numbers_are_strings(client):
    body = b"x,y\n0,1\n1,1.5\n2,b\n3,1.5\n"
    assert client.post("/train", content=body, headers=CSV).json()["classes"] == ["1", "1.5", "b"]


def test_a_label_column_of_numbers_is_read_as_json_reads_numbers(client):
    """Whole numbers are integer classes (``2.0``, as pandas writes integer classes with a
    missing value); ``1.5`` is refused as in JSON: a column of numbers that are not whole is a
    measurement, not classes (issue 12, item 14; ``tests/api/test_labels.py``)."""
    whole = b"x,y\n0,1\n1,1.0\n2,2.0\n3,2\n"
    assert client.post("/train", content=whole, headers=CSV).json()["classes"] == [1, 2]
    body = b"x,y\n0,1\n1,1.5\n2,2\n3,1.5\n"
    r = client.post("/train", content=body, headers=CSV)
    assert r.status_code == 422
    assert r.json()["detail"].startswith("line 3, column 2 ('y'): 1.5 is not a class label")


def test_csv_predict_answers_json_and_csv(client):
    model = client.post("/train", content=EXAM, headers=CSV).json()
    rows = [[1.0, 7.0], [4.5, 6.5], [2.5, 6.0]]
    expected = client.post("/predict", json={"model_id": model["id"], "features": rows}).json()
    body = to_csv(["hours_studied", "hours_slept"], rows)
    url = f"/predict?model_id={model['id']}"
    as_json = client.post(url, content=body, headers=CSV)
    assert as_json.status_code == 200 and as_json.json() == expected

    as_csv = client.post(url, content=body, headers={**CSV, "accept": "text/csv"})
    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.headers["content-type"].startswith("text/csv")
    table = read_csv(as_csv.text)
    assert table[0] == ["prediction", "proba_fail", "proba_pass"]
    assert [r[0] for r in table[1:]] == expected["predictions"]
    # probabilities are written in shortest round-trip form: exactly the JSON numbers
    assert [[float(v) for v in r[1:]] for r in table[1:]] == expected["probabilities"]


def test_json_body_can_ask_for_csv(client):
    model = client.post("/train", content=EXAM, headers=CSV).json()
    r = client.post(
        "/predict",
        json={"model_id": model["id"], "features": [[1.0, 7.0]]},
        headers={"accept": "text/csv"},
    )
    assert r.headers["content-type"].startswith("text/csv") and len(read_csv(r.text)) == 2


@pytest.mark.parametrize(
    ("accept", "is_csv"),
    [
        ("text/csv", True),
        ("text/csv, */*;q=0.5", True),
        ("application/json;q=0.5, text/csv", True),
        ("application/json, text/csv", False),
        ("text/csv;q=0.2, application/json", False),
        ("text/csv;q=0", False),
        ("*/*", False),
        ("", False),
    ],
)
def test_accept_negotiation(client, accept, is_csv):
    model = client.post("/train", content=EXAM, headers=CSV).json()
    r = client.post(
        "/predict",
        json={"model_id": model["id"], "features": [[1.0, 7.0]]},
        headers={"accept": accept},
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv") == is_csv


def test_predict_columns_are_matched_by_name(client):
    model = client.post("/train", content=EXAM, headers=CSV).json()
    url = f"/predict?model_id={model['id']}"
    in_order = client.post(url, content=b"hours_studied,hours_slept\n1,7\n4.5,6.5\n", headers=CSV)
    swapped = client.post(url, content=b"hours_slept,hours_studied\n7,1\n6.5,4.5\n", headers=CSV)
    assert in_order.json() == swapped.json()


def test_models_without_feature_names_take_any_header(client):
    model = train(client, [[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    r = client.post(f"/predict?model_id={model['id']}", content=b"x\n0\n3\n", headers=CSV)
    assert r.json()["predictions"] == [0, 1]


def test_quoting_blank_lines_bom_and_crlf(client):
    body = '\ufeff"a, first",b,label\r\n\r\n"1.0",2,"x"\r\n3,4,y\r\n5,6,"x"\r\n7,8,y\r\n'
    r = client.post("/train", content=body.encode(), headers=CSV)
    assert r.status_code == 201, r.text
    assert r.json()["feature_names"] == ["a, first", "b"]
    assert r.json()["training"]["n_samples"] == 4


def test_threshold_query_parameter(client):
    model = client.post("/train", content=EXAM, headers=CSV).json()
    url = f"/predict?model_id={model['id']}&threshold="
    body = b"hours_studied,hours_slept\n1.0,7.0\n"
    assert client.post(url + "0", content=body, headers=CSV).json()["predictions"] == ["pass"]
    assert client.post(url + "1", content=body, headers=CSV).json()["predictions"] == ["fail"]


@pytest.mark.parametrize(
    ("body", "query", "status", "needle"),
    [
        (b"a,b,c\n1,2,x\n3,4\n5,6,y\n", "", 422, "line 3: has 2 fields but the header"),
        (b"a,b,c\n1,2,x\n3,4,y,z\n", "", 422, "line 3: has 4 fields"),
        (b"a,b,c\n1,2,x\n3,abc,y\n", "", 422, "line 3, column 2 ('b'): 'abc' is not a number"),
        (b"a,b,c\n1,2,x\n3,,y\n", "", 422, "line 3, column 2 ('b'): is empty"),
        (b"a,b,c\n1,2,x\n3,nan,y\n", "", 422, "line 3, column 2 ('b'): 'nan' is not a finite"),
        (b"a,b,c\n1,2,x\n3,-inf,y\n", "", 422, "line 3, column 2 ('b'): '-inf' is not a finite"),
        (b"a,b,c\n1,2,x\n\n3,4,\n", "", 422, "line 4, column 3 ('c'): the label is empty"),
        (b"", "", 422, "the CSV is empty"),
        (b"\n\n", "", 422, "the CSV is empty"),
        (b"a,b,c\n", "", 422, "no data rows"),
        (b"a,b,c\n1,2,x\n3,4,y\n", "label=d", 422, "query.label: there is no column 'd'"),
        (b"a\n1\n2\n", "", 422, "at least two columns"),
        (b"a,,c\n1,2,x\n", "", 422, "line 1, column 2: the header name is empty"),
        (b"a,b,a\n1,2,x\n", "", 422, "'a' is also column 1"),
        (b'a,b,c\n1,2,"x\n', "", 422, "malformed CSV"),
        (b"a,b,c\n1,2,\xff\n", "", 400, "not UTF-8"),
        (b"a,b,c\n1,2,x\n3,4,x\n", "", 422, "two distinct classes"),
        (b"a,b,c\n1,2,x\n3,4,y\n", "max_iter=0", 422, "query.max_iter"),
        (b"a,b,c\n1,2,x\n3,4,y\n", "max_iter=ten", 422, "query.max_iter"),
        (b"a,b,c\n1,2,x\n3,4,y\n", "standardize=maybe", 422, "query.standardize"),
        (b"a,b,c\n1,2,x\n3,4,y\n", "colour=red", 422, "query.colour"),
    ],
)
def test_bad_training_csv(client, body, query, status, needle):
    r = client.post(f"/train?{query}", content=body, headers=CSV)
    assert r.status_code == status, r.text
    assert needle in r.json()["detail"], r.text
    assert client.get("/models").json()["total"] == 0


def test_bad_prediction_csv(client):
    model = client.post("/train", content=EXAM, headers=CSV).json()
    url = f"/predict?model_id={model['id']}"
    cases = [
        (url, b"hours_studied\n1.0\n", 422, "'hours_slept' have no column"),
        (url, b"hours_studied,hours_slept,result\n1,2,x\n", 422, "column 3 ('result') is not"),
        (url, b"hours_studied,hours_slept\n1,2\n3\n", 422, "line 3: has 1 field but"),
        (url, b"hours_studied,hours_slept\n1,2\n3,x\n", 422, "line 3, column 2 ('hours_slept')"),
        (url, b"", 422, "the CSV is empty"),
        (url + "&threshold=2", b"hours_studied,hours_slept\n1,2\n", 422, "query.threshold"),
        ("/predict", b"hours_studied,hours_slept\n1,2\n", 422, "query.model_id"),
        ("/predict?model_id=" + "f" * 32, b"a,b\n1,2\n", 404, "no model"),
    ]
    for path, body, status, needle in cases:
        r = client.post(path, content=body, headers=CSV)
        assert r.status_code == status, (body, r.text)
        assert needle in r.json()["detail"], (body, r.text)
    unnamed = train(client, [[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    r = client.post(f"/predict?model_id={unnamed['id']}", content=b"a,b\n1,2\n", headers=CSV)
    assert r.status_code == 422 and "expects 1 features" in r.json()["detail"]


def test_csv_row_limit(client, settings):
    settings.max_rows = 3
    r = client.post("/train", content=EXAM, headers=CSV)
    assert r.status_code == 413 and "rows" in r.json()["detail"]


def test_other_content_types_are_refused_naming_both(client):
    for path in ("/train", "/predict"):
        r = client.post(path, content=EXAM, headers={"content-type": "text/plain"})
        assert r.status_code == 415
        assert "application/json" in r.json()["detail"] and "text/csv" in r.json()["detail"]


def test_openapi_documents_csv_and_its_example_works(client):
    spec = client.get("/openapi.json").json()
    ops = spec["paths"]
    for path in ("/train", "/predict"):
        content = ops[path]["post"]["requestBody"]["content"]
        assert set(content) == {"application/json", "text/csv"}
        ref = content["application/json"]["schema"]["$ref"]
        assert ref.split("/")[-1] in spec["components"]["schemas"]
    train_csv = ops["/train"]["post"]["requestBody"]["content"]["text/csv"]["example"]
    # the CSV options are described on the CSV body: as parameters they looked valid beside JSON
    described = ops["/train"]["post"]["requestBody"]["content"]["text/csv"]["schema"]
    assert all(f"`{name}`" in described["description"] for name in ("label", "name", "l2"))
    r = client.post("/train", content=train_csv.encode(), headers=CSV)
    assert r.status_code == 201, r.text
    predict_csv = ops["/predict"]["post"]["requestBody"]["content"]["text/csv"]["example"]
    r = client.post(f"/predict?model_id={r.json()['id']}", content=predict_csv, headers=CSV)
    assert r.status_code == 200 and r.json()["predictions"] == ["fail", "pass"]
    assert "text/csv" in ops["/predict"]["post"]["responses"]["200"]["content"]


def test_large_csv_round_trip(client):
    X, y = make_blobs(n=2000, d=5, k=2, seed=9)
    body = to_csv(
        [f"f{j}" for j in range(5)] + ["y"], [[*r, int(v)] for r, v in zip(X, y, strict=True)]
    )
    model = client.post("/train?max_iter=200", content=body, headers=CSV).json()
    out = client.post(
        f"/predict?model_id={model['id']}",
        content=to_csv([f"f{j}" for j in range(5)], X),
        headers={**CSV, "accept": "text/csv"},
    )
    table = np.array([[float(v) for v in row] for row in read_csv(out.text)[1:]])
    assert table.shape == (2000, 3)
    assert (table[:, 0] == y).mean() > 0.8
    np.testing.assert_allclose(table[:, 1:].sum(axis=1), 1.0)


def test_query_parameters_with_a_json_body_are_refused_not_ignored(client):
    """Found by Schemathesis: ``?max_iter=`` beside a JSON body was silently ignored."""
    body = {"features": [[0.0], [1.0], [2.0], [3.0]], "labels": [0, 0, 1, 1]}
    r = client.post("/train?max_iter=5&tol=abc", json=body)
    assert r.status_code == 422, r.text
    fields = {e["field"] for e in r.json()["errors"]}
    assert fields == {"query.max_iter", "query.tol"}
    assert "text/csv" in r.json()["detail"]
    assert client.get("/models").json()["total"] == 0  # nothing trained, nothing stored

    mid = train(client, body["features"], body["labels"])["id"]
    for query in (f"?model_id={mid}", "?threshold=0.9"):
        r = client.post(f"/predict{query}", json={"model_id": mid, "features": [[1.0]]})
        assert r.status_code == 422, (query, r.text)
        assert r.json()["errors"][0]["field"] == "query." + query[1:].split("=")[0]
    assert client.post("/predict", json={"model_id": mid, "features": [[1.0]]}).status_code == 200


# ---- wide headers: the column limit is checked first, the name checks are linear (issue 12) ---

WIDE = 100_000


def wide_header(n: int) -> bytes:
    return ",".join(f"c{j}" for j in range(n)).encode()


def test_a_100000_column_header_is_refused_by_max_features_first(client):
    """Issue 12, item 11: a 100,000-column training CSV held the training slot about 60 s (its
    duplicate-name check was quadratic) before its 413; on /predict 60,000 columns took 20 s of
    CPU before a 422. The header alone decides, before names are compared or rows read."""
    model = client.post("/train", content=EXAM, headers=CSV).json()
    header = wide_header(WIDE)
    started = time.perf_counter()
    r = client.post("/train", content=header + b"\n" + b"1," * (WIDE - 1) + b"x\n", headers=CSV)
    train_seconds = time.perf_counter() - started
    assert r.status_code == 413, r.text
    assert r.json()["detail"] == (
        f"header: {WIDE - 1} feature columns is more than the limit of 10000 (MAX_FEATURES)"
    )
    started = time.perf_counter()
    r = client.post(
        f"/predict?model_id={model['id']}", content=header + b"\n" + b"1," * WIDE, headers=CSV
    )
    predict_seconds = time.perf_counter() - started
    assert r.status_code == 413, r.text
    assert r.json()["detail"] == (
        f"header: {WIDE} feature columns is more than the limit of 10000 (MAX_FEATURES)"
    )
    record_figures(
        "100,000-column CSV header (tests/api/test_csv.py)",
        train_413_seconds=round(train_seconds, 3),
        predict_413_seconds=round(predict_seconds, 3),
    )


def test_a_duplicate_name_in_a_wide_header_is_named(tmp_path):
    """The duplicate check is linear (it compared every name with all before it)."""
    c = ASGIClient(create_app(Settings(model_store_dir=tmp_path / "m", max_features=2 * WIDE)))
    header = wide_header(WIDE) + b",c7,y"
    started = time.perf_counter()
    r = c.post("/train", content=header + b"\n" + b"1," * (WIDE + 1) + b"x\n", headers=CSV)
    seconds = time.perf_counter() - started
    c.close()
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == (
        f"line 1, column {WIDE + 1}: the header name 'c7' is also column 8; names must be distinct"
    )
    record_figures("duplicate name in a 100,002-column header", seconds=round(seconds, 3))


# ---- messages for CSVs from other tools (issue 12, item 16) ---------------------------------


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"a;b;y\n1;2;x\n3;4;y\n", "separated by commas, and this header seems to use ';'"),
        (b"a\tb\ty\n1\t2\tx\n3\t4\ty\n", "separated by commas, and this header seems to use '\\t'"),
        # Excel in many locales: semicolons between fields, commas in the numbers
        (b"a;b;y\n1,5;2,0;x\n3,5;4,0;y\n", "this header seems to use ';'"),
    ],
)
def test_a_csv_separated_by_semicolons_or_tabs_names_its_delimiter(client, body, needle):
    """It said only "header: needs at least two columns" (or that lines have 3 fields)."""
    r = client.post("/train", content=body, headers=CSV)
    assert r.status_code == 422, r.text
    assert needle in r.json()["detail"], r.text
    model = client.post("/train", content=EXAM, headers=CSV).json()
    unnamed = train(client, [[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 3.0]], [0, 0, 1, 1])
    for mid in (model["id"], unnamed["id"]):
        r = client.post(
            f"/predict?model_id={mid}",
            content=b"hours_studied;hours_slept\n1;7\n",
            headers=CSV,
        )
        assert r.status_code == 422, r.text
        assert "this header seems to use ';'" in r.json()["detail"], r.text


def test_a_pandas_index_column_suggests_index_false(client):
    """``df.to_csv(path)`` writes the index as a first column with an empty header name."""
    r = client.post("/train", content=b",a,b,y\n0,1,2,x\n1,3,4,y\n", headers=CSV)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail.startswith("line 1, column 1: the header name is empty"), detail
    assert "to_csv(index=False)" in detail
    r = client.post("/train", content=b"a,,y\n0,1,x\n1,3,y\n", headers=CSV)
    assert "index=False" not in r.json()["detail"]  # not the first column: not an index


def test_feature_names_with_surrounding_spaces_match_a_csv_header(client):
    """A header is read stripped, so a model trained on JSON with the name " hours " could never
    be given a CSV: names are compared stripped on both sides."""
    rows = [[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 3.0]]
    model = train(client, rows, [0, 0, 1, 1], feature_names=[" hours ", "sleep\t"])
    url = f"/predict?model_id={model['id']}"
    expected = client.post("/predict", json={"model_id": model["id"], "features": rows}).json()
    for header in (b"hours,sleep", b" sleep , hours "):
        body = (
            header
            + b"\n"
            + b"\n".join(
                (b"%r,%r" % tuple(r if header.startswith(b"hours") else r[::-1])) for r in rows
            )
        )
        r = client.post(url, content=body, headers=CSV)
        assert r.status_code == 200, r.text
        assert r.json() == expected
    # names that only spaces tell apart cannot be told apart by a header: say so
    clash = train(client, rows, [0, 0, 1, 1], feature_names=["a", " a"])
    r = client.post(f"/predict?model_id={clash['id']}", content=b"a\n1\n", headers=CSV)
    assert r.status_code == 422, r.text
    assert "differ only by surrounding spaces" in r.json()["detail"], r.text


def test_the_label_query_parameter_is_matched_stripped_too(client):
    r = client.post("/train?label=%20kind%20", content=b"kind,x\n0,1\n1,2\n0,0\n1,3\n", headers=CSV)
    assert r.status_code == 201, r.text
    assert r.json()["feature_names"] == ["x"]


def test_an_unknown_feature_error_lists_a_bounded_number_of_names(client, settings):
    names = [f"feature_{j:05d}_{'x' * 150}" for j in range(2000)]
    rows = np.random.default_rng(0).normal(size=(4, 2000)).tolist()
    model = train(client, rows, [0, 0, 1, 1], feature_names=names)
    r = client.post(f"/predict?model_id={model['id']}", content=b"zzz\n1\n", headers=CSV)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "column 1 ('zzz') is not a feature of this model" in detail
    assert "and 1980 more" in detail and len(detail) < 5000
