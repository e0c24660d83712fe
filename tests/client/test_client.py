"""Every call of ``Client`` and ``AsyncClient`` against a real server, and the error families."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from logreg_client import (
    AsyncClient,
    BadRequest,
    Client,
    ClientError,
    InvalidInput,
    ModelDetail,
    NotFound,
    ServiceError,
    ServiceUnreachable,
    Unauthorized,
)
from tests.conftest import make_blobs
from tests.live_server import LiveServer, free_port

API_KEY = "client-test-key"
SERVER_ENV = {"API_KEY": API_KEY}
CSV = "a,b,label\n0.5,8.0,fail\n1.0,6.5,fail\n1.5,7.0,fail\n2.0,5.0,pass\n3.0,7.5,fail\n"
CSV += "3.5,6.0,pass\n4.0,8.0,pass\n5.0,7.0,pass\n"


@pytest.fixture
def client(url: str) -> Iterator[Client]:
    with Client(url, API_KEY) as c:
        yield c


def test_train_numpy_predict_model_models_delete(client: Client) -> None:
    X, y = make_blobs(n=60, d=3, k=3, seed=1)
    model = client.train(X, y, name="blobs", l2=1e-3, multiclass="multinomial")
    assert model.name == "blobs" and model.classes == [0, 1, 2] and model.n_features == 3
    assert model.training.n_samples == 60 and model.feature_names is None

    answer = client.predict(model.id, X[:5])
    assert answer.model_id == model.id and answer.classes == [0, 1, 2]
    assert len(answer.predictions) == 5 and np.allclose(np.sum(answer.probabilities, axis=1), 1)
    assert client.predict_proba(model.id, X[:5]) == answer.probabilities
    assert client.predict("latest", X[:5]).model_id == model.id

    detail = client.model(model.id)
    assert isinstance(detail, ModelDetail) and detail.params["multiclass"] == "multinomial"
    assert detail.parameters is not None and len(detail.parameters.coef) == 3
    assert model.id in [m.id for m in client.models(limit=1000).items]

    client.delete(model.id)
    with pytest.raises(NotFound) as info:
        client.model(model.id)
    assert info.value.status == 404 and model.id in info.value.detail


def test_pandas_and_lists(client: Client) -> None:
    X, y = make_blobs(n=40, d=2, seed=2)
    frame = pd.DataFrame(X, columns=["height", "weight"])
    labels = pd.Series(np.where(y == 1, "yes", "no"))
    model = client.train(frame, labels, sample_weight=np.ones(40))
    assert model.feature_names == ["height", "weight"] and model.classes == ["no", "yes"]
    from_lists = client.train(X.tolist(), [bool(v) for v in y])
    assert from_lists.classes == [False, True]
    # a float column of whole numbers (what pandas gives with a missing value) is integer classes
    assert client.train(X, y.astype(float)).classes == [0, 1]
    prediction = client.predict(model.id, frame.iloc[:3])
    assert prediction.to_pandas().columns.tolist() == ["prediction", "proba_no", "proba_yes"]


def test_csv_upload_with_progress(client: Client, tmp_path: Path) -> None:
    path = tmp_path / "exam.csv"
    path.write_text(CSV)
    seen: list[tuple[int, int]] = []
    model = client.train_csv(
        path, label="label", name="csv", progress=lambda s, t: seen.append((s, t)), max_iter=2000
    )
    assert model.feature_names == ["a", "b"] and seen[-1] == (len(CSV), len(CSV))
    new = tmp_path / "new.csv"
    new.write_text("a,b\n1.0,7.0\n4.5,6.5\n")
    answer = client.predict_csv(model.id, new).decode()
    assert answer.splitlines()[0] == "prediction,proba_fail,proba_pass"
    assert [line.split(",")[0] for line in answer.splitlines()[1:]] == ["fail", "pass"]


def test_refusals_carry_detail_and_errors(client: Client) -> None:
    with pytest.raises(InvalidInput) as info:
        client.train([[1.0], [2.0, 3.0]], [0, 1])
    err = info.value
    assert isinstance(err, ClientError) and isinstance(err, ValueError) and err.status == 422
    assert "features[1]" in err.detail
    with pytest.raises(InvalidInput) as info:
        client.train([[1.0], [2.0]], [0, 1], solver="sgd", max_iter=0)
    fields = {e["field"] for e in info.value.errors}
    assert {"params.solver", "params.max_iter"} <= fields
    with pytest.raises(InvalidInput, match="features: must be a list of rows"):
        client.train([1.0, 2.0], [0, 1])
    with pytest.raises(NotFound):
        client.predict("0" * 32, [[1.0]])
    with pytest.raises(ValueError, match=r"features\[0\]\[1\]: nan"):
        client.predict("latest", [[1.0, float("nan")]])  # refused before sending


def test_families_from_statuses(url: str) -> None:
    with Client(url) as anonymous, pytest.raises(Unauthorized) as info:
        anonymous.models()
    assert info.value.status == 401 and info.value.detail
    raw = httpx.post(
        f"{url}/train",
        content=b"{not json",
        headers={"content-type": "application/json", "x-api-key": API_KEY},
    )
    with pytest.raises(BadRequest):
        from logreg_client._core import raise_for

        raise_for(raw)


def test_unreachable() -> None:
    with Client(f"http://127.0.0.1:{free_port()}") as client, pytest.raises(ServiceUnreachable):
        client.models()


def test_url_and_key_from_environment(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGREG_URL", url)
    monkeypatch.setenv("LOGREG_API_KEY", API_KEY)
    with Client() as client:
        assert client.health()["status"] == "ok"
        assert client.models(limit=1).limit == 1
    monkeypatch.delenv("LOGREG_URL")
    with pytest.raises(ValueError, match="LOGREG_URL"):
        Client()


def test_async_client_same_calls(url: str, tmp_path: Path) -> None:
    path = tmp_path / "exam.csv"
    path.write_text(CSV)
    X, y = make_blobs(n=30, d=2, seed=3)

    async def run() -> None:
        async with AsyncClient(url, API_KEY) as client:
            model = await client.train(X, y, name="async")
            proba = await client.predict_proba(model.id, X[:2])
            assert len(proba) == 2 and len(proba[0]) == 2
            assert (await client.model(model.id)).name == "async"
            assert (await client.models(limit=1000)).total >= 1
            from_csv = await client.train_csv(path, label="label")
            new = tmp_path / "new.csv"
            new.write_text("a,b\n1.0,7.0\n")
            text = await client.predict_csv(from_csv.id, new)
            assert text.startswith(b"prediction,")
            await client.delete(model.id)
            with pytest.raises(NotFound):
                await client.delete(model.id)
            assert isinstance(NotFound(404, "x"), ServiceError)

    asyncio.run(run())


def test_errors_pickle() -> None:
    import pickle

    err = InvalidInput(422, "labels: one class", [{"field": "labels", "message": "one"}], 2.0)
    back = pickle.loads(pickle.dumps(err))
    assert (back.status, back.detail, back.errors, back.retry_after) == (
        422,
        "labels: one class",
        [{"field": "labels", "message": "one"}],
        2.0,
    )


def test_server_fixture_is_shared(server: LiveServer, url: str) -> None:
    assert server.url == url
