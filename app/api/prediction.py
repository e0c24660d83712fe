from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import csv_io
from ..fast_body import parse_predict
from ..schemas import CsvPredictOptions, PredictRequest, PredictResponse
from ..service import ModelService, Prediction
from .body import is_plain_json, validate_body
from .csv_body import (
    json_or_csv_body,
    query_doc,
    query_options,
    refuse_query_without_csv,
    wants_csv,
)
from .deps import body_kind
from .docs import ERROR_RESPONSES

router = APIRouter(tags=["prediction"])

CSV_RESPONSE: dict[str, Any] = {
    "description": "With `Accept: text/csv`: `prediction`, then `proba_<class>` per class.",
    "content": {
        csv_io.MEDIA_TYPE: {
            "schema": {"type": "string"},
            "example": "prediction,proba_fail,proba_pass\nfail,0.93,0.07\npass,0.04,0.96\n",
        }
    },
}
BODY_DOC = json_or_csv_body(
    PredictRequest,
    csv_example="hours_studied,hours_slept\n1.0,7.0\n4.5,6.5\n",
    csv_description="A header row, then the rows to classify. If the model has feature names, "
    "the header names exactly those columns, in any order; otherwise it has as many columns as "
    "the model has features. The model is `?model_id=`.",
    query=[
        query_doc("model_id", {"type": "string"}, "The id that `POST /train` answered."),
        query_doc("threshold", {"type": "number"}, "Binary models only: as in the JSON body."),
    ],
)

_OPTS = orjson.OPT_SERIALIZE_NUMPY
_CSV = csv_io.MEDIA_TYPE.encode()


def _plain_fields(obj: dict[str, Any]) -> tuple[str, float | None] | None:
    """``(model_id, threshold)`` in the common, valid case without pydantic's overhead; ``None``
    if in any doubt (then the ordinary path decides). Implies what ``PredictRequest`` accepts."""
    model_id, threshold = obj.get("model_id"), obj.get("threshold")
    if type(model_id) is not str or len(obj) > 2 or (len(obj) == 2 and "threshold" not in obj):
        return None
    if threshold is not None and not (type(threshold) in (int, float) and 0 <= threshold <= 1):
        return None
    return model_id, threshold


def encode(model_id: str, p: Prediction) -> bytes:
    labels = p.predictions
    out = {
        "model_id": p.model_id,
        "classes": p.classes,
        "predictions": labels if labels.dtype != object else labels.tolist(),
        "probabilities": p.probabilities,
    }
    return orjson.dumps(out, option=_OPTS)


def answer(service: ModelService, model_id: str, X: np.ndarray, threshold: Any) -> bytes:
    return encode(model_id, service.predict_array(model_id, X, threshold=threshold))


def predict_csv(service: ModelService, query: Any, body: bytes) -> tuple[str, Prediction]:
    """A ``text/csv`` body: the rows, matched to the model's features by the header."""
    options = query_options(query, CsvPredictOptions, text=["model_id"])
    model = service.prepared(options.model_id)
    X = csv_io.read_features(body, n_features=model.n_features, feature_names=model.feature_names)
    return options.model_id, service.predict_array(options.model_id, X, threshold=options.threshold)


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
    responses={**ERROR_RESPONSES(400, 404, 409, 413, 415, 422), 200: CSV_RESPONSE},
    openapi_extra=BODY_DOC,
)
async def predict(request: Request) -> Response:
    """Classify rows with a trained model: labels, and probabilities in the order of `classes`.

    Rows come as JSON or CSV; the answer is JSON, or CSV with `Accept: text/csv`.
    `model_id` is the id `POST /train` answered; the example's `latest` picks the newest model,
    so "Try it out" here works right after "Try it out" on `POST /train`. The answer's `model_id`
    is always the real id.
    """
    # The body is read here rather than declared: the rows go from JSON to one float64 array
    # without pydantic's per-number validation (app.fast_body); anything the fast path declines
    # takes FastAPI's own steps (validate_body), so bad input gets the documented errors.
    ctype = request.headers.get("content-type")
    kind = body_kind(ctype)
    body = await request.body()
    service: ModelService = request.app.state.service
    csv_out = wants_csv(request)
    if kind == "csv":
        model_id, p = await run_in_threadpool(predict_csv, service, request.query_params, body)
    else:
        refuse_query_without_csv(request)
        out = fast_answer(service, body) if is_plain_json(request) and not csv_out else None
        if out is not None:
            return Response(out, media_type="application/json")
        fields = validate_body(ctype, body, PredictRequest)
        X = np.asarray(fields.features, dtype=np.float64)
        model_id = fields.model_id
        p = service.predict_array(model_id, X, threshold=fields.threshold)
    if csv_out:
        content = csv_io.write_predictions(p.classes, p.predictions.tolist(), p.probabilities)
        return Response(content, media_type="text/csv; charset=utf-8")
    return Response(encode(model_id, p), media_type="application/json")


class PredictFastPath:
    """Pure ASGI middleware answering the common ``POST /predict`` before FastAPI's middleware,
    routing and dependency machinery (most of a 1-row prediction's cost otherwise).

    It answers only a plain ``application/json`` body that ``fast_answer`` accepts and that
    predicts without error; any other request, and any error (unknown model, wrong width...),
    goes on to the app with the body replayed, where the route and the error handlers produce
    the documented answer. It is the innermost of the service's front layers (app.main), right in
    front of FastAPI, so that metrics, the API key and the body size limit see every request.
    """

    def __init__(self, app: ASGIApp, *, service: ModelService) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != "/predict"
            or scope["method"] != "POST"
            or scope["query_string"]  # the route refuses query parameters with JSON
        ):
            await self.app(scope, receive, send)
            return
        ctype = accept = None  # the first of each, as Starlette's Headers.get
        for name, value in scope["headers"]:
            if name == b"content-type":
                ctype = value if ctype is None else ctype
            elif name == b"accept":
                accept = value if accept is None else accept
        if ctype != b"application/json" or (accept is not None and _CSV in accept):
            await self.app(scope, receive, send)  # CSV answers are the route's
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
