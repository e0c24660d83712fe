"""Schemathesis hooks for ``tests/api/test_openapi_truth.py``: the rules of this API that JSON
Schema cannot state, applied to the requests Schemathesis draws as valid (positive) ones.

Loaded by ``st run`` through ``SCHEMATHESIS_HOOKS``. Every rule the OpenAPI document *can*
state (types, ranges, enums, required and unknown fields, ``minItems``) is left to the
document: a positive request it lets through that the service refuses fails the run's
"schema-valid request rejected" check. What is mapped here relates one value to another, or to
the server's state, which no schema can:

- one label per row, at least two classes, all labels of one kind; ``feature_names`` and
  ``sample_weight`` as long as the rows; every row as long as the first;
- the model a prediction names: as many columns as it has features, CSV headers naming them,
  ``threshold`` only for a binary model (looked up with ``GET /models/{id}``);
- the configured limits of the server under test (``MAX_ITER``, ``MAX_FEATURES`` for the
  polynomial expansion) and numbers so large that the fit or the scores overflow 64-bit floats;
- dataset uploads: the file's content (any bytes are a valid ``string``/``binary``) is made a
  valid table;
- Open Inference tensors: ``shape`` matching ``data``, the binary extension's
  ``Inference-Header-Content-Length`` and ``binary_data_size`` (the header is described in
  words on the ``application/octet-stream`` body: it is not valid beside a JSON body).

Negative requests are never touched.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from typing import Any

import httpx
import orjson
import schemathesis
from schemathesis import GenerationMode

BASE_URL = os.environ["LOGREG_BASE_URL"]
MAX_ITER = int(os.environ["MAX_ITER"])
MAX_FEATURES = int(os.environ["MAX_FEATURES"])
#: Values beyond this may overflow the standardisation, the fit or the scores (a 422 that names
#: them): data the schema cannot tell from good data.
BIG = 1e6


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """Just before each request is sent: by then the stateful phase has filled in the ids that
    earlier answers gave (``model_id`` from ``POST /train``), which the rules below look up."""
    meta = case.meta
    if meta is None or meta.generation.mode != GenerationMode.POSITIVE:
        return
    route = (case.method.upper(), case.operation.path)
    if route == ("POST", "/train"):
        _train(case)
    elif route == ("POST", "/datasets"):
        _datasets(case)
    elif route == ("POST", "/predict"):
        _predict(case)
    elif route == ("POST", "/models/{model_id}/evaluate"):
        _evaluate(case)
    elif case.method.upper() == "POST" and case.operation.path.endswith("/infer"):
        _infer(case)


# ---- POST /train ---------------------------------------------------------------------------


def _clamp(x: Any) -> Any:
    return max(-BIG, min(BIG, x)) if isinstance(x, (int, float)) else x


def _train(case: Any) -> None:
    if case.media_type == "text/csv":
        # a valid table; what CSV parsing refuses is the CSV tests' business
        case.body = "a,b,label\n0,1,x\n1,0,y\n2,2,x\n"
        case.query = {}
        return
    body = case.body
    if not isinstance(body, dict) or not isinstance(body.get("features"), list):
        return
    rows, labels = body["features"], body.get("labels")
    if len(rows) < 2 or not isinstance(rows[0], list) or not rows[0] or not labels:
        return  # refused by the document's minItems (else a failure of the run: rightly)
    width = len(rows[0])
    body["features"] = [[_clamp(v) for v in (row + row[:1] * width)[:width]] for row in rows]
    n = len(rows)
    labels = _labels(labels, n)
    body["labels"] = labels
    names = body.get("feature_names")
    if names is not None:
        names = (names + [f"x{i}" for i in range(width)])[:width]
        body["feature_names"] = [f"{name[:190]}~{i}" for i, name in enumerate(names)]
    weights = body.get("sample_weight")
    if weights is not None:
        weights = [min(w, BIG) for w in ((weights or [1.0]) * n)[:n]]
        if not any(w > 0 for w in weights):
            weights[0] = 1.0
        body["sample_weight"] = weights
    params = body.get("params")
    if isinstance(params, dict):
        _params(params, width, labels, weights)


#: A valid dataset upload: what parsing refuses is tests/api/test_datasets.py's business.
DATASET_CSV = "a,b,label\n0,1,x\n1,0,y\n2,2,x\n"


def _parquet_table() -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(pa.table({"a": [0.0, 1.0, 2.0], "label": ["x", "y", "x"]}), sink)
    return sink.getvalue()


@schemathesis.serializer("application/vnd.apache.parquet")
def _parquet(context: Any, value: Any) -> bytes:
    """A Parquet body: any string is schema-valid (``format: binary``), so a string is sent as a
    valid file (the hook cannot replace it: a bytes body then fails the run's revalidation);
    anything else as its text, which the server refuses."""
    if isinstance(value, (str, bytes)):
        return _parquet_table()
    return str(value).encode()


def _datasets(case: Any) -> None:
    if any(c.mode != GenerationMode.POSITIVE for c in case.meta.components.values()):
        return  # a negative part (the examples phase mixes them): left as drawn
    case.query = {}
    if case.media_type == "text/csv":
        case.body = DATASET_CSV
    elif case.media_type == "multipart/form-data":
        case.body = {"file": DATASET_CSV}


def _labels(labels: list[Any], n: int) -> list[Any]:
    """``n`` labels of the first one's kind, of at least two classes."""
    first = labels[0]
    if isinstance(first, bool):
        same = [v for v in labels if isinstance(v, bool)]
        other: Any = not first
    elif isinstance(first, (int, float)):  # a whole float is an integer class
        same = [int(v) for v in labels if type(v) in (int, float) and float(v).is_integer()]
        same = [v for v in same if -(2**63) <= v < 2**63] or [0]
        other = same[0] + 1 if same[0] < 2**63 - 1 else same[0] - 1
    else:
        same = [v for v in labels if isinstance(v, str)]
        other = same[0][:-1] + ("b" if same[0][-1:] == "a" else "a")
    out = (same * (n // len(same) + 1))[:n]
    if len(set(out)) < 2:
        out[1] = other
    return out


def _params(params: dict[str, Any], width: int, labels: list[Any], weights: Any) -> None:
    params["max_iter"] = min(params.get("max_iter", MAX_ITER), MAX_ITER)
    degree = int(params.get("polynomial_degree", 1))
    while degree > 1 and math.comb(width + degree, degree) - 1 > MAX_FEATURES:
        degree -= 1
    params["polynomial_degree"] = degree
    if params.get("solver") == "lbfgs":
        params["l1"] = 0  # L-BFGS fits no L1 penalty (a 422 that says so)
    params.pop("learning_rate", None)  # a step too large for the data diverges (a 422)
    for key in ("l1", "l2"):
        if key in params:
            params[key] = min(params[key], BIG)
    weight = params.get("class_weight")
    if isinstance(weight, dict):
        known = {str(label) for label in labels}
        weight = {k: min(w, BIG) for k, w in weight.items() if k in known}
        rows = weights or [1.0] * len(labels)
        # the row weights times the class weights must not all be zero
        if any(r * weight.get(str(label), 1.0) > 0 for r, label in zip(rows, labels, strict=True)):
            params["class_weight"] = weight
        else:
            params["class_weight"] = None


# ---- POST /predict -------------------------------------------------------------------------


#: Models by id (a model never changes; a deleted one makes the request a 404, which is fine).
MODELS: dict[str, dict[str, Any]] = {}


def model(ref: Any) -> dict[str, Any] | None:
    """What ``GET /models/{ref}`` answers, or ``None``; ``latest`` is asked anew each time."""
    if not isinstance(ref, str) or not (ref == "latest" or re.fullmatch("[0-9a-f]{32}", ref)):
        return None  # not an id: the service answers 404, which is fine
    if ref in MODELS:
        return MODELS[ref]
    r = httpx.get(f"{BASE_URL}/models/{ref}", timeout=30)
    if r.status_code != 200:
        return None
    found: dict[str, Any] = r.json()
    if ref != "latest":
        MODELS[ref] = found
    return found


def _rows_for(m: dict[str, Any] | None, rows: list[Any]) -> list[list[Any]]:
    width = m["n_features"] if m else len(rows[0])
    return [[_clamp(v) for v in (row + [0.0] * width)[:width]] for row in rows]


def _predict(case: Any) -> None:
    if case.media_type == "text/csv":
        m = model("latest")
        case.query = {"model_id": "latest"}
        if m is not None:
            names = m["feature_names"] or [f"x{i}" for i in range(m["n_features"])]
            case.body = ",".join(names) + "\n" + ",".join(["0.5"] * len(names)) + "\n"
        return
    body = case.body
    if not isinstance(body, dict) or not isinstance(body.get("features"), list):
        return
    if not body["features"] or not isinstance(body["features"][0], list):
        return  # refused by the document's minItems
    m = model(body.get("model_id"))
    body["features"] = _rows_for(m, body["features"])
    if m is not None and len(m["classes"]) != 2:
        body.pop("threshold", None)  # binary models only (a 422 that says so)


# ---- POST /models/{model_id}/evaluate (issue 15) -------------------------------------------


def _evaluate(case: Any) -> None:
    """Rows as wide as the model, one known class per row, ``threshold`` and ``positive_label``
    for a binary model only (``positive_label`` one of its classes); a CSV body of the model's
    columns and a label column."""
    m = model(case.path_parameters.get("model_id"))
    if m is None:
        return  # not an id, or no such model: a 404
    classes = m["classes"]
    if case.media_type == "text/csv":
        names = m["feature_names"] or [f"x{i}" for i in range(m["n_features"])]
        label = "label"
        while label in names:
            label += "_"
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([*names, label])
        for c in classes:
            writer.writerow(
                [
                    *(["0.5"] * len(names)),
                    str(c).lower() if c in (True, False) and type(c) is bool else c,
                ]
            )
        case.body = out.getvalue()
        case.query = {"label": label}
        return
    body = case.body
    if not isinstance(body, dict) or not isinstance(body.get("features"), list):
        return
    if not body["features"] or not isinstance(body["features"][0], list):
        return  # refused by the document's minItems
    body["features"] = _rows_for(m, body["features"])
    body["labels"] = [classes[i % len(classes)] for i in range(len(body["features"]))]
    if len(classes) != 2:
        body.pop("threshold", None)  # binary models only (a 422 that says so)
        body.pop("positive_label", None)
    elif body.get("positive_label") is not None:
        p = body["positive_label"]  # one of the classes, of their kind (True is not 1)
        if not any(type(c) is type(p) and c == p for c in classes):
            body["positive_label"] = classes[1]


# ---- POST /v2/models/{model_id}[/versions/{version}]/infer ---------------------------------


def _infer(case: Any) -> None:
    m = model(case.path_parameters.get("model_id"))
    width = m["n_features"] if m else 1
    if case.media_type == "application/octet-stream":
        header = {
            "inputs": [
                {
                    "name": "features",
                    "shape": [1, width],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": 8 * width},
                }
            ]
        }
        head = orjson.dumps(header)
        case.body = head + b"\x00" * (8 * width)
        case.headers = {**(case.headers or {}), "Inference-Header-Content-Length": str(len(head))}
        return
    body = case.body
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        return
    if len(body["inputs"]) != 1 or not isinstance(body["inputs"][0], dict):
        return  # the document says: exactly one input
    tensor = body["inputs"][0]
    rows = int(min(tensor["shape"][0], 3))  # within MAX_ROWS; data is built here
    tensor["shape"] = [rows, width]
    tensor["data"] = [0] * (rows * width)  # integers: valid for every datatype
    params = body.get("parameters")
    if isinstance(params, dict) and m is not None and len(m["classes"]) != 2:
        params.pop("threshold", None)  # binary models only
    outputs = body.get("outputs")
    if isinstance(outputs, list):
        seen: set[str] = set()
        body["outputs"] = [o for o in outputs if not (o["name"] in seen or seen.add(o["name"]))]
