"""Registered names in a folder: ``<root>/names/<name>.json`` per name, changed under a lock
(``<name>.lock``, ``flock``) by any process, written atomically; and the audit log, a file of
JSON lines appended with ``fsync``.

A name's file holds its versions (version -> model id), its aliases, each alias's history and
the versions a rollback returns to. A new version is first written *pending* (so its number is
taken for good), then the model is saved, then the version is committed: a crash in between
leaves a pending entry that the next change of the name settles (kept if the model's file
exists, dropped if not), never two models with one version.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import orjson

from .base import (
    SCHEMA_VERSION,
    AliasChange,
    AliasNotFound,
    AuditLog,
    CorruptModel,
    InvalidName,
    NameEntry,
    NameNotFound,
    NameRegistry,
    Record,
    StoreUnavailable,
    StoreWriteFailed,
    VersionEntry,
    VersionNotFound,
    aliased_version_conflict,
    check_alias,
    check_name,
    rollback_conflict,
    undo_target,
)
from .files import AtomicFolder, checksum


class ModelFiles(Protocol):
    """What the names need of the folder of models (``JsonFileStore``; named by this protocol,
    not imported, so the two modules do not import each other)."""

    root: Path

    def path(self, model_id: str) -> Path: ...

    def save(self, record: Record) -> None: ...


SUFFIX = ".json"
LOCK_SUFFIX = ".lock"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _empty(name: str) -> dict[str, Any]:
    return {"name": name, "next_version": 1, "versions": {}, "aliases": {}, "history": {}}


def _entry(body: dict[str, Any]) -> NameEntry:
    name = body["name"]
    return NameEntry(
        name=name,
        versions={
            int(v): VersionEntry(version=int(v), model_id=e["id"], created_at=e["created_at"])
            for v, e in body["versions"].items()
            if not e.get("pending")
        },
        aliases=dict(body["aliases"]),
        history={
            alias: [AliasChange(name=name, alias=alias, **change) for change in changes]
            for alias, changes in body["history"].items()
        },
        next_version=body["next_version"],
    )


class NameFileCorrupt(CorruptModel):
    """A name's file that cannot be trusted (a 409, like a corrupt model's)."""

    def __init__(self, name: str, reason: str) -> None:
        CorruptModel.__init__(self, name, reason)
        self.args = (f"the file of name {name!r} is corrupt on disk: {reason}",)


class FolderNames(NameRegistry):
    def __init__(self, store: ModelFiles) -> None:
        self.store = store
        self.files = AtomicFolder(store.root / "names", create=False)  # made by the first name
        self.root = self.files.root
        self._prefix = os.path.join(self.root, "")

    def name_of(self, file_name: str) -> str | None:
        """The name a file in the names folder stands for (``None``: not a name's file)."""
        name = file_name.removesuffix(SUFFIX)
        return name if name != file_name and not name.startswith(".") else None

    def _file(self, name: str) -> str:
        try:
            check_name(name)
        except InvalidName:  # a name that breaks the rule was never registered
            raise NameNotFound(name[:100]) from None
        return f"{self._prefix}{name}{SUFFIX}"

    # --- reading ----------------------------------------------------------------------------

    def _decode(self, name: str, data: bytes) -> dict[str, Any]:
        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise NameFileCorrupt(name, f"not valid JSON ({exc})") from None
        if not isinstance(body, dict):
            raise NameFileCorrupt(name, "not a JSON object")
        stored = body.pop("checksum", None)
        if stored is None or checksum(body) != stored:
            raise NameFileCorrupt(name, "checksum mismatch (the file was truncated or edited)")
        if body.pop("schema_version", None) != SCHEMA_VERSION or body.get("name") != name:
            raise NameFileCorrupt(name, "unsupported schema_version, or another name inside")
        return body

    def _read(self, name: str) -> tuple[dict[str, Any], tuple[int, int, int]] | None:
        try:
            fd = os.open(self._file(name), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            if not self.store.root.is_dir():
                raise StoreUnavailable(str(self.store.root), FileNotFoundError(2, "gone")) from None
            return None
        except OSError as exc:
            raise NameFileCorrupt(name, f"cannot be read ({exc.strerror or exc})") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise NameFileCorrupt(name, "cannot be read (not a regular file)")
            with open(fd, "rb", closefd=False) as fh:
                data = fh.read()
        finally:
            os.close(fd)
        return self._decode(name, data), (st.st_ino, st.st_mtime_ns, st.st_size)

    def load_with_fingerprint(self, name: str) -> tuple[NameEntry, tuple[int, int, int]]:
        got = self._read(name)
        if got is None:
            raise NameNotFound(name)
        body, fp = got
        try:
            return _entry(body), fp
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise NameFileCorrupt(name, f"unexpected content ({exc})") from None

    def load(self, name: str) -> NameEntry:
        return self.load_with_fingerprint(name)[0]

    def fingerprint(self, name: str) -> tuple[int, int, int]:
        try:
            st = os.stat(self._file(name))
        except FileNotFoundError:
            raise NameNotFound(name) from None
        except OSError as exc:
            raise NameFileCorrupt(name, f"cannot be read ({exc.strerror or exc})") from None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def all_names(self) -> list[str]:
        try:
            with os.scandir(self.root) as entries:
                found = [self.name_of(e.name) for e in entries]
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreUnavailable(str(self.root), exc) from None
        return sorted(n for n in found if n is not None)

    def list(self, *, offset: int = 0, limit: int = 50) -> tuple[list[NameEntry], int]:
        names = self.all_names()
        page = []
        for name in names[offset : offset + limit]:
            with contextlib.suppress(NameNotFound):
                page.append(self.load(name))
        return page, len(names)

    # --- changing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, name: str) -> Iterator[dict[str, Any]]:
        """The name's current body, under its lock; written back if the block changed it."""
        self._file(name)  # NameNotFound for a name that breaks the rule
        try:
            self.root.mkdir(exist_ok=True)  # not parents: a vanished store is not recreated
            fd = os.open(f"{self._prefix}{name}{LOCK_SUFFIX}", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreUnavailable(str(self.store.root), exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            got = self._read(name)
            body = _empty(name) if got is None else got[0]
            before = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
            self._settle(body)
            yield body
            if orjson.dumps(body, option=orjson.OPT_SORT_KEYS) != before:
                self._write(name, body)
        finally:
            os.close(fd)  # releases the lock

    def _write(self, name: str, body: dict[str, Any]) -> None:
        out = {"schema_version": SCHEMA_VERSION, **body}
        out["checksum"] = checksum(out)
        try:
            self.files._write(self._file(name), orjson.dumps(out, option=orjson.OPT_SORT_KEYS))
        except OSError as exc:
            raise StoreWriteFailed(f"name {name!r}", exc) from exc

    def _settle(self, body: dict[str, Any]) -> None:
        """Pending versions left by a crash: kept if their model was stored, else dropped."""
        for v, e in list(body["versions"].items()):
            if e.get("pending"):
                if os.path.exists(self.store.path(e["id"])):
                    del e["pending"]
                else:
                    del body["versions"][v]

    def save_version(self, record: Record) -> int:
        name = check_name(record["name"])
        with self._locked(name) as body:
            version = body["next_version"]
            body["next_version"] = version + 1
            entry = {"id": record["id"], "created_at": record["created_at"], "pending": True}
            body["versions"][str(version)] = entry
            self._write(name, body)  # the number is taken, even if what follows fails
            record["version"] = version
            try:
                self.store.save(record)
            except BaseException:
                del body["versions"][str(version)]
                raise
            del entry["pending"]
        return version

    def forget_version(self, name: str, version: int, model_id: str) -> None:
        """Before a model's delete: ``AliasConflict`` if an alias points to its version."""
        with self._locked(name) as body:
            pointing = sorted(a for a, v in body["aliases"].items() if v == version)
            if pointing:
                raise aliased_version_conflict(name, version, model_id, pointing)
            entry = body["versions"].get(str(version))
            if entry is not None and entry["id"] == model_id:
                del body["versions"][str(version)]

    def _change(
        self,
        body: dict[str, Any],
        alias: str,
        action: str,
        version: int | None,
        by: str | None,
    ) -> AliasChange:
        previous = body["aliases"].get(alias)
        if version is None:
            body["aliases"].pop(alias, None)
        else:
            body["aliases"][alias] = version
        change = {
            "action": action,
            "version": version,
            "previous_version": previous,
            "changed_at": _now(),
            "changed_by": by,
        }
        body["history"].setdefault(alias, []).append(change)
        return AliasChange(name=body["name"], alias=alias, **change)

    def _existing(self, name: str, body: dict[str, Any]) -> None:
        if not body["versions"] and body["next_version"] == 1:
            raise NameNotFound(name)

    def set_alias(self, name: str, alias: str, version: int, *, by: str | None) -> AliasChange:
        check_alias(alias)
        with self._locked(name) as body:
            self._existing(name, body)
            if str(version) not in body["versions"]:
                raise VersionNotFound(name, version)
            return self._change(body, alias, "set", version, by)

    def delete_alias(self, name: str, alias: str, *, by: str | None) -> AliasChange:
        with self._locked(name) as body:
            self._existing(name, body)
            if alias not in body["aliases"]:
                raise AliasNotFound(name, alias)
            return self._change(body, alias, "delete", None, by)

    def rollback_alias(self, name: str, alias: str, *, by: str | None) -> AliasChange:
        with self._locked(name) as body:
            self._existing(name, body)
            history = body["history"].get(alias)
            if not history:
                raise AliasNotFound(name, alias)
            target = undo_target([(c["action"], c["previous_version"]) for c in history])
            if target is None or str(target) not in body["versions"]:
                raise rollback_conflict(name, alias, target)
            return self._change(body, alias, "rollback", target, by)


class AuditWriteFailed(StoreWriteFailed):
    def __init__(self, path: str, error: OSError) -> None:
        StoreWriteFailed.__init__(self, "audit", error)
        self.args = (f"the audit log could not be written: {error.strerror or error} ({path})",)


class FileAuditLog(AuditLog):
    """JSON lines, each appended with one ``write`` under an exclusive ``flock`` and fsynced."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def append(self, entry: dict[str, Any]) -> None:
        line = orjson.dumps(entry) + b"\n"
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise AuditWriteFailed(self.path, exc) from exc

    def read(self, *, since: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Without ``since``, the last ``limit`` entries, read from the end of the file back
        (``TAIL_BLOCK`` bytes at a time); with it, the file streamed from its start until
        ``limit`` entries are found. Either way at most ``limit`` entries are held, whatever
        the log's size."""
        if limit <= 0:
            return []
        try:
            with open(self.path, "rb") as fh:
                if since is None:
                    return _tail(fh, limit)
                entries = []
                for line in fh:
                    entry = _audit_entry(line)
                    if entry is not None and str(entry.get("time", "")) >= since:
                        entries.append(entry)
                        if len(entries) == limit:
                            break
                return entries
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreUnavailable(self.path, exc) from None


#: How much of the audit log's end is read at a time for its newest entries.
TAIL_BLOCK = 64 * 1024


def _audit_entry(line: bytes) -> dict[str, Any] | None:
    """An audit line's entry; ``None`` for a line torn by a crash mid-write (never
    acknowledged: ``append`` returns after the fsync) or an empty one."""
    try:
        entry = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return entry if isinstance(entry, dict) else None


def _tail(fh: BinaryIO, limit: int) -> list[dict[str, Any]]:
    """The last ``limit`` entries of the open log ``fh``, oldest first."""
    pos = fh.seek(0, os.SEEK_END)
    newest_first: list[dict[str, Any]] = []
    rest = b""  # the start of a line whose end was read with the block after it
    while pos > 0 and len(newest_first) < limit:
        size = min(TAIL_BLOCK, pos)
        pos -= size
        fh.seek(pos)
        lines = (fh.read(size) + rest).split(b"\n")
        rest = lines.pop(0) if pos > 0 else b""
        for line in reversed(lines):
            entry = _audit_entry(line)
            if entry is not None:
                newest_first.append(entry)
                if len(newest_first) == limit:
                    break
    return newest_first[::-1]
