"""Names, versions, aliases, rollback and the audit log at the store's interface, against both
stores (the ``store`` fixture): one contract."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from model_store import (
    AliasConflict,
    AliasNotFound,
    InvalidModelId,
    ModelNotFound,
    NameNotFound,
    VersionNotFound,
    new_model_id,
    undo_target,
)


def named(name: str = "churn", **extra: object) -> dict:
    return {"id": new_model_id(), "name": name, "created_at": "2026-01-01T00:00:00", **extra}


def test_versions_count_up_per_name_and_are_never_reused(store):
    a1, a2, b1 = named(), named(), named("fraud")
    assert [store.save_version(r) for r in (a1, a2, b1)] == [1, 2, 1]
    assert store.load(a2["id"])["version"] == 2
    entry = store.names.load("churn")
    assert {v: e.model_id for v, e in entry.versions.items()} == {1: a1["id"], 2: a2["id"]}
    assert entry.model_id() == a2["id"] and entry.model_id(version=1) == a1["id"]
    store.delete(a2["id"])
    assert store.names.load("churn").latest_version == 1
    assert store.save_version(named()) == 3
    page, total = store.names.list()
    assert total == 2 and [e.name for e in page] == ["churn", "fraud"]


def test_concurrent_versions_are_distinct_and_consecutive(store):
    records = [named() for _ in range(16)]
    with ThreadPoolExecutor(8) as pool:
        versions = list(pool.map(store.save_version, records))
    assert sorted(versions) == list(range(1, 17))
    assert sorted(store.names.load("churn").versions) == list(range(1, 17))


def test_aliases_history_and_rollback_walk_back(store):
    for _ in range(3):
        store.save_version(named())
    for v in (1, 2, 3):
        store.names.set_alias("churn", "prod", v, by="k1")
    assert store.names.load("churn").aliases == {"prod": 3}
    back = store.names.rollback_alias("churn", "prod", by=None)
    assert (back.action, back.version, back.previous_version) == ("rollback", 2, 3)
    assert store.names.rollback_alias("churn", "prod", by=None).version == 1
    with pytest.raises(AliasConflict, match="no previous version"):
        store.names.rollback_alias("churn", "prod", by=None)
    gone = store.names.delete_alias("churn", "prod", by="k2")
    assert (gone.version, gone.previous_version, gone.changed_by) == (None, 1, "k2")
    assert store.names.rollback_alias("churn", "prod", by=None).version == 1
    history = store.names.load("churn").history["prod"]
    assert [(h.action, h.version, h.previous_version) for h in history] == [
        ("set", 1, None),
        ("set", 2, 1),
        ("set", 3, 2),
        ("rollback", 2, 3),
        ("rollback", 1, 2),
        ("delete", None, 1),
        ("rollback", 1, None),
    ]


def test_alias_errors_and_an_aliased_version_cannot_be_deleted(store):
    v1 = named()
    store.save_version(v1)
    with pytest.raises(NameNotFound):
        store.names.set_alias("nope", "prod", 1, by=None)
    with pytest.raises(NameNotFound):
        store.names.load("Not A Name")
    with pytest.raises(VersionNotFound):
        store.names.set_alias("churn", "prod", 9, by=None)
    with pytest.raises(AliasNotFound):
        store.names.delete_alias("churn", "prod", by=None)
    with pytest.raises(AliasNotFound):
        store.names.rollback_alias("churn", "prod", by=None)
    store.names.set_alias("churn", "prod", 1, by=None)
    with pytest.raises(AliasConflict, match="'prod'"):
        store.delete(v1["id"])
    assert store.load(v1["id"]) == v1
    store.save_version(named())
    store.names.set_alias("churn", "prod", 2, by=None)
    store.delete(v1["id"])
    with pytest.raises(AliasConflict, match="version 1 has been deleted"):
        store.names.rollback_alias("churn", "prod", by=None)


def test_name_fingerprint_changes_with_every_change(store):
    store.save_version(named())
    seen = [store.names.fingerprint("churn")]
    entry, fp = store.names.load_with_fingerprint("churn")
    assert fp == seen[0] and entry.next_version == 2
    store.names.set_alias("churn", "prod", 1, by=None)
    seen.append(store.names.fingerprint("churn"))
    store.save_version(named())
    seen.append(store.names.fingerprint("churn"))
    assert len(set(seen)) == 3
    with pytest.raises(NameNotFound):
        store.names.fingerprint("nope")


def test_the_audit_log_keeps_order_since_and_limit(store):
    for i in range(5):
        store.audit.append({"time": f"2026-01-01T00:00:0{i}", "action": "a", "n": i})
    assert [e["n"] for e in store.audit.read()] == [0, 1, 2, 3, 4]
    assert [e["n"] for e in store.audit.read(limit=2)] == [3, 4]
    assert [e["n"] for e in store.audit.read(since="2026-01-01T00:00:02", limit=2)] == [2, 3]


def test_malformed_and_unknown_ids(store):
    for op in (store.load, store.delete, store.fingerprint):
        with pytest.raises(InvalidModelId):
            op("../../etc/passwd")
        with pytest.raises(ModelNotFound):
            op("0" * 32)


@pytest.mark.parametrize(
    ("history", "target"),
    [
        ([], None),
        ([("set", None)], None),
        ([("set", None), ("set", 1)], 1),
        ([("set", None), ("set", 1), ("rollback", 2)], None),
        ([("set", None), ("set", 1), ("set", 2), ("rollback", 3), ("rollback", 2)], None),
        ([("set", None), ("set", 1), ("set", 2), ("rollback", 3)], 1),
        ([("set", None), ("delete", 1)], 1),
    ],
)
def test_undo_target_walks_back_one_change_per_rollback(history, target):
    assert undo_target(history) == target


def test_evaluations_keep_the_newest_and_go_with_their_model(store):
    model = named()
    store.save_version(model)
    model_id = model["id"]
    assert store.evaluations.read(model_id) == []
    for i in range(4):
        store.evaluations.append(model_id, {"n": i, "name": "Zo\u00eb"}, keep=3)
    assert [e["n"] for e in store.evaluations.read(model_id)] == [3, 2, 1]  # newest first
    store.delete(model_id)
    assert store.evaluations.read(model_id) == []


@pytest.mark.parametrize("block", [1, 7, 64, 64 * 1024])
def test_the_folder_audit_log_reads_what_a_whole_read_finds(tmp_path, monkeypatch, block):
    """The folder store reads the newest entries from the end back, a block at a time, and
    streams the rest: the same entries as parsing the whole file, torn lines skipped, whatever
    the block size (1 byte: every line split across blocks)."""
    import orjson

    from model_store import names

    monkeypatch.setattr(names, "TAIL_BLOCK", block)
    log = names.FileAuditLog(tmp_path / "audit.log")
    assert log.read() == []
    lines = []
    for i in range(40):
        lines.append(orjson.dumps({"time": f"2026-01-01T00:00:{i:02d}", "n": i}))
        if i % 9 == 4:
            lines.append(b'{"time": "2026-01-01T00:00:99", "n": ')  # torn by a crash
    (tmp_path / "audit.log").write_bytes(b"\n".join(lines) + b"\n")

    def whole(since, limit):
        entries = []
        for line in (tmp_path / "audit.log").read_bytes().splitlines():
            try:
                entries.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
        if since is None:
            return entries[-limit:]
        return [e for e in entries if e["time"] >= since][:limit]

    for limit in (1, 2, 5, 39, 40, 100):
        assert log.read(limit=limit) == whole(None, limit)
        for since in ("2026-01-01T00:00:00", "2026-01-01T00:00:17", "2026-01-01T00:00:40"):
            assert log.read(since=since, limit=limit) == whole(since, limit)
    assert log.read(limit=0) == []
