"""The dataset store: metadata as the commit point, nothing left behind by a failed write;
against both stores (``make``: metadata beside the files, or in PostgreSQL), one contract."""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from model_store import (
    CorruptDataset,
    DatasetNotFound,
    FileDatasetStore,
    GrowingFile,
    StoreError,
    UploadAbandoned,
    new_model_id,
)
from model_store.postgres import PostgresStore
from model_store.postgres_datasets import PgDatasetStore
from tests.conftest import STORES

#: Makes a dataset store over a folder.
Make = Callable[[Path], FileDatasetStore]


@pytest.fixture(params=STORES)
def make(request: pytest.FixtureRequest) -> Iterator[Make]:
    if request.param == "folder":
        yield FileDatasetStore
        return
    db = PostgresStore(request.getfixturevalue("pg_url"))
    yield lambda root: PgDatasetStore(root, db)
    db.close()


def data_files(folder: Path) -> list[str]:
    """What a store keeps in its folder besides metadata files (the folder store's ``.json``)."""
    return sorted(n for n in os.listdir(folder) if not n.endswith(".json"))


def record(**extra: object) -> dict:
    return {"id": new_model_id(), "name": "d", "rows": 2, **extra}


def save(store: FileDatasetStore, data: bytes = b"data") -> dict:
    r = record()
    upload = store.temporary("dataset.arrow")
    try:
        with open(upload.path, "wb") as fh:
            fh.write(data)
        store.commit(r, upload)
    finally:
        upload.close()
    return r


def test_commit_load_list_delete(tmp_path, make):
    store = make(tmp_path)
    first, second = save(store, b"one"), save(store, b"two")
    assert store.load(first["id"])["name"] == "d"
    with open(store.data_path(second["id"]), "rb") as fh:
        assert fh.read() == b"two"
    listing = store.list()
    assert [r["id"] for r in listing.records] == [second["id"], first["id"]]  # newest first
    assert listing.total == 2 and listing.unreadable == [] and store.count() == 2
    assert [r["id"] for r in store.list(offset=1, limit=5).records] == [first["id"]]
    store.delete(first["id"])
    with pytest.raises(DatasetNotFound):
        store.load(first["id"])
    with pytest.raises(DatasetNotFound):
        store.delete(first["id"])
    assert data_files(tmp_path) == [f"{second['id']}.arrow"]
    with pytest.raises(DatasetNotFound):
        store.load("../../etc/passwd")
    with pytest.raises(DatasetNotFound):
        store.delete("x'; DROP TABLE datasets; --")


def test_a_closed_temporary_leaves_nothing(tmp_path, make):
    store = make(tmp_path)
    upload = store.temporary("upload")
    with open(upload.path, "wb") as fh:
        fh.write(b"partial")
    upload.close()
    assert os.listdir(tmp_path) == []


def test_bad_ids_and_damaged_metadata(tmp_path):
    store = FileDatasetStore(tmp_path)
    with pytest.raises(DatasetNotFound):
        store.load("../../etc/passwd")
    r = save(store)
    path = tmp_path / f"{r['id']}.json"
    path.write_bytes(path.read_bytes().replace(b'"d"', b'"e"'))
    with pytest.raises(CorruptDataset, match="checksum"):
        store.load(r["id"])
    assert store.list().unreadable == [r["id"]]
    os.unlink(tmp_path / f"{r['id']}.arrow")
    path.write_bytes(b"")
    store.delete(r["id"])  # a damaged dataset can still be deleted
    assert os.listdir(tmp_path) == []


def test_missing_data_file_is_corrupt(tmp_path, make):
    store = make(tmp_path)
    r = save(store)
    os.unlink(tmp_path / f"{r['id']}.arrow")
    with pytest.raises(CorruptDataset, match="data file is missing"):
        store.data_path(r["id"])


def test_stale_files_are_removed(tmp_path, make):
    store = make(tmp_path)
    kept = save(store)
    orphan = tmp_path / f"{new_model_id()}.arrow"  # a crash between the data and its metadata
    orphan.write_bytes(b"x")
    old = time.time() - 3600
    os.utime(orphan, (old, old))
    young = tmp_path / f"{new_model_id()}.arrow"  # maybe a save in progress elsewhere
    young.write_bytes(b"x")
    live = store.temporary("upload")  # held (locked) by a live upload
    os.utime(store.data_path(kept["id"]), (old, old))  # an old dataset is not an orphan
    try:
        assert store.remove_stale_files() == 1
        assert not orphan.exists() and young.exists() and os.path.exists(live.path)
        store.load(kept["id"])
        store.data_path(kept["id"])
    finally:
        live.close()


def test_no_folder_until_the_first_upload(tmp_path, make):
    store = make(tmp_path / "datasets")
    assert store.list().total == 0 and store.count() == 0 and store.remove_stale_files() == 0
    with pytest.raises(DatasetNotFound):
        store.load(new_model_id())
    save(store)
    assert store.count() == 1
    gone = make(tmp_path / "vanished" / "datasets")  # the models folder is gone
    with pytest.raises(StoreError):
        gone.temporary("upload")
    assert not (tmp_path / "vanished").exists()


def test_a_growing_file_is_read_as_it_is_written(tmp_path):
    """The parse reads an upload while it arrives: a read at the end waits for more, until the
    writer marks it complete, or raises when the writer gives it up."""
    store = FileDatasetStore(tmp_path)
    upload = store.temporary("upload")
    parts = [b"a,label\n", b"1,0\n" * 1000, b"2,1\n"]

    def write() -> None:
        for part in parts:
            time.sleep(0.02)
            os.write(upload.fd, part)
        upload.complete()

    writer = threading.Thread(target=write)
    writer.start()
    with GrowingFile(upload.path) as raw, io.BufferedReader(raw) as fh:
        assert fh.read() == b"".join(parts)
    writer.join()
    upload.close()

    upload = store.temporary("upload")
    os.write(upload.fd, b"a,label\n")
    threading.Timer(0.05, upload.close).start()
    with GrowingFile(upload.path) as raw, pytest.raises(UploadAbandoned):
        raw.read(100)
        raw.read(100)
    assert os.listdir(tmp_path) == []


def test_a_failed_metadata_write_removes_the_data_file(tmp_path, pg_url):
    """The row is the commit point: a dataset whose row could not be written leaves no file."""
    db = PostgresStore(pg_url)
    store = PgDatasetStore(tmp_path, db)
    kept = save(store)
    db.close()  # the database is gone for this store
    with pytest.raises(StoreError, match="cannot be used"):
        save(store)
    assert data_files(tmp_path) == [f"{kept['id']}.arrow"]
