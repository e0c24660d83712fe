from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from .. import csv_io
from ..schemas import CsvTrainOptions, ErrorResponse, ModelSummary, TrainParams, TrainRequest
from ..service import ModelService
from .bodies import parse_json, query_doc, query_options, request_body_doc
from .deps import BodyKind, get_service, json_or_csv, read_body

router = APIRouter(tags=["training"])

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse} for code in (400, 413, 415, 422)
}

CSV_EXAMPLE = """hours_studied,hours_slept,result
0.5,8.0,fail
1.0,6.5,fail
1.5,7.0,fail
2.0,5.0,pass
3.0,7.5,fail
3.5,6.0,pass
4.0,8.0,pass
5.0,7.0,pass
"""
CSV_QUERY: list[dict[str, Any]] = [
    query_doc(name, {"type": "string"}, field.description or "")
    for name, field in CsvTrainOptions.model_fields.items()
] + [
    query_doc(name, spec, spec.get("description", ""))
    for name, spec in TrainParams.model_json_schema()["properties"].items()
]
BODY_DOC = request_body_doc(
    TrainRequest,
    csv_example=CSV_EXAMPLE,
    csv_description="A header row naming the columns, then one row per example. The label "
    "column is `?label=` (default: the last column); every other column is a feature, named by "
    "its header. Training settings are query parameters (`?max_iter=2000&l2=0.001`).",
    query=CSV_QUERY,
)


@router.post(
    "/train", status_code=201, response_model=ModelSummary, responses=ERRORS, openapi_extra=BODY_DOC
)
def train(
    request: Request,
    response: Response,
    kind: BodyKind = Depends(json_or_csv),
    raw: bytes = Depends(read_body),
    service: ModelService = Depends(get_service),
) -> ModelSummary:
    """Train a logistic-regression model on labelled rows (JSON, or CSV with a header row) and
    keep it; answers its summary."""
    if kind == "json":
        summary = service.train(parse_json(raw, TrainRequest))
    else:
        query = dict(request.query_params)
        own = {key: query.pop(key) for key in CsvTrainOptions.model_fields if key in query}
        options = query_options(own, CsvTrainOptions, text=own)
        params = query_options(query, TrainParams)
        table = csv_io.read_training(raw, label=options.label)
        summary = service.train_arrays(
            table.X,
            table.labels,
            feature_names=table.feature_names,
            name=options.name,
            params=params,
        )
    response.headers["Location"] = f"/models/{summary.id}"
    return summary
