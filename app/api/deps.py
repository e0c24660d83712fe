"""Shared request dependencies."""

from __future__ import annotations

from typing import Literal

from fastapi import Request

from .. import csv_io
from ..errors import UnsupportedMediaType
from ..service import ModelService

JSON_TYPES = ("application/json",)
BodyKind = Literal["json", "csv"]


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


def body_kind(content_type: str | None) -> BodyKind:
    """``/train`` and ``/predict`` only: "csv" for ``text/csv``, "json" for JSON; else 415
    naming both."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype == csv_io.MEDIA_TYPE:
        return "csv"
    if ctype == "application/json" or ctype.endswith("+json"):
        return "json"
    raise UnsupportedMediaType(ctype, (*JSON_TYPES, csv_io.MEDIA_TYPE))


def require_json_or_csv(request: Request) -> BodyKind:
    """``body_kind`` as a route dependency."""
    return body_kind(request.headers.get("content-type"))
