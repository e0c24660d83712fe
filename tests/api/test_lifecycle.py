"""Names, versions, aliases, rollback and the audit log, through the HTTP API (issue 13), on
both stores: the folder and PostgreSQL (``store_url``)."""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import pytest

from tests.conftest import STORES, make_blobs, store_url_for, train
from tests.live_server import LiveServer


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest) -> str | None:
    return store_url_for(request)


X, Y = make_blobs(n=60, d=2, seed=3)
ROWS = X[:5].tolist()


def train_named(client, name, seed=0, **extra):
    Xs, ys = make_blobs(n=60, d=2, seed=seed)
    return train(client, Xs, ys.tolist(), name=name, **extra)


def proba(client, ref, rows=ROWS):
    r = client.post("/predict", json={"model_id": ref, "features": rows})
    assert r.status_code == 200, r.text
    return r.json()


def test_versions_count_up_per_name_and_the_summary_says_so(client):
    a1 = train_named(client, "churn")
    a2 = train_named(client, "churn", seed=1)
    b1 = train_named(client, "fraud")
    unnamed = train(client, X, Y.tolist())
    assert (a1["name"], a1["version"]) == ("churn", 1)
    assert (a2["name"], a2["version"]) == ("churn", 2)
    assert (b1["name"], b1["version"]) == ("fraud", 1)
    assert (unnamed["name"], unnamed["version"]) == (None, None)
    assert client.get(f"/models/{a2['id']}").json()["version"] == 2


@pytest.mark.parametrize("store_url", ["folder"], indirect=True)  # the schema's check
@pytest.mark.parametrize(
    "name",
    ["Churn", "-churn", "a" * 65, "churn model", "churn/1", "latest", "0123456789abcdef" * 2, ""],
)
def test_a_name_breaking_the_rule_is_a_422_saying_the_rule(client, name):
    r = client.post("/train", json={"features": X.tolist(), "labels": Y.tolist(), "name": name})
    assert r.status_code == 422, r.text
    body = r.json()
    assert any(e["field"] == "name" for e in body["errors"]), body
    assert "1-64 characters" in r.text
    assert client.get("/models").json()["total"] == 0


def test_a_csv_training_takes_the_name_from_the_query(client):
    csv = "a,b,y\n" + "\n".join(f"{r[0]},{r[1]},{c}" for r, c in zip(X, Y, strict=True))
    for expected in (1, 2):
        r = client.post(
            "/train?name=csv-model&label=y", content=csv, headers={"content-type": "text/csv"}
        )
        assert r.status_code == 201, r.text
        assert r.json()["version"] == expected
    r = client.post("/train?name=Bad!", content=csv, headers={"content-type": "text/csv"})
    assert r.status_code == 422


def test_every_reference_form_on_json_csv_v2_get_and_delete(client):
    v1 = train_named(client, "churn")
    v2 = train_named(client, "churn", seed=1)
    client.put("/names/churn/aliases/champion", json={"version": 1})
    forms = {
        v1["id"]: v1,
        "churn": v2,
        "churn:1": v1,
        "churn:2": v2,
        "churn@champion": v1,
        "latest": v2,
    }
    csv = "x0,x1\n" + "\n".join(f"{a},{b}" for a, b in ROWS)
    for ref, model in forms.items():
        got = proba(client, ref)
        assert (got["model_id"], got["name"], got["version"]) == (
            model["id"],
            "churn",
            model["version"],
        )
        r = client.post(
            f"/predict?model_id={ref}", content=csv, headers={"content-type": "text/csv"}
        )
        assert r.status_code == 200, r.text
        assert r.json()["model_id"] == model["id"]
        assert r.json()["probabilities"] == got["probabilities"]
        r = client.post(
            f"/v2/models/{ref}/infer",
            json={
                "inputs": [{"name": "features", "datatype": "FP64", "shape": [5, 2], "data": ROWS}]
            },
        )
        assert r.status_code == 200, r.text
        assert client.get(f"/v2/models/{ref}/ready").status_code == 200
        assert client.get(f"/models/{ref}").json()["id"] == model["id"]
    # /v2's versions are the name's versions
    r = client.get("/v2/models/churn/versions/1")
    assert r.status_code == 200, r.text
    assert r.json()["name"] == v1["id"]
    assert client.get("/v2/models/churn/versions/3").status_code == 404
    # DELETE by NAME:VERSION, then every form that named it is a 404
    client.delete("/names/churn/aliases/champion")
    assert client.delete("/models/churn:1").status_code == 204
    for ref in (v1["id"], "churn:1"):
        assert client.post("/predict", json={"model_id": ref, "features": ROWS}).status_code == 404
    assert proba(client, "churn")["model_id"] == v2["id"]


