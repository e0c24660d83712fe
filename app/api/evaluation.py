"""``POST /models/{ref}/evaluate`` and ``GET /models/{ref}/evaluations``."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from .. import decode, media
from ..decode import EvaluateInput
from ..offload import Offload
from ..schemas import CsvEvaluateOptions, EvaluateRequest, Evaluation, EvaluationList
from ..service import ModelService
from ..training.job import evaluate_dataset
from ..training.runner import TrainRunner
from .deps import actor_of, get_service
from .docs import ERROR_RESPONSES, json_or_csv_body, query_doc
from .errors import JSONBytes
from .models import NOT_FOUND, ModelId
from .prediction import DECODE_IN_THREAD_MAX, FALLBACK_IN_THREAD_MAX

router = APIRouter(prefix="/models", tags=["models"])

BODY_DOC = json_or_csv_body(
    EvaluateRequest,
    csv_example="hours_studied,hours_slept,result\n1.0,7.0,fail\n4.5,6.5,pass\n3.0,7.5,fail\n",
    csv_description="A header row, then one row per example: the model's features (by name "
    "when it has feature names) and the label column (`?label=`, default the last).",
    query=[
        query_doc(name, field.description or "")
        for name, field in CsvEvaluateOptions.model_fields.items()
    ],
)


async def decode_off_loop(
    offload: Offload, content_type: str | None, body: bytes, query: decode.Query, max_features: int
) -> EvaluateInput:
    """``decode.decode_evaluate`` off the event loop with ``prediction.decode_off_loop``'s
    policy: in a thread, except what would hold the GIL for long, which runs in a child process
    (``app.offload``): a JSON body over ``DECODE_IN_THREAD_MAX`` bytes, and the ordinary path on
    one over ``FALLBACK_IN_THREAD_MAX`` bytes that the fast decoder declined."""
    work = partial(decode.decode_evaluate, content_type, body, query, max_features=max_features)
    got: EvaluateInput | None
    csv = media.media_type(content_type) == media.CSV
    if len(body) > DECODE_IN_THREAD_MAX and not csv:
        got = await offload.run(work)
    elif len(body) <= FALLBACK_IN_THREAD_MAX or csv:
        got = await run_in_threadpool(work)
    else:
        got = await run_in_threadpool(partial(work, ordinary=False))
        if got is None:
            got = await offload.run(work)
    assert got is not None
    return got


@router.post(
    "/{model_id}/evaluate",
    response_model=Evaluation,
    responses=ERROR_RESPONSES(400, 404, 409, 413, 415, 422, 503, 507),
    openapi_extra=BODY_DOC,
)
async def evaluate(request: Request, model_id: str = ModelId) -> Response:
    """Judge a model on labelled rows (JSON, CSV with a header row, or a stored dataset:
    `{"dataset": id, "label": column}`): log loss, accuracy,
    ROC AUC, average precision, Brier score, confusion matrix, per-class scores and calibration;
    kept as its newest evaluation."""
    ctype = request.headers.get("content-type")
    query = request.query_params.multi_items()
    decode.check_request(ctype, query)
    service: ModelService = request.app.state.service
    # the model first: a 404 before a body is read and decoded for nothing
    await run_in_threadpool(service.served, model_id)
    body = await request.body()
    named = await run_in_threadpool(decode.decode_dataset_evaluate, ctype, body)
    if named is not None:  # a stored dataset: read and evaluated in a training child
        runner: TrainRunner = request.app.state.trainer
        runner.acquire()
        try:
            evaluated = await runner.children.run(
                evaluate_dataset, service.settings, model_id, named, actor_of(request)
            )
        finally:
            runner.release()
        return JSONBytes(content=evaluated.model_dump(mode="json"))
    data = await decode_off_loop(
        request.app.state.offload, ctype, body, query, service.settings.max_features
    )
    result = await run_in_threadpool(
        partial(
            service.evaluate,
            model_id,
            data.X,
            data.labels,
            threshold=data.threshold,
            positive_label=data.positive_label,
            header=data.header,
            raw_labels=data.raw_labels,
            actor=actor_of(request),
        )
    )
    return JSONBytes(content=result.model_dump(mode="json"))


@router.get("/{model_id}/evaluations", response_model=EvaluationList, responses=NOT_FOUND)
def evaluations(
    model_id: str = ModelId, service: ModelService = Depends(get_service)
) -> EvaluationList:
    """A model's last evaluations, newest first."""
    return service.evaluations(model_id)
