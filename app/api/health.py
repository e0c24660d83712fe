from __future__ import annotations

from fastapi import APIRouter, Depends

from ..schemas import ErrorResponse, Health
from ..service import ModelService
from .deps import get_service

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, responses={503: {"model": ErrorResponse}})
def health(service: ModelService = Depends(get_service)) -> Health:
    """Liveness and readiness: the service answers and its model store can be read (503 when
    it cannot: the folder removed, unmounted or not permitted; the database unreachable)."""
    return Health(status="ok", models=service.count())
