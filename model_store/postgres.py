"""Models, names, versions, aliases and the audit log in PostgreSQL (psycopg 3), for replicas on
several machines. The same contract as the folder store (``JsonFileStore``), with these tables:

* ``models``: one row per model, ``body`` (bytea) holding exactly the folder store's file
  (``json_store.encode``: the record, its schema version and its checksum, verified on every
  read), beside ``id``, ``name``, ``version`` and ``created_at``; ``UNIQUE (name, version)``.
* ``names``: ``next_version`` (versions are never reused) and ``revision``, bumped by every
  change of the name: the names cache's fingerprint.
* ``aliases`` and ``alias_history``; ``audit`` (jsonb, in the order appended).
* ``jobs`` and ``datasets`` (migration 2): see ``postgres_jobs`` and ``postgres_datasets``;
  ``evaluations``: each model's last evaluations, newest ``seq`` first.

A new version and its model are stored in one transaction, under ``SELECT ... FOR UPDATE`` of the
name's row, as is every alias change: there is no pending state to settle after a crash. Every
change sends ``NOTIFY logreg_changes`` (payload ``model:<id>`` or ``name:<name>``) inside its
transaction, so listeners hear of it exactly when it is committed (``app.pg_listen``).

The schema is created and migrated by ``migrate`` (run when a server opens the store), under a
transaction-level advisory lock: replicas starting at once apply each migration once.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from .base import (
    AliasChange,
    AliasNotFound,
    AuditLog,
    CorruptModel,
    DatabaseUnavailable,
    EvaluationLog,
    InvalidName,
    Listing,
    ModelNotFound,
    ModelStore,
    NameEntry,
    NameNotFound,
    NameRegistry,
    Record,
    VersionEntry,
    VersionNotFound,
    aliased_version_conflict,
    check_alias,
    check_model_id,
    check_name,
    rollback_conflict,
    undo_target,
)
from .json_store import decode, encode

#: The channel every change is announced on.
CHANNEL = "logreg_changes"
#: Key of the advisory lock that serialises migrations (any constant; "logreg" in ASCII).
MIGRATION_LOCK = 0x6C6F67726567
#: First key of the transaction-level lock that serialises a model's evaluation appends ("leva").
EVALUATIONS_CLASS = 0x6C657661
#: Seconds to connect, and that a request waits for a connection before the store answers
#: ``DatabaseUnavailable``.
CONNECTION_TIMEOUT = 5

#: How long the pool retries a lost connection, backing off, before it starts afresh.
RECONNECT_SECONDS = 10.0

#: Versioned migrations, applied in order, each once, in one transaction with its record.
MIGRATIONS: list[tuple[int, str | Callable[[], str]]] = [
    (
        1,
        """
        CREATE TABLE models (
            id text PRIMARY KEY,
            name text,
            version integer,
            created_at text,
            body bytea NOT NULL,
            UNIQUE (name, version)
        );
        CREATE TABLE names (
            name text PRIMARY KEY,
            next_version integer NOT NULL DEFAULT 1,
            revision bigint NOT NULL DEFAULT 0
        );
        CREATE TABLE aliases (
            name text NOT NULL REFERENCES names (name),
            alias text NOT NULL,
            version integer NOT NULL,
            PRIMARY KEY (name, alias)
        );
        CREATE TABLE alias_history (
            seq bigserial PRIMARY KEY,
            name text NOT NULL REFERENCES names (name),
            alias text NOT NULL,
            action text NOT NULL,
            version integer,
            previous_version integer,
            changed_at text NOT NULL,
            changed_by text
        );
        CREATE INDEX alias_history_by_alias ON alias_history (name, alias, seq);
        CREATE TABLE audit (
            seq bigserial PRIMARY KEY,
            time text NOT NULL,
            entry jsonb NOT NULL
        );
        CREATE INDEX audit_by_time ON audit (time);
        """,
    ),
    (
        2,
        # Training jobs (``postgres_jobs``) and datasets' metadata (``postgres_datasets``);
        # models' last evaluations (``PostgresEvaluations``), which migration 1 lacked.
        # A job's body is transient (dropped when the job ends) and read once: stored
        # uncompressed (EXTERNAL), as compressing ~100 MB would cost more than it saves.
        """
        CREATE TABLE jobs (
            id text PRIMARY KEY,
            status text NOT NULL,
            record jsonb NOT NULL,
            body bytea,
            cancel boolean NOT NULL DEFAULT false,
            revision bigint NOT NULL DEFAULT 0
        );
        ALTER TABLE jobs ALTER COLUMN body SET STORAGE EXTERNAL;
        CREATE INDEX jobs_by_status ON jobs (status, id);
        CREATE INDEX jobs_pending ON jobs (id) WHERE body IS NOT NULL;
        CREATE TABLE datasets (
            id text PRIMARY KEY,
            record jsonb NOT NULL
        );
        CREATE TABLE evaluations (
            seq bigserial PRIMARY KEY,
            model_id text NOT NULL,
            entry jsonb NOT NULL
        );
        CREATE INDEX evaluations_by_model ON evaluations (model_id, seq);
        """,
    ),
]


def _queue_schema() -> str:
    """procrastinate's tables and functions (the training jobs' queue: ``app.job_queue``), as
    the pinned version creates them; a later procrastinate version brings its own migration
    scripts, to be added here as a new migration."""
    from procrastinate.schema import SchemaManager

    return SchemaManager.get_schema()


#: Migrations whose SQL is made when applied (a library's schema: imported only then).
MIGRATIONS.append((3, _queue_schema))
SCHEMA_TABLE = "logreg_schema_migrations"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def where(url: str) -> str:
    """``host:port/dbname`` of ``url``, for messages: never the password."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "an unparsable database URL"
    host = info.get("host") or "localhost"
    port = info.get("port") or "5432"
    return f"postgresql://{host}:{port}/{info.get('dbname') or ''}"


