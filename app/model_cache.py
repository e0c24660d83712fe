"""Per-process cache of ready-to-predict models, bounded and least-recently-used.

A hit never reads the file, and a model deleted or replaced through another worker or replica
stops being served at once, in one of two ways:

* watched (``watch``; the server, on Linux): the kernel tells this process of every change in
  the model folder (app.folder_watch) and the changed model leaves the cache, so a hit costs no
  system call. Each model's file is still checked at least every ``REVALIDATE_SECONDS``, for
  changes the notifications cannot see (another host writing to a network share).
* told by the database (the PostgreSQL store): the same, with ``app.pg_listen`` in place of the
  folder's notifications; a lost connection clears the cache and every hit checks until the
  listener is back.
* otherwise: a hit costs one ``stat`` of the model's file (the store's ``fingerprint``), which
  must match the copy held here.

No FastAPI here.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from model_store import ModelNotFound, ModelStore, NameRegistry

from . import metrics
from .folder_watch import FolderWatcher

T = TypeVar("T")


class ChangeWatcher(Protocol):
    """What tells a cache of changes (``FolderWatcher``, ``app.pg_listen.PgListener``): it calls
    its ``on_change(key)`` on the loop for each change, and ``on_change(None)`` when it may have
    missed some (the cache is then cleared). While ``alive`` is false every hit re-checks."""

    alive: bool

    def start(self, loop: asyncio.AbstractEventLoop) -> bool: ...

    def stop(self) -> None: ...


#: When watched, a cached model's file is still checked at least this often (seconds).
REVALIDATE_SECONDS = 1.0
_NEVER = float("-inf")
_now = time.monotonic


@dataclass
class CacheStats:
    """Counters since start; ``hits + misses`` is the number of lookups that found a model."""

    hits: int = 0
    misses: int = 0
    evictions: int = 0
    stale: int = 0  # misses where a cached copy existed but the file had changed or was deleted


class ModelCache(Generic[T]):
    """``model_id -> T`` built by ``build(record)`` on a miss; at most ``size`` entries, and at
    most ``max_bytes`` by ``weigh``.

    Parameters
    ----------
    store : ModelStore
        Where records come from; its ``fingerprint`` is checked on every lookup.
    build : callable
        Turns a stored record into the cached value (e.g. a ``LogisticModel``).
    size : int
        Most entries kept; 0 disables caching (every lookup reads the store).
    max_bytes : int, optional
        Most bytes the entries may hold, as ``weigh`` counts them; the least recently used go
        first, and a value heavier than this alone is returned without being kept.
    weigh : callable, optional
        The bytes a value holds (default: nothing, so only ``size`` bounds the cache).
    missing : exception type
        What ``store`` raises for a key it does not hold (the key then leaves the cache).
    counted : bool
        Count hits and misses in the service's metrics (the models' cache; not the names').
    """

    def __init__(
        self,
        store: ModelStore | NameRegistry,
        build: Callable[[Any], T],
        *,
        size: int,
        max_bytes: int | None = None,
        weigh: Callable[[T], int] | None = None,
        missing: type[Exception] = ModelNotFound,
        counted: bool = True,
    ) -> None:
        self.store = store
        self.missing = missing
        self.counted = counted
        self.build = build
        self.size = size
        self.max_bytes = max_bytes
        self.weigh = weigh
        self.stats = CacheStats()
        # model id -> [fingerprint, value, when the file was last checked (monotonic), bytes]
        self._entries: OrderedDict[str, list[Any]] = OrderedDict()
        self._bytes = 0  # the sum of the entries' bytes
        self._lock = threading.Lock()
        self._watcher: ChangeWatcher | None = None
        self._model_id_of: Callable[[str], str | None] = lambda name: None
        self._changes = 0  # folder changes heard of; a load that overlaps one is not trusted

    def watch(
        self,
        loop: asyncio.AbstractEventLoop,
        source: str | Callable[[Callable[[str | None], None]], ChangeWatcher],
        model_id_of: Callable[[str], str | None],
    ) -> bool:
        """Hear of changes from ``loop``: ``source`` is the model folder (watched with inotify),
        or makes a store's watcher from the callback it must call (``app.pg_listen``);
        ``model_id_of`` turns what the watcher reports (a file name, a notification) into a
        key, or ``None``. ``False`` if notifications are not available (then every hit checks)."""
        watcher: ChangeWatcher
        if isinstance(source, str):
            watcher = FolderWatcher(source, self._changed)
        else:
            watcher = source(self._changed)
        self._model_id_of = model_id_of
        with self._lock:
            for entry in self._entries.values():
                entry[2] = _NEVER  # checked before the watch: check again
        if not watcher.start(loop):
            return False
        self._watcher = watcher
        return True

    def unwatch(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None

    def _changed(self, name: str | None) -> None:
        with self._lock:
            self._changes += 1
            if name is None:  # the watch is lost: forget everything, check every hit from now
                self._entries.clear()
                self._bytes = 0
                return
            model_id = self._model_id_of(name)
            if model_id is not None:
                self._drop(model_id)

    def __len__(self) -> int:
        return len(self._entries)

    def peek(self, model_id: str) -> T | None:
        """The value for ``model_id`` when it is cached and known to be current without asking
        the store (watched, and checked within ``REVALIDATE_SECONDS``), else ``None``: never
        any I/O, so it is safe on the event loop."""
        watcher = self._watcher
        if watcher is not None and watcher.alive:
            with self._lock:
                entry = self._entries.get(model_id)
                if entry is not None and _now() - entry[2] < REVALIDATE_SECONDS:
                    return self._hit(model_id, entry)
        return None

    def get(self, model_id: str) -> T:
        """The value for ``model_id``; ``ModelNotFound`` / ``CorruptModel`` from the store.
        May read the store (a ``stat``, or the whole file): call it off the event loop."""
        value = self.peek(model_id)
        if value is not None:
            return value
        changes = self._changes
        checked = _now()
        try:
            fp = self.store.fingerprint(model_id)
        except self.missing:
            self.discard(model_id)
            raise
        with self._lock:
            entry = self._entries.get(model_id)
            if entry is not None and entry[0] == fp:
                entry[2] = checked if changes == self._changes else _NEVER
                return self._hit(model_id, entry)
            self.stats.misses += 1
            if self.counted:
                metrics.CACHE_MISSES.inc()
            if entry is not None:
                self.stats.stale += 1
                self._drop(model_id)
        record, fp = self.store.load_with_fingerprint(model_id)
        value = self.build(record)
        nbytes = 0 if self.weigh is None else self.weigh(value)
        if self.size > 0 and (self.max_bytes is None or nbytes <= self.max_bytes):
            with self._lock:
                trusted = checked if changes == self._changes else _NEVER
                self._drop(model_id)  # another thread may have loaded it meanwhile
                self._entries[model_id] = [fp, value, trusted, nbytes]
                self._bytes += nbytes
                while len(self._entries) > self.size or (
                    self.max_bytes is not None and self._bytes > self.max_bytes
                ):
                    _, evicted = self._entries.popitem(last=False)
                    self._bytes -= evicted[3]
                    self.stats.evictions += 1
        return value

    def _drop(self, model_id: str) -> None:
        """Forget ``model_id`` if cached (call with the lock held)."""
        entry = self._entries.pop(model_id, None)
        if entry is not None:
            self._bytes -= entry[3]

    def _hit(self, model_id: str, entry: list[Any]) -> T:
        """Count a hit on ``entry`` and mark it most recently used (call with the lock held)."""
        self._entries.move_to_end(model_id)
        self.stats.hits += 1
        if self.counted:
            metrics.CACHE_HITS.inc()
        return entry[1]

    def discard(self, model_id: str) -> None:
        with self._lock:
            self._drop(model_id)

    def snapshot(self) -> dict[str, Any]:
        """Counters and size, e.g. for metrics."""
        s = self.stats
        return {
            "hits": s.hits,
            "misses": s.misses,
            "evictions": s.evictions,
            "stale": s.stale,
            "entries": len(self._entries),
            "capacity": self.size,
            "bytes": self._bytes,
            "max_bytes": self.max_bytes,
            "ids": list(self._entries),
        }