@pytest.mark.parametrize("store_url", ["folder"], indirect=True)  # parse_reference's check
@pytest.mark.parametrize(
    "ref", ["churn:0", "churn:x", "churn@", "churn@Champ", "churn@latest", "Churn", "a:b:c"]
)
def test_a_malformed_reference_is_a_404_listing_the_forms(client, ref):
    train_named(client, "churn")
    r = client.post("/predict", json={"model_id": ref, "features": ROWS})
    assert r.status_code == 404, r.text
    assert "NAME@ALIAS" in r.json()["detail"]


def test_unknown_name_version_and_alias_are_404s_naming_them(client):
    train_named(client, "churn")
    for ref, words in [
        ("nope", "no model is registered under the name 'nope'"),
        ("churn:7", "has no version 7"),
        ("churn@gold", "has no alias 'gold'"),
    ]:
        r = client.post("/predict", json={"model_id": ref, "features": ROWS})
        assert r.status_code == 404, r.text
        assert words in r.json()["detail"]


def test_names_list_and_detail(client):
    train_named(client, "churn")
    v2 = train_named(client, "churn", seed=1)
    train_named(client, "apple")
    client.put("/names/churn/aliases/champion", json={"version": 1})
    listing = client.get("/names").json()
    assert listing["total"] == 2
    assert [n["name"] for n in listing["items"]] == ["apple", "churn"]
    churn = listing["items"][1]
    assert churn == {
        "name": "churn",
        "latest_version": 2,
        "versions": 2,
        "aliases": {"champion": 1},
    }
    page = client.get("/names?limit=1&offset=1").json()
    assert [n["name"] for n in page["items"]] == ["churn"]
    detail = client.get("/names/churn").json()
    assert [v["version"] for v in detail["items"]] == [2, 1]
    assert detail["items"][0]["id"] == v2["id"]
    assert detail["items"][0]["training"]["n_samples"] == 60
    assert client.get("/names/nope").status_code == 404


def test_alias_set_history_and_rollback_walk_back_in_turn(client):
    for seed in range(3):
        train_named(client, "churn", seed=seed)
    r = client.put("/names/churn/aliases/champion", json={"version": 1})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 1 and r.json()["previous_version"] is None
    client.put("/names/churn/aliases/champion", json={"version": 2})
    r = client.put("/names/churn/aliases/champion", json={"version": 3})
    assert (r.json()["version"], r.json()["previous_version"]) == (3, 2)
    ids = {v["version"]: v["id"] for v in client.get("/names/churn").json()["items"]}

    r = client.post("/names/churn/aliases/champion/rollback")
    assert (r.json()["version"], r.json()["previous_version"]) == (2, 3)
    assert proba(client, "churn@champion")["model_id"] == ids[2]
    r = client.post("/names/churn/aliases/champion/rollback")
    assert r.json()["version"] == 1
    r = client.post("/names/churn/aliases/champion/rollback")
    assert r.status_code == 409, r.text
    assert "no previous version" in r.json()["detail"]

    history = client.get("/names/churn/aliases/champion/history").json()["items"]
    assert [(h["action"], h["version"], h["previous_version"]) for h in history] == [
        ("rollback", 1, 2),
        ("rollback", 2, 3),
        ("set", 3, 2),
        ("set", 2, 1),
        ("set", 1, None),
    ]
    # a deleted alias comes back with a rollback
    assert client.delete("/names/churn/aliases/champion").status_code == 204
    assert (
        client.post("/predict", json={"model_id": "churn@champion", "features": ROWS}).status_code
        == 404
    )
    r = client.post("/names/churn/aliases/champion/rollback")
    assert r.json()["version"] == 1
    assert proba(client, "churn@champion")["model_id"] == ids[1]


