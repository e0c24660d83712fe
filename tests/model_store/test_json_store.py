import errno
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from model_store import (
    CorruptModel,
    InvalidModelId,
    JsonFileStore,
    ModelNotFound,
    StoreWriteFailed,
    new_model_id,
)


def record(**extra):
    rng = np.random.default_rng(0)
    return {
        "id": new_model_id(),
        "name": "m",
        "weights": [*rng.normal(size=50).tolist(), 1e-308, 5e-324, 1.7976931348623157e308],
        **extra,
    }


def test_round_trip_is_exact(store):
    rec = record()
    store.save(rec)
    loaded = store.load(rec["id"])
    assert loaded == rec
    assert [x.hex() for x in loaded["weights"]] == [x.hex() for x in rec["weights"]]


def test_files_carry_schema_version_and_checksum(tmp_path):
    import json

    store = JsonFileStore(tmp_path)
    rec = record()
    store.save(rec)
    body = json.loads((tmp_path / f"{rec['id']}.json").read_text())
    assert body["schema_version"] == 1
    assert body["checksum"].startswith("sha256:")


@pytest.mark.parametrize(
    "bad", ["../../etc/passwd", "..", "", "ABCDEF" * 6, "a" * 31, "a" * 33, "a/b", "0" * 31 + "\n"]
)
def test_ids_that_could_escape_are_refused(tmp_path, bad):
    # folder only: these are the ids that could name a path (PostgreSQL: tests/model_store/
    # test_contract.py checks that malformed ids are refused there too)
    store = JsonFileStore(tmp_path)
    for op in (store.load, store.delete):
        with pytest.raises(InvalidModelId):
            op(bad)


def test_ids_sort_newest_first_and_list_paginates(store):
    ids = []
    for _ in range(5):
        rec = record()
        store.save(rec)
        ids.append(rec["id"])
        time.sleep(0.001)
    page = store.list(offset=1, limit=2)
    assert page.total == 5
    assert [i for i, _ in page.entries] == ids[::-1][1:3]
    assert store.count() == 5 and store.newest_id() == ids[-1]


def test_delete_then_not_found(store):
    rec = record()
    store.save(rec)
    store.delete(rec["id"])
    with pytest.raises(ModelNotFound):
        store.load(rec["id"])
    with pytest.raises(ModelNotFound):
        store.delete(rec["id"])


def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    store = JsonFileStore(tmp_path)
    rec = record()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(StoreWriteFailed):
        store.save(rec)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ModelNotFound):
        store.load(rec["id"])


def test_a_reader_never_sees_the_temporary_file(tmp_path, monkeypatch):
    store = JsonFileStore(tmp_path)
    rec = record()
    seen = {}
    real_replace = os.replace

    def replace(src, dst):
        seen["ids"] = store.ids()
        seen["tmp_exists"] = os.path.exists(src)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    store.save(rec)
    assert seen == {"ids": [], "tmp_exists": True}
    assert store.ids() == [rec["id"]]


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],
        lambda b: b.replace(b'"name": "m"', b'"name": "n"'),
        lambda b: b"",
        lambda b: b"[1, 2]",
    ],
)
def test_corruption_is_detected_and_listing_survives(tmp_path, damage):
    store = JsonFileStore(tmp_path)
    good, bad = record(), record()
    store.save(good)
    store.save(bad)
    path = tmp_path / f"{bad['id']}.json"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CorruptModel):
        store.load(bad["id"])
    entries = dict(store.list().entries)
    assert entries[good["id"]] == good
    assert isinstance(entries[bad["id"]], CorruptModel)


def test_leftovers_of_dead_writers_are_removed_but_live_writes_kept(tmp_path):
    store = JsonFileStore(tmp_path)
    dead = tmp_path / ".tmp-dead.json.1.ab"  # no one holds its lock: its writer died
    dead.write_text("{")
    fd, live = store._create_locked_temporary("live.json")  # a write in progress
    try:
        assert store.remove_stale_temporaries() == 1
        assert not dead.exists() and os.path.exists(live)
    finally:
        os.close(fd)
    assert store.remove_stale_temporaries() == 1  # its writer is gone now
    assert list(tmp_path.iterdir()) == []


WRITER = """
import sys, time
from model_store import JsonFileStore
store = JsonFileStore(sys.argv[1])
fd, path = store._create_locked_temporary(sys.argv[2])
import os
os.write(fd, b'{"half": ')
print(path, flush=True)
time.sleep(60)
"""


def test_a_writer_killed_mid_write_leaves_a_leftover_that_is_cleaned(tmp_path):
    store = JsonFileStore(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path), "x.json"],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        path = proc.stdout.readline().decode().strip()
        assert os.path.exists(path)
        assert store.remove_stale_temporaries() == 0  # alive: its lock protects it
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.stdout.close()
    assert store.ids() == []  # never visible as a model
    assert store.remove_stale_temporaries() == 1
    assert list(tmp_path.iterdir()) == []


def test_saves_race_a_cleaner_without_losing_anything(tmp_path):
    store = JsonFileStore(tmp_path)
    stop = threading.Event()

    def clean():
        while not stop.is_set():
            store.remove_stale_temporaries()

    cleaner = threading.Thread(target=clean)
    cleaner.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            recs = [record() for _ in range(200)]
            list(pool.map(store.save, recs))
    finally:
        stop.set()
        cleaner.join()
    assert sorted(store.ids()) == sorted(r["id"] for r in recs)
    assert all(store.load(r["id"]) == r for r in recs)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_save_fsyncs_the_file_and_then_the_folder(tmp_path, monkeypatch):
    store = JsonFileStore(tmp_path)
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    store.save(record())
    assert synced == ["file", "dir"]


def test_other_files_in_the_folder_are_not_models(tmp_path):
    store = JsonFileStore(tmp_path)
    rec = record()
    store.save(rec)
    (tmp_path / "notes.json").write_text("{}")
    (tmp_path / "README").write_text("hi")
    assert store.ids() == [rec["id"]]
    assert [i for i, _ in store.list().entries] == [rec["id"]]


def test_an_unreadable_entry_is_corrupt_not_a_crash(tmp_path):
    store = JsonFileStore(tmp_path)
    good = record()
    store.save(good)
    bad_id = new_model_id()
    (tmp_path / f"{bad_id}.json").mkdir()  # a directory where a file should be
    with pytest.raises(CorruptModel, match="cannot be read"):
        store.load(bad_id)
    entries = dict(store.list().entries)
    assert entries[good["id"]] == good and isinstance(entries[bad_id], CorruptModel)


@pytest.mark.parametrize("failing", ["open", "fsync", "replace"])
def test_a_refused_write_is_a_store_error_and_leaves_nothing(tmp_path, monkeypatch, failing):
    store = JsonFileStore(tmp_path)
    rec = record()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, failing, full)
    with pytest.raises(StoreWriteFailed, match="No space left") as info:
        store.save(rec)
    assert info.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_fingerprint_changes_when_a_model_is_replaced_and_fails_when_deleted(store):
    mid = "c" * 32
    store.save({"id": mid, "v": 1})
    first = store.fingerprint(mid)
    assert store.fingerprint(mid) == first  # stable while unchanged
    record, fp = store.load_with_fingerprint(mid)
    assert record["v"] == 1 and fp == first
    store.save({"id": mid, "v": 2})
    assert store.fingerprint(mid) != first
    store.delete(mid)
    with pytest.raises(ModelNotFound):
        store.fingerprint(mid)
    with pytest.raises(ModelNotFound):
        store.load_with_fingerprint(mid)
