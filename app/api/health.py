from __future__ import annotations

from fastapi import APIRouter, Depends

from ..schemas import ErrorResponse, Health
from ..service import ModelService
from .deps import get_service

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, responses={503: {"model": ErrorResponse}})
def health(service: ModelService = Depends(get_service)) -> Health:
    """Liveness and readiness: the service answers and its model folder can be read (503 when
    it cannot: removed, unmounted, no permission)."""
    return Health(status="ok", models=service.count())
