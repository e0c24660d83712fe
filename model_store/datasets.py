"""Uploaded datasets: a data file and a metadata record each. Knows nothing of FastAPI, of the
engine or of the data file's format (``app.datasets`` writes and reads it).

A dataset is ``<id>.json`` (its metadata, written like a model's record: temporary file, fsync,
rename, with a checksum) beside ``<id>.arrow`` (the data). The metadata is written last and
removed first: a dataset exists exactly when its metadata does, so a crash between the two
steps leaves at most a data file without metadata, which ``remove_stale_files`` clears.

``DatasetStore`` is the interface: another implementation may keep the metadata elsewhere (a
database) and the data files in a folder or object store.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import (
    CorruptModel,
    InvalidModelId,
    ModelNotFound,
    Record,
    StoreError,
    StoreWriteFailed,
    check_model_id,
)
from .files import TMP_PREFIX
from .json_store import JsonFileStore

DATA_SUFFIX = ".arrow"
#: A data file without metadata younger than this may belong to a save in progress in another
#: process (the metadata follows the data file's rename within milliseconds).
ORPHAN_SECONDS = 300.0


class DatasetNotFound(StoreError):
    """No dataset with that id (HTTP 404); a malformed id is one too."""

    def __init__(self, dataset_id: str) -> None:
        super().__init__(f"no dataset with id {dataset_id!r}")
        self.dataset_id = dataset_id


class CorruptDataset(StoreError):
    """A dataset's metadata or data file cannot be trusted (HTTP 409)."""

    def __init__(self, dataset_id: str, reason: str) -> None:
        super().__init__(
            f"dataset {dataset_id!r} is corrupt on disk: {reason}; delete it and upload it again"
        )
        self.dataset_id = dataset_id
        self.reason = reason


@dataclass(frozen=True)
class DatasetListing:
    """One page of datasets, newest first; ids whose metadata could not be read apart."""

    records: list[Record]
    total: int
    unreadable: list[str]


@dataclass
class Upload:
    """A temporary file in the store's folder, locked while open (so that no cleaner in another
    process takes it for a leftover). ``close`` removes it unless it was committed."""

    fd: int
    path: str

    def complete(self) -> None:
        """Mark it complete: every byte is written (a ``GrowingFile`` reading it then ends)."""
        os.fchmod(self.fd, 0o444)

    def close(self) -> None:
        """Remove it (a ``GrowingFile`` reading it then raises ``UploadAbandoned``). Once only:
        the descriptor's number may be another file's afterwards."""
        if self.fd < 0:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        fd, self.fd = self.fd, -1
        with contextlib.suppress(OSError):
            os.close(fd)


#: How often a reader of an upload still arriving looks for more bytes.
POLL_SECONDS = 0.005
#: An upload is complete when its writer takes away the write permission (``Upload.complete``).
_WRITABLE = 0o200


class UploadAbandoned(Exception):
    """The upload being read was given up by its writer (cut off over a limit, or the client
    went away), or its writer died: the server answers that, not the parse."""


