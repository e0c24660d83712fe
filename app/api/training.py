from __future__ import annotations

import asyncio
from typing import BinaryIO

from fastapi import APIRouter, Request, Response

from .. import decode
from ..schemas import CsvTrainOptions, ModelSummary, TrainParams, TrainRequest
from ..training.runner import TrainRunner
from .docs import ERROR_RESPONSES, json_or_csv_body, query_doc
from .errors import JSONBytes

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
    responses=ERROR_RESPONSES(400, 413, 415, 422, 429, 503, 507),
    openapi_extra=BODY_DOC,
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
        # The slot is taken once the body is in: a slow upload (bounded by BODY_READ_TIMEOUT)
        # must not keep other trainings out meanwhile.
        runner.acquire()
        try:
            # a training from a dataset is a small body and a large fit: always a child's
            child = spill is None and decode.names_dataset(b"".join(chunks))
            summary = await runner.run(ctype, chunks, spill, query=query, child=child)
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
