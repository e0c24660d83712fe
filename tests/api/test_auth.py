"""Optional API key: off by default; when set, every route but health and the docs answers 401
without it, including routes the app gains later; the schema declares it for the docs page."""

from __future__ import annotations

import base64
import re

import httpx
import pytest

from app.api.front import auth
from app.config import Settings
from app.main import create_app
from tests.asgi_client import ASGIClient
from tests.conftest import train
from tests.live_server import LiveServer

KEY = "k3y-with-some-length-0123456789"
GOOD = {"features": [[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 3.0]], "labels": [0, 0, 1, 1]}


@pytest.fixture
def app(tmp_path):
    return create_app(Settings(model_store_dir=tmp_path / "models", api_key=KEY))


@pytest.fixture
def locked(app):
    c = ASGIClient(app)
    yield c
    c.close()


def every_operation(app) -> list[tuple[str, str]]:
    """(method, concrete path) of every operation the app documents, whoever added it."""
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "0" * 32, path))
        for path, item in app.openapi()["paths"].items()
        for method in item
    ]


def test_off_by_default(client):
    assert Settings().api_key is None
    assert client.get("/models").status_code == 200
    assert "securitySchemes" not in client.get("/openapi.json").json().get("components", {})


def test_every_route_but_health_and_docs_needs_the_key(app, locked):
    ops = every_operation(app)
    assert len(ops) >= 6
    protected = [(m, p) for m, p in ops if not auth.is_open(p)]
    assert {p for _, p in protected} >= {"/train", "/predict", "/models", "/models/" + "0" * 32}
    for method, path in protected:
        for headers in (
            {},
            {"X-API-Key": "wrong"},
            {"X-API-Key": KEY[:-1]},
            {"Authorization": "Bearer wrong"},
            {"Authorization": f"Basic {KEY}"},
            {"X-API-Key": ""},
        ):
            r = locked.request(method, path, headers=headers, json=GOOD)
            assert r.status_code == 401, (method, path, headers, r.text)
            challenges = r.headers.get_list("www-authenticate")
            assert any(c.startswith("Bearer") for c in challenges), challenges
            body = r.json()
            # the Open Inference Protocol's error shape under /v2, the service's elsewhere
            message = body["error"] if path.startswith("/v2") else body["detail"]
            assert "X-API-Key" in message
    for path in ("/health", "/docs", "/redoc", "/openapi.json", "/v2/health/live"):
        assert locked.get(path).status_code == 200, path


def test_the_key_opens_every_route_in_either_header(locked):
    for headers in ({"X-API-Key": KEY}, {"Authorization": f"Bearer {KEY}"}):
        model = locked.post("/train", json=GOOD, headers=headers)
        assert model.status_code == 201
        mid = model.json()["id"]
        body = {"model_id": mid, "features": [[1.0, 2.0]]}
        assert locked.post("/predict", json=body, headers=headers).status_code == 200
        assert locked.get("/models", headers=headers).json()["total"] == 1
        assert locked.get(f"/models/{mid}", headers=headers).status_code == 200
        assert locked.delete(f"/models/{mid}", headers=headers).status_code == 204


def test_metrics_and_v2_are_covered_and_docs_assets_are_open(locked):
    """Routes of other modules (metrics, the Open Inference Protocol) need the key without
    doing anything themselves; the docs pages' own assets and the health checks do not."""
    assert locked.get("/metrics").status_code == 401
    assert locked.get("/metrics", headers={"X-API-Key": KEY}).status_code == 200
    assert locked.get("/v2/health/live").status_code == 200
    assert locked.get("/v2/health/ready").status_code == 200
    v2 = locked.get("/v2/models/nope")
    assert v2.status_code == 401
    assert "API key missing" in v2.json()["error"]  # the protocol's own error shape
    assert locked.get("/static/swagger-ui/swagger-ui-bundle.js").status_code == 200
    assert locked.get("/not-a-route").status_code == 401  # no probing of what exists


def test_keys_are_held_and_looked_up_as_their_sha256_only(app, locked):
    keys = locked_app_keys(app)
    assert all(len(k) == 32 for k in keys._table)  # digests, never the keys themselves
    assert KEY.encode() not in keys._table
    assert locked.get("/models", headers={"X-API-Key": "guess"}).status_code == 401


def locked_app_keys(app):
    layer = app.front
    while not isinstance(layer, auth.APIKeyAuth):
        layer = layer.app
    return layer.keys


def test_schema_declares_the_scheme_for_the_docs_page(locked):
    schema = locked.get("/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes[auth.SCHEME_HEADER] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes[auth.SCHEME_BEARER] == {"type": "http", "scheme": "bearer"}
    assert {auth.SCHEME_HEADER: []} in schema["security"]
    assert schema["paths"]["/health"]["get"]["security"] == []
    for path, item in schema["paths"].items():
        for op in item.values():
            if not auth.is_open(path):
                assert "401" in op["responses"], path
    assert "swagger-ui" in locked.get("/docs").text


def test_an_empty_key_means_off(tmp_path, monkeypatch):
    monkeypatch.setenv("API_KEY", "")
    assert Settings(model_store_dir=tmp_path).api_key is None
    c = ASGIClient(create_app(Settings(model_store_dir=tmp_path)))
    try:
        assert c.get("/models").status_code == 200
    finally:
        c.close()


def test_through_a_real_server(tmp_path):
    with (
        LiveServer(tmp_path / "models", env={"API_KEY": KEY}) as server,
        httpx.Client(base_url=server.url, timeout=30) as c,
    ):
        assert c.get("/health").status_code == 200
        r = c.post("/train", json=GOOD)
        assert r.status_code == 401 and "WWW-Authenticate" in r.headers
        assert c.post("/train", json=GOOD, headers={"X-API-Key": KEY}).status_code == 201
        assert c.get("/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


def test_train_helper_still_works_without_a_key(client):
    assert train(client, GOOD["features"], GOOD["labels"])["id"]


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_a_browser_can_open_the_report_page_with_basic_credentials(locked):
    """A browser cannot send X-API-Key when it navigates: the report page (HTML) asks for
    HTTP Basic credentials, the key as the password, and takes them; JSON routes do not ask
    (a Basic challenge would pop the browser's dialog over the docs page's own key box)."""
    mid = locked.post("/train", json=GOOD, headers={"X-API-Key": KEY}).json()["id"]
    page = locked.get(f"/models/{mid}/report")
    assert page.status_code == 401
    challenges = page.headers.get_list("www-authenticate")
    assert any(c.startswith('Basic realm="logreg"') for c in challenges), challenges
    json_route = locked.get(f"/models/{mid}")
    assert json_route.status_code == 401
    assert not any(c.startswith("Basic") for c in json_route.headers.get_list("www-authenticate"))

    for user in ("", "me"):
        r = locked.get(f"/models/{mid}/report", headers=basic(user, KEY))
        assert r.status_code == 200, (user, r.text)
        assert r.headers["content-type"].startswith("text/html")
    assert locked.get(f"/models/{mid}", headers=basic("me", KEY)).status_code == 200
    wrong = locked.get(f"/models/{mid}/report", headers=basic("me", KEY + "x"))
    assert wrong.status_code == 401 and "wrong" in wrong.json()["detail"]
    broken = locked.get(f"/models/{mid}/report", headers={"Authorization": "Basic !!notb64"})
    assert broken.status_code == 401
