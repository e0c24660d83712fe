"""``/datasets``: upload a CSV or Parquet file once, train on it many times."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import Any, BinaryIO

from fastapi import APIRouter, Path, Query, Request, Response
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from model_store import FileDatasetStore, Record, StoreError, Upload

from .. import media
from ..errors import (
    InvalidRequest,
    TrainingCrashed,
    UnsupportedEncoding,
    UnsupportedMediaType,
)
from ..schemas import DatasetList, DatasetSummary
from ..service import ModelService
from ..training.job import ingest_dataset
from ..training.runner import TrainRunner
from .deps import actor_of
from .docs import ERROR_RESPONSES
from .errors import JSONBytes

router = APIRouter(prefix="/datasets", tags=["datasets"])

PARQUET = "application/vnd.apache.parquet"
MULTIPART = "multipart/form-data"
#: The body is written to disk (in a thread) in batches of about this many bytes; the parse
#: reads them as they land.
WRITE_BATCH = 1 << 20
#: The multipart part that holds the file.
FILE_PART = b"file"

DatasetId = Path(description="The id that `POST /datasets` answered.")

UPLOAD_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The file, streamed to disk as it arrives: CSV with a header row "
        "(`text/csv`, optionally `Content-Encoding: gzip`), Parquet "
        "(`application/vnd.apache.parquet`), or `multipart/form-data` with the file in a "
        "part named `file` (CSV, gzip CSV or Parquet, told apart by their first bytes). "
        "One column is the label (`?label=`, default the last), kept as text; every other "
        "column must hold numbers (empty or `NA` cells are counted as missing). Query "
        "parameters: `name` (to list it by) and `label` (the label column's name).",
        "content": {
            media.CSV: {
                "schema": {"type": "string"},
                "example": "hours_studied,hours_slept,result\n0.5,8.0,fail\n4.0,8.0,pass\n",
            },
            PARQUET: {
                "schema": {"type": "string", "format": "binary"},
                "example": "(the bytes of a .parquet file)",
            },
            MULTIPART: {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                },
                "example": {"file": "exam.csv"},
            },
        },
    }
}


def _parser(boundary: bytes, callbacks: Any) -> MultipartParser:
    try:
        return MultipartParser(boundary, callbacks)
    except (FormParserError, ValueError) as exc:
        raise InvalidRequest(
            [{"field": "Content-Type", "message": f"unusable multipart boundary ({exc})"}]
        ) from None


class _Sink:
    """Writes an upload's bytes to its file (called from a thread); for a multipart body, only
    the bytes of its ``file`` part."""

    def __init__(self, upload: Upload, boundary: bytes | None) -> None:
        self.upload = upload
        self.fh: BinaryIO = open(upload.fd, "wb", closefd=False, buffering=1 << 20)  # noqa: SIM115
        self.parser: MultipartParser | None = None
        self.found = False  # a ``file`` part began
        self._in_file = False
        self._field = self._value = b""
        self._headers: dict[bytes, bytes] = {}
        if boundary is not None:
            self.parser = _parser(
                boundary,
                {
                    "on_part_begin": self._part_begin,
                    "on_header_field": self._header_field,
                    "on_header_value": self._header_value,
                    "on_header_end": self._header_end,
                    "on_headers_finished": self._headers_finished,
                    "on_part_data": self._part_data,
                    "on_part_end": self._part_end,
                },
            )

    def _part_begin(self) -> None:
        self._headers = {}

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field = self._value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._in_file = options.get(b"name") == FILE_PART and not self.found
        self.found = self.found or self._in_file

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.fh.write(data[start:end])

    def _part_end(self) -> None:
        self._in_file = False

    def write(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            if self.parser is None:
                self.fh.write(chunk)
                continue
            try:
                self.parser.write(chunk)
            except (FormParserError, ValueError) as exc:  # not OSError: the disk's own
                raise InvalidRequest(
                    [{"field": "body", "message": f"malformed multipart/form-data ({exc})"}]
                ) from None

    def finish(self, chunks: list[bytes]) -> None:
        try:
            self.write(chunks)
            if self.parser is not None:
                try:
                    self.parser.finalize()
                except (FormParserError, ValueError) as exc:
                    raise InvalidRequest(
                        [{"field": "body", "message": f"malformed multipart/form-data ({exc})"}]
                    ) from None
                if not self.found:
                    raise InvalidRequest(
                        [{"field": "file", "message": "the multipart body has no part named file"}]
                    )
        finally:
            self.fh.close()
        self.upload.complete()


def _kind(request: Request) -> tuple[str | None, bool, bytes | None]:
    """``(format, gzip, multipart boundary)`` from the request's headers, or 415."""
    content_type = request.headers.get("content-type")
    kind = media.media_type(content_type)
    coding = (request.headers.get("content-encoding") or "").strip().lower()
    if kind not in (media.CSV, PARQUET, MULTIPART):
        raise UnsupportedMediaType(kind, (media.CSV, PARQUET, MULTIPART))
    compressed = False
    if coding not in ("", "identity"):
        if coding not in ("gzip", "x-gzip") or kind != media.CSV:
            raise UnsupportedEncoding(
                coding,
                "only a text/csv body may be sent with Content-Encoding: gzip (a multipart "
                "part may hold a gzip file)",
            )
        compressed = True
    if kind != MULTIPART:
        return ("csv" if kind == media.CSV else "parquet"), compressed, None
    _, options = parse_options_header(content_type or "")
    boundary = options.get(b"boundary")
    if not boundary:
        raise InvalidRequest(
            [{"field": "Content-Type", "message": "multipart/form-data needs a boundary"}]
        )
    return None, False, boundary


