"""The model store interface and its errors. Knows nothing of FastAPI or of the engine."""

from __future__ import annotations

import re
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

#: Server-generated ids: 16 hex digits of nanoseconds since the epoch, then 16 random hex digits.
#: Sorting ids as text sorts models by creation time, so listing needs no index.
ID_PATTERN = re.compile(r"[0-9a-f]{32}")

SCHEMA_VERSION = 1

Record = dict[str, Any]


def _rebuild(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class PicklableError(Exception):
    """An error that pickles as its class, ``args`` (the message) and attributes, without
    calling ``__init__``: the default (``cls(*args)``) fails for an ``__init__`` that takes other
    arguments than the message, and errors raised in a child process must reach the server."""

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (type(self), self.args, self.__dict__)


class StoreError(PicklableError):
    """Base class of the store's errors (picklable: a training child raises them too)."""


class InvalidModelId(StoreError):
    def __init__(self, model_id: str) -> None:
        super().__init__(f"model id {model_id!r} is not valid: ids are 32 lowercase hex characters")
        self.model_id = model_id


class ModelNotFound(StoreError):
    def __init__(self, model_id: str) -> None:
        super().__init__(f"no model with id {model_id!r}")
        self.model_id = model_id


class CorruptModel(StoreError):
    """The stored file exists but cannot be trusted (unreadable, bad checksum, unknown version)."""

    def __init__(self, model_id: str, reason: str) -> None:
        super().__init__(f"model {model_id!r} is corrupt on disk: {reason}; delete it and retrain")
        self.model_id = model_id
        self.reason = reason


class StoreUnavailable(StoreError):
    """The model folder cannot be read at all (removed, unmounted, no permission)."""

    def __init__(self, root: str, error: OSError) -> None:
        super().__init__(f"the model folder cannot be read: {error.strerror or error} ({root})")
        self.root = root


class StoreWriteFailed(StoreError):
    """The file system refused a write (disk full, read-only, no permission); nothing was stored."""

    def __init__(self, model_id: str, error: OSError) -> None:
        super().__init__(
            f"model {model_id!r} could not be stored: {error.strerror or error}; nothing was kept"
        )
        self.model_id = model_id
        self.errno = error.errno


class StoreDeleteFailed(StoreWriteFailed):
    """The file system refused to delete a model's file (read-only, no permission)."""

    def __init__(self, model_id: str, error: OSError) -> None:
        StoreError.__init__(
            self, f"model {model_id!r} could not be deleted: {error.strerror or error}"
        )
        self.model_id = model_id
        self.errno = error.errno


class JobNotFound(StoreError):
    """No training job with that id (or the id is not a valid one)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {str(job_id)[:100]!r}")
        self.job_id = str(job_id)[:100]


class JobQueueFull(StoreError):
    """``max_queued`` jobs already wait: a new one is refused (HTTP 429 with Retry-After)."""

    def __init__(self, queued: int, retry_after: int) -> None:
        super().__init__(
            f"the training queue is full: {queued} jobs already wait (MAX_QUEUED_JOBS); "
            f"retry in {retry_after} s"
        )
        self.queued = queued
        self.retry_after = retry_after


def new_model_id() -> str:
    return f"{time.time_ns():016x}{secrets.token_hex(8)}"


def check_model_id(model_id: str) -> str:
    """Return ``model_id`` if it is a well-formed id, else raise ``InvalidModelId``.

    Only ids of this exact form ever reach the filesystem, so none can name a path outside the
    store's folder.
    """
    if not isinstance(model_id, str) or not ID_PATTERN.fullmatch(model_id):
        raise InvalidModelId(str(model_id)[:100])
    return model_id


@dataclass(frozen=True)
class Listing:
    """One page of models, newest first. ``entries`` holds a record or the error that hid it."""

    entries: list[tuple[str, Record | CorruptModel]]
    total: int


class ModelStore(ABC):
    """Save, load, list and delete model records (JSON-ready dicts with an ``id`` key)."""

    @abstractmethod
    def save(self, record: Record) -> None:
        """Persist ``record`` atomically: once this returns it survives a crash; before, unseen."""

    @abstractmethod
    def load(self, model_id: str) -> Record: ...

    @abstractmethod
    def list(self, *, offset: int = 0, limit: int = 50) -> Listing: ...

    @abstractmethod
    def delete(self, model_id: str) -> None: ...

    @abstractmethod
    def count(self) -> int: ...

    def newest_id(self) -> str | None:
        """The id of the newest model (``None``: there is none), found without reading any model
        if the store can: resolving ``latest`` needs only this, then the cache. This default
        lists the first page, which loads it; stores should override it."""
        entries = self.list(limit=1).entries
        return entries[0][0] if entries else None

    def fingerprint(self, model_id: str) -> Hashable:
        """A cheap token that changes when the stored model is replaced; ``ModelNotFound`` if gone.

        Caches compare it with the token of the copy they hold, so that a model deleted or
        replaced through another process stops being served without re-reading it. This default
        loads the record (always correct, never cheap); stores should override it.
        """
        self.load(model_id)  # raises ModelNotFound / CorruptModel
        return object()  # equal to nothing: a cache over this store always reloads

    def load_with_fingerprint(self, model_id: str) -> tuple[Record, Hashable]:
        """The record and the fingerprint of exactly the version that was read."""
        return self.load(model_id), self.fingerprint(model_id)
