"""Datasets with the PostgreSQL store: the metadata in the database, the bytes in a shared
folder. Knows nothing of FastAPI.

Each dataset's metadata record is a row of ``datasets`` (migration 2 of
``postgres.MIGRATIONS``); its data, the Arrow IPC file, stays a file in ``MODEL_STORE_DIR/
datasets``, a volume every replica and worker mounts. Why not a bytea (or chunks of one): the
out-of-core fit memory-maps the file and reads it block by block, many times over (one pass per
solver iteration); from the database the whole file (up to ``MAX_DATASET_BYTES``, gigabytes)
would first have to be copied to local disk before every training and evaluation, by every
worker, and the database would carry gigabytes of data it never queries. The rows are what must
be shared and transactional (which datasets exist, their columns); the files are written once
and never changed.

Commit: the data file first (fsync, rename to ``<id>.arrow``), then the row, which is the commit
point: a dataset exists exactly when its row does. Delete: the row first, then the file. A crash
between the two steps leaves at most a file without a row, which ``remove_stale_files`` removes
once it is older than ``ORPHAN_SECONDS`` (younger, it may be a commit in progress elsewhere).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence

from psycopg.types.json import Jsonb

from .base import InvalidModelId, Record, check_model_id
from .datasets import (
    CorruptDataset,
    DatasetListing,
    DatasetNotFound,
    FileDatasetStore,
)
from .postgres import PostgresStore, _count, json_text


class PgDatasetStore(FileDatasetStore):
    """Data files in ``root`` (as ``FileDatasetStore``: temporaries, uploads, data paths), their
    metadata in the database of ``db`` (a ``PostgresStore``, whose pool it shares)."""

    def __init__(self, root: str | os.PathLike[str], db: PostgresStore) -> None:
        super().__init__(root)
        self.db = db

    def _id(self, dataset_id: str) -> str:
        try:
            return check_model_id(dataset_id)
        except InvalidModelId:
            raise DatasetNotFound(str(dataset_id)[:100]) from None

    def _save_record(self, record: Record) -> None:
        with self.db.transaction() as cur:
            cur.execute(
                "INSERT INTO datasets (id, record) VALUES (%s, %s)",
                (record["id"], Jsonb(record, dumps=json_text)),
            )

    def load(self, dataset_id: str) -> Record:
        dataset_id = self._id(dataset_id)
        with self.db.transaction() as cur:
            cur.execute("SELECT record FROM datasets WHERE id = %s", (dataset_id,))
            row = cur.fetchone()
        if row is None:
            raise DatasetNotFound(dataset_id)
        record: Record = row[0]
        return record

    def data_path(self, dataset_id: str) -> str:
        self.load(dataset_id)
        path = self._data(dataset_id)
        if not os.path.isfile(path):
            raise CorruptDataset(
                dataset_id, f"its data file is missing (is {self.root} the shared volume?)"
            )
        return path

    def list(self, *, offset: int = 0, limit: int = 50) -> DatasetListing:
        with self.db.transaction() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute("SELECT count(*) FROM datasets")
            total = _count(cur)
            cur.execute(
                "SELECT record FROM datasets ORDER BY id DESC OFFSET %s LIMIT %s", (offset, limit)
            )
            records = [r[0] for r in cur.fetchall()]
        return DatasetListing(records=records, total=total, unreadable=[])

    def count(self) -> int:
        with self.db.transaction() as cur:
            cur.execute("SELECT count(*) FROM datasets")
            return _count(cur)

    def delete(self, dataset_id: str) -> None:
        dataset_id = self._id(dataset_id)
        with self.db.transaction() as cur:  # the commit point: from here on it does not exist
            cur.execute("DELETE FROM datasets WHERE id = %s", (dataset_id,))
            if cur.rowcount == 0:
                raise DatasetNotFound(dataset_id)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._data(dataset_id))

    def _registered(self, dataset_ids: Sequence[str]) -> set[str]:
        with self.db.transaction() as cur:
            cur.execute("SELECT id FROM datasets WHERE id = ANY(%s)", (list(dataset_ids),))
            return {row[0] for row in cur.fetchall()}
