from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from .. import metrics
from ..service import ModelService
from .deps import get_service

router = APIRouter(tags=["monitoring"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
def prometheus_metrics(request: Request, service: ModelService = Depends(get_service)) -> Response:
    """Prometheus metrics, totalled over every worker: requests, latency, predictions, trainings,
    models and model-cache hits."""
    body, content_type = metrics.render(
        accept=request.headers.get("accept"), count_models=service.count
    )
    return Response(content=body, media_type=content_type)
