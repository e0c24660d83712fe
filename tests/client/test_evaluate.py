"""Evaluations, explanations, out-of-range warnings and the report page through ``Client``,
``AsyncClient`` and ``logreg``, against a real server: the client's numbers are the server's."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score

from logreg_client import (
    AsyncClient,
    Client,
    ConfusionMatrix,
    Evaluation,
    InputWarning,
    InvalidInput,
    NotFound,
    _core,
    cli,
)
from tests.client.test_cli import cells, logreg
from tests.conftest import make_blobs

EXAM = """hours_studied,hours_slept,result
0.5,8.0,fail
1.0,6.5,fail
1.5,7.0,fail
2.0,5.0,pass
3.0,7.5,fail
3.5,6.0,pass
4.0,8.0,pass
5.0,7.0,pass
"""
#: what the server decides on each call (the time it evaluated)
VARIES = {"evaluated_at"}


def same(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    assert {k: v for k, v in ours.items() if k not in VARIES} == {
        k: v for k, v in theirs.items() if k not in VARIES
    }


@pytest.fixture
def client(url: str) -> Iterator[Client]:
    with Client(url) as c:
        yield c


@pytest.fixture
def exam(tmp_path: Path) -> Path:
    path = tmp_path / "exam.csv"
    path.write_text(EXAM)
    return path


@pytest.fixture(scope="module")
def binary(url: str) -> str:
    X, y = make_blobs(n=80, d=2, k=2, seed=3, spread=2.0)
    with Client(url) as c:
        return c.train(X, y, feature_names=["a", "b"], l2=1e-3).id


def test_evaluate_numpy_is_the_servers_answer(client: Client, url: str, binary: str) -> None:
    X, y = make_blobs(n=40, d=2, k=2, seed=4, spread=2.0)
    evaluation = client.evaluate(binary, X, y, threshold=0.4, positive_label=np.int64(0))
    assert isinstance(evaluation, Evaluation) and evaluation.model_id == binary
    assert evaluation.n == 40 and evaluation.threshold == 0.4 and evaluation.positive_label == 0

    body = {"features": X.tolist(), "labels": y.tolist(), "threshold": 0.4, "positive_label": 0}
    direct = httpx.post(f"{url}/models/{binary}/evaluate", json=body)
    assert direct.status_code == 200
    same(evaluation.raw, direct.json())
    assert evaluation.log_loss == direct.json()["log_loss"]
    assert evaluation.confusion_matrix == ConfusionMatrix(**direct.json()["confusion_matrix"])
    assert [c.label for c in evaluation.per_class] == [0, 1]
    assert sum(b.count for b in evaluation.calibration) == 40
    assert evaluation.roc_curves[0].label == 0

    # the accuracy is the accuracy of the predictions at that threshold
    p = np.asarray(client.predict(binary, X, threshold=0.4).predictions)
    assert evaluation.accuracy == pytest.approx(accuracy_score(y, p), abs=1e-12)


def test_evaluate_pandas_and_lists(client: Client, binary: str) -> None:
    X, y = make_blobs(n=30, d=2, k=2, seed=5, spread=2.0)
    from_numpy = client.evaluate(binary, X, y)
    from_pandas = client.evaluate(binary, pd.DataFrame(X, columns=["a", "b"]), pd.Series(y))
    from_lists = client.evaluate(binary, X.tolist(), y.tolist())
    same(from_pandas.raw, from_numpy.raw)
    same(from_lists.raw, from_numpy.raw)
    assert from_numpy.threshold is None and from_numpy.positive_label == 1


def test_multiclass_and_unknown_labels(client: Client) -> None:
    X, y = make_blobs(n=90, d=3, k=3, seed=6, spread=2.0)
    model = client.train(X, y, multiclass="multinomial")
    evaluation = client.evaluate(model.id, X, y)
    assert evaluation.confusion_matrix.labels == [0, 1, 2]
    assert evaluation.roc_auc is not None and evaluation.roc_auc_weighted is not None
    assert sum(map(sum, evaluation.confusion_matrix.matrix)) == 90
    with pytest.raises(InvalidInput) as info:
        client.evaluate(model.id, X[:2], [0, 7])
    assert "7" in info.value.detail
    with pytest.raises(NotFound):
        client.evaluate("no-such-model", X, y)


def test_evaluate_csv_dataset_and_evaluations(client: Client, exam: Path) -> None:
    model = client.train_csv(exam, label="result", name="exam-eval")
    sent: list[tuple[int, int]] = []
    on_csv = client.evaluate_csv(
        "exam-eval", exam, label="result", progress=lambda s, t: sent.append((s, t))
    )
    assert on_csv.model_id == model.id and on_csv.n == 8 and on_csv.name == "exam-eval"
    assert sent[-1] == (exam.stat().st_size, exam.stat().st_size)
    assert on_csv.positive_label == "pass"

    dataset = client.upload(exam, label="result")
    on_dataset = client.evaluate_dataset(model.id, dataset.id, label="result", threshold=0.5)
    assert on_dataset.threshold == 0.5
    for key in ("n", "log_loss", "accuracy", "roc_auc", "confusion_matrix", "per_class"):
        assert on_dataset.raw[key] == on_csv.raw[key]

    kept = client.evaluations("exam-eval")
    assert kept.model_id == model.id and kept.kept >= 2
    assert [e.raw for e in kept.items[:2]] == [on_dataset.raw, on_csv.raw]  # newest first
    assert isinstance(kept.items[0], Evaluation)


def test_explain_and_warnings(client: Client, binary: str) -> None:
    X = np.array([[0.5, -0.25], [100.0, 0.0]])  # the second row is far outside training
    plain = client.predict(binary, X)
    assert plain.terms is None and plain.contributions is None and plain.baseline is None
    assert plain.warnings_total >= 1
    assert plain.warnings[0] == InputWarning(
        row=1,
        feature="a",
        value=100.0,
        min=plain.raw["warnings"][0]["min"],
        max=plain.raw["warnings"][0]["max"],
    )
    assert client.predict(binary, X[:1]).warnings == []

    explained = client.predict(binary, X, explain=True)
    assert explained.predictions == plain.predictions and explained.terms == ["a", "b"]
    assert explained.baseline is not None and explained.contributions is not None
    for row, probabilities in enumerate(explained.probabilities):
        score = explained.baseline[0] + sum(explained.contributions[row][0])
        p = 1.0 / (1.0 + math.exp(-score))
        assert p == pytest.approx(probabilities[1], rel=1e-9, abs=1e-12)


def test_report_url(client: Client, binary: str) -> None:
    address = client.report_url(binary)
    assert address == f"{client.url}/models/{binary}/report"
    page = httpx.get(address)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert client.report_url("exam@champion").endswith("/models/exam@champion/report")


def test_async_client(url: str, binary: str, exam: Path) -> None:
    X, y = make_blobs(n=30, d=2, k=2, seed=7, spread=2.0)

    async def go() -> tuple[Evaluation, Evaluation, Any, Any]:
        async with AsyncClient(url) as c:
            assert c.report_url(binary) == f"{url}/models/{binary}/report"
            rows = await c.evaluate(binary, X, y, threshold=0.3)
            model = await c.train_csv(exam, label="result")
            on_csv = await c.evaluate_csv(model.id, exam, label="result")
            kept = await c.evaluations(binary)
            explained = await c.predict(binary, X[:2], explain=True)
            return rows, on_csv, kept, explained

    rows, on_csv, kept, explained = asyncio.run(go())
    with Client(url) as c:
        same(rows.raw, c.evaluate(binary, X, y, threshold=0.3).raw)
    assert on_csv.n == 8 and kept.items[0].raw == rows.raw
    assert explained.contributions is not None and len(explained.contributions) == 2


def test_cli_evaluate_evaluations_report(url: str, exam: Path, client: Client) -> None:
    model = client.train_csv(exam, label="result", name="exam-cli")
    shown = logreg("evaluate", "exam-cli", str(exam), "--label", "result", url=url)
    assert shown.returncode == 0, shown.stderr
    evaluation = client.evaluations(model.id).items[0]
    lines = shown.stdout.splitlines()
    assert cells(next(line for line in lines if line.startswith("accuracy"))) == [
        "accuracy",
        f"{evaluation.accuracy:.4f}",
    ]
    # the confusion matrix: a row per true class, a column per predicted one
    fail = next(line for line in lines if line.startswith("fail "))
    assert cells(fail) == ["fail", *map(str, evaluation.confusion_matrix.matrix[0])]

    as_json = logreg(
        "--json", "evaluate", model.id, str(exam), "--label", "result", "--threshold", "0.3",
        url=url,
    )  # fmt: skip
    assert as_json.returncode == 0, as_json.stderr
    answer = json.loads(as_json.stdout)
    assert answer["threshold"] == 0.3 and answer["model_id"] == model.id

    dataset = client.upload(exam, label="result")
    on_dataset = logreg(
        "--json", "evaluate", "exam-cli", dataset.id, "--dataset", "--label", "result", url=url
    )
    assert on_dataset.returncode == 0, on_dataset.stderr
    assert json.loads(on_dataset.stdout)["log_loss"] == evaluation.log_loss
    no_label = logreg("evaluate", "exam-cli", dataset.id, "--dataset", url=url)
    assert no_label.returncode == cli.USAGE and "--label" in no_label.stderr

    listed = logreg("evaluations", "exam-cli", url=url)
    assert listed.returncode == 0, listed.stderr
    rows = [cells(line) for line in listed.stdout.splitlines()[1:]]
    assert len(rows) == 3 and rows[1][-1] == "0.3" and rows[0][1] == "8"

    report = logreg("report", "exam-cli", url=url)
    assert report.returncode == 0 and report.stdout.strip() == f"{url}/models/exam-cli/report"
    pinned = logreg("--json", "report", "exam-cli", "--pin", url=url)
    assert json.loads(pinned.stdout) == {"url": f"{url}/models/{model.id}/report"}

    missing = logreg("report", "no-such-name", url=url)
    assert missing.returncode == cli.REFUSED and "no-such-name" in missing.stderr
    refused = logreg("evaluate", model.id, str(exam), "--label", "hours_slept", url=url)
    assert refused.returncode == cli.REFUSED and refused.stderr.startswith("error:")
    no_file = logreg("evaluate", model.id, str(exam.with_name("none.csv")), url=url)
    assert no_file.returncode == cli.USAGE


def test_requests_as_sent() -> None:
    """The builders (sans-IO): ``explain`` only when asked (an older service refuses a field it
    does not know); NumPy labels as JSON's; CSV options in the query."""
    plain = json.loads(_core.predict("m", [[1.0]]).body or b"")
    assert "explain" not in plain
    assert json.loads(_core.predict("m", [[1.0]], explain=True).body or b"")["explain"] is True

    call = _core.evaluate("a@b", np.eye(2), np.array(["x", "y"]), positive_label=np.str_("y"))
    assert call.path == "/models/a@b/evaluate"
    assert json.loads(call.body or b"") == {
        "features": [[1.0, 0.0], [0.0, 1.0]],
        "labels": ["x", "y"],
        "positive_label": "y",
    }
    on_csv = _core.evaluate_csv("m", "t.csv", label="y", threshold=0.25, positive_label=np.int64(1))
    assert dict(on_csv.params) == {"label": "y", "threshold": "0.25", "positive_label": "1"}
    on_dataset = _core.evaluate_dataset("m", "d1", label="y", positive_label=True)
    assert json.loads(on_dataset.body or b"") == {
        "dataset": "d1",
        "label": "y",
        "positive_label": True,
    }
    assert cli.parse_label("1") == 1 and cli.parse_label("true") is True
    assert cli.parse_label("1.5") == "1.5" and cli.parse_label("pass") == "pass"