def test_alias_errors(client):
    train_named(client, "churn")
    assert client.put("/names/nope/aliases/champion", json={"version": 1}).status_code == 404
    r = client.put("/names/churn/aliases/champion", json={"version": 9})
    assert r.status_code == 404 and "no version 9" in r.json()["detail"]
    for alias in ("latest", "Champion", "9lives", "a" * 33):
        r = client.put(f"/names/churn/aliases/{alias}", json={"version": 1})
        assert r.status_code == 422, (alias, r.text)
        assert r.json()["errors"][0]["field"] == "alias"
    for body in ({}, {"version": 0}, {"version": "1"}, {"version": 1, "extra": 1}):
        assert client.put("/names/churn/aliases/champion", json=body).status_code == 422
    assert client.delete("/names/churn/aliases/champion").status_code == 404
    assert client.post("/names/churn/aliases/champion/rollback").status_code == 404
    assert client.get("/names/churn/aliases/champion/history").status_code == 404


def test_deleting_an_aliased_version_is_a_409_naming_the_alias(client):
    v1 = train_named(client, "churn")
    client.put("/names/churn/aliases/champion", json={"version": 1})
    for ref in (v1["id"], "churn:1", "churn@champion", "churn"):
        r = client.delete(f"/models/{ref}")
        assert r.status_code == 409, r.text
        assert "'champion'" in r.json()["detail"]
    assert proba(client, "churn@champion")["model_id"] == v1["id"]
    client.put("/names/churn/aliases/champion", json={"version": 1})
    assert client.delete("/names/churn/aliases/champion").status_code == 204
    assert client.delete("/models/churn:1").status_code == 204
    # versions are never reused
    assert train_named(client, "churn")["version"] == 2


def test_concurrent_trainings_under_one_name_get_distinct_consecutive_versions(tmp_path, store_url):
    """8 threads train under one name through a real server of 2 workers, each worker with 2
    training slots: every training gets its own version, 1 to 8."""
    got: list[int] = []
    errors: list[str] = []

    def one(seed: int, c: httpx.Client) -> None:
        Xs, ys = make_blobs(n=40, d=2, seed=seed)
        body = {"features": Xs.tolist(), "labels": ys.tolist(), "name": "race"}
        for _ in range(500):  # a 429 (every slot taken) is retried
            r = c.post("/train", json=body)
            if r.status_code != 429:
                break
            time.sleep(0.02)
        if r.status_code == 201:
            got.append(r.json()["version"])
        else:
            errors.append(r.text)

    env = {"TRAIN_CONCURRENCY": "2", "MODEL_STORE_URL": store_url or ""}
    with (
        LiveServer(tmp_path / "models", env=env, args=["--workers", "2"]) as server,
        httpx.Client(base_url=server.url, timeout=60) as c,
    ):
        threads = [threading.Thread(target=one, args=(seed, c)) for seed in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        listing = c.get("/names/race").json()
    assert not errors
    assert sorted(got) == list(range(1, 9))
    assert [v["version"] for v in listing["items"]] == list(range(8, 0, -1))


def test_the_audit_log_records_changes_with_key_client_and_request_id(client):
    v1 = train_named(client, "churn")
    client.put(
        "/names/churn/aliases/champion", json={"version": 1}, headers={"x-request-id": "req-42"}
    )
    client.delete(f"/models/{v1['id']}")  # refused: the alias points to it
    client.delete("/names/churn/aliases/champion")
    client.delete(f"/models/{v1['id']}")
    entries = client.get("/audit").json()["items"]
    assert [(e["action"], e["outcome"].split(":")[0]) for e in entries] == [
        ("model.stored", "ok"),
        ("alias.set", "ok"),
        ("model.deleted", "refused"),
        ("alias.deleted", "ok"),
        ("model.deleted", "ok"),
    ]
    assert entries[0]["target"] == {"id": v1["id"], "name": "churn", "version": 1}
    assert entries[1]["request_id"] == "req-42"
    assert all(e["client"] for e in entries)
    since = entries[3]["time"]
    later = client.get("/audit", params={"since": since}).json()["items"]
    assert [e["action"] for e in later] == ["alias.deleted", "model.deleted"]
    assert [e["action"] for e in client.get("/audit?limit=1").json()["items"]] == ["model.deleted"]


def test_predictions_by_alias_follow_a_move_at_once(client):
    v1 = train_named(client, "churn")
    v2 = train_named(client, "churn", seed=1)
    for version, model in [(1, v1), (2, v2), (1, v1)]:
        client.put("/names/churn/aliases/prod", json={"version": version})
        assert proba(client, "churn@prod")["model_id"] == model["id"]
    a = np.array(proba(client, "churn@prod")["probabilities"])
    b = np.array(proba(client, v1["id"])["probabilities"])
    assert (a == b).all()
