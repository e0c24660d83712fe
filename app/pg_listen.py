"""Change notifications from the PostgreSQL store: ``LISTEN logreg_changes`` on a dedicated
connection, each payload (``model:<id>``, ``name:<name>``) handed to the model cache. The same
interface as ``app.folder_watch.FolderWatcher`` for ``ModelCache.watch``. No FastAPI here.

The store sends ``NOTIFY`` inside the transaction of each change; PostgreSQL delivers it to every
listening connection when that transaction commits, so before the replica that made the change
answers its client. A thread connects (and reconnects); once ``LISTEN`` has run, it hands the
connection to the event loop, which reads it with ``loop.add_reader``: the notification is then
handled in the same poll that delivers the requests' bytes, before the request handlers that
poll wakes run, and never waits for the thread to get the GIL. (Reading the notifications in the
thread and posting them with ``call_soon_threadsafe`` left other replicas serving an old alias up
to ~18 ms after a move returned, under load: docs/DEVELOPING.md.)

When the connection is lost, notifications may have been missed: ``on_change(None)`` (the cache
forgets everything), ``alive`` is false (every hit re-checks with the database), and the thread
reconnects with a growing delay. Once ``LISTEN`` runs again the cache is cleared once more (what
was checked while not listening may have changed before it listened) and ``alive`` is true again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg

from model_store.postgres import CHANNEL

log = logging.getLogger("app.pg_listen")

#: Reconnection delays (s): the first, and the most it grows to (doubling).
RETRY_FIRST = 0.05
RETRY_MAX = 2.0
#: TCP keepalives, so that a silently dead peer is noticed within ~10 s, not hours; a name that
#: tells the connection apart in ``pg_stat_activity``.
CONNECT_OPTIONS: dict[str, Any] = {
    "application_name": "logreg-listen",
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 2,
    "connect_timeout": 5,
}


class PgListener:
    """Calls ``on_change(payload)`` on the loop for each notification, ``on_change(None)`` when
    the connection is lost or comes back; ``alive`` while listening."""

    def __init__(self, url: str, on_change: Callable[[str | None], None]) -> None:
        self.url = url
        self.on_change = on_change
        self.alive = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: psycopg.Connection[Any] | None = None  # the loop's, while attached
        self._fd = -1  # its socket (``fileno()`` fails once the connection is broken)
        self._stop = threading.Event()
        self._wake = threading.Event()  # the thread's: stop, or the loop lost the connection
        self._thread: threading.Thread | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Connect from a thread; ``alive`` once the first ``LISTEN`` has run."""
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="pg-listen", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        """From the loop's thread (or once the loop is closed)."""
        self._stop.set()
        self._detach()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    # --- the thread: connect, hand over, wait, reconnect --------------------------------------

    def _post(self, callback: Callable[..., None], *args: Any) -> bool:
        loop = self._loop
        if loop is None or loop.is_closed():
            return False
        try:
            loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop closed meanwhile
            return False
        return True

    def _run(self) -> None:
        delay = RETRY_FIRST
        while not self._stop.is_set():
            conn = None
            try:
                conn = psycopg.connect(self.url, autocommit=True, **CONNECT_OPTIONS)
                conn.execute(f"LISTEN {CHANNEL}")
            except psycopg.Error as exc:
                log.warning("database notifications lost (%s); retry in %.2f s", exc, delay)
            else:
                self._wake.clear()
                # ``stop`` sets the flag before waking us: seen here, or the wait returns
                if self._stop.is_set() or not self._post(self._attach, conn):
                    conn.close()
                    return
                delay = RETRY_FIRST
                self._wake.wait()  # until the loop loses the connection, or stop
            if conn is not None:
                conn.close()
            if self._stop.is_set() or not self._post(self._lost):
                return
            self._stop.wait(delay)
            delay = min(delay * 2, RETRY_MAX)

    # --- on the loop --------------------------------------------------------------------------

    def _attach(self, conn: psycopg.Connection[Any]) -> None:
        if self._stop.is_set() or self._loop is None:
            self._wake.set()
            return
        self._conn, self._fd = conn, conn.fileno()
        self._loop.add_reader(self._fd, self._read)
        self.on_change(None)  # what was checked while not listening may have changed since
        self.alive = True
        self._read()  # anything that came with the LISTEN's answer

    def _read(self) -> None:
        conn = self._conn
        if conn is None:
            return
        pgconn = conn.pgconn
        try:
            pgconn.consume_input()  # non-blocking: what the socket holds
            while (notify := pgconn.notifies()) is not None:
                self.on_change(notify.extra.decode())
        except psycopg.Error as exc:
            log.warning("database notifications lost (%s); reconnecting", exc)
            self._detach()
            self._lost()
            self._wake.set()

    def _detach(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._fd)

    def _lost(self) -> None:
        self.alive = False
        self.on_change(None)
