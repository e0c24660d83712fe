"""The model store interface and its errors. Knows nothing of FastAPI or of the engine."""

from __future__ import annotations

import functools
import re
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

#: Server-generated ids: 16 hex digits of nanoseconds since the epoch, then 16 random hex digits.
#: Sorting ids as text sorts models by creation time, so listing needs no index.
ID_PATTERN = re.compile(r"[0-9a-f]{32}")

SCHEMA_VERSION = 1

#: Registered model names: what ``POST /train`` accepts as ``name``.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
NAME_RULE = (
    "1-64 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or a digit "
    "(not 32 hex digits, which read as a model id, and not 'latest')"
)
#: Aliases of a name's versions (``churn@champion``).
ALIAS_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,31}")
ALIAS_RULE = "1-32 characters of a-z, 0-9, '_' and '-', starting with a letter (not 'latest')"
#: The reference to the newest model of all; reserved as a name and as an alias.
LATEST = "latest"

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
    """A model reference of none of the accepted forms (a 404: no model has that name)."""

    def __init__(self, model_id: str) -> None:
        super().__init__(
            f"model reference {model_id!r} is not valid: use a model id (32 lowercase hex "
            "characters), NAME, NAME:VERSION, NAME@ALIAS or 'latest'"
        )
        self.model_id = model_id


class InvalidName(StoreError):
    """A name or an alias that breaks its rule (a 422 naming ``field``)."""

    def __init__(self, field: str, value: str, rule: str) -> None:
        super().__init__(f"{field}: {value!r} is not valid: {rule}")
        self.field = field
        self.value = value


