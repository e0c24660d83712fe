"""OpenAPI helpers for routes that read their own body: the docs page still shows the schema."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from .. import media
from ..schemas import ErrorResponse


def ERROR_RESPONSES(*codes: int) -> dict[int | str, dict[str, Any]]:  # noqa: N802
    return {code: {"model": ErrorResponse} for code in codes}


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` declaring a required JSON body of ``model`` (with its examples)."""
    content: dict[str, Any] = {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
    extra: Any = model.model_config.get("json_schema_extra") or {}
    examples = extra.get("examples")
    if examples:
        content["example"] = examples[0]
    return {"requestBody": {"required": True, "content": {"application/json": content}}}


def json_or_csv_body(
    model: type[BaseModel],
    *,
    csv_example: str,
    csv_description: str,
    query: list[dict[str, Any]],
) -> dict[str, Any]:
    """``openapi_extra`` for a body that is ``model`` as JSON, or CSV, and the CSV-only query
    parameters, so that the docs page shows and can try both."""
    doc = json_body(model)
    doc["requestBody"]["content"][media.CSV] = {
        "schema": {"type": "string", "description": csv_description},
        "example": csv_example,
    }
    doc["parameters"] = query
    return doc


def query_doc(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    """One CSV-only query parameter. Its default is told in words, not as the schema's
    ``default``: Swagger UI's "Try it out" fills defaults in and sends them, also beside a JSON
    body, where query parameters are refused (``app.decode.check_query``)."""
    schema = dict(schema)
    if "default" in schema:
        default = schema.pop("default")
        description = f"{description} Default: `{orjson.dumps(default).decode()}`."
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": f"`text/csv` bodies only. {description}",
    }


def install(app: FastAPI, models: list[type[BaseModel]]) -> None:
    """Add ``models`` (bodies parsed by hand) to the OpenAPI components, with their $defs."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in models:
            js = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in js.pop("$defs", {}).items():
                components.setdefault(name, sub)
            components[model.__name__] = js
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
