"""Request bodies for routes that read their own bytes (``/predict``, ``/train``).

``validate_body`` reproduces what FastAPI does for a ``body: Model`` parameter, step for step
(``json.loads`` when the content type is JSON, a 400 on malformed JSON, the 415
dependency, then the model's validation with locations under ``body``), so these routes give
the same answers for bad input as the declared-body routes did. The fast paths in
``app.fast_body`` only ever accept what this accepts.
"""

from __future__ import annotations

import email.message
import json
from typing import Any, TypeVar

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from .deps import check_content_type

M = TypeVar("M", bound=BaseModel)
_UNSET: Any = object()


def is_plain_json(request: Request) -> bool:
    """True for the common ``Content-Type: application/json`` (the fast paths' only case)."""
    return request.headers.get("content-type") == "application/json"


def fastapi_reads_json(content_type: str | None) -> bool:
    if not content_type:
        return False  # FastAPI's strict_content_type (the default): no header, no JSON
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


def decode_json(content_type: str | None, body: bytes) -> Any:
    """The body as FastAPI hands it to validation: parsed JSON, raw bytes, or unset if empty."""
    if not body:
        return _UNSET
    if not fastapi_reads_json(content_type):
        return body
    try:
        return json.loads(body)
    except UnicodeDecodeError as exc:  # found by the fuzzer: not UTF-8 at all is malformed JSON
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body", exc.start),
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": f"not UTF-8 ({exc.reason})"},
                }
            ]
        ) from None
    except json.JSONDecodeError as exc:
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body", exc.pos),
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": exc.msg},
                }
            ]
        ) from None
    except Exception:  # anything else json.loads may raise (RecursionError on deep nesting)
        raise HTTPException(status_code=400, detail="There was an error parsing the body") from None


def validation_error(exc: ValidationError, prefix: tuple[str, ...] = ("body",)) -> Exception:
    """pydantic's errors with FastAPI's location prefix, ready for the 422 handler."""
    return RequestValidationError(
        [{**e, "loc": (*prefix, *e["loc"])} for e in exc.errors(include_url=False)]
    )


def check_body(content_type: str | None, value: Any, model: type[M], **kw: Any) -> M:
    """Content type (415), then presence and validation (422) of an already decoded body.

    ``kw`` goes to ``model_validate`` (e.g. a ``context``)."""
    check_content_type(content_type)
    if value is _UNSET:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    try:
        return model.model_validate(value, from_attributes=True, **kw)
    except ValidationError as exc:
        raise validation_error(exc) from None


def validate_body(content_type: str | None, body: bytes, model: type[M]) -> M:
    """Exactly FastAPI's handling of ``body: model`` on ``body``'s bytes (``content_type``: the
    request's header)."""
    return check_body(content_type, decode_json(content_type, body), model)
