"""The hand-parsed /predict and /train give the same answers as FastAPI's declared-body routes.

``naive`` below is the service as it was before the fast paths: ``body: PredictRequest`` /
``body: TrainRequest`` parameters, FastAPI's JSON decoding and pydantic validation (and the
content-type check that also names ``text/csv``, which these two routes take too). Every bad
body must get the same status and the same JSON from both; every good body the same numbers.
"""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import orjson
import pytest
import simdjson
from fastapi import Depends, FastAPI, Request
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from app import fast_body, media
from app.api import errors
from app.fast_body import parse_predict, parse_rows_body, parse_simdjson, parse_small
from app.main import create_app
from app.schemas import ModelSummary, PredictRequest, PredictResponse, TrainRequest
from app.service import ModelService
from model_store import JsonFileStore
from tests.asgi_client import ASGIClient
from tests.conftest import train


def require_json_or_csv(request: Request) -> None:
    """415 unless the body is JSON or CSV, as a route dependency."""
    media.body_kind(request.headers.get("content-type"))


def naive_app(settings) -> FastAPI:
    app = FastAPI()
    service = ModelService(JsonFileStore(settings.model_store_dir), settings)
    errors.install(app)

    @app.post("/predict", dependencies=[Depends(require_json_or_csv)])
    def predict(body: PredictRequest) -> dict:
        X = np.asarray(body.features, dtype=np.float64)
        p = service.predict(service.served(body.model_id), X, threshold=body.threshold)
        out = PredictResponse(
            model_id=p.model_id,
            classes=p.classes,
            predictions=p.predictions.tolist(),
            probabilities=p.probabilities.tolist(),
        ).model_dump(mode="json")
        if p.warnings is not None:  # issue 15: values outside the training range
            out.update(warnings=p.warnings, warnings_total=p.warnings_total)
        return out

    @app.post(
        "/train",
        status_code=201,
        response_model=ModelSummary,
        dependencies=[Depends(require_json_or_csv)],
    )
    def train_(body: TrainRequest) -> ModelSummary:
        return service.train(body)

    return app


@pytest.fixture
def pair(settings):
    fast, slow = ASGIClient(create_app(settings)), ASGIClient(naive_app(settings))
    yield fast, slow
    fast.close()
    slow.close()


GOOD_TRAIN = {"features": [[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 3.0]], "labels": [0, 0, 1, 1]}

BAD_FEATURES = [
    b"[]",
    b"[[]]",
    b"[[1.0], [1.0, 2.0]]",
    b"[[1.0, 2.0], [1.0]]",
    b"[[1.0, true]]",
    b"[[1.0, false]]",
    b"[[1.0, null]]",
    b'[[1.0, "2"]]',
    b"[[1.0, NaN]]",
    b"[[1.0, Infinity]]",
    b"[[1.0, -Infinity]]",
    b"[[1.0, 1e400]]",
    b"[[1.0, [2.0]]]",
    b"[1.0, 2.0]",
    b"[[1.0, {}]]",
    b"{}",
    b"null",
    b"3",
    b'"x"',
    b"[[1.0, 2.0], null]",
    b"[[1.0, 2.0], {}]",
    b"[[1.0, 01]]",
    b"[[1.0, .5]]",
    b"[[1.0, 1.]]",
    b"[[1.0, +1]]",
    b"[[1.0, 2.0],]",
    b"[[1.0 2.0]]",
    b"[[1.0, -]]",
    b"[[1.0, 1e]]",
    b"[[1.0, 0x10]]",
    b"[[1.0, 2.0, 3.0]]",
    b'[[1.0, "\\u0031"]]',
    b"[[1e999999, 1]]",
    b"[[" + b"9" * 400 + b", 1]]",
    # simdjson's as_buffer flattens nested arrays: ragged or nested rows whose numbers add up
    b"[[1.0, 2.0], [3.0], [4.0, 5.0, 6.0]]",
    b"[[1.0, 2.0], [3.0, 4.0, 5.0], [6.0]]",
    b"[[[], 1.0], [[2.0, 3.0], 4.0]]",
    b"[[1.0, [2.0]], [3.0, 4.0]]",
    b"[[[1.0], [2.0]]]",
    b"[[[1.0, 2.0]]]",
    b"[[1.0, 2.0], 3.0, 4.0]",
    b"[[1.0, 2.0], [3.0, 4.0], []]",
    b"[[1.0, 2.0], [3.0, [[]]]]",
    b"[[1.0, 2.0], [3.0, null]]",
    b'[[1.0, 2.0], [3.0, "4"]]',
    b"[[1.0, 2.0], [true, 4.0]]",
    b"[[1.0, 2.0], [3.0, 4.0]]]",
    b"[[1.0, 2.0], [3.0, 4.0e]]",
    b"[[1.0, 2.0], [3.0, -1e400]]",
]


