"""Shared route dependencies."""

from __future__ import annotations

from fastapi import Request

from ..service import ModelService


def get_service(request: Request) -> ModelService:
    service: ModelService = request.app.state.service
    return service
