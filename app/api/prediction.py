from __future__ import annotations

from functools import partial
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from .. import csv_io, media
from ..decode import (
    PredictInput,
    check_request,
    decode_json_fast,
    decode_predict,
    decode_predict_fast,
    predict_options,
)
from ..errors import InvalidRequest
from ..offload import Offload
from ..schemas import PredictRequest, PredictResponse
from ..service import ModelService, Prediction
from .docs import ERROR_RESPONSES, json_or_csv_body, query_doc

router = APIRouter(tags=["prediction"])

CSV_RESPONSE: dict[str, Any] = {
    "description": "With `Accept: text/csv`: `prediction`, then `proba_<class>` per class.",
    "content": {
        media.CSV: {
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
        query_doc("model_id", "Required: the id `POST /train` answered, or `latest`."),
        query_doc("threshold", "Binary models only: as in the JSON body."),
    ],
)

_OPTS = orjson.OPT_SERIALIZE_NUMPY
#: Bodies up to this size are decoded on the event loop, and answered there when their model is
#: cached: at most a few hundred us of parsing, less than a hop to a thread and back costs.
INLINE_BODY_BYTES = 64 * 1024
#: simdjson parses about 150 MB/s: up to this size it holds the GIL for under ~60 ms.
DECODE_IN_THREAD_MAX = 8 * 1024 * 1024
#: ``json.loads`` parses about 45 MB/s of a body of strings: ~25 ms for this size.
FALLBACK_IN_THREAD_MAX = 1024 * 1024


def encode(p: Prediction) -> bytes:
    labels = p.predictions
    out = {
        "model_id": p.model_id,
        "name": p.name,
        "version": p.version,
        "classes": p.classes,
        "predictions": labels if labels.dtype != object else labels.tolist(),
        "probabilities": p.probabilities,
    }
    if p.warnings is not None:
        out["warnings"] = p.warnings
        out["warnings_total"] = p.warnings_total
    if p.explanation is not None:
        out["terms"] = p.terms
        out["baseline"] = p.explanation.baseline
        out["contributions"] = p.explanation.contributions
    return orjson.dumps(out, option=_OPTS)


def predict_input(service: ModelService, request: PredictInput) -> Prediction:
    """Resolve the model (may read the store: off the event loop) and predict."""
    model = service.served(request.model_id)
    return service.predict(model, request.X, threshold=request.threshold, explain=request.explain)


def predict_csv(service: ModelService, query: Any, body: bytes) -> Prediction:
    """A ``text/csv`` body: the rows, matched to the model's features by the header."""
    options = predict_options(query)
    model = service.served(options.model_id)
    X = csv_io.read_features(
        body,
        n_features=model.n_features,
        feature_names=model.feature_names,
        max_features=service.settings.max_features,
    )
    return service.predict(model, X, threshold=options.threshold)


async def decode_off_loop(offload: Offload, content_type: str | None, body: bytes) -> PredictInput:
    """``decode_predict`` without holding up the event loop: in a thread, except what would
    hold the GIL for long (and so block the loop all the same), which runs in a child process
    (``app.offload``): parsing a body over ``DECODE_IN_THREAD_MAX`` bytes, and the ordinary
    path (``json.loads``, pydantic) on a body over ``FALLBACK_IN_THREAD_MAX`` bytes that the fast
    decoder declined."""
    if len(body) > DECODE_IN_THREAD_MAX:
        return await offload.run(decode_predict, content_type, body)
    if len(body) <= FALLBACK_IN_THREAD_MAX:
        return await run_in_threadpool(decode_predict, content_type, body)
    got = await run_in_threadpool(decode_predict_fast, content_type, body)
    if got is not None:
        return got
    return await offload.run(partial(decode_predict, content_type, body, fast=False))


async def predict_json(
    service: ModelService, offload: Offload, content_type: str | None, body: bytes
) -> bytes:
    """The JSON answer to a JSON predict body sent without query parameters (its callers check
    the content type and the query first). A small body is decoded on the event loop (by the
    fast decoder; the ordinary path, for what it declines, in a thread) and, when its model is
    cached, answered there; otherwise the work runs in one thread hop, and bodies too large for
    that are decoded by ``decode_off_loop`` first."""
    if len(body) <= INLINE_BODY_BYTES:
        got = decode_json_fast(body)
        if got is None:  # the ordinary path's pydantic errors can be many: off the loop
            got = await run_in_threadpool(partial(decode_predict, content_type, body, fast=False))
        request = got
        model = service.cached(request.model_id)
        if model is not None:
            p = service.predict(
                model, request.X, threshold=request.threshold, explain=request.explain
            )
            return encode(p)
    elif len(body) <= FALLBACK_IN_THREAD_MAX:

        def work() -> bytes:
            return encode(predict_input(service, decode_predict(content_type, body)))

        return await run_in_threadpool(work)
    else:
        request = await decode_off_loop(offload, content_type, body)
    return await run_in_threadpool(lambda: encode(predict_input(service, request)))


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses={**ERROR_RESPONSES(400, 404, 409, 413, 415, 422, 503), 200: CSV_RESPONSE},
    openapi_extra=BODY_DOC,
)
async def predict(request: Request) -> Response:
    """Classify rows with a trained model: labels, and probabilities in the order of `classes`.

    Rows come as JSON or CSV; the answer is JSON, or CSV with `Accept: text/csv`.
    `model_id` is the id `POST /train` answered, or `latest` for the newest model (the
    example's, so "Try it out" here works right after "Try it out" on `POST /train`). The
    answer's `model_id` is always the real id.
    """
    # The body is read here rather than declared: the rows go from JSON to one float64 array
    # without pydantic's per-number validation. A plain JSON body with a JSON answer never gets
    # here: the front layer app.api.front.fast_predict answers it with the same functions.
    ctype = request.headers.get("content-type")
    query = request.query_params.multi_items()
    kind = check_request(ctype, query)
    body = await request.body()
    service: ModelService = request.app.state.service
    offload: Offload = request.app.state.offload
    if not media.wants_csv(request.headers.get("accept")):
        if kind == "csv":
            p = await run_in_threadpool(predict_csv, service, query, body)
            return Response(encode(p), media_type="application/json")
        content = await predict_json(service, offload, ctype, body)
        return Response(content, media_type="application/json")

    decoded = None if kind == "csv" else await decode_off_loop(offload, ctype, body)
    if decoded is not None and decoded.explain:
        raise InvalidRequest(
            [{"field": "explain", "message": "contributions are answered as JSON only"}]
        )

    def csv_answer() -> bytes:
        if decoded is None:
            p = predict_csv(service, query, body)
        else:
            p = predict_input(service, decoded)
        return csv_io.write_predictions(p.classes, p.predictions.tolist(), p.probabilities)

    content = await run_in_threadpool(csv_answer)
    return Response(content, media_type="text/csv; charset=utf-8")
