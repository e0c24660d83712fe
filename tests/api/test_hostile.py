"""Hostile input: every configurable limit through HTTP, ids that try to leave the model folder,
strict types, unknown fields, huge numbers. Each answer is a 4xx that names what is wrong."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import time

import httpx
import numpy as np
import pytest

from app.config import Settings
from app.main import create_app
from tests.asgi_client import ASGIClient
from tests.conftest import record_figures, train
from tests.live_server import LiveServer

GOOD = {"features": [[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 3.0]], "labels": [0, 0, 1, 1]}
TRIED: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def _count_bad_inputs():
    yield
    record_figures("hostile inputs (tests/api/test_hostile.py)", bad_inputs_tried=len(TRIED))


@pytest.fixture
def limited(tmp_path):
    """``limited(max_rows=3)``: a client of an app with those settings."""
    clients: list[ASGIClient] = []

    def make(**limits: object) -> ASGIClient:
        settings = Settings(model_store_dir=tmp_path / "models", **limits)
        clients.append(ASGIClient(create_app(settings)))
        return clients[-1]

    yield make
    for c in clients:
        c.close()


def refused(r: httpx.Response, status: int, *needles: str) -> None:
    TRIED.append(r.request.url.path)
    assert r.status_code == status, r.text
    body = r.json()
    for needle in needles:
        assert needle in body["detail"], body
    assert "Traceback" not in r.text


# ---- limits, each one configurable -------------------------------------------------------


def test_defaults_are_the_documented_ones():
    s = Settings()
    assert (s.max_body_bytes, s.max_rows, s.max_features, s.max_classes) == (
        100 * 1024 * 1024,
        1_000_000,
        10_000,
        1_000,
    )
    assert (s.max_iter, s.train_time_budget, s.api_key) == (100_000, 300.0, None)


def test_body_size_declared_in_content_length(limited, tmp_path):
    c = limited(max_body_bytes=200)
    big = {**GOOD, "name": "x" * 300}
    refused(c.post("/train", json=big), 413, "MAX_BODY_BYTES", "200")
    refused(c.post("/predict", json={"model_id": "0" * 32, "features": [[1.0] * 100]}), 413)
    assert c.post("/train", json=GOOD).status_code == 201  # under the limit: fine


def test_body_size_of_a_chunked_stream_without_content_length(limited, tmp_path):
    c = limited(max_body_bytes=1000)
    received = []

    async def chunks():
        for _ in range(100):  # 10 kB, but the server stops reading past 1 kB
            received.append(1)
            yield b" " * 100

    r = c.post("/train", content=chunks(), headers={"content-type": "application/json"})
    refused(r, 413, "MAX_BODY_BYTES")
    assert "content-length" not in {k.lower() for k in r.request.headers}
    assert len(received) < 100


def test_a_bad_content_length_is_a_400(limited, tmp_path):
    c = limited()
    r = c.post(
        "/train", content=b"{}", headers={"content-type": "application/json", "content-length": "x"}
    )
    refused(r, 400, "Content-Length")


@pytest.mark.parametrize(
    ("limits", "body", "needle"),
    [
        ({"max_rows": 3}, GOOD, "rows"),
        ({"max_features": 1}, GOOD, "columns"),
        (
            {"max_classes": 2},
            {"features": [[0.0], [1.0], [2.0]], "labels": ["a", "b", "c"]},
            "classes",
        ),
    ],
)
def test_size_limits_on_training_are_413(limited, tmp_path, limits, body, needle):
    refused(limited(**limits).post("/train", json=body), 413, needle)


def test_size_limits_on_prediction_are_413(limited, tmp_path):
    c = limited(max_rows=4)
    model = train(c, GOOD["features"], GOOD["labels"])
    rows = {"model_id": model["id"], "features": [[1.0, 2.0]] * 5}
    refused(c.post("/predict", json=rows), 413, "5 rows", "4")


def test_max_iter_limit_is_422_and_the_default_fits_under_it(limited, tmp_path):
    c = limited(max_iter=50)
    refused(c.post("/train", json={**GOOD, "params": {"max_iter": 51}}), 422, "params.max_iter")
    r = c.post("/train", json=GOOD)  # params.max_iter unset: its default is capped at 50
    assert r.status_code == 201 and r.json()["training"]["iterations"] <= 50


def test_training_time_budget_stops_the_solver(limited, tmp_path):
    c = limited(train_time_budget=0.05)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5000, 20))
    y = (X[:, 0] + rng.normal(size=5000) > 0).astype(int).tolist()
    start = time.monotonic()
    r = c.post(
        "/train",
        json={"features": X.tolist(), "labels": y, "params": {"max_iter": 100_000, "tol": 0}},
    )
    assert r.status_code == 201, r.text
    training = r.json()["training"]
    assert training["converged"] is False and training["iterations"] < 100_000
    assert training["seconds"] < 2.0 and time.monotonic() - start < 20  # budget 0.05 s


# ---- ids from URLs and bodies stay inside the model folder --------------------------------

HOSTILE_IDS = [
    "%2e%2e%2f%2e%2e%2fvictim",
    "..%2fvictim",
    "%2e%2e",
    "..%5c..%5cvictim",
    "..\\..\\victim",
    "%00",
    "0" * 32 + "%00",
    "0" * 31 + "%0a",
    pytest.param("a" * 5000, id="5000-chars"),
    "%c0%ae%c0%ae%2fvictim",
    "%252e%252e%252fvictim",
    "%EF%BC%8E%EF%BC%8E%EF%BC%8Fvictim",  # fullwidth dots and slash
    "A" * 32,
    ".tmp-" + "0" * 32,
]


@pytest.mark.parametrize("bad", HOSTILE_IDS)
def test_ids_in_urls_cannot_leave_the_folder(limited, tmp_path, bad):
    c = limited()
    victim = tmp_path / "victim.json"
    victim.write_text("{}")
    (tmp_path / "victim").write_text("{}")
    for method in ("GET", "DELETE"):
        r = c.request(method, f"/models/{bad}")
        TRIED.append(bad)
        assert r.status_code == 404, (method, bad, r.text)
        assert "Traceback" not in r.text
    assert victim.exists() and (tmp_path / "victim").exists()


@pytest.mark.parametrize(
    "bad",
    ["../victim", "..\\victim", "/etc/passwd", "\x00", "0" * 32 + "\x00", "é" * 32],
    ids=["dotdot", "backslash", "absolute", "nul", "id-nul", "unicode"],
)
def test_ids_in_bodies_cannot_leave_the_folder(limited, tmp_path, bad):
    c = limited()
    r = c.post("/predict", json={"model_id": bad, "features": [[1.0, 2.0]]})
    refused(r, 404, "not valid")


# ---- strict types and unknown fields ---------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/train", {**GOOD, "params": {"max_iter": True}}, "params.max_iter"),
        ("/train", {**GOOD, "params": {"max_iter": 10.5}}, "params.max_iter"),
        ("/train", {**GOOD, "params": {"l2": "0.1"}}, "params.l2"),
        ("/train", {**GOOD, "params": {"tol": False}}, "params.tol"),
        ("/train", {**GOOD, "params": {"fit_intercept": "yes"}}, "params.fit_intercept"),
        ("/train", {**GOOD, "params": {"standardize": 0}}, "params.standardize"),
        ("/train", {**GOOD, "params": {"learning_rate": True}}, "params.learning_rate"),
        ("/train", {**GOOD, "params": []}, "params"),
        ("/train", {**GOOD, "name": 5}, "name"),
        ("/train", {**GOOD, "feature_names": [1, 2]}, "feature_names[0]"),
        ("/train", {**GOOD, "labels": [0, 0, 1, True]}, "labels[3]"),
        ("/train", {**GOOD, "labels": [0, 0, 1, None]}, "labels[3]"),
        ("/train", {**GOOD, "labels": [0, 0, 1, [1]]}, "labels[3]"),
        ("/train", {**GOOD, "features": [[0.0, "1"], *GOOD["features"][1:]]}, "features[0][1]"),
        ("/train", {**GOOD, "features": [[0.0, False], *GOOD["features"][1:]]}, "features[0][1]"),
        ("/train", {**GOOD, "features": "0,1"}, "features"),
        ("/train", {**GOOD, "features": [1.0, 2.0, 3.0, 4.0]}, "features: must be a list of"),
        ("/train", {**GOOD, "Features": [[1.0]]}, "Features"),
        ("/train", {**GOOD, "model_id": "x"}, "model_id"),
        ("/train", {**GOOD, "params": {"C": 1.0}}, "params.C"),
        ("/train", {**GOOD, "labels": [0, 0, 1, 2**70]}, "labels[3]"),
        ("/predict", {"model_id": 123, "features": [[1.0, 2.0]]}, "model_id"),
        ("/predict", {"model_id": "0" * 32, "features": [[True, 2.0]]}, "features[0][0]"),
        ("/predict", {"model_id": "0" * 32, "features": [[1.0, 2.0]], "threshold": True}, "thr"),
        ("/predict", {"model_id": "0" * 32, "features": [[1.0, 2.0]], "threshold": "0.5"}, "thr"),
        ("/predict", {"model_id": "0" * 32, "features": [[1.0, 2.0]], "proba": True}, "proba"),
    ],
)
def test_wrong_types_and_unknown_fields_are_named(client, path, body, field):
    refused(client.post(path, json=body), 422, field)


@pytest.mark.parametrize(
    ("params", "field"), [({"limit": "true"}, "limit"), ({"offset": "1.5"}, "offset")]
)
def test_wrong_types_in_queries_are_named(client, params, field):
    refused(client.get("/models", params=params), 422, field)


# ---- finite but huge numbers (regressions found by fuzzing the engine) ----------------------


def test_features_too_large_for_a_model_are_a_422_not_null_probabilities(client):
    model = train(client, GOOD["features"], GOOD["labels"])
    r = client.post("/predict", json={"model_id": model["id"], "features": [[1.7e308, -1e308]]})
    refused(r, 422, "features[0]", "too large")
    ok = client.post("/predict", json={"model_id": model["id"], "features": [[1e300, 1e300]]})
    assert ok.status_code == 200 and ok.json()["probabilities"][0] == [0.0, 1.0]


def test_training_on_values_that_overflow_is_a_422_and_stores_nothing(client):
    """Values near 1e308 train when standardised (tests/api/test_magnitudes.py); without
    standardisation the solvers need their squares, which overflow: a 422 saying so."""
    body = {
        "features": [[1e308, 1.0], [-1e308, 0.0], [2.0, 2.0], [3.0, 3.0]],
        "labels": [0, 0, 1, 1],
        "params": {"standardize": False},
    }
    refused(client.post("/train", json=body), 422, "features: column 0", "too large")
    assert client.get("/models").json()["total"] == 0


# ---- the same through a real uvicorn process ------------------------------------------------


def raw_request(port: int, data: bytes) -> int:
    """Send bytes as they are (no client tidies them up) and return the answer's status."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with contextlib.suppress(OSError):  # the server may answer and close before the end
            sock.sendall(data)
        head = sock.recv(4096)
    return int(head.split(b" ", 2)[1])


