"""The Open Inference Protocol (KServe V2) over HTTP.

The protocol itself is in ``app/open_inference.py``; ``errors.py`` gives errors under ``/v2`` the
protocol's ``{"error": "..."}`` shape."""

from __future__ import annotations

from functools import partial
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Path, Request, Response
from starlette.concurrency import run_in_threadpool

from .. import open_inference as oip
from ..schemas import REFERENCE_DOC
from ..service import ModelService
from .deps import get_service

router = APIRouter(prefix="/v2", tags=["Open Inference Protocol (V2)"])

ModelId = Path(description=REFERENCE_DOC, max_length=100)
Version = Path(
    description="A version of a registered name (`/v2/models/churn/versions/3`); a model named "
    "otherwise has its own version only (`1` for an unnamed model).",
    max_length=20,
)

ERROR = {"content": {"application/json": {"example": {"error": "what is wrong"}}}}
ERRORS: dict[int | str, dict[str, Any]] = {400: ERROR, 404: ERROR}
#: routes that read a model: 409 when its file is unreadable or damaged, 503 when the folder is
MODEL_ERRORS: dict[int | str, dict[str, Any]] = {**ERRORS, 409: ERROR, 503: ERROR}
INFER_EXAMPLE = {
    "id": "42",
    "inputs": [
        {"name": "features", "shape": [2, 2], "datatype": "FP64", "data": [1.0, 7.0, 4.5, 6.5]}
    ],
    "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
}
# What app.open_inference.decode_request accepts, as far as JSON Schema can say it: unknown
# fields are ignored there, so they are allowed here; the fields it reads are typed. What it
# also checks relates values to each other or to the model (data holds shape[0] x shape[1]
# values, shape[1] is the model's n_features, output names are distinct, a threshold needs a
# binary model): said in the descriptions.
FALSY: dict[str, Any] = {  # what Python reads as false: the only "classification" accepted
    "anyOf": [
        {"enum": [False, None, 0, ""]},
        {"type": "array", "maxItems": 0},
        {"type": "object", "maxProperties": 0},
    ]
}
TENSOR: dict[str, Any] = {
    "type": "object",
    "required": ["name", "shape", "datatype", "data"],
    "properties": {
        "name": {"type": "string"},
        "shape": {
            "type": "array",
            "items": {"type": "integer", "minimum": 1},
            "minItems": 2,
            "maxItems": 2,
            "description": "[n_rows, n_features], n_features the model's (its metadata says).",
        },
        "datatype": {"enum": list(oip.DTYPES)},
        "data": {
            "type": "array",
            "minItems": 1,
            "items": {"anyOf": [{"type": "number"}, {"type": "array"}]},
            "description": "n_rows x n_features numbers in row-major order, flat or nested by "
            "row; integers for the integer datatypes.",
        },
        "parameters": {
            "type": "object",
            "properties": {"binary_data_size": False, "shared_memory_region": False},
        },
    },
}
OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"enum": list(oip.OUTPUTS)},
        "parameters": {
            "type": "object",
            "properties": {
                "binary_data": {"type": "boolean"},
                "classification": FALSY,
                "shared_memory_region": False,
            },
        },
    },
}
INFER_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": {
            "type": "object",
            "properties": {
                "threshold": {
                    "anyOf": [{"type": "number", "minimum": 0, "maximum": 1}, {"type": "null"}],
                    "description": "Binary models only: as `threshold` of `POST /predict`.",
                },
                "binary_data_output": {"type": "boolean"},
            },
        },
        "inputs": {"type": "array", "items": TENSOR, "minItems": 1, "maxItems": 1},
        "outputs": {
            "type": "array",
            "items": OUTPUT,
            "minItems": 1,
            "description": "Each output at most once; both when absent.",
        },
    },
}
INFER_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "JSON; or, with the `Inference-Header-Content-Length` header, that many "
        "bytes of JSON followed by the raw little-endian tensors (binary tensor extension).",
        "content": {
            "application/json": {"schema": INFER_REQUEST, "example": INFER_EXAMPLE},
            "application/octet-stream": {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": "The binary tensor extension: the request header "
                    "`Inference-Header-Content-Length: <n>` is required, and the body's first n "
                    "bytes are the JSON request above, whose input has "
                    '`"parameters": {"binary_data_size": <bytes>}` in place of `data`; the '
                    "input's raw little-endian values follow, exactly that many bytes. Without "
                    "the header the body is read as JSON.",
                }
            },
        },
    }
}