class GrowingFile(io.RawIOBase):
    """A file another process may still be writing (an upload streaming in): at the end of
    the bytes so far a read waits for more, until the writer marks it complete (``Upload.complete``:
    then the end is the end) or removes it (``UploadAbandoned``). Lets the parse run while the
    upload arrives."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        # the writer is this process's parent (the server's worker): if it dies (kill -9), the
        # file is never completed nor removed, and a reader must not wait for ever
        self._parent = os.getppid()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while True:
            n = os.readv(self.fd, [buffer])
            if n:
                return n
            st = os.fstat(self.fd)
            if not st.st_mode & _WRITABLE:  # complete: one more read sees any last bytes
                return os.readv(self.fd, [buffer])
            self._check(st)

    def _check(self, st: os.stat_result) -> None:
        if st.st_nlink == 0 or os.getppid() != self._parent:
            raise UploadAbandoned
        time.sleep(POLL_SECONDS)

    def wait(self) -> None:
        """Until the file is complete (a Parquet file's footer is at its end)."""
        while True:
            st = os.fstat(self.fd)
            if not st.st_mode & _WRITABLE:
                return
            self._check(st)

    def close(self) -> None:
        if not self.closed:
            os.close(self.fd)
        super().close()


class DatasetStore(ABC):
    """Save, read, list and delete datasets: a metadata record (JSON-ready, with ``id``) and a
    data file whose format the caller decides."""

    @abstractmethod
    def temporary(self, purpose: str) -> Upload:
        """A new temporary file for an upload or a data file being written."""

    @abstractmethod
    def commit(self, record: Record, data: Upload) -> None:
        """Make the data file ``data`` (complete, closed for writing) the dataset
        ``record["id"]``, with ``record`` as its metadata: atomically, durably."""

    @abstractmethod
    def load(self, dataset_id: str) -> Record: ...

    @abstractmethod
    def data_path(self, dataset_id: str) -> str:
        """Where the dataset's data file can be read (checked to exist)."""

    @abstractmethod
    def list(self, *, offset: int = 0, limit: int = 50) -> DatasetListing: ...

    @abstractmethod
    def delete(self, dataset_id: str) -> None: ...


class FileDatasetStore(DatasetStore):
    """``<root>/<id>.json`` and ``<root>/<id>.arrow``; the metadata files are kept by a
    ``JsonFileStore`` over the same folder (atomic writes, checksums, locked temporaries)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        """The folder is made by the first upload (in an existing parent: a models folder that
        vanished under a running server is not recreated); until then there are no datasets."""
        self.root = Path(root)
        self.meta = JsonFileStore(self.root, create=False)
        self._prefix = os.path.join(self.root, "")

    def _absent(self) -> bool:
        """No folder yet (no dataset was ever uploaded), in a parent that is there: ``False``
        when the folder exists, and when the parent is gone too (the store's errors say so)."""
        return not self.root.is_dir() and self.root.parent.is_dir()

    def _data(self, dataset_id: str) -> str:
        return f"{self._prefix}{check_model_id(dataset_id)}{DATA_SUFFIX}"

    def temporary(self, purpose: str) -> Upload:
        try:
            with contextlib.suppress(FileExistsError):
                os.mkdir(self.root)  # not its parent: see __init__
            fd, path = self.meta._create_locked_temporary(purpose)
        except OSError as exc:
            raise self.meta._folder_error() or StoreWriteFailed(purpose, exc) from exc
        return Upload(fd, path)

    def commit(self, record: Record, data: Upload) -> None:
        dataset_id = record["id"]
        final = self._data(dataset_id)
        try:
            os.fsync(data.fd)
            os.replace(data.path, final)
            self.meta._fsync_dir()
        except OSError as exc:
            raise self.meta._folder_error() or StoreWriteFailed(dataset_id, exc) from exc
        try:
            self._save_record(record)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(final)
            raise

    def _save_record(self, record: Record) -> None:
        """Keep the metadata of a dataset whose data file is in place (here ``<id>.json``)."""
        self.meta.save(record)

    def load(self, dataset_id: str) -> Record:
        if self._absent():
            raise DatasetNotFound(str(dataset_id)[:100])
        try:
            return self.meta.load(dataset_id)
        except (ModelNotFound, InvalidModelId):
            raise DatasetNotFound(str(dataset_id)[:100]) from None
        except CorruptModel as exc:
            raise CorruptDataset(dataset_id, exc.reason) from None

    def data_path(self, dataset_id: str) -> str:
        self.load(dataset_id)
        path = self._data(dataset_id)
        if not os.path.isfile(path):
            raise CorruptDataset(dataset_id, "its data file is missing")
        return path

    def list(self, *, offset: int = 0, limit: int = 50) -> DatasetListing:
        if self._absent():
            return DatasetListing(records=[], total=0, unreadable=[])
        listing = self.meta.list(offset=offset, limit=limit)
        records: list[Record] = []
        unreadable: list[str] = []
        for dataset_id, entry in listing.entries:
            if isinstance(entry, CorruptModel):
                unreadable.append(dataset_id)
            else:
                records.append(entry)
        return DatasetListing(records=records, total=listing.total, unreadable=unreadable)

    def count(self) -> int:
        return 0 if self._absent() else self.meta.count()

    def delete(self, dataset_id: str) -> None:
        if self._absent():
            raise DatasetNotFound(str(dataset_id)[:100])
        try:
            self.meta.delete(dataset_id)  # the commit point: from here on it does not exist
        except (ModelNotFound, InvalidModelId):
            raise DatasetNotFound(str(dataset_id)[:100]) from None
        except CorruptModel as exc:
            raise CorruptDataset(dataset_id, exc.reason) from None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._data(dataset_id))

    def remove_stale_files(self, *, older_than: float = ORPHAN_SECONDS) -> int:
        """Remove leftovers of interrupted uploads: temporaries no live process holds, and data
        files without metadata older than ``older_than`` seconds. Returns how many."""
        if not self.root.is_dir():
            return 0
        removed = self.meta.remove_stale_temporaries()
        now = time.time()
        old: dict[str, str] = {}  # dataset id -> its data file, older than older_than
        with os.scandir(self.root) as entries:
            for entry in entries:
                name = entry.name
                if not name.endswith(DATA_SUFFIX) or name.startswith(TMP_PREFIX):
                    continue
                dataset_id = name.removesuffix(DATA_SUFFIX)
                if self.meta.model_id_of(dataset_id + ".json") is None:
                    continue
                with contextlib.suppress(OSError):
                    if now - entry.stat().st_mtime > older_than:
                        old[dataset_id] = entry.path
        if old:  # a database store asks once for all of them
            for dataset_id in self._registered(list(old)):
                del old[dataset_id]
        for path in old.values():
            with contextlib.suppress(OSError):
                os.unlink(path)
                removed += 1
        return removed

    def _registered(self, dataset_ids: Sequence[str]) -> set[str]:
        """Those of ``dataset_ids`` that have metadata (are stored datasets)."""
        return {i for i in dataset_ids if os.path.exists(f"{self._prefix}{i}.json")}