def _options(request: Request) -> tuple[str | None, str | None]:
    """``?name=`` and ``?label=`` (``InvalidRequest`` naming ``query.<name>``)."""
    values: dict[str, str] = {}
    errors = []
    for key, value in request.query_params.multi_items():
        if key not in ("name", "label"):
            errors.append(
                {"field": f"query.{key}", "message": "unknown; the options are name and label"}
            )
        elif len(value) > 200:
            errors.append({"field": f"query.{key}", "message": "longer than 200 characters"})
        else:
            values[key] = value
    if errors:
        raise InvalidRequest(errors)
    return values.get("name"), values.get("label")


async def _upload_and_parse(
    request: Request,
    runner: TrainRunner,
    store: FileDatasetStore,
    upload: Upload,
    kind: tuple[str | None, bool, bytes | None],
    name: str | None,
    label: str | None,
) -> Record:
    """Stream the body into ``upload`` while a training child parses it; the record.
    ``kind``: ``(format, gzip, multipart boundary)``."""
    fmt, compressed, boundary = kind
    job = functools.partial(
        ingest_dataset,
        runner.settings,
        upload.path,
        fmt=fmt,
        compressed=compressed,
        name=name,
        label=label,
    )
    sink = _Sink(upload, boundary)  # first: it may refuse the boundary
    parse = asyncio.ensure_future(runner.children.run(job))
    pending: list[bytes] = []
    waiting = 0
    try:
        async for chunk in request.stream():
            waiting += len(chunk)
            pending.append(chunk)
            if waiting >= WRITE_BATCH:
                await asyncio.to_thread(sink.write, pending)
                pending, waiting = [], 0
        await asyncio.to_thread(sink.finish, pending)
    except BaseException:
        # cut off (413, 408), gone, or not a form: the child sees the file removed and stops
        sink.fh.close()
        await asyncio.to_thread(upload.close)
        with contextlib.suppress(Exception):
            await parse
        raise
    try:
        record = await parse
    except TrainingCrashed:
        # the child died writing the data file: its (now unlocked) temporary goes too
        await asyncio.to_thread(store.remove_stale_files)
        raise
    if record is None:  # cannot happen once the upload is complete; never a 201 without one
        raise TrainingCrashed
    return record


def summary(record: Record) -> DatasetSummary:
    return DatasetSummary.model_validate(record)


@router.post(
    "",
    status_code=201,
    response_model=DatasetSummary,
    responses=ERROR_RESPONSES(400, 408, 413, 415, 422, 429, 503, 507),
    openapi_extra=UPLOAD_DOC,
)
async def upload_dataset(request: Request) -> Response:
    """Upload a CSV or Parquet file as a dataset (parsed once, stored column-wise); answers
    its summary: rows, and per column its type, range, mean and missing cells."""
    # The options are read here and listed in the body's description (as /train's CSV
    # options): whether ``label`` names a column only the file can say.
    name, label = _options(request)
    fmt, compressed, boundary = _kind(request)
    runner: TrainRunner = request.app.state.trainer
    # The parse runs in a training child while the upload arrives (it reads the file as it
    # grows): its slot is taken from the start, or 429 before anything is read.
    runner.acquire()
    store: FileDatasetStore = request.app.state.datasets
    try:
        upload = await asyncio.to_thread(store.temporary, "upload")
        try:
            record = await _upload_and_parse(
                request, runner, store, upload, (fmt, compressed, boundary), name, label
            )
        finally:
            await asyncio.to_thread(upload.close)
    finally:
        runner.release()
    result = summary(record)
    service: ModelService = request.app.state.service
    await asyncio.to_thread(
        service.audit_change,
        "dataset.stored",
        {"id": result.id, "name": result.name},
        actor_of(request),
    )
    return JSONBytes(
        status_code=201,
        content=result.model_dump(mode="json"),
        headers={"Location": f"/datasets/{result.id}"},
    )


@router.get("", response_model=DatasetList, responses=ERROR_RESPONSES(422, 503))
def list_datasets(
    request: Request,
    limit: int = Query(50, ge=1, description="Page size (at most PAGE_SIZE_MAX)."),
    offset: int = Query(0, ge=0, description="How many datasets to skip."),
) -> DatasetList:
    """List stored datasets, newest first, one page at a time."""
    store: FileDatasetStore = request.app.state.datasets
    limit = min(limit, request.app.state.settings.page_size_max)
    listing = store.list(offset=offset, limit=limit)
    return DatasetList(
        items=[summary(r) for r in listing.records],
        total=listing.total,
        limit=limit,
        offset=offset,
        unreadable=listing.unreadable,
    )


@router.get("/{dataset_id}", response_model=DatasetSummary, responses=ERROR_RESPONSES(404, 409))
def get_dataset(request: Request, dataset_id: str = DatasetId) -> DatasetSummary:
    """A dataset's summary: rows, and per column its type, range, mean and missing cells."""
    store: FileDatasetStore = request.app.state.datasets
    return summary(store.load(dataset_id))


@router.delete(
    "/{dataset_id}",
    status_code=204,
    response_class=Response,
    responses=ERROR_RESPONSES(404, 409, 503),
)
def delete_dataset(request: Request, dataset_id: str = DatasetId) -> Response:
    """Delete a dataset (models trained on it stay); it answers 404 from then on."""
    store: FileDatasetStore = request.app.state.datasets
    service: ModelService = request.app.state.service
    try:
        store.delete(dataset_id)
    except StoreError as exc:
        service.audit_change(
            "dataset.deleted", {"id": dataset_id}, actor_of(request), outcome=f"refused: {exc}"
        )
        raise
    service.audit_change("dataset.deleted", {"id": dataset_id}, actor_of(request))
    return Response(status_code=204)