def predict_bodies(mid: str) -> list[bytes]:
    m = json.dumps(mid).encode()
    out = [b'{"model_id": ' + m + b', "features": ' + f + b"}" for f in BAD_FEATURES]
    out += [
        b"",
        b"{",
        b"[1, 2]",
        b"null",
        b'{"features": [[1.0, 2.0]]}',
        b'{"model_id": ' + m + b', "features": [[1.0, 2.0]], "threshold": 1.5}',
        b'{"model_id": ' + m + b', "features": [[1.0, 2.0]], "threshold": true}',
        b'{"model_id": ' + m + b', "features": [[1.0, 2.0]], "threshold": "0.5"}',
        b'{"model_id": ' + m + b', "features": [[1.0, 2.0]], "extra": 1}',
        b'{"model_id": ' + m + b', "features": [[1.0, 2.0]], "features": [[1.0]]}',
        b'{"model_id": ' + m + b', "model_id": "x", "features": [[1.0, 2.0]]}',
        b'{"model_id": 12, "features": [[1.0, 2.0]]}',
        b'{"model_id": "' + b"f" * 32 + b'", "features": [[1.0, 2.0]]}',
        b'{"model_id": "../x", "features": [[1.0, 2.0]]}',
        b'{"model_id": "' + b"f" * 32 + b'", "features": [[1.0, true]]}',
        b'{"model_id": ' + m + b', "features": [[1.0, 2.0]]}  x',
        b'\xef\xbb\xbf{"model_id": ' + m + b', "features": [[1.0, 2.0]]}',
        b'{"model_id": ' + m + b', "features": [[1.0, 2.0]], "threshold": 0.5}',
        b'{"model_id": ' + m + b', "features": [ [ 1 , -0 ] ,\n [ -0.0, 1E2 ] ]}',
        # declined by simdjson, decoded by the ordinary path
        b'{"model_id": ' + m + b', "features": [[123456789012345678901234567890, -1]]}',
        b'{"model_id": ' + m + b', "features": [[1.0, 2.0], [3.0, 18446744073709551616]]}',
        b'{"model_id": ' + m + b', "features": [[1.0, 2.0], [3.0, -9223372036854775809]]}',
        b'{"model_id": ' + m + b', "features": [[1.0, 2.0]], "threshold": [0.5]}',
        b'{"model_id": ' + m + b', "features": [[1.0, 2.0]], "threshold": {}}',
        b'{"model_id": ' + m + b', "features": [[1.0, 2.0]], "threshold": null}',
        b'{"model_id": ' + m + b', "features": [[1.0, 2.0]], "threshold": 1}',
        b'{"model_id": ' + m + b', "threshold": 0.5, "threshold": 2, "features": [[1.0, 2.0]]}',
        b'{"model_id": "[", "features": [[1.0, 2.0], [3.0, [4.0]]]}',
        b'{"model_id": "\\u005b", "features": [[1.0, [2.0]], [3.0, 4.0]]}',
        b'{"model_\\u0069d": ' + m + b', "features": [[1.0, 2.0]]}',
        b'{"model_id": "a\x01b", "features": [[1.0, 2.0]]}',
        b'{"model_id": "\xff", "features": [[1.0, 2.0]]}',
        b'{"model_id": ' + m + b', "features": [[1.0, 2.0]], "x\xc3": 1}',
        b'{"model_id": "\\ud800", "features": [[1.0, 2.0]]}',
        b'{"model_id": ' + m + b', "features": [[1.0, 2.0]]}\x00',
        b'\t{"model_id": ' + m + b', "features":\r\n[[1.0, 2.0]]} ',
        # simdjson looks keys up as C strings: "\u0000" must not find "" (or raise)
        b'{"model_id": ' + m + b', "\\u0000": 1, "features": [[1.0, 2.0]]}',
        b'{"model_id": ' + m + b', "": 0.9, "\\u0000": 0.1, "features": [[1.0, 2.0]]}',
        b'{"\\u0000": 1, "model_id": ' + m + b', "features": [[1.0, 2.0]]}',
    ]
    return out


CTYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    None,
    "application/vnd.x+json",
]


def same(fast, slow, path, body, ctype):
    headers = {"content-type": ctype} if ctype else {}
    a = fast.post(path, content=body, headers=headers)
    b = slow.post(path, content=body, headers=headers)
    assert a.status_code == b.status_code, (body, ctype, a.text, b.text)
    if a.status_code < 300:
        return a.json(), b.json()
    if b.json() == {"detail": "There was an error parsing the body"}:
        # the one deliberate difference: FastAPI's generic answer to a body that is not UTF-8
        # becomes a message that says so (tests/api/test_hostile.py)
        assert a.json()["detail"].startswith("body: malformed JSON (not UTF-8"), (body, a.text)
        return None
    assert a.json() == b.json(), (body, ctype)
    return None


@pytest.mark.parametrize("small_body", [fast_body.SMALL_BODY, 0], ids=["orjson", "simdjson"])
def test_predict_answers_match_fastapi_for_every_body(pair, monkeypatch, small_body):
    monkeypatch.setattr(fast_body, "SMALL_BODY", small_body)  # which parser the fast path uses
    fast, slow = pair
    mid = train(fast, GOOD_TRAIN["features"], GOOD_TRAIN["labels"])["id"]
    statuses = set()
    for body in predict_bodies(mid):
        for ctype in CTYPES:
            got = same(fast, slow, "/predict", body, ctype)
            if got:
                assert got[0] == got[1]
                statuses.add(200)
            else:
                statuses.add(
                    fast.post(
                        "/predict", content=body, headers={"content-type": ctype or ""}
                    ).status_code
                )
    assert {200, 400, 404, 415, 422} <= statuses  # the cases cover every kind of answer


def test_train_answers_match_fastapi_for_every_body(pair):
    fast, slow = pair
    bodies = [b'{"features": ' + f + b', "labels": [0, 1]}' for f in BAD_FEATURES]
    bodies += [
        b"",
        b"{",
        b"[1]",
        b'{"features": [[1.0], [2.0]], "labels": [0, 0]}',
        b'{"features": [[1.0], [2.0]], "labels": [0, 1, 1]}',
        b'{"features": [[1.0], [2.0]], "labels": [0, "a"]}',
        b'{"features": [[1.0], [2.0]], "labels": [0, true]}',
        b'{"features": [[1.0], [2.0]], "labels": [0, 1], "feature_names": ["a", "b"]}',
        b'{"features": [[1.0], [2.0]], "labels": [0, 1], "params": {"max_iter": 0}}',
        b'{"features": [[1.0], [2.0]], "labels": [0, 1], "params": {"max_iter": 1000000000}}',
        b'{"features": [[1.0], [2.0]], "labels": [0, 1], "nope": 1}',
        b'{"features": [[1.0], [2.0]], "labels": [0, 1], "name": "\xff"}',
        b'{"features": [[1.0], [2.0]], "labels": [0, 1], "\\u0000": 1}',
        b'{"features": [[1.0], [2.0]], "": [0, 1], "\\u0000": [0, 1]}',
        b'{"features": [[1.0], [2.0]], "labels": [0, ' + b"[" * 900 + b"]" * 900 + b"]}",
    ]
    for body in bodies:
        for ctype in CTYPES:
            got = same(fast, slow, "/train", body, ctype)
            assert got is None, body  # all bad: nothing trained, same error
    assert fast.get("/models").json()["total"] == 0


