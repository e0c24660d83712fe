"""The real, unmodified ``tritonclient[http]`` against a running service (a uvicorn process).

tritonclient sends no Content-Type, and by default sends and asks for binary tensors
(``Inference-Header-Content-Length``); with ``binary_data=False`` everything is JSON. Every answer
must equal ``POST /predict``'s for the same rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as http
from tritonclient.utils import InferenceServerException

from tests.conftest import make_blobs
from tests.live_server import LiveServer


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A live server with an integer-label (3 classes) and a string-label (binary) model."""
    folder = tmp_path_factory.mktemp("triton") / "models"
    X3, y3 = make_blobs(n=120, d=4, k=3, seed=3)
    X2, y2 = make_blobs(n=80, d=2, k=2, seed=4)
    with LiveServer(folder) as server, httpx.Client(base_url=server.url, timeout=30) as web:
        ids = {}
        for kind, X, y in (
            ("int", X3, [int(v) for v in y3]),
            ("str", X2, ["no" if v == 0 else "yes" for v in y2]),
        ):
            r = web.post("/train", json={"features": X.tolist(), "labels": y})
            assert r.status_code == 201, r.text
            ids[kind] = r.json()["id"]
        client = http.InferenceServerClient(server.url.removeprefix("http://"))
        try:
            yield {"client": client, "web": web, "ids": ids, "X": {"int": X3, "str": X2}}
        finally:
            client.close()


def rest_predict(web: httpx.Client, model_id: str, X: np.ndarray) -> dict[str, Any]:
    r = web.post("/predict", json={"model_id": model_id, "features": X.tolist()})
    assert r.status_code == 200, r.text
    return r.json()


def test_server_and_model_readiness(served):
    c = served["client"]
    assert c.is_server_live()
    assert c.is_server_ready()
    for model_id in served["ids"].values():
        assert c.is_model_ready(model_id)
        assert c.is_model_ready(model_id, model_version="1")
    assert not c.is_model_ready("f" * 32)
    assert not c.is_model_ready(served["ids"]["int"], model_version="2")


def test_server_metadata(served):
    meta = served["client"].get_server_metadata()
    assert meta["name"] == "logreg-service"
    assert meta["version"] == served["web"].get("/openapi.json").json()["info"]["version"]
    assert "binary_tensor_data" in meta["extensions"]


@pytest.mark.parametrize(
    ("kind", "label_type", "n_features", "n_classes"),
    [("int", "INT64", 4, 3), ("str", "BYTES", 2, 2)],
)
def test_model_metadata(served, kind, label_type, n_features, n_classes):
    model_id = served["ids"][kind]
    meta = served["client"].get_model_metadata(model_id)
    assert meta["name"] == model_id and meta["versions"] == ["1"] and meta["platform"]
    assert meta["inputs"] == [{"name": "features", "datatype": "FP64", "shape": [-1, n_features]}]
    assert meta["outputs"] == [
        {"name": "predict", "datatype": label_type, "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, n_classes]},
    ]
    assert served["client"].get_model_metadata(model_id, model_version="1") == meta
    with pytest.raises(InferenceServerException, match="no model"):
        served["client"].get_model_metadata("f" * 32)


@pytest.mark.parametrize("kind", ["int", "str"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_equals_predict(served, kind, dtype, binary):
    model_id, X = served["ids"][kind], served["X"][kind][:25].astype(dtype)
    tensor = http.InferInput("features", list(X.shape), "FP64" if dtype == np.float64 else "FP32")
    tensor.set_data_from_numpy(X, binary_data=binary)
    outputs = None  # the client's default: every output, binary
    if not binary:
        outputs = [
            http.InferRequestedOutput("predict", binary_data=False),
            http.InferRequestedOutput("predict_proba", binary_data=False),
        ]
    result = served["client"].infer(model_id, [tensor], outputs=outputs, request_id="req-7")

    # what /predict says about the very same float64 values
    expected = rest_predict(served["web"], model_id, X.astype(np.float64))
    labels = result.as_numpy("predict")
    if kind == "str":
        # BYTES: binary gives bytes objects, JSON gives str
        labels = [v.decode() if isinstance(v, bytes) else v for v in labels.tolist()]
    else:
        assert labels.dtype == np.int64
        labels = labels.tolist()
    assert labels == expected["predictions"]
    proba = result.as_numpy("predict_proba")
    assert proba.dtype == np.float64 and proba.shape == (len(X), len(expected["classes"]))
    np.testing.assert_allclose(proba, expected["probabilities"], rtol=1e-12, atol=1e-15)
    response = result.get_response()
    assert response["id"] == "req-7" and response["model_name"] == model_id
    has_binary = [("binary_data_size" in o.get("parameters", {})) for o in response["outputs"]]
    assert has_binary == [binary, binary]


def test_requested_outputs_only_and_in_order(served):
    model_id, X = served["ids"]["int"], served["X"]["int"][:5]
    tensor = http.InferInput("features", list(X.shape), "FP64")
    tensor.set_data_from_numpy(X)
    result = served["client"].infer(
        model_id,
        [tensor],
        outputs=[
            http.InferRequestedOutput("predict_proba"),  # binary
            http.InferRequestedOutput("predict", binary_data=False),
        ],
    )
    assert [o["name"] for o in result.get_response()["outputs"]] == ["predict_proba", "predict"]
    expected = rest_predict(served["web"], model_id, X)
    assert result.as_numpy("predict").tolist() == expected["predictions"]
    np.testing.assert_allclose(result.as_numpy("predict_proba"), expected["probabilities"])

    predict_only = [http.InferRequestedOutput("predict")]
    only = served["client"].infer(model_id, [tensor], outputs=predict_only)
    assert [o["name"] for o in only.get_response()["outputs"]] == ["predict"]
    assert only.as_numpy("predict_proba") is None


def test_errors_reach_the_client_as_messages(served):
    c, model_id = served["client"], served["ids"]["int"]
    wrong = http.InferInput("features", [2, 3], "FP64")  # the model has 4 features
    wrong.set_data_from_numpy(np.zeros((2, 3)))
    with pytest.raises(InferenceServerException, match=r"expects \[-1, 4\]") as info:
        c.infer(model_id, [wrong])
    assert info.value.status() == "400"

    good = http.InferInput("features", [1, 4], "FP64")
    good.set_data_from_numpy(np.zeros((1, 4)))
    with pytest.raises(InferenceServerException, match="'nope': unknown"):
        c.infer(model_id, [good], outputs=[http.InferRequestedOutput("nope")])
    with pytest.raises(InferenceServerException, match="no model") as info:
        c.infer("f" * 32, [good])
    assert info.value.status() == "404"
    nan = http.InferInput("features", [1, 4], "FP64")
    nan.set_data_from_numpy(np.array([[0.0, np.nan, 0.0, 0.0]]))
    with pytest.raises(InferenceServerException, match=r"element \[0, 1\]"):
        c.infer(model_id, [nan])
