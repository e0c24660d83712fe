"""429 and 503 are sent again, waiting as ``Retry-After`` says, a bounded number of times.

The waits are checked through the client's injectable ``sleep`` (no test waits for real): with
``httpx.MockTransport`` for the policy, and against a real server whose one training slot is
taken, for a real 429.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from logreg_client import (
    AsyncClient,
    Client,
    InvalidInput,
    ModelSummary,
    Retry,
    ServiceUnavailable,
    TooManyRequests,
)
from logreg_client._core import retry_after
from tests.conftest import make_blobs

SERVER_ENV = {"TRAIN_CONCURRENCY": "1", "TRAIN_RETRY_AFTER": "1", "TRAIN_TIME_BUDGET": "2"}
SUMMARY = {
    "id": "a" * 32,
    "name": None,
    "created_at": "2026-12-01T10:00:00Z",
    "classes": [0, 1],
    "n_features": 1,
    "feature_names": None,
    "training": {
        "solver": "newton",
        "iterations": 3,
        "converged": True,
        "loss": 0.5,
        "accuracy": 1.0,
        "seconds": 0.01,
        "n_samples": 2,
        "warnings": [],
    },
}


def scripted(*answers: httpx.Response) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport answering ``answers`` in turn, recording each request (and its body)."""
    sent: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        request.read()
        sent.append(request)
        return answers[len(sent) - 1]

    return httpx.MockTransport(handle), sent


def busy(retry: str | None = None, status: int = 429) -> httpx.Response:
    headers = {} if retry is None else {"retry-after": retry}
    return httpx.Response(status, json={"detail": "all training slots are busy"}, headers=headers)


def test_waits_as_retry_after_says_then_succeeds() -> None:
    transport, sent = scripted(busy("2"), busy("0.5"), httpx.Response(201, json=SUMMARY))
    waits: list[float] = []
    with Client("http://svc", transport=transport, sleep=waits.append) as client:
        model = client.train([[0.0], [1.0]], [0, 1])
    assert isinstance(model, ModelSummary) and waits == [2.0, 0.5] and len(sent) == 3
    assert sent[0].content == sent[2].content  # the same body each time


def test_backoff_without_retry_after_is_bounded() -> None:
    transport, sent = scripted(*[busy(status=503)] * 4)
    waits: list[float] = []
    policy = Retry(attempts=3, backoff=0.5)
    client = Client("http://svc", retries=policy, transport=transport, sleep=waits.append)
    with client, pytest.raises(ServiceUnavailable) as info:
        client.models()
    assert waits == [0.5, 1.0, 2.0] and len(sent) == 4
    assert info.value.detail == "all training slots are busy"


def test_a_wait_longer_than_max_wait_is_left_to_the_caller() -> None:
    transport, sent = scripted(busy("120"))
    waits: list[float] = []
    client = Client("http://svc", transport=transport, sleep=waits.append)
    with client, pytest.raises(TooManyRequests) as info:
        client.train([[0.0], [1.0]], [0, 1])
    assert waits == [] and len(sent) == 1 and info.value.retry_after == 120.0


def test_other_errors_are_not_retried() -> None:
    body = {"detail": "labels: bad", "errors": [{"field": "labels", "message": "bad"}]}
    transport, sent = scripted(httpx.Response(422, json=body))
    client = Client("http://svc", transport=transport, sleep=pytest.fail)
    with client, pytest.raises(InvalidInput) as info:
        client.train([[0.0], [1.0]], [0, 1])
    assert len(sent) == 1 and info.value.errors == body["errors"]


def test_retries_zero_raises_at_once() -> None:
    transport, sent = scripted(busy("1"))
    client = Client("http://svc", retries=0, transport=transport, sleep=pytest.fail)
    with client, pytest.raises(TooManyRequests):
        client.models()
    assert len(sent) == 1


