from __future__ import annotations

import asyncio
from typing import BinaryIO

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError

from ..schemas import ModelSummary, TrainRequest
from ..train_runner import TrainRunner
from .body import fastapi_reads_json
from .deps import JSON_TYPES, check_content_type
from .docs import ERROR_RESPONSES, json_body
from .errors import JSONBytes, UnsupportedMediaType

router = APIRouter(tags=["training"])


@router.post(
    "/train",
    status_code=201,
    response_model=ModelSummary,
    responses=ERROR_RESPONSES(400, 413, 415, 422, 429),
    openapi_extra=json_body(TrainRequest),
)
async def train(request: Request) -> Response:
    """Train a logistic-regression model on labelled rows and keep it; answers its summary."""
    # The body is read here, not declared: decoding, validation and fitting all run off the
    # event loop (app.train_runner), with FastAPI's own answers to bad input (app.api.body).
    ctype = request.headers.get("content-type")
    if not fastapi_reads_json(ctype):
        check_content_type(ctype)  # 415 before reading a body that would not be parsed
    runner: TrainRunner = request.app.state.trainer
    runner.acquire()
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
        outcome = await runner.run(ctype, chunks, spill)
    finally:
        runner.release()
        if spill is not None:  # unlinking a file of hundreds of MiB can take tens of ms
            await asyncio.to_thread(runner.remove, spill)
    kind, payload = outcome
    if kind == "invalid":
        raise RequestValidationError(payload)
    if kind == "media":
        raise UnsupportedMediaType(payload or "", JSON_TYPES)
    if kind == "raise":
        raise payload
    return JSONBytes(
        status_code=201, content=payload, headers={"Location": f"/models/{payload['id']}"}
    )
