from __future__ import annotations

from fastapi import APIRouter, Depends

from ..schemas import Health
from ..service import ModelService
from .deps import get_service

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
def health(service: ModelService = Depends(get_service)) -> Health:
    """Liveness and readiness: the service answers and its model folder can be read."""
    return Health(status="ok", models=service.count())
