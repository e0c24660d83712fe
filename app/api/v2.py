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
from ..service import ModelService
from .deps import get_service

router = APIRouter(prefix="/v2", tags=["Open Inference Protocol (V2)"])

ModelId = Path(
    description="The model: its id (what `POST /train` answered), or `latest` for the newest.",
    max_length=100,
)
Version = Path(description="Models have one version, `1`.", max_length=20)

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
INFER_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "JSON; or, with the `Inference-Header-Content-Length` header, that many "
        "bytes of JSON followed by the raw little-endian tensors (binary tensor extension).",
        "content": {
            "application/json": {"schema": {"type": "object"}, "example": INFER_EXAMPLE},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
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


@router.post("/models/{model_id}/infer", responses=MODEL_ERRORS, openapi_extra=INFER_DOC)
async def infer(
    request: Request, model_id: str = ModelId, service: ModelService = Depends(get_service)
) -> Response:
    """Classify a [n_rows, n_features] tensor: outputs `predict` (labels) and `predict_proba`."""
    body = await request.body()
    content, header_length = await run_in_threadpool(
        partial(
            oip.infer,
            service,
            model_id,
            body,
            header_length=request.headers.get(oip.HEADER_LENGTH),
            content_encoding=request.headers.get("content-encoding"),
        )
    )
    if header_length is None:
        return Response(content, media_type="application/json")
    return Response(
        content,
        media_type="application/octet-stream",
        headers={oip.HEADER_LENGTH: str(header_length)},
    )


# The same, under /versions/{version}: every model has the one version "1".


@router.get("/models/{model_id}/versions/{version}", responses=MODEL_ERRORS)
def model_version_metadata(
    model_id: str = ModelId, version: str = Version, service: ModelService = Depends(get_service)
) -> Response:
    """Model metadata (see `GET /v2/models/{model_id}`)."""
    oip.check_version(version)
    return model_metadata(model_id, service)


@router.get("/models/{model_id}/versions/{version}/ready", responses=MODEL_ERRORS)
def model_version_ready(
    model_id: str = ModelId, version: str = Version, service: ModelService = Depends(get_service)
) -> Response:
    """Model readiness (see `GET /v2/models/{model_id}/ready`)."""
    oip.check_version(version)
    return model_ready(model_id, service)


@router.post(
    "/models/{model_id}/versions/{version}/infer", responses=MODEL_ERRORS, openapi_extra=INFER_DOC
)
async def infer_version(
    request: Request,
    model_id: str = ModelId,
    version: str = Version,
    service: ModelService = Depends(get_service),
) -> Response:
    """Inference (see `POST /v2/models/{model_id}/infer`)."""
    oip.check_version(version)
    return await infer(request, model_id, service)
