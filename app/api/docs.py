"""OpenAPI helpers for routes that read their own body: the docs page still shows the schema."""

from __future__ import annotations

from typing import Any

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
    query: list[str],
) -> dict[str, Any]:
    """``openapi_extra`` for a body that is ``model`` as JSON, or CSV with its options in the
    query string (``query``, lines from ``query_doc``).

    The options are listed in the CSV body's description, not as the operation's parameters:
    they are refused beside a JSON body (``app.decode.check_query``), and OpenAPI cannot tie a
    parameter to one media type, so as parameters they would make ``?model_id=`` beside JSON
    look valid to every client and fuzzer that reads the document.
    """
    doc = json_body(model)
    options = "\n".join(query)
    doc["requestBody"]["content"][media.CSV] = {
        "schema": {
            "type": "string",
            "description": f"{csv_description}\n\nQuery parameters, read with a `text/csv` "
            f"body only (beside a JSON body they are a 422):\n\n{options}",
        },
        "example": csv_example,
    }
    return doc


def query_doc(name: str, description: str) -> str:
    """One CSV-only query parameter, as a Markdown list item of the CSV body's description."""
    return f"- `{name}`: {description}"


#: pydantic writes the bounds of a union of number types (``StrictFloat | StrictInt``) with its
#: own names, which JSON Schema does not know: as written, the document stated no bound at all.
BOUNDS = {"ge": "minimum", "gt": "exclusiveMinimum", "le": "maximum", "lt": "exclusiveMaximum"}


def json_schema_bounds(schema: Any) -> None:
    """Rename pydantic's ``ge``/``gt``/``le``/``lt`` to JSON Schema's keywords, in place, in
    every subschema of ``schema`` (the names under ``properties`` are left alone)."""
    if isinstance(schema, list):
        for item in schema:
            json_schema_bounds(item)
        return
    if not isinstance(schema, dict):
        return
    for ours, theirs in BOUNDS.items():
        if ours in schema and isinstance(schema[ours], (int, float)):
            schema[theirs] = schema.pop(ours)
    for key, value in schema.items():
        if key in ("properties", "$defs", "patternProperties"):
            for sub in value.values():
                json_schema_bounds(sub)
        elif key not in ("example", "examples", "default", "const", "enum"):
            json_schema_bounds(value)


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
        json_schema_bounds(components)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