def migrate(conn: psycopg.Connection[Any]) -> list[int]:
    """Apply the migrations ``conn``'s database lacks; the versions applied. Safe to run from any
    number of processes at once: the first takes the lock and migrates, the others wait for it
    and then find nothing to do."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {SCHEMA_TABLE} ("
            "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute(f"SELECT version FROM {SCHEMA_TABLE}")}
        known = {version for version, _ in MIGRATIONS}
        if done - known:
            raise DatabaseUnavailable(
                "schema",
                f"the database's schema version {max(done)} is newer than this service "
                f"knows ({max(known)}): upgrade the service",
            )
        applied = []
        for version, sql in MIGRATIONS:
            if version not in done:
                text = sql() if callable(sql) else sql
                conn.execute(text.encode())  # no parameters: several statements at once
                conn.execute(f"INSERT INTO {SCHEMA_TABLE} (version) VALUES (%s)", (version,))
                applied.append(version)
        return applied


def _notify(cur: psycopg.Cursor[Any], *payloads: str) -> None:
    for payload in payloads:
        cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))


class PostgresStore(ModelStore):
    """The model store in a PostgreSQL database at ``url`` (``postgresql://user:pw@host/db``).

    ``create``: migrate the schema first (the server at start); ``False`` for a training child,
    which only uses the schema its server made. ``DatabaseUnavailable`` when the database cannot
    be reached, at start as on any later call.
    """

    def __init__(
        self,
        url: str,
        *,
        create: bool = True,
        max_connections: int = 8,
        timeout: float = CONNECTION_TIMEOUT,
    ) -> None:
        self.url = url
        self.where = where(url)
        try:
            with psycopg.connect(url, connect_timeout=CONNECTION_TIMEOUT) as conn:
                if create:
                    migrate(conn)
        except psycopg.Error as exc:
            raise DatabaseUnavailable(self.where, _reason(exc)) from None
        self.pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            url,
            min_size=1,
            max_size=max_connections,
            timeout=timeout,
            # a connection broken while idle (the database restarted) is replaced, not handed out
            check=ConnectionPool.check_connection,
            kwargs={"connect_timeout": CONNECTION_TIMEOUT},
            # the pool's retries back off (1 s, 2 s, 4 s...) until this; then the next request
            # starts afresh: a database back after a long outage is used again within seconds
            reconnect_timeout=RECONNECT_SECONDS,
            open=False,
        )
        self.pool.open(wait=False)
        self.names: PostgresNames = PostgresNames(self)
        self.audit = PostgresAudit(self)
        self.evaluations = PostgresEvaluations(self)

    def close(self) -> None:
        self.pool.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[psycopg.Cursor[Any]]:
        """A cursor in one transaction: committed when the block returns, rolled back if it
        raises; a lost or unreachable database is ``DatabaseUnavailable``."""
        try:
            with self.pool.connection() as conn, conn.cursor() as cur:
                yield cur
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
            raise DatabaseUnavailable(self.where, _reason(exc)) from None

    # --- models -------------------------------------------------------------------------------

    def model_id_of(self, payload: str) -> str | None:
        """The model id a notification's payload names (``None``: not a model's)."""
        kind, _, key = payload.partition(":")
        return key if kind == "model" else None

    def save(self, record: Record) -> None:
        data = encode(record)
        model_id = check_model_id(record["id"])
        with self.transaction() as cur:
            self._insert(cur, record, data)
            _notify(cur, f"model:{model_id}")

    @staticmethod
    def _insert(cur: psycopg.Cursor[Any], record: Record, data: bytes) -> None:
        cur.execute(
            "INSERT INTO models (id, name, version, created_at, body) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (id) DO UPDATE SET name = excluded.name, version = excluded.version,"
            " created_at = excluded.created_at, body = excluded.body",
            (
                record["id"],
                record.get("name") if isinstance(record.get("name"), str) else None,
                record.get("version") if isinstance(record.get("version"), int) else None,
                record.get("created_at") if isinstance(record.get("created_at"), str) else None,
                data,
            ),
        )

    def save_version(self, record: Record) -> int:
        name = check_name(record["name"])
        model_id = check_model_id(record["id"])
        with self.transaction() as cur:
            cur.execute("INSERT INTO names (name) VALUES (%s) ON CONFLICT DO NOTHING", (name,))
            cur.execute("SELECT next_version FROM names WHERE name = %s FOR UPDATE", (name,))
            version: int = _one(cur)[0]
            record["version"] = version
            try:
                data = encode(record)
            except BaseException:
                del record["version"]
                raise
            cur.execute(
                "UPDATE names SET next_version = %s, revision = revision + 1 WHERE name = %s",
                (version + 1, name),
            )
            self._insert(cur, record, data)
            _notify(cur, f"model:{model_id}", f"name:{name}")
        return version

    def load(self, model_id: str) -> Record:
        return self.load_with_fingerprint(model_id)[0]

    def load_with_fingerprint(self, model_id: str) -> tuple[Record, str]:
        check_model_id(model_id)
        with self.transaction() as cur:
            cur.execute("SELECT body, xmin::text FROM models WHERE id = %s", (model_id,))
            row = cur.fetchone()
        if row is None:
            raise ModelNotFound(model_id)
        return decode(model_id, bytes(row[0])), row[1]

    def fingerprint(self, model_id: str) -> str:
        """The row's ``xmin``: the transaction that wrote it, new whenever it is replaced."""
        check_model_id(model_id)
        with self.transaction() as cur:
            cur.execute("SELECT xmin::text FROM models WHERE id = %s", (model_id,))
            row = cur.fetchone()
        if row is None:
            raise ModelNotFound(model_id)
        fp: str = row[0]
        return fp

    def list(self, *, offset: int = 0, limit: int = 50) -> Listing:
        with self.transaction() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute("SELECT count(*) FROM models")
            total: int = _one(cur)[0]
            cur.execute(
                "SELECT id, body FROM models ORDER BY id DESC OFFSET %s LIMIT %s", (offset, limit)
            )
            rows = cur.fetchall()
        entries: builtins.list[tuple[str, Record | CorruptModel]] = []
        for model_id, body in rows:
            try:
                entries.append((model_id, decode(model_id, bytes(body))))
            except CorruptModel as exc:
                entries.append((model_id, exc))
        return Listing(entries=entries, total=total)

    def newest_id(self) -> str | None:
        with self.transaction() as cur:
            cur.execute("SELECT max(id) FROM models")
            newest: str | None = _one(cur)[0]
        return newest

    def count(self) -> int:
        with self.transaction() as cur:
            cur.execute("SELECT count(*) FROM models")
            n: int = _one(cur)[0]
        return n

    def delete(self, model_id: str) -> None:
        check_model_id(model_id)
        with self.transaction() as cur:
            cur.execute("SELECT name, version FROM models WHERE id = %s", (model_id,))
            row = cur.fetchone()
            if row is None:
                raise ModelNotFound(model_id)
            name, version = row
            payloads = [f"model:{model_id}"]
            if name is not None and version is not None:
                # the name's row first, as every change of the name takes it
                cur.execute("SELECT 1 FROM names WHERE name = %s FOR UPDATE", (name,))
                cur.execute(
                    "SELECT alias FROM aliases WHERE name = %s AND version = %s ORDER BY alias",
                    (name, version),
                )
                pointing = [r[0] for r in cur.fetchall()]
                if pointing:
                    raise aliased_version_conflict(name, version, model_id, pointing)
                cur.execute("UPDATE names SET revision = revision + 1 WHERE name = %s", (name,))
                payloads.append(f"name:{name}")
            cur.execute("DELETE FROM models WHERE id = %s", (model_id,))
            if cur.rowcount == 0:  # deleted meanwhile by another process
                raise ModelNotFound(model_id)
            cur.execute("DELETE FROM evaluations WHERE model_id = %s", (model_id,))
            _notify(cur, *payloads)