def test_an_upload_is_sent_whole_again(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("x,y\n0,a\n1,b\n")
    transport, sent = scripted(busy("1"), httpx.Response(201, json=SUMMARY))
    with Client("http://svc", transport=transport, sleep=lambda s: None) as client:
        client.train_csv(path, label="y")
    assert [r.content for r in sent] == [path.read_bytes()] * 2
    assert sent[1].url.params["label"] == "y"


CHANGE = {
    "name": "exam",
    "alias": "champion",
    "version": 1,
    "previous_version": 2,
    "changed_at": "2026-12-01T10:00:00Z",
}


def test_a_rollback_is_resent_after_a_429_never_after_a_503() -> None:
    """A 503 may come after the rollback was written: sent again, it would go one version
    further back. A 429 is answered before anything is done."""
    transport, sent = scripted(busy(status=503))
    client = Client("http://svc", transport=transport, sleep=pytest.fail)
    with client, pytest.raises(ServiceUnavailable):
        client.rollback("exam", "champion")
    assert len(sent) == 1 and sent[0].method == "POST"
    assert sent[0].url.path == "/names/exam/aliases/champion/rollback"

    transport, sent = scripted(busy("1"), httpx.Response(200, json=CHANGE))
    waits: list[float] = []
    with Client("http://svc", transport=transport, sleep=waits.append) as client:
        assert client.rollback("exam", "champion").version == 1
    assert waits == [1.0] and len(sent) == 2

    # setting an alias to a version twice is the same as once: resent after a 503
    transport, sent = scripted(busy("0", status=503), httpx.Response(200, json=CHANGE))
    with Client("http://svc", transport=transport, sleep=lambda s: None) as client:
        client.set_alias("exam", "champion", 1)
    assert [r.content for r in sent] == [b'{"version":1}'] * 2


def test_retry_after_as_a_date() -> None:
    now = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)
    later = format_datetime(datetime(2026, 12, 1, 10, 0, 7, tzinfo=UTC), usegmt=True)
    assert retry_after(later, now=now.timestamp()) == 7.0
    assert retry_after("Mon, 01 Jan 2001 00:00:00 GMT") == 0.0  # in the past: at once
    assert retry_after("soon") is None and retry_after("nan") is None


def test_async_client_retries_the_same_way() -> None:
    transport, sent = scripted(busy("3"), busy(status=503), httpx.Response(201, json=SUMMARY))
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def run() -> ModelSummary:
        async with AsyncClient("http://svc", transport=transport, sleep=sleep) as client:
            return await client.train([[0.0], [1.0]], [0, 1])

    assert asyncio.run(run()).id == "a" * 32 and waits == [3.0, 1.0] and len(sent) == 3


def test_a_real_429_is_waited_out(url: str) -> None:
    """The server's only training slot is taken by a long training: a client without retries
    gets the 429 and its Retry-After; one with retries waits (here: until the long training
    is done) and trains."""
    X, y = make_blobs(n=500, d=5, seed=4)
    done: list[ModelSummary] = []

    def long_training() -> None:
        with Client(url) as client:  # its own 429s, if any, are waited out for real
            done.append(client.train(X, y, solver="gd", tol=0, max_iter=100000))

    long = threading.Thread(target=long_training)
    long.start()
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        long.join()

    refused: TooManyRequests | None = None
    small = make_blobs(n=20, d=2, seed=5)
    with Client(url, retries=0) as once, Client(url, retries=2, sleep=sleep) as patient:
        while long.is_alive() and not waits:
            try:
                once.train(*small)
            except TooManyRequests as exc:
                refused = exc
                model = patient.train(*small)
    long.join()
    assert refused is not None and refused.status == 429 and refused.retry_after == 1.0
    assert refused.detail.startswith("training capacity reached")
    assert waits == [1.0] and model.classes == [0, 1]
    assert done and not done[0].training.converged  # stopped by TRAIN_TIME_BUDGET