class NameNotFound(StoreError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no model is registered under the name {name!r}")
        self.name = name


class VersionNotFound(StoreError):
    def __init__(self, name: str, version: int) -> None:
        super().__init__(f"name {name!r} has no version {version}")
        self.name = name
        self.version = version


class AliasNotFound(StoreError):
    def __init__(self, name: str, alias: str) -> None:
        super().__init__(f"name {name!r} has no alias {alias!r}")
        self.name = name
        self.alias = alias


class AliasConflict(StoreError):
    """A change the aliases forbid (a 409): deleting a version an alias points to, or rolling
    back an alias with no previous version."""

    def __init__(self, message: str, *, name: str, alias: str) -> None:
        super().__init__(message)
        self.name = name
        self.alias = alias


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


class DatabaseUnavailable(StoreUnavailable):
    """The PostgreSQL store's database cannot be reached or refused the connection (a 503, like
    an unreadable folder). ``root`` says where it was looked for, without the password."""

    def __init__(self, root: str, reason: str) -> None:
        StoreError.__init__(self, f"the model database cannot be used: {reason} ({root})")
        self.root = root
        self.reason = reason


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


def check_name(name: object, field: str = "name") -> str:
    """Return ``name`` if it may be registered, else raise ``InvalidName`` naming ``field``."""
    if (
        not isinstance(name, str)
        or not NAME_PATTERN.fullmatch(name)
        or ID_PATTERN.fullmatch(name)
        or name == LATEST
    ):
        raise InvalidName(field, str(name)[:100], NAME_RULE)
    return name


def check_alias(alias: object, field: str = "alias") -> str:
    if not isinstance(alias, str) or not ALIAS_PATTERN.fullmatch(alias) or alias == LATEST:
        raise InvalidName(field, str(alias)[:100], ALIAS_RULE)
    return alias


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
    """Save, load, list and delete model records (JSON-ready dicts with an ``id`` key); the
    registry of their names (``names``) and the log of changes (``audit``)."""

    names: NameRegistry
    audit: AuditLog
    evaluations: EvaluationLog

    @abstractmethod
    def save_version(self, record: Record) -> int:
        """Save ``record`` as the next version of ``record["name"]``: sets and returns its
        ``version``. Two saves under one name, in any processes, never get the same version."""

    @abstractmethod
    def save(self, record: Record) -> None:
        """Persist ``record`` atomically: once this returns it survives a crash; before, unseen."""

    @abstractmethod
    def load(self, model_id: str) -> Record: ...

    @abstractmethod
    def list(self, *, offset: int = 0, limit: int = 50) -> Listing: ...

    @abstractmethod
    def delete(self, model_id: str) -> None:
        """Delete a model; ``AliasConflict`` if it is a version an alias points to."""

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

    def close(self) -> None:
        """Release what the store holds open (a database's connections); nothing by default."""
        return None


# --- names, versions and aliases ---------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """A parsed model reference: exactly one of the forms ``POST /predict``'s ``model_id``
    and ``/models/{ref}`` accept."""

    model_id: str | None = None  # a 32-hex id
    name: str | None = None  # NAME, NAME:VERSION or NAME@ALIAS
    version: int | None = None
    alias: str | None = None
    latest: bool = False  # the newest model of all


@functools.lru_cache(maxsize=4096)
def parse_reference(ref: str) -> Reference:
    """``ref`` as one of the accepted forms; ``InvalidModelId`` (a 404) for anything else.
    Memoised: the same few references come with every prediction."""
    if ID_PATTERN.fullmatch(ref):
        return Reference(model_id=ref)
    if ref == LATEST:
        return Reference(latest=True)
    name, sep, rest = ref.partition("@")
    if sep:
        if NAME_PATTERN.fullmatch(name) and ALIAS_PATTERN.fullmatch(rest) and rest != LATEST:
            return Reference(name=name, alias=rest)
        raise InvalidModelId(ref[:100])
    name, sep, rest = ref.partition(":")
    if sep:
        if NAME_PATTERN.fullmatch(name) and rest.isascii() and rest.isdigit() and len(rest) < 10:
            version = int(rest)
            if version >= 1:
                return Reference(name=name, version=version)
        raise InvalidModelId(ref[:100])
    if NAME_PATTERN.fullmatch(ref):
        return Reference(name=ref)
    raise InvalidModelId(ref[:100])


@dataclass(frozen=True)
class AliasChange:
    """One change of an alias, as its history keeps it. ``version`` is ``None`` when the alias
    was deleted; ``previous_version`` when it was new."""

    name: str
    alias: str
    action: str  # "set", "delete" or "rollback"
    version: int | None
    previous_version: int | None
    changed_at: str
    changed_by: str | None


@dataclass(frozen=True)
class VersionEntry:
    version: int
    model_id: str
    created_at: str


@dataclass(frozen=True)
class NameEntry:
    """A registered name: its versions (only those whose model was stored), its aliases and
    their histories (oldest first). Versions are never reused, even after a delete."""

    name: str
    versions: dict[int, VersionEntry]
    aliases: dict[str, int]
    history: dict[str, list[AliasChange]]
    next_version: int

    @property
    def latest_version(self) -> int | None:
        return max(self.versions, default=None)

    def model_id(self, *, version: int | None = None, alias: str | None = None) -> str:
        """The id of ``version``, of the version ``alias`` points to, or of the newest."""
        if alias is not None:
            if alias not in self.aliases:
                raise AliasNotFound(self.name, alias)
            version = self.aliases[alias]
        elif version is None:
            version = self.latest_version
            if version is None:
                raise NameNotFound(self.name)
        entry = self.versions.get(version)
        if entry is None:
            raise VersionNotFound(self.name, version)
        return entry.model_id


class NameRegistry(ABC):
    """Names, their versions and aliases. Every change is atomic and, once it returns,
    survives a crash and is seen by every process over the same store."""

    @abstractmethod
    def load(self, name: str) -> NameEntry:
        """``NameNotFound`` if no model was ever registered under ``name``."""

    @abstractmethod
    def fingerprint(self, name: str) -> Hashable:
        """A cheap token that changes whenever the name's entry changes (see
        ``ModelStore.fingerprint``)."""

    @abstractmethod
    def load_with_fingerprint(self, name: str) -> tuple[NameEntry, Hashable]: ...

    @abstractmethod
    def list(self, *, offset: int = 0, limit: int = 50) -> tuple[list[NameEntry], int]:
        """A page of names in alphabetical order, and how many there are."""

    @abstractmethod
    def set_alias(self, name: str, alias: str, version: int, *, by: str | None) -> AliasChange:
        """Point ``alias`` at ``version``; ``VersionNotFound`` / ``NameNotFound``."""

    @abstractmethod
    def delete_alias(self, name: str, alias: str, *, by: str | None) -> AliasChange: ...

    @abstractmethod
    def rollback_alias(self, name: str, alias: str, *, by: str | None) -> AliasChange:
        """Point ``alias`` back at the version it pointed to before its last change (set,
        delete or rollback undone in turn); ``AliasConflict`` when there is none."""


def undo_target(history: Sequence[tuple[str, int | None]]) -> int | None:
    """The version an alias pointed to before its last change not undone yet, from its history
    as ``(action, previous_version)`` pairs, oldest first: each rollback undoes the newest change
    not yet undone, so rollbacks walk back in turn. Both stores roll back through this."""
    undone = 0
    for action, previous in reversed(history):
        if action == "rollback":
            undone += 1
        elif undone:
            undone -= 1
        else:
            return previous
    return None


def rollback_conflict(name: str, alias: str, target: int | None) -> AliasConflict:
    """Why ``alias`` cannot be rolled back to ``target`` (none, or a deleted version)."""
    what = (
        "no previous version"
        if target is None
        else f"its previous version {target} has been deleted"
    )
    return AliasConflict(
        f"alias {alias!r} of {name!r} cannot be rolled back: {what}; "
        f"set it with PUT /names/{name}/aliases/{alias}",
        name=name,
        alias=alias,
    )


def aliased_version_conflict(
    name: str, version: int, model_id: str, pointing: Sequence[str]
) -> AliasConflict:
    """A model's delete refused: ``pointing`` (sorted, not empty) aliases point to its version."""
    alias = pointing[0]
    many = len(pointing) > 1
    return AliasConflict(
        f"model {model_id!r} is version {version} of {name!r}, which the alias"
        f"{'es' if many else ''} {', '.join(map(repr, pointing))} "
        f"point{'' if many else 's'} to: move or delete the alias first "
        f"(PUT /names/{name}/aliases/{alias})",
        name=name,
        alias=alias,
    )


class AuditLog(ABC):
    """Append-only log of changes of state; an entry survives a crash once ``append`` returns."""

    @abstractmethod
    def append(self, entry: dict[str, Any]) -> None: ...

    @abstractmethod
    def read(self, *, since: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Entries in the order they were made: the first ``limit`` whose ``time`` is at or
        after ``since``, or, without ``since``, the last ``limit``."""


class EvaluationLog(ABC):
    """The last evaluations of each model, kept beside it (a model's record is immutable and
    checksummed, so they are not written into it). Each change is atomic; concurrent appends
    from any processes are all kept (up to ``keep``)."""

    @abstractmethod
    def append(self, model_id: str, entry: dict[str, Any], *, keep: int) -> None:
        """Add ``entry`` as the newest evaluation of ``model_id``, dropping all but the newest
        ``keep``."""

    @abstractmethod
    def read(self, model_id: str) -> list[dict[str, Any]]:
        """The model's evaluations, newest first (empty when there are none)."""

    @abstractmethod
    def delete(self, model_id: str) -> None:
        """Forget the model's evaluations (with the model); nothing to forget is no error."""
