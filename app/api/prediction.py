from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Request, Response

from .. import csv_io
from ..schemas import CsvPredictOptions, ErrorResponse, PredictRequest, PredictResponse
from ..service import ModelService, prediction_response
from .bodies import parse_json, query_doc, query_options, request_body_doc, wants_csv
from .deps import BodyKind, get_service, json_or_csv, read_body

router = APIRouter(tags=["prediction"])

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse} for code in (400, 404, 409, 413, 415, 422)
}
CSV_RESPONSE: dict[str, Any] = {
    "description": "With `Accept: text/csv`: `prediction`, then `proba_<class>` per class.",
    "content": {
        csv_io.MEDIA_TYPE: {
            "schema": {"type": "string"},
            "example": "prediction,proba_fail,proba_pass\nfail,0.93,0.07\npass,0.04,0.96\n",
        }
    },
}
BODY_DOC = request_body_doc(
    PredictRequest,
    csv_example="hours_studied,hours_slept\n1.0,7.0\n4.5,6.5\n",
    csv_description="A header row, then the rows to classify. If the model has feature names, "
    "the header names exactly those columns, in any order; otherwise it has as many columns as "
    "the model has features. The model is `?model_id=`.",
    query=[
        query_doc("model_id", {"type": "string"}, "The id that `POST /train` answered."),
        query_doc("threshold", {"type": "number"}, "Binary models only: as in the JSON body."),
    ],
)


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses={**ERRORS, 200: CSV_RESPONSE},
    openapi_extra=BODY_DOC,
)
def predict(
    request: Request,
    kind: BodyKind = Depends(json_or_csv),
    raw: bytes = Depends(read_body),
    service: ModelService = Depends(get_service),
) -> Any:
    """Classify rows with a trained model: labels, and probabilities in the order of `classes`.
    Rows come as JSON or CSV; the answer is JSON, or CSV with `Accept: text/csv`."""
    if kind == "json":
        body = parse_json(raw, PredictRequest)
        X = np.asarray(body.features, dtype=np.float64)
        model_id, threshold = body.model_id, body.threshold
    else:
        options = query_options(request.query_params, CsvPredictOptions, text=["model_id"])
        model = service.describe(options.model_id)
        X = csv_io.read_features(
            raw, n_features=model.n_features, feature_names=model.feature_names
        )
        model_id, threshold = options.model_id, options.threshold
    result = service.predict_array(model_id, X, threshold=threshold)
    if wants_csv(request):
        content = csv_io.write_predictions(result.classes, result.labels, result.probabilities)
        return Response(content, media_type="text/csv; charset=utf-8")
    return prediction_response(result)
