"""Bodies that come as JSON or CSV (chosen by Content-Type), and answers in CSV (chosen by Accept).

``POST /train`` and ``POST /predict`` read their body themselves, because FastAPI parses JSON
bodies only. JSON bodies are parsed and reported exactly as FastAPI would (400 for malformed
JSON, 422 naming the field); CSV bodies go to ``app/csv_io.py``, and their options come as query
parameters (``?label=species&max_iter=2000``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from .. import csv_io

M = TypeVar("M", bound=BaseModel)


def _prefixed(exc: ValidationError, *loc: str | int) -> RequestValidationError:
    return RequestValidationError([{**e, "loc": (*loc, *e["loc"])} for e in exc.errors()])


def parse_json(raw: bytes, model: type[M]) -> M:
    """``model`` from a JSON body, failing as FastAPI's own body parsing does.

    Python's ``json`` (not orjson) on purpose: it reads ``NaN`` and ``Infinity``, so that the
    schema can reject them naming the field, as it always has.
    """
    if not raw:
        missing = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}
        raise RequestValidationError([missing])
    try:
        data = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        invalid = {"type": "json_invalid", "loc": ("body",), "msg": "JSON decode error"}
        raise RequestValidationError([{**invalid, "input": {}, "ctx": {"error": reason}}]) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _prefixed(exc, "body") from None


def query_options(query: Mapping[str, str], model: type[M], *, text: Iterable[str] = ()) -> M:
    """``model`` from query parameters; 422 naming ``query.<name>`` when one is wrong or unknown.

    Values are read as JSON where they parse as JSON (``2000``, ``0.001``, ``true``, ``null``)
    and as text otherwise; the parameters named in ``text`` are always text.
    """
    text = set(text)
    values: dict[str, Any] = {}
    for key, value in query.items():
        if key in text:
            values[key] = value
            continue
        try:
            values[key] = orjson.loads(value)
        except orjson.JSONDecodeError:
            values[key] = value
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise _prefixed(exc, "query") from None


def wants_csv(request: Request) -> bool:
    """True when the Accept header prefers ``text/csv`` to JSON (JSON wins ties it names)."""
    quality: dict[str, float] = {}
    for part in request.headers.get("accept", "").split(","):
        media, *params = (p.strip().lower() for p in part.split(";"))
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        quality[media] = max(quality.get(media, 0.0), q)
    csv_q = quality.get(csv_io.MEDIA_TYPE, 0.0)
    json_q = quality.get("application/json", 0.0)
    other_q = max(quality.get("application/*", 0.0), quality.get("*/*", 0.0))
    return csv_q > 0 and csv_q > json_q and (csv_q >= other_q)


def openapi_with_request_schemas(
    app: FastAPI, *models: type[BaseModel]
) -> Callable[[], dict[str, Any]]:
    """``app.openapi`` that also lists ``models`` (bodies read by the routes themselves, so
    FastAPI does not see them) under ``components.schemas``, where ``request_body_doc`` points."""
    default = app.openapi
    _, top = models_json_schema(
        [(m, "validation") for m in models], ref_template="#/components/schemas/{model}"
    )

    def openapi() -> dict[str, Any]:
        schema = default()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, spec in top.get("$defs", {}).items():
            schemas.setdefault(name, spec)
        return schema

    return openapi


def request_body_doc(
    model: type[BaseModel],
    *,
    csv_example: str,
    csv_description: str,
    query: list[dict[str, Any]],
) -> dict[str, Any]:
    """``openapi_extra`` documenting a body that is ``model`` as JSON, or CSV, and the CSV-only
    query parameters, so that the docs page shows and can try both."""
    json_media: dict[str, Any] = {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": json_media,
                csv_io.MEDIA_TYPE: {
                    "schema": {"type": "string", "description": csv_description},
                    "example": csv_example,
                },
            },
        },
        "parameters": query,
    }


def query_doc(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": f"`text/csv` bodies only. {description}",
    }
