"""Issue 12, item 18: ``HEAD`` is served wherever ``GET`` is (same status and headers, no body),
and a path with a trailing slash is a JSON 404 that names the path without it, never an empty
307 redirect."""

from __future__ import annotations

import httpx
import pytest

from app.schemas import EXAMPLE_ID
from tests.conftest import train
from tests.live_server import LiveServer

GOOD = {"features": [[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 3.0]], "labels": [0, 0, 1, 1]}
GETS = ["/health", "/models", "/models/{id}", "/v2", "/v2/health/live", "/v2/health/ready"]
GETS += ["/v2/models/{id}", "/v2/models/{id}/ready", "/metrics", "/openapi.json", "/docs", "/redoc"]


@pytest.mark.parametrize("path", GETS)
def test_head_answers_what_get_answers_without_a_body(client, path):
    model = train(client, GOOD["features"], GOOD["labels"])
    url = path.replace("{id}", model["id"])
    get, head = client.get(url), client.request("HEAD", url)
    assert get.status_code == 200, get.text
    assert head.status_code == 200, head.text
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    if path != "/metrics":  # its counts move between the two requests
        assert head.headers["content-length"] == get.headers["content-length"]


def test_head_of_a_missing_model_is_its_404_and_head_of_a_post_route_its_405(client):
    r = client.request("HEAD", f"/models/{EXAMPLE_ID}")
    assert r.status_code == 404 and r.content == b""
    r = client.request("HEAD", "/predict")
    assert r.status_code == 405 and r.content == b""
    assert r.headers["allow"] == "POST"


def test_allow_lists_head_beside_get(client):
    r = client.post("/health")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD"
    r = client.request("PUT", f"/models/{EXAMPLE_ID}")
    assert r.headers["allow"] == "DELETE, GET, HEAD"


@pytest.mark.parametrize(
    ("method", "path", "meant"),
    [
        ("POST", "/predict/", "/predict"),
        ("POST", "/train/", "/train"),
        ("GET", "/models/", "/models"),
        ("GET", "/health/", "/health"),
        ("GET", f"/models/{EXAMPLE_ID}/", f"/models/{EXAMPLE_ID}"),
    ],
)
def test_a_trailing_slash_is_a_json_404_naming_the_route(client, method, path, meant):
    r = client.request(method, path, json={"model_id": "latest", "features": [[1.0, 2.0]]})
    assert r.status_code == 404, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json()["detail"] == f"Not Found: {path} has a trailing slash; the route is {meant}"


def test_a_trailing_slash_under_v2_has_the_protocols_error_shape(client):
    r = client.get("/v2/health/live/")
    assert r.status_code == 404
    assert r.json() == {"error": "Not Found: /v2/health/live/ has a trailing slash; the route is "
                        "/v2/health/live"}  # fmt: skip


def test_an_unknown_path_is_still_a_plain_404(client):
    r = client.get("/nowhere/")
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}


def test_through_a_real_server(tmp_path):
    with LiveServer(tmp_path / "models") as server, httpx.Client(base_url=server.url) as c:
        for path in ("/health", "/models"):
            r = c.head(path)
            assert r.status_code == 200 and r.content == b"", path
            assert int(r.headers["content-length"]) == len(c.get(path).content)
        r = c.post("/predict/", json={"model_id": "latest", "features": [[1.0]]})
        assert r.status_code == 404 and "the route is /predict" in r.json()["detail"]
