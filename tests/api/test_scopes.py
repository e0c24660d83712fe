"""Scoped API keys (issue 13): every route x {no key, wrong key, predict, train, admin}; keys
rotate without a restart; ``python -m app.keys add`` makes an entry; X-Request-ID."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import time

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from tests.asgi_client import ASGIClient
from tests.live_server import ROOT, LiveServer

KEYS = {"predict": "p-key-0123456789", "train": "t-key-0123456789", "admin": "a-key-0123456789"}
GOOD = {"features": [[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 3.0]], "labels": [0, 0, 1, 1]}

#: The scope each operation needs, written out here rather than taken from the code under test.
ADMIN = {
    ("DELETE", "/models/{model_id}"),
    ("PUT", "/names/{name}/aliases/{alias}"),
    ("DELETE", "/names/{name}/aliases/{alias}"),
    ("POST", "/names/{name}/aliases/{alias}/rollback"),
    ("GET", "/audit"),
    ("DELETE", "/datasets/{dataset_id}"),
}
TRAIN = {("POST", "/train"), ("POST", "/models/{model_id}/evaluate")}  # issue 15: evaluate
TRAIN_PREFIXES = ("/jobs", "/datasets")
OPEN = {"/health", "/v2/health/live", "/v2/health/ready", "/docs", "/redoc", "/openapi.json"}


def entry(key: str, *scopes: str) -> dict:
    return {"sha256": hashlib.sha256(key.encode()).hexdigest(), "scopes": list(scopes)}


def write_keys(path, keys: dict[str, dict]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(keys))
    tmp.replace(path)


@pytest.fixture
def keys_file(tmp_path):
    path = tmp_path / "keys.json"
    write_keys(path, {scope: entry(key, scope) for scope, key in KEYS.items()})
    return path


@pytest.fixture
def app(tmp_path, keys_file):
    return create_app(Settings(model_store_dir=tmp_path / "models", api_keys_file=keys_file))


@pytest.fixture
def client(app):
    c = ASGIClient(app)
    yield c
    c.close()


def needed(method: str, template: str) -> str | None:
    if template in OPEN or template.startswith(("/docs", "/static")):
        return None
    if (method, template) in ADMIN:
        return "admin"
    if (method, template) in TRAIN or template.startswith(TRAIN_PREFIXES):
        return "train"
    return "predict"


def operations(app) -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, item in app.openapi()["paths"].items()
        for method in item
        if method.upper() in {"GET", "POST", "PUT", "DELETE"}
    ]


def concrete(template: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda m: "1" if "version" in m.group() else "x" * 5, template)


RANK = {"predict": 0, "train": 1, "admin": 2}


def test_the_scope_matrix(app, client):
    seen = 0
    for method, template in operations(app):
        scope = needed(method, template)
        path = concrete(template)
        body = {} if method in ("POST", "PUT") else None
        callers = {"none": None, "wrong": "not-a-key", **KEYS}
        for caller, key in callers.items():
            headers = {} if key is None else {"X-API-Key": key}
            r = client.request(method, path, json=body, headers=headers)
            if scope is None:
                expected = "through"
            elif caller in ("none", "wrong"):
                expected = 401
            elif RANK[caller] < RANK[scope]:
                expected = 403
            else:
                expected = "through"
            where = f"{method} {path} as {caller} (needs {scope})"
            if expected == "through":
                assert r.status_code not in (401, 403), where
            else:
                assert r.status_code == expected, (where, r.text)
                if expected == 403:
                    assert f"'{scope}'" in r.json()["detail"], where
            seen += 1
    assert seen >= 5 * 20


def test_each_scope_does_what_it_says_end_to_end(client):
    p, t, a = ({"X-API-Key": KEYS[s]} for s in ("predict", "train", "admin"))
    assert client.post("/train", json={**GOOD, "name": "m"}, headers=p).status_code == 403
    assert client.post("/train", json={**GOOD, "name": "m"}, headers=t).status_code == 201
    r = client.post("/predict", json={"model_id": "m", "features": [[1, 1]]}, headers=p)
    assert r.status_code == 200
    assert client.put("/names/m/aliases/prod", json={"version": 1}, headers=t).status_code == 403
    assert client.put("/names/m/aliases/prod", json={"version": 1}, headers=a).status_code == 200
    assert client.get("/audit", headers=t).status_code == 403
    log = client.get("/audit", headers=a).json()["items"]
    assert [(e["action"], e["key_id"]) for e in log] == [
        ("model.stored", "train"),
        ("alias.set", "admin"),
    ]
    assert client.delete("/models/m:1", headers=t).status_code == 403


def test_keys_rotate_without_a_restart(client, keys_file):
    h = {"X-API-Key": KEYS["predict"]}
    assert client.get("/models", headers=h).status_code == 200
    write_keys(
        keys_file, {"admin": entry(KEYS["admin"], "admin"), "new": entry("n-key-99", "predict")}
    )
    deadline = time.monotonic() + 10
    while client.get("/models", headers=h).status_code != 401:
        assert time.monotonic() < deadline, "the removed key still works"
        time.sleep(0.1)
    assert client.get("/models", headers={"X-API-Key": "n-key-99"}).status_code == 200
    # a broken file keeps the keys read before (and says so in the log)
    keys_file.write_text("{not json")
    time.sleep(1.1)
    assert client.get("/models", headers={"X-API-Key": "n-key-99"}).status_code == 200


def test_a_broken_keys_file_stops_the_server_from_starting(tmp_path):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"x": {"sha256": "abc", "scopes": ["predict"]}}))
    with pytest.raises(ValueError, match="sha256 must be 64 hex digits"):
        create_app(Settings(model_store_dir=tmp_path / "models", api_keys_file=path))
    path.write_text(json.dumps({"x": entry("k", "root")}))
    with pytest.raises(ValueError, match="scopes must be"):
        create_app(Settings(model_store_dir=tmp_path / "models", api_keys_file=path))


def test_the_one_command_that_makes_a_key_and_a_real_server_taking_it(tmp_path):
    path = tmp_path / "keys.json"
    run = [sys.executable, "-m", "app.keys", "add", str(path)]
    made = subprocess.run([*run, "ci-bot", "predict"], cwd=ROOT, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    stored = json.loads(path.read_text())
    assert stored == {"ci-bot": entry(key, "predict")}
    assert key not in path.read_text()
    again = subprocess.run([*run, "ci-bot", "admin"], cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 1 and "exists" in again.stderr
    with (
        LiveServer(tmp_path / "models", env={"API_KEYS_FILE": str(path)}) as server,
        httpx.Client(base_url=server.url, timeout=30) as c,
    ):
        assert c.get("/models", headers={"X-API-Key": key}).status_code == 200
        assert c.post("/train", json=GOOD, headers={"X-API-Key": key}).status_code == 403
        assert c.get("/models").status_code == 401


def test_every_answer_carries_a_request_id(client):
    h = {"X-API-Key": KEYS["admin"]}
    mid = client.post("/train", json=GOOD, headers=h).json()["id"]
    answers = [
        client.get("/health"),
        client.get("/models"),  # 401
        client.post(
            "/predict", json={"model_id": "nope", "features": [[1]]}, headers=h
        ),  # fast path
        client.get("/nowhere", headers=h),
        client.post("/predict", json={"model_id": "nope", "features": [[1]]}),  # 401
        client.post("/predict", json={"model_id": mid, "features": [[1.0, 2.0]]}, headers=h),
    ]
    assert [r.status_code for r in answers] == [200, 401, 404, 404, 401, 200]
    ids = [r.headers["x-request-id"] for r in answers]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    r = client.get("/health", headers={"X-Request-ID": "trace-abc.123"})
    assert r.headers["x-request-id"] == "trace-abc.123"
    for bad in ("x" * 129, "has space", ""):
        r = client.get("/health", headers={"X-Request-ID": bad})
        assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"]), bad


def test_the_server_log_lines_carry_the_request_id(tmp_path):
    with (
        LiveServer(tmp_path / "models") as server,
        httpx.Client(base_url=server.url, timeout=30) as c,
    ):
        c.get("/models", headers={"X-Request-ID": "find-me-42"})
        r = c.post("/predict", json={"model_id": "latest", "features": [[1]]})
        generated = r.headers["x-request-id"]
        time.sleep(0.2)
        log = server.log()
    assert '"GET /models HTTP/1.1" 200 OK request_id=find-me-42' in log, log[-2000:]
    assert f"404 Not Found request_id={generated}" in log
