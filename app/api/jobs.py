"""Training jobs: ``POST /train`` with ``Prefer: respond-async`` makes one (app.api.training);
these routes read, list, watch and cancel them. The work is in ``app.jobs``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Literal

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import StreamingResponse

from ..jobs import JobScheduler, JobService, view
from ..schemas import ErrorResponse, Job, JobList
from .deps import actor_of
from .errors import JSONBytes

router = APIRouter(prefix="/jobs", tags=["jobs"])

#: Seconds between two looks at a watched job's record: at most ten events a second.
EVENT_INTERVAL = 0.1
#: Seconds of silence after which an event stream sends a comment, so proxies keep it open.
KEEPALIVE_SECONDS = 15.0

JobId = Path(description="The id `POST /train` answered with `Prefer: respond-async`.")
NOT_FOUND: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse} for code in (404, 503)
}
FINAL = ("succeeded", "failed", "cancelled")


def jobs_of(request: Request) -> JobService:
    service: JobService = request.app.state.jobs
    return service


def scheduler_of(request: Request) -> JobScheduler:
    """The worker's job runner (started by the app's lifespan: an app served without it, as by
    an ASGI test client, accepts jobs and leaves them queued)."""
    scheduler: JobScheduler = request.app.state.job_scheduler
    return scheduler


@router.get("", response_model=JobList, responses={c: {"model": ErrorResponse} for c in (422, 503)})
async def list_jobs(
    request: Request,
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"] | None = Query(
        None, description="Only the jobs in this state."
    ),
    limit: int = Query(50, ge=1, description="Page size (at most PAGE_SIZE_MAX)."),
    offset: int = Query(0, ge=0, le=2**53, description="How many jobs to skip."),
) -> JSONBytes:
    """List training jobs, newest first, one page at a time."""
    service = jobs_of(request)
    limit = min(limit, service.settings.page_size_max)
    items, total = await asyncio.to_thread(service.list, status=status, limit=limit, offset=offset)
    return JSONBytes(
        {"items": [view(r) for r in items], "total": total, "limit": limit, "offset": offset}
    )


@router.get("/{job_id}", response_model=Job, responses=NOT_FOUND)
async def get_job(request: Request, job_id: str = JobId) -> JSONBytes:
    """A training job: its state, progress, and its model once it succeeded."""
    return JSONBytes(view(await asyncio.to_thread(jobs_of(request).get, job_id)))


@router.post(
    "/{job_id}/cancel",
    response_model=Job,
    responses={
        202: {"model": Job, "description": "The job is still stopping."},
        **{c: {"model": ErrorResponse} for c in (404, 409, 503)},
    },
)
async def cancel_job(request: Request, job_id: str = JobId) -> JSONBytes:
    """Cancel a queued or running job: it stops within about a second and stores nothing
    (200, the job `cancelled`; 202 if it was still stopping). 409 if it had already ended."""
    record = await asyncio.to_thread(jobs_of(request).cancel, job_id, actor=actor_of(request))
    scheduler_of(request).wake()
    return JSONBytes(view(record), status_code=200 if record["status"] == "cancelled" else 202)


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "Server-sent events: one per change of the job (at most ten a "
            "second), named by its status, `data` the job as `GET /jobs/{id}` shows it; the "
            "stream ends after the final state (`succeeded`, `failed` or `cancelled`).",
        },
        **NOT_FOUND,
    },
)
async def job_events(request: Request, job_id: str = JobId) -> StreamingResponse:
    """Watch a training job: a `text/event-stream` of its progress, ending with its final
    state (`curl -N`, or a browser's `EventSource`)."""
    service = jobs_of(request)
    first = await asyncio.to_thread(service.get, job_id)  # 404 before the stream starts
    return StreamingResponse(
        events(service, job_id, first),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def events(service: JobService, job_id: str, record: dict) -> AsyncIterator[bytes]:
    """One event per change of the job's record (looked at every ``EVENT_INTERVAL`` s, off the
    event loop, by its fingerprint first), until a final state has been sent.

    Written for Starlette's ``StreamingResponse`` rather than with sse-starlette: an event is
    three lines, and what that library adds (pings, disconnect handling) is a keep-alive
    comment here and Starlette's own handling of a client that goes away; no dependency."""
    store = service.store
    fingerprint = None
    sent: bytes | None = None
    quiet = 0.0
    n = 0
    while True:
        data = orjson.dumps(view(record))
        if data != sent:
            n += 1
            yield b"event: %s\nid: %d\ndata: %s\n\n" % (record["status"].encode(), n, data)
            sent, quiet = data, 0.0
            if record["status"] in FINAL:
                return
        elif quiet >= KEEPALIVE_SECONDS:
            yield b": keep-alive\n\n"
            quiet = 0.0
        await asyncio.sleep(EVENT_INTERVAL)
        quiet += EVENT_INTERVAL
        latest = await asyncio.to_thread(store.fingerprint, job_id)
        if latest != fingerprint:
            fingerprint = latest
            record = await asyncio.to_thread(service.get, job_id)
