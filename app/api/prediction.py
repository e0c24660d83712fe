from __future__ import annotations

from fastapi import APIRouter, Depends

from ..schemas import ErrorResponse, PredictRequest, PredictResponse
from ..service import ModelService
from .deps import get_service, require_json

router = APIRouter(tags=["prediction"])

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse} for code in (400, 404, 409, 413, 415, 422)
}


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=ERRORS,
    dependencies=[Depends(require_json)],
)
def predict(body: PredictRequest, service: ModelService = Depends(get_service)) -> PredictResponse:
    """Classify rows with a trained model: labels, and probabilities in the order of `classes`.

    `model_id` is the id `POST /train` answered; the example's `latest` picks the newest model,
    so "Try it out" here works right after "Try it out" on `POST /train`. The answer's `model_id`
    is always the real id.
    """
    return service.predict(body)