@pytest.mark.parametrize(
    "extra",
    [{}, {"params": {"polynomial_degree": 2}}, {"sample_weight": [1.0, 2.0] * 30}],
    ids=["plain", "polynomial", "weighted"],
)
def test_good_requests_give_identical_numbers(pair, extra):
    fast, slow = pair
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 4)) * 10.0 ** rng.integers(-3, 4, size=(60, 4))
    y = (X[:, 0] > 0).astype(int).tolist()
    a = fast.post("/train", json={"features": X.tolist(), "labels": y, **extra}).json()
    b = slow.post("/train", json={"features": X.tolist(), "labels": y, **extra}).json()
    assert a["training"]["loss"] == b["training"]["loss"]  # same X, same fit, bit for bit
    for mid in (a["id"], b["id"]):
        body = {"model_id": mid, "features": X.tolist(), "threshold": 0.3}
        pa, pb = same(fast, slow, "/predict", orjson.dumps(body), "application/json")
        assert pa == pb


EDGE = [
    "0",
    "-0",
    "0.0",
    "-0.0",
    "1e308",
    "-1e308",
    "1.7976931348623157e308",
    "5e-324",
    "-5e-324",
    "2.2250738585072014e-308",
    "0.1",
    "0.30000000000000004",
    "1E2",
    "1e-2",
    "12345678901234567890",
    "9007199254740993",
    "18446744073709551615",
    "9223372036854775808",
    "-9223372036854775808",
    "9007199254740993e0",
    "0.1e1",
    "1e-5",
    "1e+308",
    "17976931348623157e292",
    "0.12345678901234567",
    "1.2345678901234567e-300",
    "-1e-400",
    "1.000000000000000111",
    "4.9406564584124654e-324",
    "1e-400",
    "123.456e-7",
    "-1E+2",
]


@pytest.mark.parametrize("parse", [parse_small, parse_simdjson])
def test_fast_decode_is_bit_exact_on_edge_numbers(parse):
    body = ('{"model_id": "m", "features": [[' + ", ".join(EDGE) + "]]}").encode()
    got = parse(body)
    assert got is not None
    expected = [float(v) for v in json.loads(body)["features"][0]]
    assert struct.pack(f"{len(EDGE)}d", *got[1][0]) == struct.pack(f"{len(EDGE)}d", *expected)
    assert math.copysign(1, got[1][0][1]) == 1.0  # "-0" is the integer 0, "-0.0" is -0.0
    assert math.copysign(1, got[1][0][3]) == -1.0


@hsettings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.lists(
            st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**63), 2**63),
            min_size=3,
            max_size=3,
        ),
        min_size=1,
        max_size=5,
    )
)
def test_fast_decode_matches_json_bit_for_bit(rows):
    body = json.dumps({"model_id": "m", "features": rows}).encode()
    for parsed in (parse_small(body), parse_simdjson(body), parse_rows_body(body)):
        assert parsed is not None
        expected = np.array([[float(v) for v in r] for r in json.loads(body)["features"]])
        assert parsed[1].tobytes() == expected.tobytes()


_json_scalar = (
    st.none()
    | st.booleans()
    | st.integers(-(2**64) + 1, 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",), exclude_characters="["), max_size=5)
)
_json_value = st.recursive(
    _json_scalar,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.text(st.characters(exclude_characters="["), max_size=3), inner, max_size=3
        )
    ),
    max_leaves=8,
)


