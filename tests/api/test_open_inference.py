"""The Open Inference Protocol (V2) over plain HTTP: JSON and binary tensors, and its errors."""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest

from tests.conftest import make_blobs, train

X3, Y3 = make_blobs(n=90, d=3, k=3, seed=5)
XS = [[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 3.0]]
YS = ["lo", "lo", "hi", "hi"]


@pytest.fixture
def int_model(client) -> str:
    return train(client, X3, [int(v) for v in Y3])["id"]


@pytest.fixture
def str_model(client) -> str:
    return train(client, XS, YS, feature_names=["a", "b"], name="strings")["id"]


def tensor(X, datatype="FP64", name="features", **extra):
    X = np.asarray(X)
    return {"name": name, "shape": list(X.shape), "datatype": datatype, "data": X.tolist(), **extra}


def infer(client, model_id, body, **kwargs):
    return client.post(f"/v2/models/{model_id}/infer", content=orjson.dumps(body), **kwargs)


def predicted(client, model_id, X):
    r = client.post("/predict", json={"model_id": model_id, "features": np.asarray(X).tolist()})
    assert r.status_code == 200, r.text
    return r.json()


def test_server_endpoints(client):
    meta = client.get("/v2").json()
    assert meta == {
        "name": "logreg-service",
        "version": client.get("/openapi.json").json()["info"]["version"],
        "extensions": ["binary_tensor_data"],
    }
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}


def test_model_metadata_and_readiness(client, str_model):
    meta = client.get(f"/v2/models/{str_model}").json()
    assert meta["name"] == str_model and meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "features", "datatype": "FP64", "shape": [-1, 2]}]
    assert [o["datatype"] for o in meta["outputs"]] == ["BYTES", "FP64"]
    assert meta["parameters"] == {
        "classes": ["hi", "lo"],
        "feature_names": ["a", "b"],
        "display_name": "strings",
    }
    assert client.get(f"/v2/models/{str_model}/versions/1").json() == meta
    assert client.get(f"/v2/models/{str_model}/ready").json() == {"name": str_model, "ready": True}
    assert client.get(f"/v2/models/{str_model}/versions/1/ready").status_code == 200


def test_json_infer_with_flat_data_and_id(client, int_model):
    X = X3[:7]
    body = {"id": "abc", "inputs": [{**tensor(X), "data": X.ravel().tolist()}]}
    r = infer(client, int_model, body)  # no Content-Type, as tritonclient sends
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert "inference-header-content-length" not in r.headers
    out = r.json()
    assert out["id"] == "abc" and out["model_name"] == int_model and out["model_version"] == "1"
    expected = predicted(client, int_model, X)
    predict, proba = out["outputs"]
    assert predict == {
        "name": "predict",
        "datatype": "INT64",
        "shape": [7],
        "data": expected["predictions"],
    }
    assert proba["name"] == "predict_proba" and proba["datatype"] == "FP64"
    assert proba["shape"] == [7, 3]
    np.testing.assert_array_equal(
        np.reshape(proba["data"], proba["shape"]), expected["probabilities"]
    )


def test_nested_data_int64_input_and_string_labels(client, str_model):
    X = np.array([[0, 1], [3, 3]], dtype=np.int64)
    r = infer(client, str_model, {"inputs": [tensor(X, "INT64")]})
    assert r.status_code == 200, r.text
    out = r.json()
    assert "id" not in out
    expected = predicted(client, str_model, X.astype(float))
    assert out["outputs"][0] == {
        "name": "predict",
        "datatype": "BYTES",
        "shape": [2],
        "data": expected["predictions"],
    }


def test_outputs_are_the_requested_ones_in_order(client, int_model):
    body = {"inputs": [tensor(X3[:2])], "outputs": [{"name": "predict_proba"}]}
    assert [o["name"] for o in infer(client, int_model, body).json()["outputs"]] == [
        "predict_proba"
    ]
    body["outputs"] = [{"name": "predict_proba"}, {"name": "predict"}]
    names = [o["name"] for o in infer(client, int_model, body).json()["outputs"]]
    assert names == ["predict_proba", "predict"]


def split_binary(r):
    n = int(r.headers["inference-header-content-length"])
    return orjson.loads(r.content[:n]), r.content[n:]