def test_limits_and_ids_through_a_real_server(limited, tmp_path):
    env = {"MAX_BODY_BYTES": "2000", "MAX_ROWS": "10"}
    with (
        LiveServer(tmp_path / "models", env=env) as server,
        httpx.Client(base_url=server.url, timeout=30) as c,
    ):
        refused(c.post("/train", json={**GOOD, "name": "x" * 3000}), 413, "MAX_BODY_BYTES")
        rows = {"features": [[float(i), 2.0] for i in range(11)], "labels": [0, 1] * 5 + [0]}
        refused(c.post("/train", json=rows), 413, "rows")

        def chunks():
            yield b'{"features": ['
            for _ in range(200):
                yield b"[1.0, 2.0],"

        r = c.post("/train", content=chunks(), headers={"content-type": "application/json"})
        refused(r, 413, "MAX_BODY_BYTES")
        # a small Content-Length in front of a large chunked body: never read past the limit
        chunk = b"[1.0, 2.0]," * 100
        smuggled = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(10))
        status = raw_request(
            server.port,
            b"POST /train HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n" + smuggled + b"0\r\n\r\n",
        )
        TRIED.append("content-length + chunked")
        assert status in (400, 413), status
        (tmp_path / "victim.json").write_text("{}")
        for bad in ("%2e%2e%2fvictim", "..%5cvictim", "%00", "v" * 5000):
            TRIED.append(bad)
            assert c.delete(f"/models/{bad}").status_code == 404
        assert (tmp_path / "victim.json").exists()
        assert c.post("/train", json=GOOD).status_code == 201