class PostgresNames(NameRegistry):
    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    def name_of(self, payload: str) -> str | None:
        """The name a notification's payload names (``None``: not a name's)."""
        kind, _, key = payload.partition(":")
        return key if kind == "name" else None

    @staticmethod
    def _valid(name: str) -> str:
        try:
            return check_name(name)
        except InvalidName:  # a name that breaks the rule was never registered
            raise NameNotFound(str(name)[:100]) from None

    def fingerprint(self, name: str) -> int:
        with self.store.transaction() as cur:
            cur.execute("SELECT revision FROM names WHERE name = %s", (self._valid(name),))
            row = cur.fetchone()
        if row is None:
            raise NameNotFound(name)
        revision: int = row[0]
        return revision

    def load(self, name: str) -> NameEntry:
        return self.load_with_fingerprint(name)[0]

    def load_with_fingerprint(self, name: str) -> tuple[NameEntry, int]:
        self._valid(name)
        with self.store.transaction() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            return self._entry(cur, name)

    @staticmethod
    def _entry(cur: psycopg.Cursor[Any], name: str) -> tuple[NameEntry, int]:
        cur.execute("SELECT next_version, revision FROM names WHERE name = %s", (name,))
        row = cur.fetchone()
        if row is None:
            raise NameNotFound(name)
        next_version, revision = row
        cur.execute(
            "SELECT version, id, created_at FROM models WHERE name = %s AND version IS NOT NULL",
            (name,),
        )
        versions = {
            v: VersionEntry(version=v, model_id=i, created_at=c or "") for v, i, c in cur.fetchall()
        }
        cur.execute("SELECT alias, version FROM aliases WHERE name = %s", (name,))
        aliases = dict(cur.fetchall())
        cur.execute(
            "SELECT alias, action, version, previous_version, changed_at, changed_by"
            " FROM alias_history WHERE name = %s ORDER BY seq",
            (name,),
        )
        history: dict[str, builtins.list[AliasChange]] = {}
        for alias, action, version, previous, at, by in cur.fetchall():
            history.setdefault(alias, []).append(
                AliasChange(name, alias, action, version, previous, at, by)
            )
        entry = NameEntry(
            name=name,
            versions=versions,
            aliases=aliases,
            history=history,
            next_version=next_version,
        )
        return entry, revision

    def list(self, *, offset: int = 0, limit: int = 50) -> tuple[builtins.list[NameEntry], int]:
        with self.store.transaction() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute("SELECT count(*) FROM names")
            total: int = _one(cur)[0]
            cur.execute("SELECT name FROM names ORDER BY name OFFSET %s LIMIT %s", (offset, limit))
            names = [r[0] for r in cur.fetchall()]
            return [self._entry(cur, name)[0] for name in names], total

    # --- changing -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, name: str) -> Iterator[psycopg.Cursor[Any]]:
        """A transaction holding the name's row (``NameNotFound`` if it has none); announces the
        change and bumps the revision when the block returns."""
        self._valid(name)
        with self.store.transaction() as cur:
            cur.execute("SELECT 1 FROM names WHERE name = %s FOR UPDATE", (name,))
            if cur.fetchone() is None:
                raise NameNotFound(name)
            yield cur
            cur.execute("UPDATE names SET revision = revision + 1 WHERE name = %s", (name,))
            _notify(cur, f"name:{name}")

    @staticmethod
    def _change(
        cur: psycopg.Cursor[Any],
        name: str,
        alias: str,
        action: str,
        version: int | None,
        by: str | None,
    ) -> AliasChange:
        cur.execute("SELECT version FROM aliases WHERE name = %s AND alias = %s", (name, alias))
        row = cur.fetchone()
        previous = None if row is None else row[0]
        if version is None:
            cur.execute("DELETE FROM aliases WHERE name = %s AND alias = %s", (name, alias))
        else:
            cur.execute(
                "INSERT INTO aliases (name, alias, version) VALUES (%s, %s, %s)"
                " ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version",
                (name, alias, version),
            )
        change = AliasChange(name, alias, action, version, previous, _now(), by)
        cur.execute(
            "INSERT INTO alias_history (name, alias, action, version, previous_version,"
            " changed_at, changed_by) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (name, alias, action, version, previous, change.changed_at, by),
        )
        return change

    @staticmethod
    def _has_version(cur: psycopg.Cursor[Any], name: str, version: int) -> bool:
        cur.execute("SELECT 1 FROM models WHERE name = %s AND version = %s", (name, version))
        return cur.fetchone() is not None

    def set_alias(self, name: str, alias: str, version: int, *, by: str | None) -> AliasChange:
        check_alias(alias)
        with self._locked(name) as cur:
            if not self._has_version(cur, name, version):
                raise VersionNotFound(name, version)
            return self._change(cur, name, alias, "set", version, by)

    def delete_alias(self, name: str, alias: str, *, by: str | None) -> AliasChange:
        with self._locked(name) as cur:
            cur.execute("SELECT 1 FROM aliases WHERE name = %s AND alias = %s", (name, alias))
            if cur.fetchone() is None:
                raise AliasNotFound(name, alias)
            return self._change(cur, name, alias, "delete", None, by)

    def rollback_alias(self, name: str, alias: str, *, by: str | None) -> AliasChange:
        with self._locked(name) as cur:
            cur.execute(
                "SELECT action, previous_version FROM alias_history"
                " WHERE name = %s AND alias = %s ORDER BY seq",
                (name, alias),
            )
            history = cur.fetchall()
            if not history:
                raise AliasNotFound(name, alias)
            target = undo_target(history)
            if target is None or not self._has_version(cur, name, target):
                raise rollback_conflict(name, alias, target)
            return self._change(cur, name, alias, "rollback", target, by)


