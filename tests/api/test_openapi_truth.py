"""Issue 12, "The OpenAPI document must be the truth": Schemathesis run from outside, as a user
runs it (``st run <url>/openapi.json``, its default checks, "schema-valid request rejected"
included), against a real server passes. Bounded: a fixed seed and example count.

The document states what JSON Schema can; ``tests/api/schemathesis_hooks.py`` maps the requests
Schemathesis draws as valid onto the rules that relate one value to another (one label per
row, the named model's width), which no schema can state. The focused tests below pin the
three statements the document used to get wrong.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.live_server import ROOT, LiveServer

HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
LIMITS = {"MAX_ROWS": "500", "MAX_FEATURES": "50", "MAX_ITER": "5000", "TRAIN_TIME_BUDGET": "0.5"}
#: Per operation and phase: ~1,500 requests, ~20 s here (seeds 1-9 at 100-300 examples each
#: passed too, in up to ~100 s).
MAX_EXAMPLES = 40
SEED = 12


def schema_of(client, name):
    return client.get("/openapi.json").json()["components"]["schemas"][name]


def test_training_needs_two_rows_and_two_labels_and_rows_need_a_value(client):
    train = schema_of(client, "TrainRequest")["properties"]
    assert train["features"]["minItems"] == 2 and train["labels"]["minItems"] == 2
    assert train["features"]["items"]["minItems"] == 1
    predict = schema_of(client, "PredictRequest")["properties"]
    assert predict["features"]["minItems"] == 1
    assert predict["features"]["items"]["minItems"] == 1


@pytest.mark.parametrize("path", ["/predict", "/train"])
def test_query_parameters_are_not_documented_for_json_bodies(client, path):
    """They are the options of a CSV body, refused beside JSON: the CSV body's description
    names them instead (OpenAPI has no per-media-type parameters)."""
    op = client.get("/openapi.json").json()["paths"][path]["post"]
    assert not [p for p in op.get("parameters", []) if p["in"] == "query"]
    csv = op["requestBody"]["content"]["text/csv"]["schema"]["description"]
    assert "`?model_id=`" in csv if path == "/predict" else "`?label=`" in csv


def test_the_binary_infer_body_states_the_header_length_rule(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/v2/models/{model_id}/infer", "/v2/models/{model_id}/versions/{version}/infer"):
        content = paths[path]["post"]["requestBody"]["content"]
        binary = content["application/octet-stream"]["schema"]
        assert binary["format"] == "binary"
        assert "Inference-Header-Content-Length" in binary["description"]
        assert content["application/json"]["schema"]["required"] == ["inputs"]


def test_bounds_of_number_unions_are_json_schema_keywords(client):
    """pydantic wrote ``ge``/``le`` for ``StrictFloat | StrictInt``: no bound in JSON Schema."""
    params = schema_of(client, "TrainParams")["properties"]
    assert params["tol"]["minimum"] == 0 and "ge" not in params["tol"]
    assert params["learning_rate"]["anyOf"][0]["exclusiveMinimum"] == 0
    threshold = schema_of(client, "PredictRequest")["properties"]["threshold"]["anyOf"][0]
    assert (threshold["minimum"], threshold["maximum"]) == (0, 1)


def test_whole_floats_are_integers_where_the_document_says_integer(client):
    """JSON Schema's ``integer`` includes ``2.0``; so does the service (found by the run)."""
    body = {"features": [[0.0], [1.0], [2.0], [3.0]], "labels": [0, 0, 1, 1]}
    r = client.post("/train", json={**body, "params": {"max_iter": 50.0, "polynomial_degree": 2.0}})
    assert r.status_code == 201, r.text
    tensor = {"name": "features", "shape": [1.0, 1.0], "datatype": "FP64", "data": [0.5]}
    r = client.post(f"/v2/models/{r.json()['id']}/infer", json={"inputs": [tensor]})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("datatype", [{}, [], None, 1])
def test_an_infer_datatype_that_is_not_a_string_is_a_400_not_a_500(client, datatype):
    tensor = {"name": "features", "shape": [1, 1], "datatype": datatype, "data": [0.0]}
    r = client.post("/v2/models/latest/infer", json={"inputs": [tensor]})
    assert r.status_code == 400 and "datatype" in r.json()["error"], r.text


@pytest.mark.slow
def test_schemathesis_with_its_default_checks_passes_against_a_real_server(tmp_path):
    with LiveServer(tmp_path / "models", env=LIMITS) as server:
        # a model to predict with from the first request on
        body = {"features": [[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]], "labels": ["a", "b", "a"]}
        assert httpx.post(f"{server.url}/train", json=body).status_code == 201
        env = {
            **os.environ,
            **LIMITS,
            "LOGREG_BASE_URL": server.url,
            "SCHEMATHESIS_HOOKS": str(HOOKS),
            "PYTHONPATH": str(ROOT),
        }
        cmd = [sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/openapi.json"]
        cmd += ["--seed", str(SEED), "--max-examples", str(MAX_EXAMPLES), "--workers", "1"]
        cmd += ["--generation-database", "none", "--no-color", "--request-timeout", "30"]
        run = subprocess.run(
            cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-12000:]
    assert "Schema-valid request rejected" not in out
