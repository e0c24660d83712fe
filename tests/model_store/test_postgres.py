"""What only the PostgreSQL store has: migrations under a lock, the folder store's bytes in a
bytea, NOTIFY with every change, and a clear refusal when the database cannot be used."""

from __future__ import annotations

import threading

import psycopg
import pytest
from pydantic import ValidationError

from app.config import Settings
from model_store import CorruptModel, DatabaseUnavailable, JsonFileStore, new_model_id, open_store
from model_store.json_store import encode
from model_store.postgres import CHANNEL, MIGRATIONS, SCHEMA_TABLE, PostgresStore, migrate
from tests.live_server import free_port


def test_replicas_starting_at_once_migrate_once(pg_url):
    """Six stores open one new database at the same moment: each migration runs once, and
    every store works (without the advisory lock, CREATE TABLE collides)."""
    barrier = threading.Barrier(6)
    opened: list[PostgresStore] = []
    failures: list[BaseException] = []

    def start() -> None:
        barrier.wait()
        try:
            opened.append(PostgresStore(pg_url))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not failures, failures
        with psycopg.connect(pg_url) as conn:
            rows = conn.execute(f"SELECT version FROM {SCHEMA_TABLE}").fetchall()
            assert sorted(r[0] for r in rows) == [v for v, _ in MIGRATIONS]
            assert migrate(conn) == []  # nothing left to do
        assert all(s.count() == 0 for s in opened)
    finally:
        for s in opened:
            s.close()


def test_a_schema_newer_than_the_service_is_refused(pg_url):
    PostgresStore(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"INSERT INTO {SCHEMA_TABLE} (version) VALUES (999)")
    with pytest.raises(DatabaseUnavailable, match="schema version 999 is newer"):
        PostgresStore(pg_url)


def test_models_are_the_folder_stores_bytes_and_tampering_is_detected(pg_url, tmp_path):
    store = PostgresStore(pg_url)
    folder = JsonFileStore(tmp_path)
    good, bad = ({"id": new_model_id(), "name": None, "w": [0.1, -2.5e-300]} for _ in range(2))
    for r in (good, bad):
        store.save(r)
        folder.save(r)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        body = conn.execute("SELECT body FROM models WHERE id = %s", (good["id"],)).fetchone()[0]
        assert bytes(body) == encode(good) == folder.path(good["id"]).read_bytes()
        conn.execute(
            "UPDATE models SET body = convert_to(replace(convert_from(body, 'UTF8'), '0.1', '0.2'),"
            " 'UTF8') WHERE id = %s",
            (bad["id"],),
        )
    with pytest.raises(CorruptModel, match="checksum"):
        store.load(bad["id"])
    entries = dict(store.list().entries)
    assert entries[good["id"]] == good and isinstance(entries[bad["id"]], CorruptModel)
    store.close()


def test_every_change_is_notified_when_it_commits(pg_url):
    store = PostgresStore(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as listen:
        listen.execute(f"LISTEN {CHANNEL}")
        one = {"id": new_model_id(), "name": "churn", "created_at": "t"}
        store.save_version(one)
        store.names.set_alias("churn", "prod", 1, by=None)
        store.names.delete_alias("churn", "prod", by=None)
        store.delete(one["id"])
        unnamed = {"id": new_model_id(), "name": None}
        store.save(unnamed)
        got = [n.payload for n in listen.notifies(timeout=1.0, stop_after=8)]
    assert got == [
        f"model:{one['id']}",
        "name:churn",
        "name:churn",
        "name:churn",
        f"model:{one['id']}",
        "name:churn",
        f"model:{unnamed['id']}",
    ]
    store.close()


def test_an_unreachable_database_is_a_clear_error_without_the_password():
    port = free_port()
    with pytest.raises(DatabaseUnavailable) as info:
        open_store(f"postgresql://app:s3cret@127.0.0.1:{port}/models", "unused")
    message = str(info.value)
    assert f"127.0.0.1:{port}/models" in message and "s3cret" not in message


@pytest.mark.parametrize("url", ["mysql://h/db", "models", "file://otherhost/x", "http://x"])
def test_a_url_of_no_store_is_refused_naming_the_setting(url):
    with pytest.raises(ValidationError, match="MODEL_STORE_URL"):
        Settings(model_store_url=url)


def test_file_urls_and_unset_are_the_folder_store(tmp_path):
    assert open_store(None, tmp_path / "a").root == tmp_path / "a"
    assert open_store(f"file://{tmp_path}/b", tmp_path / "a").root == tmp_path / "b"
    assert Settings(model_store_url="").model_store_url is None
