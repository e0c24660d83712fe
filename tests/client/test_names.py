"""Names, versions, aliases, rollback and the audit log through ``Client`` and ``AsyncClient``,
against a real server with scoped keys (``API_KEYS_FILE``): an admin, a train and a predict key."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pytest

from logreg_client import (
    AliasChange,
    AsyncClient,
    Client,
    Conflict,
    Forbidden,
    InvalidInput,
    NameDetail,
    NotFound,
)
from tests.conftest import make_blobs
from tests.live_server import LiveServer

KEYS = {"admin-bot": "admin-secret", "train-bot": "train-secret", "predict-bot": "predict-secret"}
SCOPES = {"admin-bot": "admin", "train-bot": "train", "predict-bot": "predict"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """This module's server reads scoped keys from a file (conftest's ``server`` has none)."""
    root = tmp_path_factory.mktemp("names")
    table = {
        key_id: {"sha256": hashlib.sha256(key.encode()).hexdigest(), "scopes": [SCOPES[key_id]]}
        for key_id, key in KEYS.items()
    }
    (root / "keys.json").write_text(json.dumps(table))
    with LiveServer(root / "models", env={"API_KEYS_FILE": str(root / "keys.json")}) as live:
        yield live


@pytest.fixture
def admin(url: str) -> Iterator[Client]:
    with Client(url, KEYS["admin-bot"]) as client:
        yield client


def test_versions_aliases_and_rollback(admin: Client) -> None:
    X, y = make_blobs(n=40, d=2, seed=11)
    first = admin.train(X, y, name="exam", l2=1e-2)
    second = admin.train(X, y, name="exam", l2=1e-3)
    assert (first.name, first.version, second.version) == ("exam", 1, 2)
    assert admin.train(X, y).version is None  # no name: no version

    summary = next(n for n in admin.names(limit=1000).items if n.name == "exam")
    assert (summary.latest_version, summary.versions, summary.aliases) == (2, 2, {})
    detail = admin.name("exam")
    assert isinstance(detail, NameDetail) and [v.version for v in detail.items] == [2, 1]
    assert [v.id for v in detail.items] == [second.id, first.id]
    assert detail.items[0].training is not None and detail.items[0].training.n_samples == 40

    served = admin.predict("exam", X[:2])  # the newest version, and the answer says which
    assert (served.model_id, served.name, served.version) == (second.id, "exam", 2)
    assert admin.model("exam:1").id == first.id and admin.model("exam:1").version == 1

    change = admin.set_alias("exam", "champion", np.int64(1))  # NumPy's integers are sent as ints
    assert isinstance(change, AliasChange)
    assert (change.version, change.previous_version) == (1, None)
    assert admin.predict("exam@champion", X[:1]).model_id == first.id
    moved = admin.set_alias("exam", "champion", 2)
    assert (moved.version, moved.previous_version) == (2, 1)
    assert admin.predict("exam@champion", X[:1]).version == 2
    assert admin.name("exam").aliases == {"champion": 2}

    back = admin.rollback("exam", "champion")
    assert (back.version, back.previous_version) == (1, 2)
    assert admin.predict("exam@champion", X[:1]).model_id == first.id
    with pytest.raises(Conflict, match="no previous version") as refused:
        admin.rollback("exam", "champion")  # before version 1 it pointed nowhere
    assert refused.value.status == 409

    history = admin.alias_history("exam", "champion")
    assert [(c.action, c.version, c.previous_version) for c in history.items] == [
        ("rollback", 1, 2),
        ("set", 2, 1),
        ("set", 1, None),
    ]
    assert {c.changed_by for c in history.items} == {"admin-bot"}

    with pytest.raises(Conflict, match="champion"):
        admin.delete(first.id)  # an alias points to it
    admin.delete_alias("exam", "champion")
    with pytest.raises(NotFound):
        admin.predict("exam@champion", X[:1])
    assert admin.rollback("exam", "champion").version == 1  # a deleted alias comes back
    assert admin.alias_history("exam", "champion").items[0].action == "rollback"


def test_refusals_name_what_is_wrong(admin: Client) -> None:
    X, y = make_blobs(n=20, d=2, seed=12)
    admin.train(X, y, name="refusals")
    with pytest.raises(NotFound, match="'nobody'"):
        admin.name("nobody")
    with pytest.raises(NotFound, match="no version 7"):
        admin.set_alias("refusals", "champion", 7)
    with pytest.raises(NotFound):
        admin.alias_history("refusals", "never-set")
    with pytest.raises(InvalidInput) as info:
        admin.set_alias("refusals", "champion", "2")  # type: ignore[arg-type]
    assert [e["field"] for e in info.value.errors] == ["version"]
    with pytest.raises(InvalidInput, match="alias"):
        admin.set_alias("refusals", "Not An Alias", 1)
    with pytest.raises(InvalidInput, match="name"):
        admin.train(X, y, name="no/slashes")
    with pytest.raises(NotFound, match="'x y'"):
        admin.name("x y")  # escaped, so the service names it
    # what could not stay in its path segment never leaves the client
    for bad in ("exam/aliases/champion", "..", ""):
        with pytest.raises(ValueError, match="name: ") as local:
            admin.name(bad)
        assert not isinstance(local.value, InvalidInput)
    with pytest.raises(ValueError, match="alias: "):
        admin.rollback("refusals", "champion/../x")


def test_audit_log(admin: Client) -> None:
    start = datetime.now(UTC)
    X, y = make_blobs(n=20, d=2, seed=13)
    model = admin.train(X, y, name="audited")
    admin.set_alias("audited", "prod", 1)
    with pytest.raises(NotFound) as refused:
        admin.delete_alias("audited", "staging")
    log = admin.audit(start)
    assert [(e.action, e.outcome.split(":")[0]) for e in log.items] == [
        ("model.stored", "ok"),
        ("alias.set", "ok"),
        ("alias.deleted", "refused"),
    ]
    stored, alias_set, deleted = log.items
    assert stored.target == {"id": model.id, "name": "audited", "version": 1}
    assert alias_set.target["alias"] == "prod" and alias_set.key_id == "admin-bot"
    assert all(e.time >= start and e.request_id for e in log.items)
    # the error carries the request id the audit log recorded the refusal under
    assert refused.value.request_id == deleted.request_id
    # a naive datetime is UTC, as the service reads it; a string is sent as it is
    naive = start.replace(tzinfo=None)
    assert admin.audit(naive).items == log.items
    assert admin.audit(start.isoformat()).items == log.items
    assert admin.audit(limit=1).items == log.items[-1:]
    with pytest.raises(InvalidInput) as info:
        admin.audit("last tuesday")
    assert info.value.errors[0]["field"] == "since"


def test_scopes_forbidden(url: str) -> None:
    X, y = make_blobs(n=20, d=2, seed=14)
    with Client(url, KEYS["train-bot"]) as trainer, Client(url, KEYS["predict-bot"]) as reader:
        model = trainer.train(X, y, name="scoped")
        assert reader.name("scoped").latest_version == model.version
        assert "scoped" in [n.name for n in reader.names(limit=1000).items]
        for refused in (
            lambda: trainer.set_alias("scoped", "prod", 1),
            lambda: trainer.rollback("scoped", "prod"),
            lambda: reader.delete_alias("scoped", "prod"),
            lambda: reader.audit(),
        ):
            with pytest.raises(Forbidden, match="admin") as info:
                refused()
            assert info.value.status == 403


def test_async_client_same_calls(url: str) -> None:
    X, y = make_blobs(n=20, d=2, seed=15)

    async def run() -> None:
        async with AsyncClient(url, KEYS["admin-bot"]) as client:
            start = datetime.now(UTC)
            model = await client.train(X, y, name="async-names")
            assert model.version == 1
            await client.train(X, y, name="async-names")
            assert "async-names" in [n.name for n in (await client.names(limit=1000)).items]
            assert [v.version for v in (await client.name("async-names")).items] == [2, 1]
            await client.set_alias("async-names", "live", 1)
            await client.set_alias("async-names", "live", 2)
            answer = await client.predict("async-names@live", X[:1])
            assert (answer.name, answer.version) == ("async-names", 2)
            assert (await client.rollback("async-names", "live")).version == 1
            history = await client.alias_history("async-names", "live")
            assert [c.action for c in history.items] == ["rollback", "set", "set"]
            await client.delete_alias("async-names", "live")
            with pytest.raises(NotFound):
                await client.delete_alias("async-names", "live")
            actions = [e.action for e in (await client.audit(start)).items]
            assert actions == ["model.stored"] * 2 + ["alias.set"] * 2 + [
                "alias.rolled_back",
                "alias.deleted",
                "alias.deleted",
            ]

    asyncio.run(run())
