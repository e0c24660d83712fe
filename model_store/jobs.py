"""Training jobs: records beside the models, in a folder of their own. Knows nothing of FastAPI.

A job is a small JSON record (``status``, timestamps, ``progress``, ``model_id``, ``error``) and,
until it ends, the request that trains it. Every worker process and every replica over the same
model folder sees the same jobs, and a queued job runs exactly once: a runner *claims* a job by
taking an exclusive ``flock`` on its lock file, and holds it for as long as the job runs. The
kernel drops the locks of a process that dies (even by ``kill -9``), so a job whose record says
``running`` while nobody holds its lock was left by a runner that died.

``JsonJobStore`` lays out ``<root>`` (``<MODEL_STORE_DIR>/jobs``) as::

    <id>.json              the record, replaced whole (temporary file, fsync, rename)
    pending/<id>.lock      exists until the job ends; its runner holds a flock on it
    pending/<id>.body      the training request's body, until the job ends
    pending/<id>.cancel    a cancel was asked for: the running training looks for it

``JobStore`` is the interface (``postgres_jobs.PgJobStore`` keeps the jobs in PostgreSQL and
claims with session-level advisory locks); ids are those of ``new_model_id``: sorting them sorts
jobs by age.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterator
from typing import BinaryIO

import orjson

from .base import (
    ID_PATTERN,
    JobNotFound,
    JobQueueFull,
    Record,
    StoreUnavailable,
    StoreWriteFailed,
)

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
)
STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
#: A job in one of these states never changes again.
FINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})

#: A page of job records, newest first, and how many jobs there are in all.
JobPage = tuple[list[Record], int]

TMP_PREFIX = ".tmp-"
#: Temporary files (of records) older than this are leftovers of a process that died mid-write.
STALE_TMP_SECONDS = 300.0


def check_job_id(job_id: str) -> str:
    """``job_id`` if it is a well-formed id, else ``JobNotFound`` (a 404, as for models): only
    ids of this form reach the file system."""
    if not isinstance(job_id, str) or not ID_PATTERN.fullmatch(job_id):
        raise JobNotFound(str(job_id))
    return job_id


class PendingBody(ABC):
    """A request body being received for a job not created yet: ``write`` it, then hand it to
    ``JobStore.create`` (which keeps it) or ``discard`` it."""

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    @abstractmethod
    def discard(self) -> None: ...


class JobClaim(ABC):
    """A job held by one runner, from ``JobStore.claim`` until ``finish`` or ``release``.

    ``record`` is the job as read once the claim was taken: the runner decides from it (a
    ``queued`` job is started, a ``running`` one was left by a runner that died).
    """

    record: Record

    @abstractmethod
    def save(self, record: Record) -> None:
        """Replace the record (durably) while holding the job."""

    @abstractmethod
    def finish(self, record: Record) -> None:
        """Write the job's final record, drop its body and cancel marker, and let it go: it is
        never claimed again."""

    @abstractmethod
    def release(self) -> None:
        """Let the job go unchanged (another runner may claim it)."""


class JobStore(ABC):
    """Records of training jobs, the bodies of unfinished ones, claims and cancel requests."""

    @abstractmethod
    def new_body(self) -> PendingBody: ...

    @abstractmethod
    def create(
        self, record: Record, body: PendingBody, *, max_queued: int, retry_after: int
    ) -> None:
        """Store a new ``queued`` job with its request body, durably; ``JobQueueFull`` (and the
        body discarded) when ``max_queued`` jobs already wait."""

    @abstractmethod
    def get(self, job_id: str) -> Record:
        """The job's record; ``JobNotFound``."""

    @abstractmethod
    def pending(self) -> list[str]:
        """Ids of the jobs not finished (queued, running, or left running by a dead runner),
        oldest first."""

    @abstractmethod
    def list(self, *, status: str | None = None, offset: int = 0, limit: int = 50) -> JobPage:
        """A page of jobs, newest first, only those in ``status`` if given; and their total."""

    @abstractmethod
    def claim(self, job_id: str) -> JobClaim | None:
        """Hold the job, or ``None`` if another runner holds it or it has ended. Never waits."""

    @abstractmethod
    def read_body(self, job_id: str) -> bytes: ...

    @abstractmethod
    def update(self, record: Record) -> None:
        """Replace a running job's record with a progress report, not durably (a report lost in
        a crash is of no matter). Only the process running the job for its claim's holder
        calls it."""

    @abstractmethod
    def request_cancel(self, job_id: str) -> None:
        """Leave word for whoever runs the job (any process, any replica) to stop it."""

    @abstractmethod
    def cancel_requested(self, job_id: str) -> bool: ...

    def remove_stale_temporaries(self) -> int:
        """Delete what processes that died mid-write left behind; how many. Nothing by default."""
        return 0

    @abstractmethod
    def remove_ended(self, before: str) -> int:
        """Delete the records of jobs that ended (``FINAL``) before ``before``, an ISO 8601
        UTC time as their ``finished_at`` is written; how many. Jobs still queued or running,
        and ended ones whose runner has not let go yet, are kept."""

    def count_queued(self) -> int:
        """How many jobs wait to run; this default reads each unfinished job's record."""
        count = 0
        for job_id in self.pending():
            with contextlib.suppress(JobNotFound, KeyError):  # gone, or half made
                count += self.get(job_id)["status"] == QUEUED
        return count

    def close(self) -> None:
        """Release what the store holds open (a database connection); nothing by default."""
        return None

    def fingerprint(self, job_id: str) -> Hashable:
        """A cheap token that changes when the record does (event streams poll it); this
        default reads the record."""
        return orjson.dumps(self.get(job_id), option=orjson.OPT_SORT_KEYS)


