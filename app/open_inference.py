"""The Open Inference Protocol (KServe "V2", as spoken by Triton, MLServer and their clients).

Decodes infer requests (JSON, or the binary tensor extension: a JSON header of
``Inference-Header-Content-Length`` bytes followed by raw little-endian tensors), calls the one
prediction path (``ModelService.served``, then ``predict``) and encodes the answer the same two
ways.
No FastAPI here; ``app/api/v2.py`` is the HTTP side.

Each model is served under every reference that names it (its id, ``NAME``, ``NAME@ALIAS``...),
as its version under its name (``"1"`` for an unnamed model), with one input and two outputs::

    input   features        FP64 [-1, n_features]   (FP32, FP16 and (U)INT8-64 accepted too)
    output  predict         INT64 [-1] for integer labels, BYTES [-1] for string labels,
                            BOOL [-1] for boolean labels
    output  predict_proba   FP64 [-1, n_classes], columns in the order of ``parameters.classes``
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from .errors import ProtocolError
from .records import ServedModel
from .service import ModelService, Prediction

SERVER_NAME = "logreg-service"
EXTENSIONS = ["binary_tensor_data"]
PLATFORM = "numpy_logistic_regression"
MODEL_VERSION = "1"
INPUT_NAME = "features"
OUTPUTS = ("predict", "predict_proba")
HEADER_LENGTH = "Inference-Header-Content-Length"

#: Numeric tensor datatypes accepted as input, and their little-endian NumPy dtypes.
DTYPES: dict[str, np.dtype[Any]] = {
    name: np.dtype(code)
    for name, code in {
        "FP64": "<f8",
        "FP32": "<f4",
        "FP16": "<f2",
        "INT64": "<i8",
        "INT32": "<i4",
        "INT16": "<i2",
        "INT8": "i1",
        "UINT64": "<u8",
        "UINT32": "<u4",
        "UINT16": "<u2",
        "UINT8": "u1",
    }.items()
}
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def server_metadata(*, version: str) -> dict[str, Any]:
    return {"name": SERVER_NAME, "version": version, "extensions": EXTENSIONS}


def label_datatype(classes: Sequence[Any]) -> str:
    """BOOL for boolean labels, INT64 for integer labels that fit, BYTES (UTF-8 strings)
    otherwise."""
    if all(type(c) is bool for c in classes):
        return "BOOL"
    if all(type(c) is int and INT64_MIN <= c <= INT64_MAX for c in classes):
        return "INT64"
    return "BYTES"


def version_of(m: ServedModel) -> str:
    """A model's version: its version under its name, ``"1"`` for an unnamed model."""
    return str(m.version or MODEL_VERSION)


def model_metadata(m: ServedModel) -> dict[str, Any]:
    return {
        "name": m.id,
        "versions": [version_of(m)],
        "platform": PLATFORM,
        "inputs": [{"name": INPUT_NAME, "datatype": "FP64", "shape": [-1, m.n_features]}],
        "outputs": [
            {"name": "predict", "datatype": label_datatype(m.classes), "shape": [-1]},
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(m.classes)]},
        ],
        "parameters": {
            "classes": m.classes,
            "feature_names": m.feature_names,
            "display_name": m.name,
        },
    }


# --- decoding ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool


@dataclass(frozen=True)
class InferRequest:
    """A decoded infer request: the input as float64, what to answer and how."""

    X: np.ndarray  # (n_samples, n_features) float64, finite
    input_name: str
    id: str | None
    outputs: list[RequestedOutput]
    threshold: float | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(f"{where}: must be a JSON object")
    return value


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ProtocolError(f"{where}: must be true or false")
    return value


def _shape(value: Any, where: str) -> list[int]:
    if isinstance(value, list):  # JSON has one number type: 2.0 is the integer 2
        value = [int(d) if type(d) is float and d.is_integer() else d for d in value]
    if not isinstance(value, list) or not all(type(d) is int and d >= 0 for d in value):
        raise ProtocolError(f"{where}: shape must be a list of non-negative integers")
    return value


def _flat_json_data(data: Any, datatype: str, where: str) -> np.ndarray:
    """JSON tensor ``data`` (flat or nested, row-major) as a flat array of ``datatype``."""
    try:
        values = np.array(data, dtype=object).ravel()
    except ValueError:
        raise ProtocolError(f"{where}: data is ragged; nested lists must be rectangular") from None
    integer = DTYPES[datatype].kind in "iu"
    allowed = {int} if integer else {int, float}
    if not set(map(type, values)) <= allowed:  # fast check first; then find the culprit
        for k, v in enumerate(values):
            if type(v) not in allowed:
                kind = "an integer" if integer else "a number"
                raise ProtocolError(f"{where}: data element {k} is {v!r}, not {kind} ({datatype})")
    try:
        return values.astype(DTYPES[datatype])
    except OverflowError:
        raise ProtocolError(f"{where}: data has a value out of range for {datatype}") from None


