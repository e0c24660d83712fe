"""Shared request dependencies."""

from __future__ import annotations

from fastapi import Request

from ..service import ModelService
from .errors import UnsupportedMediaType

JSON_TYPES = ("application/json",)


def get_service(request: Request) -> ModelService:
    service: ModelService = request.app.state.service
    return service


def require_json(request: Request) -> None:
    """415 unless the body is declared as JSON (``application/json`` or ``+json``)."""
    check_content_type(request.headers.get("content-type"))


def check_content_type(content_type: str | None) -> None:
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise UnsupportedMediaType(ctype, JSON_TYPES)
