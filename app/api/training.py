from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from typing import BinaryIO

from fastapi import APIRouter, Request, Response

from model_store import StoreError

from .. import decode
from ..errors import RequestError
from ..jobs import JobService, view
from ..prefer import RESPOND_ASYNC, prefers_async
from ..schemas import (
    CsvTrainOptions,
    DatasetTrainRequest,
    Job,
    ModelSummary,
    TrainParams,
    TrainRequest,
)
from ..training.runner import TrainRunner
from .deps import actor_of
from .docs import ERROR_RESPONSES, json_or_csv_body, query_doc
from .errors import JSONBytes
from .jobs import scheduler_of

router = APIRouter(tags=["training"])

CSV_EXAMPLE = """hours_studied,hours_slept,result
0.5,8.0,fail
1.0,6.5,fail
1.5,7.0,fail
2.0,5.0,pass
3.0,7.5,fail
3.5,6.0,pass
4.0,8.0,pass
5.0,7.0,pass
"""
CSV_QUERY: list[str] = [
    query_doc(name, field.description or "") for name, field in CsvTrainOptions.model_fields.items()
] + [
    f"- every field of `params` by its name "
    f"({', '.join(f'`{name}`' for name in TrainParams.model_fields)}), as in the JSON body: "
    "`?solver=newton&max_iter=2000&l2=0.001`"
]
BODY_DOC = json_or_csv_body(
    TrainRequest,
    csv_example=CSV_EXAMPLE,
    csv_description="A header row naming the columns, then one row per example. The label "
    "column is `?label=` (default: the last column); every other column is a feature, named by "
    "its header. Training settings are query parameters (`?max_iter=2000&l2=0.001`).",
    query=CSV_QUERY,
)


@router.post(
    "/train",
    status_code=201,
    response_model=ModelSummary,
    responses={
        **ERROR_RESPONSES(400, 413, 415, 422, 429, 503, 507),
        202: {
            "model": Job,
            "description": "With `Prefer: respond-async`: the training job, queued (`Location: "
            "/jobs/{id}`; `GET` it, or watch `/jobs/{id}/events`).",
        },
    },
    openapi_extra={
        **BODY_DOC,
        "parameters": [
            {
                "name": "Prefer",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": "`respond-async` (RFC 7240): answer 202 with a training job at "
                "once instead of waiting for the model.",
            }
        ],
    },
)
async def train(request: Request) -> Response:
    """Train a logistic-regression model on labelled rows (JSON, or CSV with a header row), or
    on a stored dataset (`{"dataset": id, "label": column, "features": [columns]}`, see
    `POST /datasets`), and keep it; answers its summary."""
    # The body is read here, not declared: decoding, validation and fitting all run off the
    # event loop (app.training), with FastAPI's own answers to bad input (app.decode).
    ctype = request.headers.get("content-type")
    query = request.query_params.multi_items()
    decode.check_request(ctype, query)  # 415 or 422 before reading a body that would not be used
    if prefers_async(request.headers.getlist("prefer")):
        return await train_as_job(request, ctype, query)
    runner: TrainRunner = request.app.state.trainer
    runner.check_capacity()  # every slot taken: refuse before a body is uploaded for nothing
    spill: str | None = None
    try:
        chunks: list[bytes] = []
        size, limit = 0, runner.settings.train_inline_max_bytes
        fh: BinaryIO | None = None
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if fh is None and size > limit:  # large: spill to a file for the child
                    fh, spill = runner.spill_file()
                    fh.writelines(chunks)
                    chunks = []
                if fh is not None:
                    fh.write(chunk)
                else:
                    chunks.append(chunk)
        finally:
            if fh is not None:
                fh.close()
        # a training from a dataset is a small body and a large fit: always a child's, and a
        # job when the dataset has more rows than TRAIN_SYNC_MAX_ROWS
        child = spill is None and decode.names_dataset(b"".join(chunks))
        if child and await asyncio.to_thread(must_be_a_job, request, ctype, b"".join(chunks)):
            return await train_as_job(request, ctype, query, replay(chunks))
        # The slot is taken once the body is in: a slow upload (bounded by BODY_READ_TIMEOUT)
        # must not keep other trainings out meanwhile.
        runner.acquire()
        try:
            summary = await runner.run(
                ctype, chunks, spill, query=query, actor=actor_of(request), child=child
            )
            spill = None  # the child read it and deleted it (a big unlink takes a core ~20 ms)
        finally:
            runner.release()
    finally:
        if spill is not None:  # the upload broke off, or the child failed before deleting it
            await asyncio.to_thread(runner.remove, spill)
    return JSONBytes(
        status_code=201,
        content=summary.model_dump(mode="json"),
        headers={"Location": f"/models/{summary.id}"},
    )


async def train_as_job(
    request: Request,
    content_type: str | None,
    query: list[tuple[str, str]],
    chunks: AsyncIterable[bytes] | None = None,
) -> Response:
    """``POST /train`` with ``Prefer: respond-async``: the body is stored with a new job, which
    any worker runs (``app.jobs``); 202 with the job. ``chunks``: the body, if it was read
    already (a training that must be a job whatever the header: ``replay`` them), else the
    request's stream.

    A body of up to ``TRAIN_INLINE_MAX_BYTES`` is decoded and validated first (milliseconds, in
    a thread), so bad input gets the answer it gets without the header. A larger one is decoded
    when the job runs, in its child: a bad one makes a ``failed`` job with that status."""
    jobs: JobService = request.app.state.jobs
    await asyncio.to_thread(jobs.check_queue)  # 429 before a body is uploaded for nothing
    body = await asyncio.to_thread(jobs.store.new_body)
    limit = jobs.settings.train_inline_max_bytes
    try:
        small: list[bytes] | None = []
        size = 0
        async for chunk in request.stream() if chunks is None else chunks:
            body.write(chunk)  # as the spill above: page-cache writes, the fsync is in submit
            size += len(chunk)
            if small is not None and size <= limit:
                small.append(chunk)
            else:
                small = None
        if small is not None:
            await asyncio.to_thread(
                decode.decode_train,
                content_type,
                b"".join(small),
                query,
                max_features=jobs.settings.max_features,
            )
        record = await asyncio.to_thread(
            jobs.submit, body, content_type=content_type, query=query, actor=actor_of(request)
        )
    except BaseException:
        await asyncio.to_thread(body.discard)
        raise
    scheduler_of(request).wake()
    return JSONBytes(
        status_code=202,
        content=view(record),
        headers={
            "Location": f"/jobs/{record['id']}",
            "Preference-Applied": RESPOND_ASYNC,
            "Vary": "Prefer",
        },
    )


def must_be_a_job(request: Request, content_type: str | None, body: bytes) -> bool:
    """Whether a training body names a dataset of more than ``TRAIN_SYNC_MAX_ROWS`` rows. An
    unusable body, an unknown dataset or a column it lacks is not a job's: the synchronous path
    says what is wrong at once, as it would have."""
    try:
        trained, _ = decode.decode_train(content_type, body)
        if not isinstance(trained, DatasetTrainRequest):
            return False
        record = request.app.state.datasets.load(trained.dataset)
        rows, columns = record["rows"], {c["name"] for c in record["columns"]}
    except (RequestError, StoreError, KeyError, TypeError):
        return False
    if trained.label not in columns or not columns.issuperset(trained.features or ()):
        return False
    limit: int = request.app.state.settings.train_sync_max_rows
    return int(rows) > limit


async def replay(chunks: list[bytes]) -> AsyncIterator[bytes]:
    """A body already read, as ``train_as_job`` takes it."""
    for chunk in chunks:
        yield chunk