def _input(tensor: Any, index: int, binary: memoryview, offset: int) -> tuple[str, np.ndarray, int]:
    """One input tensor -> its name, float64 array of its shape, and the binary bytes it used."""
    t = _object(tensor, f"inputs[{index}]")
    name = t.get("name")
    if not isinstance(name, str):
        raise ProtocolError(f"inputs[{index}]: needs a string 'name'")
    where = f"input {name!r}"
    shape = _shape(t.get("shape"), where)
    datatype = t.get("datatype")
    if not isinstance(datatype, str) or datatype not in DTYPES:  # a list or object: unhashable
        raise ProtocolError(
            f"{where}: datatype {datatype!r} is not supported; send FP64, FP32 or INT64 "
            f"(or one of {', '.join(DTYPES)})"
        )
    params = _object(t.get("parameters", {}), f"{where}: parameters")
    if "shared_memory_region" in params:
        raise ProtocolError(f"{where}: shared memory is not supported; send the data")
    if len(shape) != 2 or shape[0] < 1 or shape[1] < 1:
        raise ProtocolError(
            f"{where}: shape must be [n_rows, n_features] with at least one row, got {shape}"
        )
    size = params.get("binary_data_size")
    n_elements = math.prod(shape)
    if size is not None:
        if "data" in t:
            raise ProtocolError(f"{where}: has both 'data' and parameters.binary_data_size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ProtocolError(f"{where}: binary_data_size must be a non-negative integer")
        dtype = DTYPES[datatype]
        if size != n_elements * dtype.itemsize:
            raise ProtocolError(
                f"{where}: binary_data_size is {size} bytes, but shape {shape} of {datatype} "
                f"needs {n_elements * dtype.itemsize}"
            )
        if offset + size > len(binary):
            raise ProtocolError(
                f"{where}: binary_data_size is {size} bytes but only {len(binary) - offset} "
                "bytes of binary data remain after the JSON header"
            )
        flat = np.frombuffer(binary[offset : offset + size], dtype=dtype)
    elif "data" in t:
        flat = _flat_json_data(t["data"], datatype, where)
        size = 0
        if flat.size != n_elements:
            raise ProtocolError(
                f"{where}: shape {shape} has {n_elements} elements but data has {flat.size}"
            )
    else:
        raise ProtocolError(f"{where}: needs 'data' or parameters.binary_data_size")
    X = flat.reshape(shape).astype(np.float64)
    finite = np.isfinite(X)
    if not finite.all():
        r, c = np.argwhere(~finite)[0]
        raise ProtocolError(f"{where}: element [{r}, {c}] is {X[r, c]}, not a finite number")
    return name, X, size


def _outputs(value: Any, default_binary: bool) -> list[RequestedOutput]:
    if value is None:
        return [RequestedOutput(name, default_binary) for name in OUTPUTS]
    if not isinstance(value, list) or not value:
        raise ProtocolError("outputs: must be a non-empty list of {'name': ...} objects")
    out: list[RequestedOutput] = []
    for k, item in enumerate(value):
        o = _object(item, f"outputs[{k}]")
        name = o.get("name")
        if name not in OUTPUTS:
            raise ProtocolError(
                f"output {name!r}: unknown; this model's outputs are {', '.join(OUTPUTS)}"
            )
        if any(r.name == name for r in out):
            raise ProtocolError(f"output {name!r}: is requested twice")
        params = _object(o.get("parameters", {}), f"output {name!r}: parameters")
        if params.get("classification"):
            raise ProtocolError(
                f"output {name!r}: the classification extension is not supported; "
                "ask for predict_proba"
            )
        if "shared_memory_region" in params:
            raise ProtocolError(f"output {name!r}: shared memory is not supported")
        binary = params.get("binary_data", default_binary)
        out.append(RequestedOutput(name, _bool(binary, f"output {name!r}: binary_data")))
    return out


def decode_request(
    body: bytes, header_length: str | None, content_encoding: str | None = None
) -> InferRequest:
    """An infer request from the HTTP body and its ``Inference-Header-Content-Length`` header."""
    if content_encoding not in (None, "", "identity"):
        raise ProtocolError(
            f"Content-Encoding {content_encoding!r}: not supported; send the request uncompressed"
        )
    if header_length is None:
        header, binary = body, memoryview(b"")
    else:
        try:
            n = int(header_length)
        except ValueError:
            n = -1
        if not 0 <= n <= len(body):
            raise ProtocolError(
                f"{HEADER_LENGTH}: must be an integer between 0 and the body's {len(body)} bytes, "
                f"got {header_length!r}"
            )
        header, binary = body[:n], memoryview(body)[n:]
    try:
        req = _object(orjson.loads(header), "body")
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"body: malformed JSON ({exc})") from None
    params = _object(req.get("parameters", {}), "parameters")
    threshold = params.get("threshold")
    if threshold is not None and (
        isinstance(threshold, bool)
        or not isinstance(threshold, (int, float))
        or not 0 <= threshold <= 1
    ):
        raise ProtocolError("parameters.threshold: must be a number between 0 and 1")
    request_id = req.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ProtocolError("id: must be a string")
    inputs = req.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1:
        got = len(inputs) if isinstance(inputs, list) else "no list"
        raise ProtocolError(
            f"inputs: the model takes exactly one input, a [n_rows, n_features] tensor; got {got}"
        )
    name, X, used = _input(inputs[0], 0, binary, 0)
    if used != len(binary):
        raise ProtocolError(
            f"body: {len(binary)} bytes follow the JSON header but the inputs' "
            f"binary_data_size add up to {used}"
        )
    default_binary = _bool(params.get("binary_data_output", False), "binary_data_output")
    return InferRequest(
        X=X,
        input_name=name,
        id=request_id,
        outputs=_outputs(req.get("outputs"), default_binary),
        threshold=None if threshold is None else float(threshold),
        parameters=params,
    )


