from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from ..schemas import REFERENCE_DOC, ErrorResponse, ModelDetail, ModelList
from ..service import ModelService
from .deps import actor_of, get_service

router = APIRouter(prefix="/models", tags=["models"])

#: 503: the model folder cannot be read (or, for DELETE, refused the delete)
NOT_FOUND: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse} for code in (404, 409, 422, 503)
}
# no max_length: any malformed id, however long, is the same clear 404 from check_model_id
ModelId = Path(description=REFERENCE_DOC)


@router.get(
    "", response_model=ModelList, responses={c: {"model": ErrorResponse} for c in (422, 503)}
)
def list_models(
    request: Request,
    limit: int = Query(50, ge=1, description="Page size (at most PAGE_SIZE_MAX)."),
    offset: int = Query(0, ge=0, description="How many models to skip."),
    service: ModelService = Depends(get_service),
) -> ModelList:
    """List stored models, newest first, one page at a time."""
    return service.list(limit=min(limit, service.settings.page_size_max), offset=offset)


@router.get("/{model_id}", response_model=ModelDetail, responses=NOT_FOUND)
def get_model(model_id: str = ModelId, service: ModelService = Depends(get_service)) -> ModelDetail:
    """A model's summary, its training settings and its learned parameters."""
    return service.get(model_id)


@router.delete("/{model_id}", status_code=204, response_class=Response, responses=NOT_FOUND)
def delete_model(
    request: Request, model_id: str = ModelId, service: ModelService = Depends(get_service)
) -> Response:
    """Delete a model; it answers 404 from then on. A version an alias points to: 409 (move
    the alias first)."""
    service.delete(model_id, actor=actor_of(request))
    return Response(status_code=204)
