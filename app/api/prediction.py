from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..fast_body import parse_predict
from ..schemas import PredictRequest, PredictResponse
from ..service import ModelService
from .body import is_plain_json, validate_body
from .docs import ERROR_RESPONSES, json_body

router = APIRouter(tags=["prediction"])

_OPTS = orjson.OPT_SERIALIZE_NUMPY


def _plain_fields(obj: dict[str, Any]) -> tuple[str, float | None] | None:
    """``(model_id, threshold)`` in the common, valid case without pydantic's overhead; ``None``
    if in any doubt (then the ordinary path decides). Implies what ``PredictRequest`` accepts."""
    model_id, threshold = obj.get("model_id"), obj.get("threshold")
    if type(model_id) is not str or len(obj) > 2 or (len(obj) == 2 and "threshold" not in obj):
        return None
    if threshold is not None and not (type(threshold) in (int, float) and 0 <= threshold <= 1):
        return None
    return model_id, threshold


def answer(service: ModelService, model_id: str, X: np.ndarray, threshold: Any) -> bytes:
    p = service.predict_array(model_id, X, threshold=threshold)
    labels = p.predictions
    out = {
        "model_id": p.model_id,
        "classes": p.classes,
        "predictions": labels if labels.dtype != object else labels.tolist(),
        "probabilities": p.probabilities,
    }
    return orjson.dumps(out, option=_OPTS)


def fast_answer(service: ModelService, body: bytes) -> bytes | None:
    """The 200 answer to a plain, valid body; ``None`` when the body needs the full path."""
    parsed = parse_predict(body)
    if parsed is None:
        return None
    fields = _plain_fields(parsed[0])
    if fields is None:
        return None
    return answer(service, fields[0], parsed[1], fields[1])


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=ERROR_RESPONSES(400, 404, 409, 413, 415, 422),
    openapi_extra=json_body(PredictRequest),
)
async def predict(request: Request) -> Response:
    """Classify rows with a trained model: labels, and probabilities in the order of `classes`.

    `model_id` is the id `POST /train` answered; the example's `latest` picks the newest model,
    so "Try it out" here works right after "Try it out" on `POST /train`. The answer's `model_id`
    is always the real id.
    """
    # The body is read here rather than declared: the rows go from JSON to one float64 array
    # without pydantic's per-number validation (app.fast_body); anything the fast path declines
    # takes FastAPI's own steps (validate_body), so bad input gets the documented errors.
    body = await request.body()
    service: ModelService = request.app.state.service
    out = fast_answer(service, body) if is_plain_json(request) else None
    if out is None:
        fields = validate_body(request.headers.get("content-type"), body, PredictRequest)
        X = np.asarray(fields.features, dtype=np.float64)
        out = answer(service, fields.model_id, X, fields.threshold)
    return Response(out, media_type="application/json")


class PredictFastPath:
    """Pure ASGI middleware answering the common ``POST /predict`` before FastAPI's routing and
    dependency machinery (most of a 1-row prediction's cost otherwise).

    It answers only a plain ``application/json`` body that ``fast_answer`` accepts and that
    predicts without error; any other request, and any error (unknown model, wrong width...),
    goes on to the app with the body replayed, where the route and the error handlers produce
    the documented answer. Install it innermost (first ``add_middleware``) so that other pure
    ASGI middleware (metrics, auth) still sees every request.
    """

    def __init__(self, app: ASGIApp, *, service: ModelService) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/predict" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        ctype = next((v for k, v in scope["headers"] if k == b"content-type"), None)
        if ctype != b"application/json":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            out = fast_answer(self.service, body)
        except Exception:  # the app's handlers own every error answer
            out = None
        if out is None:
            await self.app(scope, _replay(body, receive), send)
            return
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(out))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": out})


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