@hsettings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.text(max_size=4).filter(lambda k: k != "features"), _json_value, max_size=4),
    st.lists(
        st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=2, max_size=2),
        min_size=1,
        max_size=3,
    ),
    st.booleans(),
)
def test_training_decode_keeps_every_other_field_as_json_loads_does(others, rows, rows_first):
    """Labels, params, names: arrays, objects, strings (with escapes), booleans, big integers.
    Strings here hold no ``[`` (one would only make the bracket count decline)."""
    fields = {"features": rows, **others} if rows_first else {**others, "features": rows}
    body = json.dumps(fields).encode()
    got = parse_rows_body(body)
    if "[" in json.dumps(list(others)):  # a "[" in a key: the count declines, as documented
        assert got is None or json.dumps(got[0]) == json.dumps(others)
        return
    assert got is not None
    expected = json.loads(body)
    expected_rows = expected.pop("features")
    assert json.dumps(got[0]) == json.dumps(expected)  # same types: 1 vs 1.0 vs true, -0.0
    assert got[1].tobytes() == np.array(expected_rows, dtype=np.float64).tobytes()


@pytest.mark.parametrize(
    "body",
    [
        # an array nested in a row, its extra "[" hidden by counting an array that is not there
        b'{"labels": [0, 1], "features": [[[1.0], 2.0], [3.0, 4.0]]}',
        b'{"labels": [0, 1], "features": [[[], 1.0, 2.0], [[3.0, 4.0]]]}',
        b'{"labels": [0], "features": [[1.0, 2.0]], "features": [[3.0, 4.0]]}',  # duplicate
        b'{"labels": [0], "features": [[1.0, true]]}',
        b'{"labels": [123456789012345678901234567890], "features": [[1.0]]}',  # beyond 64 bits
        b'{"labels": ["\\ud800"], "features": [[1.0]]}',  # a lone surrogate json.loads keeps
    ],
)
def test_training_decode_declines_what_it_cannot_prove(body):
    assert parse_rows_body(body) is None


@pytest.mark.parametrize("depth", [900, 2000])
def test_training_decode_of_deeply_nested_fields_raises_nothing(depth):
    """Nesting is the client's to choose: counting its arrays must not hit the recursion limit
    (900 levels: the same value as json.loads; 2000: beyond simdjson's 1024, declined)."""
    body = b'{"labels": ' + b"[" * depth + b"]" * depth + b', "features": [[1.0]]}'
    got = parse_rows_body(body)
    if depth < 1024:
        assert got is not None and got[1].tolist() == [[1.0]]
        assert got[0] == {"labels": json.loads(body)["labels"]}
    else:
        assert got is None


def test_training_decode_takes_nested_duplicate_keys_as_json_loads_does():
    body = b'{"params": {"l2": 1.0, "l2": 2.0}, "labels": [0, 1], "features": [[1.0], [2.0]]}'
    got = parse_rows_body(body)
    assert got is not None and got[0] == {"params": {"l2": 2.0}, "labels": [0, 1]}


def _rows_value(rows):
    """What the ordinary path makes of ``features``: a float64 matrix, or None if invalid."""
    try:
        PredictRequest.model_validate({"model_id": "m", "features": rows})
    except Exception:
        return None
    return np.array([[float(v) for v in r] for r in rows], dtype=np.float64)


_leaf = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**63), 2**64 - 1)
_cell = _leaf | st.booleans() | st.none() | st.just("1") | st.lists(_leaf, max_size=2)
_row = st.lists(_leaf, min_size=0, max_size=3) | st.lists(_cell, min_size=0, max_size=3) | _leaf


