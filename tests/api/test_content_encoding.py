"""Issue 12, item 17: a compressed request body (``Content-Encoding: gzip``) is a 415 that names
the encoding, not a 400 "malformed JSON (not UTF-8)". The service does not inflate bodies (see
the commit that added this file for why); ``identity`` is the one coding it reads."""

from __future__ import annotations

import gzip
import json

import httpx
import pytest

from tests.conftest import train
from tests.live_server import LiveServer

GOOD = {"features": [[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 3.0]], "labels": [0, 0, 1, 1]}


def refused(r: httpx.Response, encoding: str, key: str = "detail") -> None:
    assert r.status_code == 415, r.text
    assert f"Content-Encoding '{encoding}'" in r.json()[key]
    assert "uncompressed" in r.json()[key]
    assert r.headers["accept-encoding"] == "identity"


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "GZIP", "gzip, identity"])
def test_a_compressed_train_body_is_a_415_naming_the_encoding(client, encoding):
    body = gzip.compress(json.dumps(GOOD).encode())
    r = client.post(
        "/train",
        content=body,
        headers={"content-type": "application/json", "content-encoding": encoding},
    )
    refused(r, encoding)
    assert client.get("/models").json()["total"] == 0


def test_a_compressed_predict_body_is_a_415_on_every_front_end(client):
    model = train(client, GOOD["features"], GOOD["labels"])
    body = json.dumps({"model_id": model["id"], "features": [[1.0, 2.0]]}).encode()
    for headers in (
        {"content-type": "application/json"},  # the fast path's requests
        {"content-type": "application/json", "accept": "text/csv"},  # the route's
        {"content-type": "text/csv"},
    ):
        r = client.post(
            "/predict", content=gzip.compress(body), headers={**headers, "content-encoding": "gzip"}
        )
        refused(r, "gzip")
    r = client.post(
        f"/v2/models/{model['id']}/infer",
        content=gzip.compress(b'{"inputs": []}'),
        headers={"content-encoding": "gzip"},
    )
    refused(r, "gzip", key="error")


def test_a_chunked_compressed_body_is_refused_before_it_is_read(client):
    read = []

    async def chunks():
        for _ in range(3):
            read.append(1)
            yield gzip.compress(b"{}")

    r = client.post(
        "/train",
        content=chunks(),
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    refused(r, "gzip")
    assert read == []  # refused on its headers: no chunk was pulled


def test_identity_and_requests_without_a_body_are_unaffected(client):
    r = client.post("/train", json=GOOD, headers={"content-encoding": "identity"})
    assert r.status_code == 201, r.text
    assert client.get("/health", headers={"content-encoding": "gzip"}).status_code == 200


def test_through_a_real_server(tmp_path):
    with LiveServer(tmp_path / "models") as server:
        r = httpx.post(
            f"{server.url}/train",
            content=gzip.compress(json.dumps(GOOD).encode()),
            headers={"content-type": "application/json", "content-encoding": "gzip"},
        )
        refused(r, "gzip")