def test_binary_input_and_outputs(client, str_model):
    X = np.array([[0.0, 1.0], [3.0, 3.0], [2.5, 2.0]])
    raw = X.astype("<f4").tobytes()
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "features",
                    "shape": [3, 2],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "outputs": [
                {"name": "predict", "parameters": {"binary_data": True}},
                {"name": "predict_proba", "parameters": {"binary_data": True}},
            ],
        }
    )
    r = client.post(
        f"/v2/models/{str_model}/infer",
        content=header + raw,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/octet-stream"
    meta, data = split_binary(r)
    sizes = [o["parameters"]["binary_data_size"] for o in meta["outputs"]]
    assert sum(sizes) == len(data)
    expected = predicted(client, str_model, X.astype("<f4").astype(float))
    # BYTES: each element is a 4-byte little-endian length, then the UTF-8 bytes
    labels, pos = [], 0
    while pos < sizes[0]:
        (n,) = struct.unpack_from("<I", data, pos)
        labels.append(data[pos + 4 : pos + 4 + n].decode())
        pos += 4 + n
    assert labels == expected["predictions"]
    proba = np.frombuffer(data[sizes[0] :], dtype="<f8").reshape(meta["outputs"][1]["shape"])
    np.testing.assert_array_equal(proba, expected["probabilities"])


def test_binary_data_output_and_mixed_outputs(client, int_model):
    X = X3[:4]
    body = {"inputs": [tensor(X)], "parameters": {"binary_data_output": True}}
    meta, data = split_binary(infer(client, int_model, body))
    expected = predicted(client, int_model, X)
    assert np.frombuffer(data[:32], dtype="<i8").tolist() == expected["predictions"]
    body["outputs"] = [
        {"name": "predict", "parameters": {"binary_data": False}},
        {"name": "predict_proba"},
    ]
    meta, data = split_binary(infer(client, int_model, body))
    assert meta["outputs"][0]["data"] == expected["predictions"]
    np.testing.assert_array_equal(
        np.frombuffer(data, dtype="<f8").reshape(4, 3), expected["probabilities"]
    )


def test_threshold_parameter(client, str_model):
    X = [[1.5, 1.5]]
    low = infer(client, str_model, {"inputs": [tensor(X)], "parameters": {"threshold": 0.0}})
    high = infer(client, str_model, {"inputs": [tensor(X)], "parameters": {"threshold": 1.0}})
    # binary model: classes[1] ('lo') when its probability >= threshold
    assert low.json()["outputs"][0]["data"] == ["lo"]
    assert high.json()["outputs"][0]["data"] == ["hi"]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"inputs": [tensor([[1.0, 2.0]], datatype="BYTES")]}, 400, "datatype 'BYTES'"),
        ({"inputs": [tensor([[1.0, 2.0, 3.0]])]}, 400, "expects [-1, 2]"),
        ({"inputs": [{**tensor([[1.0, 2.0]]), "shape": [2, 2]}]}, 400, "has 4 elements"),
        ({"inputs": [{**tensor([[1.0, 2.0]]), "shape": [2]}]}, 400, "shape must be"),
        ({"inputs": [{**tensor([[1.0, 2.0]]), "shape": [0, 2]}]}, 400, "at least one row"),
        ({"inputs": [tensor([[1.0, 2.0]], name="x"), tensor([[1.0, 2.0]])]}, 400, "one input"),
        ({"inputs": []}, 400, "one input"),
        ({}, 400, "inputs"),
        ({"inputs": [{**tensor([[1.0, 2.0]]), "data": [1.0, "2"]}]}, 400, "element 1"),
        ({"inputs": [{**tensor([[1.0, 2.0]]), "data": [1.0, True]}]}, 400, "element 1"),
        ({"inputs": [tensor([[1.5, 2.0]], datatype="INT64")]}, 400, "not an integer"),
        ({"inputs": [tensor([[1.0, 2.0]], name="x")], "outputs": [{"name": "y"}]}, 400, "'y'"),
        ({"inputs": [tensor([[1.0, 2.0]])], "outputs": [{"name": "predict"}] * 2}, 400, "twice"),
        (
            {
                "inputs": [tensor([[1.0, 2.0]])],
                "outputs": [{"name": "predict_proba", "parameters": {"classification": 2}}],
            },
            400,
            "classification",
        ),
        ({"inputs": [tensor([[1.0, 2.0]])], "parameters": {"threshold": 2}}, 400, "threshold"),
        ({"inputs": [tensor([[1.0, 2.0]])], "id": 5}, 400, "id"),
        ({"inputs": [{"name": "features", "shape": [1, 2], "datatype": "FP64"}]}, 400, "data"),
    ],
)
def test_bad_json_requests(client, str_model, body, status, needle):
    r = infer(client, str_model, body)
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error"}
    assert needle in r.json()["error"], r.text


def test_input_errors_name_the_input(client, str_model):
    r = infer(client, str_model, {"inputs": [tensor([[1.0, 2.0]], datatype="BYTES", name="rows")]})
    assert r.json()["error"].startswith("input 'rows':")


def binary_request(X, *, dtype="<f8", datatype="FP64", size=None, extra=b""):
    raw = np.asarray(X, dtype=dtype).tobytes()
    size = len(raw) if size is None else size
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "features",
                    "shape": list(np.shape(X)),
                    "datatype": datatype,
                    "parameters": {"binary_data_size": size},
                }
            ]
        }
    )
    return header + raw + extra, len(header)