class _FileBody(PendingBody):
    def __init__(self, path: str) -> None:
        self.path = path
        self.file: BinaryIO = open(path, "xb")  # noqa: SIM115 - closed by create or discard
        # Held while the body is written: a stale-file sweep leaves a locked file alone.
        fcntl.flock(self.file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def write(self, data: bytes) -> None:
        self.file.write(data)

    def discard(self) -> None:
        self.file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


class _FileClaim(JobClaim):
    def __init__(self, store: JsonJobStore, fd: int, record: Record) -> None:
        self.store = store
        self.fd: int | None = fd
        self.record = record

    def save(self, record: Record) -> None:
        self.store._write_record(record, durable=True)
        self.record = record

    def finish(self, record: Record) -> None:
        job_id = record["id"]
        self.save(record)
        for suffix in (".body", ".cancel"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.store._pending(job_id, suffix))
        # The lock file goes before the lock is let go: a runner that opened it meanwhile
        # then finds its lock on a file no longer there, and leaves the job alone.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.store._pending(job_id, ".lock"))
        self.release()

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class JsonJobStore(JobStore):
    """Jobs as files under ``root`` (see the module's docstring)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        """``root``: a folder inside the model folder. It is made when the first job is (a
        server that never runs a job leaves the model folder as it was), never with parents:
        a model folder that vanished (a volume unmounted) is not recreated."""
        self.root = os.fspath(root)
        self.pending_dir = os.path.join(self.root, "pending")

    def _make_folders(self) -> None:
        for folder in (self.root, self.pending_dir):
            try:
                os.mkdir(folder)
            except FileExistsError:
                pass
            except OSError as exc:
                raise StoreUnavailable(os.path.dirname(self.root), exc) from None

    # --- paths --------------------------------------------------------------------------------

    def _record(self, job_id: str) -> str:
        return os.path.join(self.root, f"{check_job_id(job_id)}.json")

    def _pending(self, job_id: str, suffix: str) -> str:
        return os.path.join(self.pending_dir, f"{check_job_id(job_id)}{suffix}")

    # --- writes -------------------------------------------------------------------------------

    def _write_record(self, record: Record, *, durable: bool) -> None:
        final = self._record(record["id"])
        data = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
        tmp = os.path.join(self.root, f"{TMP_PREFIX}{record['id']}.{secrets.token_hex(4)}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            try:
                with open(fd, "wb", closefd=False) as fh:
                    fh.write(data)
                    fh.flush()
                    if durable:
                        os.fsync(fd)
                os.replace(tmp, final)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
            finally:
                os.close(fd)
            if durable:
                _fsync_dir(self.root)
        except OSError as exc:
            raise StoreWriteFailed(record["id"], exc) from exc

    @contextlib.contextmanager
    def _queue_lock(self) -> Iterator[None]:
        """Serialises the creation of jobs over every process, so the queue bound holds."""
        fd = os.open(os.path.join(self.pending_dir, ".queue"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def new_body(self) -> PendingBody:
        self._make_folders()
        name = f"{TMP_PREFIX}body-{os.getpid()}-{secrets.token_hex(8)}"
        return _FileBody(os.path.join(self.pending_dir, name))

    def create(
        self, record: Record, body: PendingBody, *, max_queued: int, retry_after: int
    ) -> None:
        assert isinstance(body, _FileBody)
        job_id = check_job_id(record["id"])
        try:
            body.file.flush()
            os.fsync(body.file.fileno())
            with self._queue_lock():
                queued = self.count_queued()
                if queued >= max_queued:
                    raise JobQueueFull(queued, retry_after)
                os.replace(body.path, self._pending(job_id, ".body"))
                # the lock file first: a record without one could never be run
                os.close(os.open(self._pending(job_id, ".lock"), os.O_CREAT | os.O_EXCL, 0o644))
                _fsync_dir(self.pending_dir)
                self._write_record(record, durable=True)
        except OSError as exc:
            raise StoreWriteFailed(job_id, exc) from exc
        finally:
            body.discard()  # closes it; the file is gone already if it was kept

    def update(self, record: Record) -> None:
        self._write_record(record, durable=False)

    def request_cancel(self, job_id: str) -> None:
        try:
            os.close(os.open(self._pending(job_id, ".cancel"), os.O_CREAT | os.O_WRONLY, 0o644))
        except FileNotFoundError:  # the pending folder was removed: nothing runs from it
            pass
        except OSError as exc:
            raise StoreWriteFailed(job_id, exc) from exc

    def cancel_requested(self, job_id: str) -> bool:
        return os.path.exists(self._pending(job_id, ".cancel"))

    # --- reads --------------------------------------------------------------------------------

    def get(self, job_id: str) -> Record:
        path = self._record(job_id)
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            models = os.path.dirname(self.root)
            if not os.path.isdir(models):
                raise StoreUnavailable(models, OSError(2, "no such folder")) from None
            raise JobNotFound(job_id) from None
        except OSError as exc:
            raise StoreUnavailable(self.root, exc) from None
        try:
            record: Record = orjson.loads(data)
        except orjson.JSONDecodeError:  # written whole by rename: only a person could do this
            raise JobNotFound(job_id) from None
        return record

    def fingerprint(self, job_id: str) -> Hashable:
        try:
            st = os.stat(self._record(job_id))
        except FileNotFoundError:
            raise JobNotFound(job_id) from None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _ids(self, folder: str, suffix: str) -> list[str]:
        try:
            with os.scandir(folder) as entries:
                names = [e.name[: -len(suffix)] for e in entries if e.name.endswith(suffix)]
        except FileNotFoundError as exc:
            models = os.path.dirname(self.root)
            if os.path.isdir(models):
                return []  # no job was ever made
            raise StoreUnavailable(models, exc) from None
        except OSError as exc:
            raise StoreUnavailable(folder, exc) from None
        return sorted(n for n in names if ID_PATTERN.fullmatch(n))

    def pending(self) -> list[str]:
        return self._ids(self.pending_dir, ".lock")

    def list(self, *, status: str | None = None, offset: int = 0, limit: int = 50) -> JobPage:
        ids = self._ids(self.root, ".json")[::-1]
        if status is None:
            page = [r for r in map(self._maybe_get, ids[offset : offset + limit]) if r]
            return page, len(ids)
        # A filter reads every record: jobs are few next to models, and records small.
        matching = [r for r in map(self._maybe_get, ids) if r and r.get("status") == status]
        return matching[offset : offset + limit], len(matching)

    def remove_ended(self, before: str) -> int:
        pending = set(self.pending())  # an ended job's runner may still be letting go
        removed = 0
        for job_id in self._ids(self.root, ".json"):
            record = None if job_id in pending else self._maybe_get(job_id)
            finished = None if record is None else record.get("finished_at")
            if record is None or record.get("status") not in FINAL or not finished:
                continue
            if str(finished) < before:
                with contextlib.suppress(FileNotFoundError):  # another process's sweep
                    os.unlink(self._record(job_id))
                    removed += 1
        return removed

    def _maybe_get(self, job_id: str) -> Record | None:
        try:
            return self.get(job_id)
        except JobNotFound:  # removed between the scan and the read
            return None

    def read_body(self, job_id: str) -> bytes:
        try:
            with open(self._pending(job_id, ".body"), "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            raise JobNotFound(job_id) from None

    # --- claims -------------------------------------------------------------------------------

    def claim(self, job_id: str) -> JobClaim | None:
        path = self._pending(job_id, ".lock")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)  # never O_CREAT: an ended job is gone
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the job ended between our open and our lock
                os.close(fd)
                return None
            try:
                record = self.get(job_id)
            except JobNotFound:
                # a lock file without a record: a creation that died half-way, or one under way
                if time.time() - os.fstat(fd).st_mtime > STALE_TMP_SECONDS:
                    for suffix in (".body", ".cancel", ".lock"):
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(self._pending(job_id, suffix))
                os.close(fd)
                return None
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
        return _FileClaim(self, fd, record)

    def remove_stale_temporaries(self, *, older_than: float = STALE_TMP_SECONDS) -> int:
        """Delete temporary files left by processes that died while writing; returns how many.
        Bodies being received are locked by their writer and left alone."""
        now, removed = time.time(), 0
        for folder in (self.root, self.pending_dir):
            with contextlib.suppress(FileNotFoundError), os.scandir(folder) as entries:
                for entry in entries:
                    if not entry.name.startswith(TMP_PREFIX):
                        continue
                    with contextlib.suppress(FileNotFoundError):
                        if now - entry.stat().st_mtime <= older_than:
                            continue
                        fd = os.open(entry.path, os.O_RDONLY)
                        try:
                            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        except BlockingIOError:
                            continue
                        finally:
                            os.close(fd)
                        os.unlink(entry.path)
                        removed += 1
        return removed


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
