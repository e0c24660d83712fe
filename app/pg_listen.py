"""Change notifications from the PostgreSQL store: ``LISTEN logreg_changes`` on a dedicated
connection, in a thread, each payload (``model:<id>``, ``name:<name>``) handed to the event loop
with ``call_soon_threadsafe``. The same interface as ``app.folder_watch.FolderWatcher`` for the
model cache (``ModelCache.watch``). No FastAPI here.

The store sends ``NOTIFY`` inside the transaction of each change, and PostgreSQL delivers it when
that transaction commits, so before the replica that made the change answers its client. Unlike
inotify the delivery is asynchronous: another replica hears of it a network round trip and a
thread hand-over later (tests/api/test_pg_cluster.py measures the worst delay).

When the connection is lost, notifications may have been missed: ``on_change(None)`` (the cache
forgets everything), ``alive`` is false (every hit re-checks with the database), and the listener
reconnects with a growing delay. Once ``LISTEN`` runs again it clears the cache once more (what
was checked while it was away may have changed before it listened) and is ``alive`` again.
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

#: How often the thread wakes to see whether it should stop, and checks its connection (s).
POLL_SECONDS = 0.25
#: Reconnection delays: the first, and the most it grows to (doubling).
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
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Listen from a thread; ``alive`` once the first ``LISTEN`` has run."""
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="pg-listen", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        self._stop.set()
        self.alive = False
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # --- the thread ---------------------------------------------------------------------------

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
            try:
                with psycopg.connect(self.url, autocommit=True, **CONNECT_OPTIONS) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    if not self._post(self._back):
                        return
                    delay = RETRY_FIRST
                    while not self._stop.is_set():
                        for notify in conn.notifies(timeout=POLL_SECONDS):
                            if not self._post(self.on_change, notify.payload):
                                return
            except psycopg.Error as exc:
                if not self._stop.is_set():
                    log.warning("database notifications lost (%s); retry in %.2f s", exc, delay)
            if self._stop.is_set() or not self._post(self._lost):
                return
            self._stop.wait(delay)
            delay = min(delay * 2, RETRY_MAX)

    # --- on the loop --------------------------------------------------------------------------

    def _back(self) -> None:
        if self._stop.is_set():
            return
        self.on_change(None)  # what was checked while not listening may have changed since
        self.alive = True

    def _lost(self) -> None:
        self.alive = False
        self.on_change(None)