@pytest.mark.parametrize(
    ("body", "header_length", "needle"),
    [
        (binary_request([[1.0, np.nan]]), None, "element [0, 1]"),
        (binary_request([[1.0, np.inf]]), None, "not a finite number"),
        (binary_request([[1.0, 2.0]], size=8), None, "needs 16"),
        (binary_request([[1.0, 2.0]], extra=b"\0"), None, "binary_data_size add up to 16"),
        (binary_request([[1.0, 2.0]]), "abc", "Inference-Header-Content-Length"),
        (binary_request([[1.0, 2.0]]), "100000", "Inference-Header-Content-Length"),
        (binary_request([[1.0, 2.0]]), "5", "malformed JSON"),
    ],
)
def test_bad_binary_requests(client, str_model, body, header_length, needle):
    content, n = body
    r = client.post(
        f"/v2/models/{str_model}/infer",
        content=content,
        headers={"Inference-Header-Content-Length": header_length or str(n)},
    )
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]


def test_truncated_binary_data(client, str_model):
    content, n = binary_request([[1.0, 2.0]])
    r = client.post(
        f"/v2/models/{str_model}/infer",
        content=content[:-4],
        headers={"Inference-Header-Content-Length": str(n)},
    )
    assert r.status_code == 400 and "remain" in r.json()["error"]


def test_binary_size_without_the_header_is_refused(client, str_model):
    content, n = binary_request([[1.0, 2.0]])
    r = client.post(f"/v2/models/{str_model}/infer", content=content[:n])
    assert r.status_code == 400 and "remain" in r.json()["error"]


def test_not_found_and_malformed_bodies(client, str_model):
    unknown = "f" * 32
    for r in (
        client.get(f"/v2/models/{unknown}"),
        client.get(f"/v2/models/{unknown}/ready"),
        infer(client, unknown, {"inputs": [tensor([[1.0, 2.0]])]}),
        client.get(f"/v2/models/{str_model}/versions/2"),
        client.get(f"/v2/models/{str_model}/versions/2/ready"),
        client.post(f"/v2/models/{str_model}/versions/2/infer", content=b"{}"),
        client.get("/v2/nowhere"),
        client.get("/v2/models/..%2F..%2Fetc%2Fpasswd"),
    ):
        assert r.status_code == 404, r.text
        assert set(r.json()) == {"error"} and r.json()["error"]
    r = client.post(f"/v2/models/{str_model}/infer", content=b"{oops")
    assert r.status_code == 400 and "malformed JSON" in r.json()["error"]
    r = client.post(f"/v2/models/{str_model}/infer", content=b"[1, 2]")
    assert r.status_code == 400 and "body" in r.json()["error"]


def test_compressed_requests_are_refused_clearly(client, str_model):
    r = infer(
        client,
        str_model,
        {"inputs": [tensor([[0.0, 1.0]])]},
        headers={"content-encoding": "gzip"},
    )
    # 415, as on every route (the body layer, app/api/front/limits.py; issue 12, item 17)
    assert r.status_code == 415 and "Content-Encoding 'gzip'" in r.json()["error"]


def test_versioned_infer(client, str_model):
    r = client.post(
        f"/v2/models/{str_model}/versions/1/infer",
        content=orjson.dumps({"inputs": [tensor([[0.0, 1.0]])]}),
    )
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] == ["lo"]


def test_row_limit_applies(client, settings, str_model):
    settings.max_rows = 2
    r = infer(client, str_model, {"inputs": [tensor([[0.0, 1.0]] * 3)]})
    assert r.status_code == 413 and "rows" in r.json()["error"]


def test_other_routes_keep_their_error_shape(client):
    r = client.get("/models/" + "f" * 32)
    assert r.status_code == 404 and "detail" in r.json() and "error" not in r.json()


def test_corrupt_model_is_not_ready(client, settings, str_model):
    (settings.model_store_dir / f"{str_model}.json").write_text("{}")
    for r in (
        client.get(f"/v2/models/{str_model}/ready"),
        infer(client, str_model, {"inputs": [tensor([[0.0, 1.0]])]}),
    ):
        assert r.status_code == 409, r.text
        assert set(r.json()) == {"error"}


@pytest.mark.parametrize("datatype", ["FP32", "FP16"])
def test_a_json_value_too_large_for_its_float_datatype_is_a_400(client, str_model, datatype):
    """Found by the fuzz test: 1e300 as FP32 was cast to inf with a RuntimeWarning."""
    r = infer(client, str_model, {"inputs": [tensor([[1e300, 1.0]], datatype=datatype)]})
    assert r.status_code == 400, r.text
    assert f"out of range for {datatype}" in r.json()["error"]
