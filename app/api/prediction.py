from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Request, Response

from ..fast_body import parse_predict
from ..schemas import PredictRequest, PredictResponse
from ..service import ModelService
from .body import is_plain_json, validate_body
from .docs import ERROR_RESPONSES, json_body

router = APIRouter(tags=["prediction"])

_STUB_ROWS = [[0.0]]
_OPTS = orjson.OPT_SERIALIZE_NUMPY


def _plain_fields(obj: dict[str, Any]) -> PredictRequest | None:
    """The common, valid case without pydantic's overhead; ``None`` if in any doubt (then the
    ordinary path decides). Implies exactly what ``PredictRequest`` would accept."""
    model_id, threshold = obj.get("model_id"), obj.get("threshold")
    if type(model_id) is not str or len(obj) > 2 or (len(obj) == 2 and "threshold" not in obj):
        return None
    if threshold is not None and not (type(threshold) in (int, float) and 0 <= threshold <= 1):
        return None
    return PredictRequest.model_construct(
        model_id=model_id, features=_STUB_ROWS, threshold=threshold
    )


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=ERROR_RESPONSES(400, 404, 409, 413, 415, 422),
    openapi_extra=json_body(PredictRequest),
)
async def predict(request: Request) -> Response:
    """Classify rows with a trained model: labels, and probabilities in the order of `classes`."""
    # The body is read here rather than declared: the rows go from JSON to one float64 array
    # without pydantic's per-number validation (app.fast_body); anything the fast path declines
    # takes FastAPI's own steps (validate_body), so bad input gets the documented errors.
    body = await request.body()
    parsed = parse_predict(body) if is_plain_json(request) else None
    fields: PredictRequest | None = None
    if parsed is not None:
        fields = _plain_fields(parsed[0])
        X = parsed[1]
    if fields is None:
        fields = validate_body(request.headers.get("content-type"), body, PredictRequest)
        X = np.asarray(fields.features, dtype=np.float64)
    service: ModelService = request.app.state.service
    p = service.predict_array(fields.model_id, X, threshold=fields.threshold)
    out = {
        "model_id": fields.model_id,
        "classes": p.classes,
        "predictions": p.predictions if p.predictions.dtype != object else p.predictions.tolist(),
        "probabilities": p.probabilities,
    }
    return Response(orjson.dumps(out, option=_OPTS), media_type="application/json")
