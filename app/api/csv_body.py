"""CSV on ``/train`` and ``/predict``: options as query parameters, CSV answers chosen by Accept,
and the OpenAPI that shows both body types. The CSV itself is read and written by ``app/csv_io``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from .. import csv_io
from ..schemas import CsvTrainOptions, TrainParams
from .body import validation_error
from .docs import json_body

M = TypeVar("M", bound=BaseModel)


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
        raise validation_error(exc, ("query",)) from None


def refuse_query_without_csv(request: Request) -> None:
    """422 naming ``query.<name>`` for query parameters sent with a body that is not CSV.

    They are the options of a CSV body; a JSON body carries its own (``params``, ``model_id``),
    and a setting silently ignored would be worse than one refused."""
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if not request.query_params or ctype == csv_io.MEDIA_TYPE:
        return
    raise RequestValidationError(
        [
            {
                "type": "extra_forbidden",
                "loc": ("query", key),
                "msg": "query parameters are read only with a text/csv body; in a JSON body, "
                "send this in the body instead",
                "input": value,
            }
            for key, value in request.query_params.multi_items()
        ]
    )


def train_options(query: Mapping[str, str]) -> tuple[CsvTrainOptions, TrainParams]:
    """``?label=&name=`` and every ``params`` field (``?max_iter=2000&l2=0.001``)."""
    rest = dict(query)
    own = {key: rest.pop(key) for key in CsvTrainOptions.model_fields if key in rest}
    return query_options(own, CsvTrainOptions, text=own), query_options(rest, TrainParams)


def wants_csv(request: Request) -> bool:
    """True when the Accept header prefers ``text/csv`` to JSON (JSON wins ties it names)."""
    return wants_csv_accept(request.headers.get("accept"))


def wants_csv_accept(accept: str | None) -> bool:
    """``wants_csv`` for the value of an Accept header (``None``: none sent)."""
    quality: dict[str, float] = {}
    for part in (accept or "").split(","):
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
    doc["requestBody"]["content"][csv_io.MEDIA_TYPE] = {
        "schema": {"type": "string", "description": csv_description},
        "example": csv_example,
    }
    doc["parameters"] = query
    return doc


def query_doc(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    """One CSV-only query parameter. Its default is told in words, not as the schema's
    ``default``: Swagger UI's "Try it out" fills defaults in and sends them, also beside a JSON
    body, where query parameters are refused (``refuse_query_without_csv``)."""
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
