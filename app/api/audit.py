"""The audit log: every change of state, for keys with the admin scope."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query

from ..errors import InvalidRequest
from ..schemas import AuditList
from ..service import ModelService
from .deps import get_service
from .docs import ERROR_RESPONSES

router = APIRouter(tags=["audit"])


@router.get("/audit", response_model=AuditList, responses=ERROR_RESPONSES(422, 503))
def audit(
    since: str | None = Query(
        None,
        description="Entries at or after this time, ISO 8601 (`2026-12-01T10:00:00Z`).",
        json_schema_extra={"format": "date-time"},
    ),
    limit: int = Query(100, ge=1, le=10_000, description="Most entries answered."),
    service: ModelService = Depends(get_service),
) -> AuditList:
    """The audit log: every change of state (models stored and deleted, aliases set, deleted
    and rolled back), oldest first; without `since`, the latest `limit` entries."""
    when = None
    if since is not None:
        try:
            when = datetime.fromisoformat(since)
        except ValueError:
            raise InvalidRequest(
                [{"field": "since", "message": f"{since[:40]!r} is not an ISO 8601 time"}]
            ) from None
    return service.audit(since=when, limit=limit)
