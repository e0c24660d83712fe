"""Training jobs in PostgreSQL: the ``JobStore`` contract of ``JsonJobStore``, for replicas and
workers on several machines. Knows nothing of FastAPI.

One row of ``jobs`` (migration 2 of ``postgres.MIGRATIONS``) per job: ``record`` (jsonb, the
folder store's JSON record), ``status`` (the record's, indexed), ``body`` (the training
request's bytes, ``NULL`` once the job has ended: the row's body is what makes a job
claimable), ``cancel`` and ``revision`` (bumped by every change: the event streams'
fingerprint).

Claims are what the folder store's ``flock`` is, in the database: a claim is a **session-level**
advisory lock (``pg_try_advisory_lock(CLAIM_CLASS, hashtext(id))``) taken on a connection of its
own, held for as long as the training runs. When the holder dies, even by ``kill -9``, its
kernel closes the socket, the server ends the session and the lock is free; a holder on a
machine that vanished is noticed by TCP keepalives (``CLAIM_OPTIONS``). The claim writes the
record on that same connection: a claim whose connection died cannot write any more (it raises
``DatabaseUnavailable``), so a runner that lost its lock never overwrites the job another runner
has taken since. Two ids whose ``hashtext`` collide only wait for each other.

A new job's body is spooled to an unnamed temporary file while it arrives (bodies reach
``MAX_BODY_BYTES``, ~100 MB: never held in memory) and streamed into the row by a binary ``COPY``
in the transaction that creates the job; ``read_body`` reads it in slices, so that the training
child holds it once. The queue bound is checked in that transaction under
a transaction-level advisory lock, after the copy: creations are serialised only for a count.

``cancel_requested`` (every 50 ms by a running training) and ``update`` (its progress reports)
use one kept connection, with ``synchronous_commit`` off (a lost report is of no matter); while
the database cannot be reached they answer "no cancel" and drop the report, retrying at most
every ``RETRY_SECONDS``, so that a blip does not fail a long training. Everything else uses the
model store's pool.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import os
import struct
import tempfile
import threading
import time
from collections.abc import Hashable
from typing import IO, Any

import orjson
import psycopg
from psycopg.types.json import Jsonb

from .base import DatabaseUnavailable, JobNotFound, JobQueueFull, Record, StoreWriteFailed
from .jobs import FINAL, QUEUED, JobClaim, JobPage, JobStore, PendingBody, check_job_id
from .postgres import (
    CHANNEL,
    CONNECTION_TIMEOUT,
    PostgresStore,
    _count,
    _one,
    _reason,
    json_text,
)

#: First key of the claims' advisory locks (the second is ``hashtext(id)``): "ljob" in ASCII.
CLAIM_CLASS = 0x6C6A6F62
#: Key of the transaction-level lock that makes the queue bound hold across processes.
QUEUE_LOCK = 0x6C6F67717565  # "logque"
#: A claim's connection: keepalives both ways, so that a runner on a machine that vanished
#: loses its lock within ~30 s (the server's side is what frees the lock).
CLAIM_OPTIONS: dict[str, Any] = {
    "application_name": "logreg-job-claim",
    "connect_timeout": CONNECTION_TIMEOUT,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "options": "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3",
}
#: The kept connection of progress reports and cancel checks.
KEPT_OPTIONS: dict[str, Any] = {
    "application_name": "logreg-job-progress",
    "connect_timeout": CONNECTION_TIMEOUT,
    "options": "-c synchronous_commit=off",
}
#: After a failure, the kept connection is not tried again for this long (seconds).
RETRY_SECONDS = 1.0
#: The largest body a row takes: a bytea, and a COPY row, must stay under 1 GiB.
MAX_BODY = (1 << 30) - (1 << 20)
#: Bytes of the spooled body sent per write of the COPY.
COPY_CHUNK = 1 << 20
#: Bytes of a body read per query.
READ_SLICE = 8 << 20

COPY_JOB = "COPY jobs (id, status, record, body) FROM STDIN (FORMAT binary)"
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_COPY_TRAILER = struct.pack("!h", -1)
_JSONB_VERSION = b"\x01"  # jsonb's binary form: a version byte, then the JSON text


def _field(data: bytes) -> bytes:
    return struct.pack("!i", len(data)) + data


def _jsonb(record: Record) -> Jsonb:
    return Jsonb(record, dumps=json_text)


class _SpooledBody(PendingBody):
    """The body being received, in an unnamed temporary file (nothing is left by a crash);
    closed by ``discard`` (``create`` calls it)."""

    def __init__(self, file: IO[bytes]) -> None:
        self.file = file

    def write(self, data: bytes) -> None:
        self.file.write(data)

    def discard(self) -> None:
        self.file.close()


class _PgClaim(JobClaim):
    def __init__(self, store: PgJobStore, conn: psycopg.Connection[Any], record: Record) -> None:
        self.store = store
        self.conn: psycopg.Connection[Any] | None = conn
        self.record = record

    def _write(self, record: Record, *, final: bool) -> None:
        job_id = check_job_id(record["id"])
        conn = self.conn
        if conn is None:
            raise DatabaseUnavailable(self.store.db.where, f"job {job_id}: its claim was let go")
        sql = (
            "UPDATE jobs SET status = %s, record = %s, revision = revision + 1"
            + (", body = NULL, cancel = false" if final else "")
            + " WHERE id = %s"
        )
        try:
            cur = conn.execute(sql, (str(record["status"]), _jsonb(record), job_id))
        except psycopg.Error as exc:
            # the lock went with the connection: another runner may hold the job now
            self.release()
            raise DatabaseUnavailable(
                self.store.db.where, f"job {job_id}: its claim was lost ({_reason(exc)})"
            ) from None
        if cur.rowcount == 0:
            raise JobNotFound(job_id)
        self.record = record

    def save(self, record: Record) -> None:
        self._write(record, final=False)

    def finish(self, record: Record) -> None:
        # committed (autocommit) before the lock goes: a runner that takes it then finds no body
        self._write(record, final=True)
        self.release()

    def release(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        # Unlocked before the close: a server ends a closed session (and drops its locks) a
        # moment after the client has gone, and another runner may ask at once.
        with contextlib.suppress(psycopg.Error):
            conn.execute(
                "SELECT pg_advisory_unlock(%s, hashtext(%s))", (CLAIM_CLASS, self.record["id"])
            )
        conn.close()


class PgJobStore(JobStore):
    """Jobs in the database of ``db`` (a ``PostgresStore``, whose pool it shares); see the
    module's docstring. ``spool_dir``: where bodies being received are spooled (the system's
    temporary folder when ``None``)."""

    def __init__(self, db: PostgresStore, *, spool_dir: str | os.PathLike[str] | None = None):
        self.db = db
        self.spool_dir = None if spool_dir is None else os.fspath(spool_dir)
        self._kept: psycopg.Connection[Any] | None = None
        self._kept_lock = threading.Lock()
        self._kept_retry = 0.0  # monotonic time before which the kept connection is not tried

    def close(self) -> None:
        with self._kept_lock:
            kept, self._kept = self._kept, None
        if kept is not None:
            kept.close()

    # --- creating -----------------------------------------------------------------------------

    def new_body(self) -> PendingBody:
        return _SpooledBody(self._spool())

    def create(
        self, record: Record, body: PendingBody, *, max_queued: int, retry_after: int
    ) -> None:
        assert isinstance(body, _SpooledBody)
        job_id = check_job_id(record["id"])
        try:
            fh = body.file
            fh.flush()
            size = os.fstat(fh.fileno()).st_size
            if size > MAX_BODY:
                raise StoreWriteFailed(
                    job_id, OSError(errno.EFBIG, f"a job's body is limited to {MAX_BODY} bytes")
                )
            fh.seek(0)
            row = (
                struct.pack("!h", 4)
                + _field(job_id.encode())
                + _field(str(record["status"]).encode())
                + _field(_JSONB_VERSION + orjson.dumps(record))
                + struct.pack("!i", size)
            )
            with self.db.transaction() as cur:
                # the text fields are sent as UTF-8, whatever the connection's encoding was
                cur.execute("SET LOCAL client_encoding = 'UTF8'")
                with cur.copy(COPY_JOB) as cp:
                    cp.write(_COPY_HEADER + row)
                    while chunk := fh.read(COPY_CHUNK):
                        cp.write(chunk)
                    cp.write(_COPY_TRAILER)
                # after the copy: concurrent creations wait for each other only for this count
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (QUEUE_LOCK,))
                cur.execute(
                    "SELECT count(*) FROM jobs WHERE status = %s AND id <> %s", (QUEUED, job_id)
                )
                queued = _count(cur)
                if queued >= max_queued:
                    raise JobQueueFull(queued, retry_after)  # rolls the copy back
        except OSError as exc:
            raise StoreWriteFailed(job_id, exc) from exc
        finally:
            body.discard()

    # --- the kept connection: progress and cancel checks --------------------------------------

    def _on_kept(self, sql: str, params: tuple[Any, ...]) -> psycopg.Cursor[Any] | None:
        """Run ``sql`` on the kept connection; ``None`` when the database cannot be reached."""
        with self._kept_lock:
            try:
                if self._kept is None:
                    if time.monotonic() < self._kept_retry:
                        return None
                    self._kept = psycopg.connect(self.db.url, autocommit=True, **KEPT_OPTIONS)
                return self._kept.execute(sql, params)
            except (psycopg.OperationalError, psycopg.InterfaceError):
                if self._kept is not None:
                    self._kept.close()
                    self._kept = None
                self._kept_retry = time.monotonic() + RETRY_SECONDS
                return None

    def update(self, record: Record) -> None:
        # only while the job is unfinished: a late report never overwrites a final record
        self._on_kept(
            "UPDATE jobs SET status = %s, record = %s, revision = revision + 1"
            " WHERE id = %s AND body IS NOT NULL",
            (str(record["status"]), _jsonb(record), check_job_id(record["id"])),
        )

    def cancel_requested(self, job_id: str) -> bool:
        cur = self._on_kept("SELECT cancel FROM jobs WHERE id = %s", (check_job_id(job_id),))
        row = None if cur is None else cur.fetchone()
        return bool(row and row[0])

    def request_cancel(self, job_id: str) -> None:
        check_job_id(job_id)
        with self.db.transaction() as cur:
            cur.execute(
                "UPDATE jobs SET cancel = true, revision = revision + 1"
                " WHERE id = %s AND body IS NOT NULL AND NOT cancel",
                (job_id,),
            )
            if cur.rowcount:  # whoever listens (a worker running it) hears it at the commit
                cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"job:{job_id}"))

    # --- reads --------------------------------------------------------------------------------

    def get(self, job_id: str) -> Record:
        check_job_id(job_id)
        with self.db.transaction() as cur:
            cur.execute("SELECT record FROM jobs WHERE id = %s", (job_id,))
            row = cur.fetchone()
        if row is None:
            raise JobNotFound(job_id)
        record: Record = row[0]
        return record

    def fingerprint(self, job_id: str) -> Hashable:
        check_job_id(job_id)
        with self.db.transaction() as cur:
            cur.execute("SELECT revision FROM jobs WHERE id = %s", (job_id,))
            row = cur.fetchone()
        if row is None:
            raise JobNotFound(job_id)
        revision: int = row[0]
        return revision

    def pending(self) -> builtins.list[str]:
        with self.db.transaction() as cur:
            cur.execute("SELECT id FROM jobs WHERE body IS NOT NULL ORDER BY id")
            return [row[0] for row in cur.fetchall()]

    def list(self, *, status: str | None = None, offset: int = 0, limit: int = 50) -> JobPage:
        where, params = ("", ()) if status is None else (" WHERE status = %s", (status,))
        with self.db.transaction() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute(f"SELECT count(*) FROM jobs{where}", params)
            total = _count(cur)
            cur.execute(
                f"SELECT record FROM jobs{where} ORDER BY id DESC OFFSET %s LIMIT %s",
                (*params, offset, limit),
            )
            return [row[0] for row in cur.fetchall()], total

    def remove_ended(self, before: str) -> int:
        with self.db.transaction() as cur:
            cur.execute(
                "DELETE FROM jobs WHERE status = ANY(%s) AND body IS NULL"
                " AND record->>'finished_at' < %s",
                (sorted(FINAL), before),
            )
            return int(cur.rowcount)

    def count_queued(self) -> int:
        with self.db.transaction() as cur:
            cur.execute("SELECT count(*) FROM jobs WHERE status = %s", (QUEUED,))
            return _count(cur)

    def read_body(self, job_id: str) -> bytes:
        """The body, read in slices through a temporary file: a ``SELECT`` of it whole (or a
        ``COPY``, whose row is the whole value) would hold it twice in memory at once (the
        driver's result, and the bytes made from it). Slices of an uncompressed (``EXTERNAL``)
        value are read without reading the rest."""
        check_job_id(job_id)
        with self._spool() as fh:
            with self.db.transaction() as cur:
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cur.execute(
                    "SELECT octet_length(body) FROM jobs WHERE id = %s AND body IS NOT NULL",
                    (job_id,),
                )
                row = cur.fetchone()
                if row is None:  # no such job, or it has ended
                    raise JobNotFound(job_id)
                size: int = row[0]
                for offset in range(0, size, READ_SLICE):
                    cur.execute(
                        "SELECT substring(body FROM %s FOR %s) FROM jobs WHERE id = %s",
                        (offset + 1, READ_SLICE, job_id),
                        binary=True,
                    )
                    fh.write(_one(cur)[0])
            fh.seek(0)
            return fh.read()

    def _spool(self) -> IO[bytes]:
        try:
            return tempfile.TemporaryFile(dir=self.spool_dir, prefix=".tmp-body-")
        except FileNotFoundError:  # the spool folder is gone: the system's temporary folder
            return tempfile.TemporaryFile(prefix=".tmp-body-")

    # --- claims -------------------------------------------------------------------------------

    def claim(self, job_id: str) -> JobClaim | None:
        check_job_id(job_id)
        # A look on the pool first: schedulers ask every half second about each job another
        # runner holds, and a connection costs the server a process.
        with self.db.transaction() as cur:
            cur.execute(
                "SELECT body IS NOT NULL, EXISTS (SELECT 1 FROM pg_locks"
                " WHERE locktype = 'advisory' AND granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND classid = %s::oid AND objid = hashtext(%s)::oid AND objsubid = 2)"
                " FROM jobs WHERE id = %s",
                (CLAIM_CLASS, job_id, job_id),
            )
            row = cur.fetchone()
        if row is None or not row[0] or row[1]:  # no such job, ended, or held
            return None
        try:
            conn = psycopg.connect(self.db.url, autocommit=True, **CLAIM_OPTIONS)
        except psycopg.Error as exc:
            raise DatabaseUnavailable(self.db.where, _reason(exc)) from None
        try:
            cur = conn.execute(
                "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (CLAIM_CLASS, job_id)
            )
            if not _one(cur)[0]:
                conn.close()
                return None
            # read once the lock is ours: a job that ended meanwhile has no body any more
            cur = conn.execute(
                "SELECT record FROM jobs WHERE id = %s AND body IS NOT NULL", (job_id,)
            )
            found = cur.fetchone()
        except psycopg.Error as exc:
            conn.close()
            raise DatabaseUnavailable(self.db.where, _reason(exc)) from None
        if found is None:
            conn.close()
            return None
        return _PgClaim(self, conn, found[0])
