"""``Job`` and ``AsyncJob``: a handle on a training job, from ``submit`` or ``job(id)``.

``wait`` follows the job's event stream (``GET /jobs/{id}/events``), reconnecting when it drops
and polling ``GET /jobs/{id}`` if it keeps dropping (``_core.Follow`` decides); it returns the
stored model's ``ModelDetail``, or raises what the job ended with (``_core.outcome``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import _core
from ._exceptions import ServerError, ServiceUnreachable
from ._models import JobState, ModelSummary

if TYPE_CHECKING:
    from ._client import AsyncClient, Client

#: Called with the job each time it changes while ``wait`` follows it.
JobProgressCallback = Callable[[JobState], None]


class _Handle:
    """What ``Job`` and ``AsyncJob`` share: the last state seen, or the model a service
    without jobs trained at once (then ``id`` is ``None`` and the job has ``succeeded``)."""

    def __init__(self, submitted: _core.Submitted) -> None:
        self.state: JobState | None = submitted if isinstance(submitted, JobState) else None
        self._model: ModelSummary | None = (
            submitted if isinstance(submitted, ModelSummary) else None
        )

    @property
    def id(self) -> str | None:
        """The job's id (``None``: the service has no jobs and trained at once)."""
        return None if self.state is None else self.state.id

    @property
    def status(self) -> str:
        """As last seen: ``queued``, ``running``, ``succeeded``, ``failed`` or ``cancelled``."""
        return "succeeded" if self.state is None else self.state.status

    @property
    def model_id(self) -> str | None:
        if self._model is not None:
            return self._model.id
        return None if self.state is None else self.state.model_id

    def _seen(self, state: JobState, progress: JobProgressCallback | None) -> None:
        changed = self.state is None or state.raw != self.state.raw
        self.state = state
        if changed and progress is not None:
            progress(state)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.status}>"


class Job(_Handle):
    """A training job of a ``Client``: ``wait()`` for its model, ``cancel()``, ``refresh()``."""

    def __init__(self, client: Client, submitted: _core.Submitted) -> None:
        super().__init__(submitted)
        self._client = client

    def refresh(self) -> JobState:
        """Read the job again (``GET /jobs/{id}``)."""
        if self.state is None:
            raise ValueError("the service trained at once: there is no job to read")
        self.state = self._client._run(_core.get_job(self.state.id))
        return self.state

    def cancel(self) -> JobState:
        """Cancel the job (``Conflict`` once it has ended); it stores nothing."""
        if self.state is None:
            raise ValueError("the service trained at once: there is no job to cancel")
        self.state = self._client.cancel(self.state.id)
        return self.state

    def wait(
        self, progress: JobProgressCallback | None = None, *, timeout: float | None = None
    ) -> ModelSummary:
        """Follow the job until it ends: the stored model (a ``ModelDetail``) when it
        succeeded; when it failed, the exception the same training raises at once
        (``InvalidInput`` for a 422...); ``JobCancelled``; ``JobTimeout`` after ``timeout``
        seconds (the job goes on). ``progress(state)`` is called on each change."""
        if self.state is None:
            assert self._model is not None
            return self._model
        follow = _core.Follow(self.state.id, timeout)
        sleep = self._client._sleep
        while not self.state.final:
            follow.check(self.state)
            error: Exception | None = None
            try:
                if follow.streaming:
                    with contextlib.closing(
                        self._client._job_events(self.state.id, follow)
                    ) as states:
                        for state in states:
                            follow.stream_heard()
                            self._seen(state, progress)
                            if state.final:
                                break
                            follow.check(self.state)
                else:
                    self._seen(self._client._run(_core.get_job(self.state.id)), progress)
                    follow.heard()
            except (ServiceUnreachable, ServerError) as exc:
                error = exc
            if not self.state.final:
                follow.check(self.state)
                sleep(follow.dropped(error) if follow.streaming or error else follow.poll_interval)
        return self._client.model(_core.outcome(self.state))


class AsyncJob(_Handle):
    """``Job`` for an ``AsyncClient``: ``await job.wait()``, ``await job.cancel()``."""

    def __init__(self, client: AsyncClient, submitted: _core.Submitted) -> None:
        super().__init__(submitted)
        self._client = client

    async def refresh(self) -> JobState:
        if self.state is None:
            raise ValueError("the service trained at once: there is no job to read")
        self.state = await self._client._run(_core.get_job(self.state.id))
        return self.state

    async def cancel(self) -> JobState:
        if self.state is None:
            raise ValueError("the service trained at once: there is no job to cancel")
        self.state = await self._client.cancel(self.state.id)
        return self.state

    async def wait(
        self, progress: JobProgressCallback | None = None, *, timeout: float | None = None
    ) -> ModelSummary:
        """See ``Job.wait``."""
        if self.state is None:
            assert self._model is not None
            return self._model
        follow = _core.Follow(self.state.id, timeout)
        while not self.state.final:
            follow.check(self.state)
            error: Exception | None = None
            try:
                if follow.streaming:
                    events = self._client._job_events(self.state.id, follow)
                    async with contextlib.aclosing(events) as states:
                        async for state in states:
                            follow.stream_heard()
                            self._seen(state, progress)
                            if state.final:
                                break
                            follow.check(self.state)
                else:
                    self._seen(await self._client._run(_core.get_job(self.state.id)), progress)
                    follow.heard()
            except (ServiceUnreachable, ServerError) as exc:
                error = exc
            if not self.state.final:
                follow.check(self.state)
                delay = follow.dropped(error) if follow.streaming or error else follow.poll_interval
                await self._client._sleep(delay)
        return await self._client.model(_core.outcome(self.state))


__all__ = ["AsyncJob", "Job", "JobProgressCallback"]
