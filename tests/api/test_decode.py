"""app/decode.py without HTTP: bytes in, a validated request or a domain error out."""

from __future__ import annotations

import re

import numpy as np
import orjson
import pytest

from app import decode
from app.errors import (
    MAX_LISTED,
    CsvError,
    InvalidRequest,
    MalformedJSON,
    UnsupportedMediaType,
)

JSON = "application/json"


def test_a_plain_predict_body_never_reaches_json_loads(monkeypatch):
    monkeypatch.setattr(decode, "json_document", pytest.fail)
    got = decode.decode_predict(JSON, b'{"model_id": "m", "features": [[1, 2.5]], "threshold": 1}')
    assert got.model_id == "m" and got.threshold == 1
    assert got.X.dtype == np.float64 and got.X.tolist() == [[1.0, 2.5]]
    with pytest.raises(InvalidRequest) as caught:  # the fields alone are validated
        decode.decode_predict(JSON, b'{"model_id": "m", "features": [[1]], "threshold": 2}')
    assert caught.value.errors == [
        {"field": "threshold", "message": "Input should be less than or equal to 1"}
    ]


def test_a_declined_body_takes_the_ordinary_path_once(monkeypatch):
    calls = []
    real = decode.json_document
    monkeypatch.setattr(decode, "json_document", lambda b: calls.append(1) or real(b))
    bom = b'\xef\xbb\xbf{"model_id": "m", "features": [[1, -1]]}'  # json.loads reads it
    assert decode.decode_predict(JSON, bom).X.tolist() == [[1.0, -1.0]]
    assert calls == [1]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"features": [[1.0]]', "body: malformed JSON (Expecting ',' delimiter)"),
        (b"\x80{}", "body: malformed JSON (not UTF-8 (invalid start byte))"),
    ],
)
def test_malformed_json(body, reason):
    with pytest.raises(MalformedJSON, match=re.escape(reason)):
        decode.decode_predict(JSON, body)


def test_fastapi_s_json_invalid_is_malformed_json():
    error = decode.request_error(
        [{"type": "json_invalid", "loc": ("body", 3), "msg": "x", "ctx": {"error": "oops"}}]
    )
    assert isinstance(error, MalformedJSON) and str(error) == "body: malformed JSON (oops)"


def test_errors_are_capped_and_counted():
    body = orjson.dumps({"model_id": "m", "features": [["x"] * 100] * 1000})
    with pytest.raises(InvalidRequest) as caught:
        decode.decode_predict(JSON, body)
    assert len(caught.value.errors) == MAX_LISTED and caught.value.total == 100_000
    assert str(caught.value).endswith("; and 99995 more")


def test_query_parameters_are_refused_beside_json():
    with pytest.raises(InvalidRequest) as caught:
        decode.decode_predict(JSON, b"{}", [("model_id", "m"), ("x", "1"), ("x", "2")])
    assert [e["field"] for e in caught.value.errors] == ["query.model_id", "query.x"]
    decode.check_request("text/csv", [("model_id", "m")])  # CSV options: fine


def test_content_types():
    with pytest.raises(UnsupportedMediaType):
        decode.decode_train("text/plain", b"{}")
    with pytest.raises(UnsupportedMediaType):
        decode.decode_predict("text/csv", b"a\n1\n")  # CSV rows need the model: not here


def test_csv_training_body_with_its_options():
    body = b"a,b,y\n0,1,no\n1,0,no\n2,2,yes\n3,3,yes\n"
    request, X = decode.decode_train("text/csv", body, [("label", "y"), ("max_iter", "50")])
    assert X.tolist() == [[0, 1], [1, 0], [2, 2], [3, 3]]
    assert request.labels == ["no", "no", "yes", "yes"] and request.feature_names == ["a", "b"]
    assert request.params.max_iter == 50
    with pytest.raises(InvalidRequest, match=r"^query\.max_iter: "):
        decode.decode_train("text/csv", body, [("max_iter", "0")])
    with pytest.raises(CsvError, match="no column 'z'"):
        decode.decode_train("text/csv", body, [("label", "z")])
