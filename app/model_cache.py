"""Per-process cache of ready-to-predict models, bounded and least-recently-used.

A hit costs one ``stat`` of the model's file (the store's ``fingerprint``), never a read: a model
deleted or replaced through another worker or replica stops being served at once, because its
fingerprint no longer matches the copy held here. No FastAPI here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from model_store import ModelNotFound, ModelStore, Record

from . import metrics

T = TypeVar("T")


@dataclass
class CacheStats:
    """Counters since start; ``hits + misses`` is the number of lookups that found a model."""

    hits: int = 0
    misses: int = 0
    evictions: int = 0
    stale: int = 0  # misses where a cached copy existed but the file had changed or was deleted


class ModelCache(Generic[T]):
    """``model_id -> T`` built by ``build(record)`` on a miss; at most ``size`` entries.

    Parameters
    ----------
    store : ModelStore
        Where records come from; its ``fingerprint`` is checked on every lookup.
    build : callable
        Turns a stored record into the cached value (e.g. a ``LogisticModel``).
    size : int
        Most entries kept; 0 disables caching (every lookup reads the store).
    """

    def __init__(self, store: ModelStore, build: Callable[[Record], T], *, size: int) -> None:
        self.store = store
        self.build = build
        self.size = size
        self.stats = CacheStats()
        self._entries: OrderedDict[str, tuple[Hashable, T]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, model_id: str) -> T:
        """The value for ``model_id``; ``ModelNotFound`` / ``CorruptModel`` from the store."""
        try:
            fp = self.store.fingerprint(model_id)
        except ModelNotFound:
            self.discard(model_id)
            raise
        with self._lock:
            entry = self._entries.get(model_id)
            if entry is not None and entry[0] == fp:
                self._entries.move_to_end(model_id)
                self.stats.hits += 1
                metrics.CACHE_HITS.inc()
                return entry[1]
            self.stats.misses += 1
            metrics.CACHE_MISSES.inc()
            if entry is not None:
                self.stats.stale += 1
                del self._entries[model_id]
        record, fp = self.store.load_with_fingerprint(model_id)
        value = self.build(record)
        if self.size > 0:
            with self._lock:
                self._entries[model_id] = (fp, value)
                self._entries.move_to_end(model_id)
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
                    self.stats.evictions += 1
        return value

    def discard(self, model_id: str) -> None:
        with self._lock:
            self._entries.pop(model_id, None)

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
        }