class PostgresAudit(AuditLog):
    """Rows of ``audit``, in the order appended; an entry is committed once ``append`` returns."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    def append(self, entry: dict[str, Any]) -> None:
        with self.store.transaction() as cur:
            cur.execute(
                "INSERT INTO audit (time, entry) VALUES (%s, %s)",
                (str(entry.get("time", "")), Jsonb(entry)),
            )

    def read(self, *, since: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        with self.store.transaction() as cur:
            if since is not None:
                cur.execute(
                    "SELECT entry FROM audit WHERE time >= %s ORDER BY seq LIMIT %s",
                    (since, limit),
                )
                return [row[0] for row in cur.fetchall()]
            cur.execute("SELECT entry FROM audit ORDER BY seq DESC LIMIT %s", (limit,))
            return [row[0] for row in reversed(cur.fetchall())]


class PostgresEvaluations(EvaluationLog):
    """Rows of ``evaluations``; a model's appends are serialised by a transaction-level lock on
    its id, so that concurrent ones are all kept (up to ``keep``)."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    def append(self, model_id: str, entry: dict[str, Any], *, keep: int) -> None:
        check_model_id(model_id)
        with self.store.transaction() as cur:
            cur.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (EVALUATIONS_CLASS, model_id)
            )
            cur.execute(
                "INSERT INTO evaluations (model_id, entry) VALUES (%s, %s)",
                (model_id, Jsonb(entry, dumps=json_text)),
            )
            cur.execute(
                "DELETE FROM evaluations WHERE model_id = %s AND seq NOT IN"
                " (SELECT seq FROM evaluations WHERE model_id = %s ORDER BY seq DESC LIMIT %s)",
                (model_id, model_id, keep),
            )

    def read(self, model_id: str) -> builtins.list[dict[str, Any]]:
        check_model_id(model_id)
        with self.store.transaction() as cur:
            cur.execute(
                "SELECT entry FROM evaluations WHERE model_id = %s ORDER BY seq DESC", (model_id,)
            )
            return [row[0] for row in cur.fetchall()]

    def delete(self, model_id: str) -> None:
        check_model_id(model_id)
        with self.store.transaction() as cur:
            cur.execute("DELETE FROM evaluations WHERE model_id = %s", (model_id,))


def json_text(obj: Any) -> str:
    """JSON for a jsonb parameter, written as the folder store writes its files (orjson)."""
    return orjson.dumps(obj).decode()


def _one(cur: psycopg.Cursor[Any]) -> tuple[Any, ...]:
    row = cur.fetchone()
    assert row is not None  # an aggregate, or a row this transaction made
    return row


def _count(cur: psycopg.Cursor[Any]) -> int:
    """The value of a ``SELECT count(*)`` just run."""
    n: int = _one(cur)[0]
    return n


def _reason(exc: BaseException) -> str:
    """The first line of a driver error, without the URL (which may carry the password)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]
