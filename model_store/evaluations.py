"""A model's last evaluations in a folder: ``<root>/evaluations/<id>.json`` per model (a sidecar:
the model's own file is immutable and checksummed), changed under a lock (``<id>.lock``,
``flock``) by any process, written atomically and checksummed like the models."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Any

import orjson

from .base import (
    SCHEMA_VERSION,
    CorruptModel,
    EvaluationLog,
    StoreUnavailable,
    StoreWriteFailed,
    check_model_id,
)
from .files import AtomicFolder, checksum

SUFFIX = ".json"
LOCK_SUFFIX = ".lock"


class FolderEvaluations(EvaluationLog):
    def __init__(self, store_root: Path) -> None:
        self.store_root = store_root
        self.files = AtomicFolder(store_root / "evaluations", create=False)  # made when needed
        self.root = self.files.root
        self._prefix = os.path.join(self.root, "")

    def _file(self, model_id: str) -> str:
        return f"{self._prefix}{check_model_id(model_id)}{SUFFIX}"

    def _load(self, model_id: str) -> list[dict[str, Any]]:
        try:
            with open(self._file(model_id), "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreUnavailable(str(self.root), exc) from None
        try:
            body = orjson.loads(data)
            stored = body.pop("checksum")
            if checksum(body) != stored or body.get("schema_version") != SCHEMA_VERSION:
                raise ValueError("checksum or schema_version")
            items = body["items"]
            if not isinstance(items, list):
                raise ValueError("items")
        except (orjson.JSONDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorruptModel(model_id, f"its evaluations file cannot be read ({exc})") from None
        return items

    def read(self, model_id: str) -> list[dict[str, Any]]:
        return self._load(model_id)

    def append(self, model_id: str, entry: dict[str, Any], *, keep: int) -> None:
        final = self._file(model_id)
        try:
            self.root.mkdir(exist_ok=True)  # not parents: a vanished store is not recreated
            fd = os.open(f"{self._prefix}{model_id}{LOCK_SUFFIX}", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreUnavailable(str(self.store_root), exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                items = self._load(model_id)
            except CorruptModel:
                items = []  # a damaged history is replaced, not a reason to refuse new ones
            body: dict[str, Any] = {
                "schema_version": SCHEMA_VERSION,
                "model_id": model_id,
                "items": [entry, *items][:keep],
            }
            body["checksum"] = checksum(body)
            try:
                self.files._write(final, orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
            except OSError as exc:
                raise StoreWriteFailed(model_id, exc) from exc
        finally:
            os.close(fd)

    def delete(self, model_id: str) -> None:
        for path in (self._file(model_id), f"{self._prefix}{model_id}{LOCK_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
