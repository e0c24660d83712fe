"""Shared request dependencies."""

from __future__ import annotations

from typing import Literal

from fastapi import Request

from .. import csv_io
from ..service import ModelService
from .errors import UnsupportedMediaType

JSON_TYPES = ("application/json",)
BodyKind = Literal["json", "csv"]


def get_service(request: Request) -> ModelService:
    service: ModelService = request.app.state.service
    return service


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def require_json(request: Request) -> None:
    """415 unless the body is declared as JSON (``application/json`` or ``+json``)."""
    ctype = media_type(request)
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise UnsupportedMediaType(ctype, JSON_TYPES)


def json_or_csv(request: Request) -> BodyKind:
    """415 unless the body is JSON or CSV; which one it is. For ``/train`` and ``/predict`` only."""
    ctype = media_type(request)
    if ctype == csv_io.MEDIA_TYPE:
        return "csv"
    if ctype == "application/json" or ctype.endswith("+json"):
        return "json"
    raise UnsupportedMediaType(ctype, (*JSON_TYPES, csv_io.MEDIA_TYPE))


async def read_body(request: Request) -> bytes:
    """The raw body, for routes that parse it themselves (and can then stay plain functions)."""
    return await request.body()
