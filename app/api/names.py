"""Registered names, their versions and aliases; the audit log."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from ..schemas import (
    ALIAS_RULE_DOC,
    AliasChangeResponse,
    AliasHistory,
    AliasRequest,
    ErrorResponse,
    NameDetail,
    NameList,
)
from ..service import ModelService
from .deps import actor_of, get_service

router = APIRouter(tags=["names"])

Name = Path(description="A registered name (the `name` a training was given).")
Alias = Path(description="An alias of the name's versions, e.g. `champion`.")
#: Where an alias is made, the schema states its rule (checked by the store, whose 422 says it).
NewAlias = Path(
    description="An alias of the name's versions, e.g. `champion`. " + ALIAS_RULE_DOC,
    json_schema_extra={"pattern": "^[a-z][a-z0-9_-]{0,31}$"},
)


def _errors(*codes: int) -> dict[int | str, dict[str, object]]:
    return {code: {"model": ErrorResponse} for code in codes}


@router.get("/names", response_model=NameList, responses=_errors(422, 503))
def list_names(
    limit: int = Query(50, ge=1, description="Page size (at most PAGE_SIZE_MAX)."),
    offset: int = Query(0, ge=0, description="How many names to skip."),
    service: ModelService = Depends(get_service),
) -> NameList:
    """Every registered name with its newest version, number of versions and aliases."""
    return service.list_names(limit=min(limit, service.settings.page_size_max), offset=offset)


@router.get("/names/{name}", response_model=NameDetail, responses=_errors(404, 409, 422, 503))
def get_name(name: str = Name, service: ModelService = Depends(get_service)) -> NameDetail:
    """A name, its aliases and every version (id, created_at, training summary)."""
    return service.name(name)


@router.put(
    "/names/{name}/aliases/{alias}",
    response_model=AliasChangeResponse,
    responses=_errors(400, 404, 409, 422, 503),
)
def set_alias(
    body: AliasRequest,
    request: Request,
    name: str = Name,
    alias: str = NewAlias,
    service: ModelService = Depends(get_service),
) -> AliasChangeResponse:
    """Point an alias at a version; `NAME@ALIAS` serves it from the moment this answers."""
    return service.set_alias(name, alias, body.version, actor=actor_of(request))


@router.delete(
    "/names/{name}/aliases/{alias}",
    status_code=204,
    response_class=Response,
    responses=_errors(404, 409, 422, 503),
)
def delete_alias(
    request: Request,
    name: str = Name,
    alias: str = Alias,
    service: ModelService = Depends(get_service),
) -> Response:
    """Delete an alias (its history stays; a rollback brings it back)."""
    service.delete_alias(name, alias, actor=actor_of(request))
    return Response(status_code=204)


@router.get(
    "/names/{name}/aliases/{alias}/history",
    response_model=AliasHistory,
    responses=_errors(404, 409, 422, 503),
)
def alias_history(
    name: str = Name, alias: str = Alias, service: ModelService = Depends(get_service)
) -> AliasHistory:
    """Every change of an alias, newest first, with the id of the key that made it."""
    return service.alias_history(name, alias)


@router.post(
    "/names/{name}/aliases/{alias}/rollback",
    response_model=AliasChangeResponse,
    responses=_errors(404, 409, 422, 503),
)
def rollback_alias(
    request: Request,
    name: str = Name,
    alias: str = Alias,
    service: ModelService = Depends(get_service),
) -> AliasChangeResponse:
    """Point an alias back at the version it pointed to before its last change (each
    rollback goes one change further back); 409 when there is none."""
    return service.rollback_alias(name, alias, actor=actor_of(request))
