from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from ..schemas import ErrorResponse, ModelSummary, TrainRequest
from ..service import ModelService
from .deps import get_service, require_json

router = APIRouter(tags=["training"])

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse} for code in (400, 413, 415, 422, 503, 507)
}


@router.post(
    "/train",
    status_code=201,
    response_model=ModelSummary,
    responses=ERRORS,
    dependencies=[Depends(require_json)],
)
def train(
    body: TrainRequest, response: Response, service: ModelService = Depends(get_service)
) -> ModelSummary:
    """Train a logistic-regression model on labelled rows and keep it; answers its summary."""
    summary = service.train(body)
    response.headers["Location"] = f"/models/{summary.id}"
    return summary