# --- encoding ------------------------------------------------------------------------------------


def _bytes_tensor(values: Iterable[Any]) -> bytes:
    """BYTES elements in binary: each a 4-byte little-endian length, then its UTF-8 bytes."""
    parts = []
    for v in values:
        b = str(v).encode()
        parts.append(struct.pack("<I", len(b)))
        parts.append(b)
    return b"".join(parts)


def _output_tensor(
    name: str, prediction: Prediction, binary: bool
) -> tuple[dict[str, Any], bytes | None]:
    n = len(prediction.predictions)
    if name == "predict_proba":
        proba = prediction.probabilities
        tensor: dict[str, Any] = {"name": name, "datatype": "FP64", "shape": list(proba.shape)}
        if binary:
            return tensor, np.ascontiguousarray(proba, dtype="<f8").tobytes()
        return {**tensor, "data": proba.ravel().tolist()}, None
    datatype = label_datatype(prediction.classes)
    tensor = {"name": name, "datatype": datatype, "shape": [n]}
    labels = prediction.predictions
    if not binary:
        data = labels.tolist() if datatype != "BYTES" else [str(v) for v in labels]
        return {**tensor, "data": data}, None
    if datatype == "INT64":
        return tensor, np.asarray(labels, dtype="<i8").tobytes()
    if datatype == "BOOL":  # one byte each, 0 or 1
        return tensor, np.asarray(labels, dtype=np.bool_).tobytes()
    return tensor, _bytes_tensor(labels)


def encode_response(
    model: ServedModel, request: InferRequest, prediction: Prediction
) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when binary outputs follow it."""
    outputs, chunks = [], []
    for wanted in request.outputs:
        tensor, raw = _output_tensor(wanted.name, prediction, wanted.binary)
        if raw is not None:
            tensor["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        outputs.append(tensor)
    response: dict[str, Any] = {"model_name": model.id, "model_version": version_of(model)}
    if request.id is not None:
        response["id"] = request.id
    response["outputs"] = outputs
    header = orjson.dumps(response)
    if not chunks:
        return header, None
    return b"".join([header, *chunks]), len(header)


def infer(
    service: ModelService,
    ref: str,
    body: bytes,
    *,
    header_length: str | None,
    content_encoding: str | None = None,
    version: str | None = None,
) -> tuple[bytes, int | None]:
    """Decode, check against the model ``ref`` names, predict, encode (see
    ``encode_response``). Reads the store on a cache miss: call it off the event loop."""
    model = service.served(ref) if version is None else service.served_version(ref, version)
    request = decode_request(body, header_length, content_encoding)
    n_features = model.n_features
    if request.X.shape[1] != n_features:
        raise ProtocolError(
            f"input {request.input_name!r}: shape {list(request.X.shape)}, but the model "
            f"expects [-1, {n_features}]"
        )
    prediction = service.predict(model, request.X, threshold=request.threshold)
    return encode_response(model, request, prediction)