def test_405_lists_every_method_of_the_path(client):
    """Regression (Schemathesis): Starlette named only the first route matching the path."""
    r = client.request("PUT", "/models/" + "0" * 32)
    assert r.status_code == 405 and r.headers["allow"] == "DELETE, GET, HEAD"
    assert client.request("GET", "/train").headers["allow"] == "POST"


def test_all_zero_features_without_intercept_train_instead_of_a_500(client):
    """Regression (Hypothesis on the engine): ZeroDivisionError in the step size."""
    body = {"features": [[0.0], [0.0]], "labels": [0, 1], "params": {"fit_intercept": False}}
    r = client.post("/train", json={**body, "params": {**body["params"], "l2": 0}})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(("code", "status"), [(errno.ENOSPC, 507), (errno.EROFS, 503)])
def test_a_full_or_read_only_disk_is_a_clear_5xx_and_stores_nothing(
    client, settings, monkeypatch, code, status
):
    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "replace", refuse)
    r = client.post("/train", json=GOOD)
    assert r.status_code == status, r.text
    assert "could not be stored" in r.json()["detail"] and "nothing was kept" in r.json()["detail"]
    monkeypatch.undo()
    assert client.get("/models").json()["total"] == 0
    assert list(settings.model_store_dir.iterdir()) == []


@pytest.mark.parametrize("path", ["/train", "/predict"])
def test_a_body_that_is_not_utf8_is_a_400_not_a_500(client, path):
    """Regression (Schemathesis, after the fast body paths were merged): UnicodeDecodeError."""
    r = client.post(path, content=b"\x80\xff{", headers={"content-type": "application/json"})
    refused(r, 400, "malformed JSON", "UTF-8")
