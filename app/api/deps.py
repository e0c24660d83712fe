"""Shared route dependencies."""

from __future__ import annotations

from fastapi import Request

from ..audit import Actor
from ..service import ModelService


def get_service(request: Request) -> ModelService:
    service: ModelService = request.app.state.service
    return service


def actor_of(request: Request) -> Actor:
    """Who makes a change: the API key's id and the request's id (set by the front layers in
    the ASGI scope's ``state``), and the client's address."""
    state = request.scope.get("state") or {}
    client = request.client
    return Actor(
        key_id=state.get("key_id"),
        client=None if client is None else f"{client.host}:{client.port}",
        request_id=state.get("request_id"),
    )