@hsettings(max_examples=300, deadline=None)
@given(st.lists(_row, min_size=0, max_size=4))
def test_fast_decode_accepts_exactly_the_valid_matrices(rows):
    """Ragged, nested, empty, non-number rows: declined; rectangular numbers: the same bits."""
    body = json.dumps({"model_id": "m", "features": rows}).encode()
    expected = _rows_value(rows)
    for got in (parse_small(body), parse_simdjson(body)):
        if expected is None:
            assert got is None
        else:
            assert got is not None and got[0] == {"model_id": "m"}
            assert got[1].shape == expected.shape and got[1].tobytes() == expected.tobytes()


def test_fast_decode_reuses_its_parser_across_calls_and_threads():
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(5)
    mats = [rng.normal(size=(int(rng.integers(1, 3000)), 7)) for _ in range(12)]
    mats.append(rng.normal(size=(8000, 8)))  # over 1 MiB: a parser of its own
    bodies = [
        orjson.dumps(
            {"model_id": "m", "features": X, "threshold": 0.5}, option=orjson.OPT_SERIALIZE_NUMPY
        )
        for X in mats
    ]

    def check(i):
        got = parse_predict(bodies[i])
        assert got is not None and got[0] == {"model_id": "m", "threshold": 0.5}
        assert got[1].flags.writeable and got[1].tobytes() == mats[i].tobytes()
        assert parse_predict(b'{"model_id": "m", "features": [[1.0], [2.0, 3.0]]}') is None

    for i in range(len(mats)):
        check(i)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(check, list(range(len(mats))) * 3))


@pytest.mark.parametrize("features", BAD_FEATURES)
def test_fast_paths_decline_what_they_cannot_prove_valid(features):
    body = b'{"model_id": "m", "features": ' + features + b"}"
    ok_by_json = False
    try:
        PredictRequest.model_validate(json.loads(body))
        ok_by_json = True
    except Exception:
        pass
    if not ok_by_json:
        assert parse_small(body) is None
        assert parse_simdjson(body) is None
        assert parse_rows_body(body) is None


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e999999"])
def test_neither_parser_makes_a_number_that_is_not_finite(number):
    """The fast decoders do not test the numbers they make for finiteness: orjson and simdjson
    refuse every JSON text that would make one (its body takes the ordinary path)."""
    body = b'{"model_id": "m", "features": [[1.0, ' + number + b"]]}"
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(body)
    with pytest.raises(ValueError):
        simdjson.Parser().parse(body)


def test_docs_keep_the_request_schemas(client):
    spec = client.get("/openapi.json").json()
    for path, model in (("/predict", "PredictRequest"), ("/train", "TrainRequest")):
        body = spec["paths"][path]["post"]["requestBody"]
        content = body["content"]["application/json"]
        assert body["required"] is True
        assert content["schema"] == {"$ref": f"#/components/schemas/{model}"}
        assert "example" in content
        assert "features" in spec["components"]["schemas"][model]["properties"]
    assert "TrainParams" in spec["components"]["schemas"]


def test_no_base_http_middleware_on_the_hot_path(settings):
    """BaseHTTPMiddleware costs every request a task and a queue; only pure ASGI middleware."""
    from pydantic import SecretStr
    from starlette.middleware.base import BaseHTTPMiddleware

    app = create_app(settings.model_copy(update={"api_key": SecretStr("k")}))
    layers, layer = [], app.front
    while layer != app.fastapi:  # the service's own layers, in front of FastAPI
        layers.append(layer)
        layer = layer.app
    names = [type(x).__name__ for x in layers]
    assert names == [
        "PredictFastPath",
        "PrometheusMiddleware",
        "APIKeyAuth",
        "BodyLimits",
        "HeadAsGet",
    ]
    # the fast path answers in front of the other layers: it uses these very ones
    fast = layers[0]
    assert (fast.counted, fast.auth, fast.limits) == (layers[1], layers[2], layers[3])
    classes = [type(x) for x in layers] + [m.cls for m in app.user_middleware]
    assert not any(isinstance(c, type) and issubclass(c, BaseHTTPMiddleware) for c in classes)


