"""A folder of JSON files, one per model, written atomically and checked on every read."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

import orjson

from .base import (
    ID_PATTERN,
    SCHEMA_VERSION,
    CorruptModel,
    Listing,
    ModelNotFound,
    ModelStore,
    Record,
    StoreDeleteFailed,
    StoreError,
    StoreUnavailable,
    StoreWriteFailed,
    check_model_id,
)
from .evaluations import FolderEvaluations
from .files import AtomicFolder, checksum
from .names import FileAuditLog, FolderNames

SUFFIX = ".json"


def encode(record: Record) -> bytes:
    """The file's bytes: the record, its ``schema_version`` and a checksum over both."""
    body = {"schema_version": SCHEMA_VERSION, **record}
    body["checksum"] = checksum(body)
    return orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


def decode(model_id: str, data: bytes) -> Record:
    """Parse and verify a file's bytes; ``CorruptModel`` if anything is off."""
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CorruptModel(model_id, f"not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise CorruptModel(model_id, "not a JSON object")
    stored = body.pop("checksum", None)
    if stored is None:
        raise CorruptModel(model_id, "no checksum")
    if checksum(body) != stored:
        raise CorruptModel(model_id, "checksum mismatch (the file was truncated or edited)")
    version = body.pop("schema_version", None)
    if version != SCHEMA_VERSION:
        raise CorruptModel(model_id, f"unsupported schema_version {version!r}")
    if body.get("id") != model_id:
        raise CorruptModel(model_id, "the id inside the file does not match its name")
    return body


class JsonFileStore(AtomicFolder, ModelStore):
    """``<root>/<id>.json`` per model, ``<root>/names/<name>.json`` per registered name
    (``FolderNames``), the audit log ``<root>/audit.log`` and each model's last evaluations,
    ``<root>/evaluations/<id>.json`` (``FolderEvaluations``).

    Writes go to a temporary file in the same folder, are flushed and fsynced, then renamed over
    the final name (atomic on POSIX), and the folder is fsynced: a reader sees the whole file or
    none, and a model whose save returned survives a crash.
    """

    def __init__(self, root: str | os.PathLike[str], *, create: bool = True) -> None:
        super().__init__(root, create=create)
        self.names: FolderNames = FolderNames(self)
        self.audit = FileAuditLog(self.root / "audit.log")
        self.evaluations = FolderEvaluations(self.root)

    def save_version(self, record: Record) -> int:
        return self.names.save_version(record)

    def path(self, model_id: str) -> Path:
        return Path(self._file(model_id))

    def model_id_of(self, name: str) -> str | None:
        """The model id a file name in the folder stands for (``None``: not a model's file)."""
        model_id = name.removesuffix(SUFFIX)
        if model_id == name or not ID_PATTERN.fullmatch(model_id):
            return None
        return model_id

    def _file(self, model_id: str) -> str:
        # A str, never a Path, for every file the service touches: Python 3.11's pathlib interns
        # each path component, so the memory grew with every model trained (docs/DEVELOPING.md).
        return f"{self._prefix}{check_model_id(model_id)}{SUFFIX}"

    def save(self, record: Record) -> None:
        final = self._file(record["id"])
        data = encode(record)
        try:
            self._write(final, data)
        except OSError as exc:
            raise (self._folder_error() or StoreWriteFailed(record["id"], exc)) from exc

    def _folder_error(self) -> StoreUnavailable | None:
        """``StoreUnavailable`` when the folder itself cannot be used (removed, unmounted, a
        file in its place, no permission to enter it), else ``None``: asked after an error on
        one of its files, to tell the folder's problem from that file's."""
        try:
            st = os.stat(self.root)
        except OSError as exc:
            return StoreUnavailable(str(self.root), exc)
        if not stat.S_ISDIR(st.st_mode):
            code = errno.ENOTDIR
        elif not os.access(self.root, os.X_OK):
            code = errno.EACCES
        else:
            return None
        return StoreUnavailable(str(self.root), OSError(code, os.strerror(code)))

    def _read(self, model_id: str) -> tuple[bytes, os.stat_result]:
        """The file's bytes and its ``fstat``. Opened without blocking: a FIFO or a device under
        a model's name would otherwise hang the reader until something wrote to it."""
        try:
            fd = os.open(self._file(model_id), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise self._missing(model_id) from None
        except OSError as exc:  # no permission, I/O error
            raise self._unreadable(model_id, exc) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise CorruptModel(model_id, "cannot be read (not a regular file)")
            with open(fd, "rb", closefd=False) as fh:
                return fh.read(), st
        except OSError as exc:  # an I/O error
            raise self._unreadable(model_id, exc) from None
        finally:
            os.close(fd)

    def _missing(self, model_id: str) -> StoreError:
        """No file for ``model_id``: ``ModelNotFound``, unless the folder itself is gone (then
        nothing can be said of the model: ``StoreUnavailable``, as ``/health`` answers)."""
        return self._folder_error() or ModelNotFound(model_id)

    def _unreadable(self, model_id: str, error: OSError) -> StoreError:
        """What ``error`` on a model's file means: the folder's problem (``StoreUnavailable``),
        or this model's alone (``CorruptModel``, a 409 that leaves the others working)."""
        return self._folder_error() or CorruptModel(
            model_id, f"cannot be read ({error.strerror or error})"
        )

    def read_bytes(self, model_id: str) -> bytes:
        return self._read(model_id)[0]

    def load(self, model_id: str) -> Record:
        return decode(model_id, self.read_bytes(model_id))

    def fingerprint(self, model_id: str) -> tuple[int, int, int]:
        """``(st_ino, st_mtime_ns, st_size)`` of the file: one ``stat``, no read.

        Saves rename a new file over the old name, so a replaced model has a new inode; a
        deleted one raises ``ModelNotFound``.
        """
        try:
            st = os.stat(self._file(model_id))
        except FileNotFoundError:
            raise self._missing(model_id) from None
        except OSError as exc:  # an I/O error
            raise self._unreadable(model_id, exc) from None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def load_with_fingerprint(self, model_id: str) -> tuple[Record, tuple[int, int, int]]:
        # fstat on the open file: the fingerprint belongs to the bytes read, even if another
        # process renames a new version over the name meanwhile.
        data, st = self._read(model_id)
        return decode(model_id, data), (st.st_ino, st.st_mtime_ns, st.st_size)

    def _scan(self) -> list[str]:
        """Every stored id, in the folder's order: one ``scandir``, no file opened."""
        try:
            with os.scandir(self.root) as entries:
                names = [e.name for e in entries if e.name.endswith(SUFFIX)]
        except OSError as exc:  # the folder was removed, unmounted or made unreadable
            raise StoreUnavailable(str(self.root), exc) from None
        # anything else a person drops in the folder (notes.json, temporaries) is not a model
        return [n[: -len(SUFFIX)] for n in names if ID_PATTERN.fullmatch(n[: -len(SUFFIX)])]

    def ids(self) -> list[str]:
        """Every stored id, newest first."""
        return sorted(self._scan(), reverse=True)

    def newest_id(self) -> str | None:
        """The newest id (ids sort by creation time), from the folder's listing alone."""
        return max(self._scan(), default=None)

    def count(self) -> int:
        return len(self.ids())

    def list(self, *, offset: int = 0, limit: int = 50) -> Listing:
        ids = self.ids()
        entries: list[tuple[str, Record | CorruptModel]] = []
        for model_id in ids[offset : offset + limit]:
            try:
                entries.append((model_id, self.load(model_id)))
            except ModelNotFound:  # deleted between the scan and the read
                continue
            except CorruptModel as exc:
                entries.append((model_id, exc))
        return Listing(entries=entries, total=len(ids))

    def delete(self, model_id: str) -> None:
        path = self._file(model_id)
        try:
            record = self.load(model_id)
        except CorruptModel:
            record = None  # a corrupt file can still be deleted; its name keeps the version
        if record is not None and record.get("version") is not None:
            # the name forgets the version first: a crash in between leaves a model no name
            # lists (still listed by id), never a name listing a deleted model
            self.names.forget_version(record["name"], record["version"], model_id)
        self._unlink(model_id, path)
        # the model is gone; a leftover history names no model and is harmless
        with contextlib.suppress(OSError):
            self.evaluations.delete(model_id)

    def _unlink(self, model_id: str, path: str) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            raise self._missing(model_id) from None
        except OSError as exc:  # read-only, no permission; a directory under the model's name
            folder = self._folder_error()
            if folder is not None:
                raise folder from None
            if os.path.isdir(path) and not os.path.islink(path):
                # not a file this service wrote: what else is in it is not ours to remove
                raise CorruptModel(
                    model_id, "not a regular file but a directory (remove it by hand)"
                ) from None
            raise StoreDeleteFailed(model_id, exc) from None
        try:
            self._fsync_dir()
        except OSError as exc:
            raise StoreDeleteFailed(model_id, exc) from None
