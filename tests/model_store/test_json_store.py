import os
import time

import numpy as np
import pytest

from model_store import (
    CorruptModel,
    InvalidModelId,
    JsonFileStore,
    ModelNotFound,
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


def test_round_trip_is_exact(tmp_path):
    store = JsonFileStore(tmp_path)
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
    store = JsonFileStore(tmp_path)
    for op in (store.load, store.delete):
        with pytest.raises(InvalidModelId):
            op(bad)


def test_ids_sort_newest_first_and_list_paginates(tmp_path):
    store = JsonFileStore(tmp_path)
    ids = []
    for _ in range(5):
        rec = record()
        store.save(rec)
        ids.append(rec["id"])
        time.sleep(0.001)
    page = store.list(offset=1, limit=2)
    assert page.total == 5
    assert [i for i, _ in page.entries] == ids[::-1][1:3]


def test_delete_then_not_found(tmp_path):
    store = JsonFileStore(tmp_path)
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
    with pytest.raises(OSError):
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


def test_stale_temporaries_are_removed_but_fresh_ones_kept(tmp_path):
    store = JsonFileStore(tmp_path)
    old = tmp_path / ".tmp-old.json.1"
    fresh = tmp_path / ".tmp-fresh.json.2"
    old.write_text("{")
    fresh.write_text("{")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    assert store.remove_stale_temporaries() == 1
    assert not old.exists() and fresh.exists()
    assert store.ids() == []


def test_fingerprint_changes_when_a_model_is_replaced_and_fails_when_deleted(tmp_path):
    import pytest

    from model_store import JsonFileStore, ModelNotFound

    store = JsonFileStore(tmp_path)
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