def test_plain_bodies_take_the_fast_decoder_and_others_the_ordinary_path_once(client, monkeypatch):
    from app import decode

    mid = train(client, GOOD_TRAIN["features"], GOOD_TRAIN["labels"])["id"]
    calls = []
    real = decode.validate
    monkeypatch.setattr(decode, "validate", lambda *a, **k: calls.append(1) or real(*a, **k))
    body = {"model_id": mid, "features": [[1.0, 2.0]]}
    assert client.post("/predict", json=body).status_code == 200
    assert calls == []  # json.loads and pydantic never saw the rows
    r = client.post("/predict", json={**body, "threshold": 2})
    assert r.status_code == 422 and calls == []  # the fields alone, on what the decoder made
    r = client.post("/predict", json={**body, "features": [[1.0, "2"]]})
    assert r.status_code == 422 and calls == [1]
    r = client.post("/predict", json={**body, "model_id": "f" * 32})
    assert r.status_code == 404 and "no model" in r.json()["detail"]


def test_a_body_in_several_chunks_is_read_whole(client):
    mid = train(client, GOOD_TRAIN["features"], GOOD_TRAIN["labels"])["id"]
    raw = orjson.dumps({"model_id": mid, "features": [[1.0, 2.0]] * 50})

    async def parts():
        for i in range(0, len(raw), 7):
            yield raw[i : i + 7]

    r = client.post("/predict", content=parts(), headers={"content-type": "application/json"})
    assert r.status_code == 200 and len(r.json()["predictions"]) == 50


def test_an_error_on_the_fast_path_is_answered_once_not_retried(client, monkeypatch):
    """Issue 11: an unknown model or a wrong width was parsed and predicted by the front layer,
    then again by the route, whose answer replaced the first error."""
    from app import fast_body
    from app.service import ModelService

    mid = train(client, GOOD_TRAIN["features"], GOOD_TRAIN["labels"])["id"]
    parses, predictions = [], []
    parse, predict = fast_body.parse_predict, ModelService.predict
    monkeypatch.setattr(fast_body, "parse_predict", lambda b: parses.append(1) or parse(b))
    monkeypatch.setattr(
        ModelService, "predict", lambda *a, **k: predictions.append(1) or predict(*a, **k)
    )
    cases = [
        ({"model_id": "f" * 32, "features": [[1.0, 2.0]]}, 404, "no model", 0),
        ({"model_id": mid, "features": [[1.0, 2.0, 3.0]]}, 422, "expects 2", 1),
        ({"model_id": mid, "features": [[1.0, 2.0]]}, 200, None, 1),
    ]
    for body, status, needle, predicted in cases:
        parses.clear()
        predictions.clear()
        r = client.post("/predict", json=body)
        assert r.status_code == status, r.text
        assert needle is None or needle in r.json()["detail"]
        assert len(parses) == 1 and len(predictions) == predicted


def test_fields_beside_the_rows_are_remembered_by_type_as_well_as_value(client):
    """The fast decoder remembers valid field sets (``decode.predict_fields``); ``1``, ``1.0``
    and ``True`` are equal dictionary keys, but not equally valid fields."""
    mid = train(client, GOOD_TRAIN["features"], GOOD_TRAIN["labels"])["id"]
    rows = [[1.0, 2.0]]
    for _ in range(2):  # the second time from the memo
        assert client.post("/predict", json={"model_id": mid, "features": rows}).status_code == 200
        ok = client.post("/predict", json={"model_id": mid, "features": rows, "explain": True})
        assert ok.status_code == 200 and "contributions" in ok.json()
        bad = client.post("/predict", json={"model_id": mid, "features": rows, "explain": 1})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "explain"
        for threshold in (1, 1.0):
            r = client.post(
                "/predict", json={"model_id": mid, "features": rows, "threshold": threshold}
            )
            assert r.status_code == 200, r.text
        bad = client.post("/predict", json={"model_id": mid, "features": rows, "threshold": True})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "threshold"