#: The answer is JSON, or binary when an output asks for ``binary_data`` (or the request for
#: ``binary_data_output``): then its first ``Inference-Header-Content-Length`` bytes are JSON.
INFER_RESPONSES: dict[int | str, dict[str, Any]] = {
    **MODEL_ERRORS,
    200: {
        "description": "The outputs, as JSON; or JSON then raw tensors (binary extension).",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
        "headers": {
            oip.HEADER_LENGTH: {
                "description": "Binary answers only: the length of their JSON part.",
                "schema": {"type": "integer", "minimum": 0},
            }
        },
    },
}


def _json(content: Any) -> Response:
    return Response(orjson.dumps(content), media_type="application/json")


@router.get("", responses=ERRORS)
def server_metadata(request: Request) -> Response:
    """Server metadata: name, version and the protocol extensions supported."""
    return _json(oip.server_metadata(version=request.app.version))


@router.get("/health/live")
def server_live() -> Response:
    """Liveness: the server answers."""
    return _json({"live": True})


@router.get("/health/ready")
def server_ready(service: ModelService = Depends(get_service)) -> Response:
    """Readiness: the model folder can be read."""
    service.count()
    return _json({"ready": True})


@router.get("/models/{model_id}", responses=MODEL_ERRORS)
def model_metadata(
    model_id: str = ModelId, service: ModelService = Depends(get_service)
) -> Response:
    """Model metadata: input `features` (FP64, [-1, n_features]), its outputs and classes."""
    return _json(oip.model_metadata(service.served(model_id)))


@router.get("/models/{model_id}/ready", responses=MODEL_ERRORS)
def model_ready(model_id: str = ModelId, service: ModelService = Depends(get_service)) -> Response:
    """Model readiness: 200 when the model exists and can be loaded."""
    return _json({"name": service.served(model_id).id, "ready": True})


async def _infer(
    request: Request, ref: str, service: ModelService, version: str | None = None
) -> Response:
    body = await request.body()
    content, header_length = await run_in_threadpool(
        partial(
            oip.infer,
            service,
            ref,
            body,
            header_length=request.headers.get(oip.HEADER_LENGTH),
            content_encoding=request.headers.get("content-encoding"),
            version=version,
        )
    )
    if header_length is None:
        return Response(content, media_type="application/json")
    return Response(
        content,
        media_type="application/octet-stream",
        headers={oip.HEADER_LENGTH: str(header_length)},
    )


@router.post("/models/{model_id}/infer", responses=INFER_RESPONSES, openapi_extra=INFER_DOC)
async def infer(
    request: Request, model_id: str = ModelId, service: ModelService = Depends(get_service)
) -> Response:
    """Classify a [n_rows, n_features] tensor: outputs `predict` (labels) and `predict_proba`."""
    return await _infer(request, model_id, service)


# The same, under /versions/{version}: a registered name's versions (`/v2/models/churn/versions/3`),
# or the one version of the model another reference names ("1" for an unnamed model).


@router.get("/models/{model_id}/versions/{version}", responses=MODEL_ERRORS)
def model_version_metadata(
    model_id: str = ModelId, version: str = Version, service: ModelService = Depends(get_service)
) -> Response:
    """Model metadata (see `GET /v2/models/{model_id}`)."""
    return _json(oip.model_metadata(service.served_version(model_id, version)))


@router.get("/models/{model_id}/versions/{version}/ready", responses=MODEL_ERRORS)
def model_version_ready(
    model_id: str = ModelId, version: str = Version, service: ModelService = Depends(get_service)
) -> Response:
    """Model readiness (see `GET /v2/models/{model_id}/ready`)."""
    return _json({"name": service.served_version(model_id, version).id, "ready": True})


@router.post(
    "/models/{model_id}/versions/{version}/infer",
    responses=INFER_RESPONSES,
    openapi_extra=INFER_DOC,
)
async def infer_version(
    request: Request,
    model_id: str = ModelId,
    version: str = Version,
    service: ModelService = Depends(get_service),
) -> Response:
    """Inference (see `POST /v2/models/{model_id}/infer`)."""
    return await _infer(request, model_id, service, version)
