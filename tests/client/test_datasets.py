"""Datasets through ``Client`` and ``AsyncClient`` against a real server: upload (CSV, gzip CSV,
Parquet) with progress, list, get, delete, and ``train_file`` at once and as a job."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from logreg_client import (
    AsyncClient,
    AsyncJob,
    Client,
    Dataset,
    InvalidInput,
    Job,
    ModelSummary,
    NotFound,
    _core,
    cli,
)
from tests.client.test_cli import cells, logreg
from tests.live_server import free_port

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


@pytest.fixture
def client(url: str) -> Iterator[Client]:
    with Client(url) as c:
        yield c


@pytest.fixture
def exam(tmp_path: Path) -> Path:
    path = tmp_path / "exam.csv"
    path.write_text(EXAM)
    return path


def test_upload_get_list_delete(client: Client, exam: Path) -> None:
    seen: list[tuple[int, int]] = []
    dataset = client.upload(
        exam, label="result", name="exams", progress=lambda s, t: seen.append((s, t))
    )
    assert isinstance(dataset, Dataset) and dataset.name == "exams" and dataset.rows == 8
    assert dataset.column_names == ["hours_studied", "hours_slept", "result"]
    studied = dataset.columns[0]
    assert (studied.dtype, studied.min, studied.max, studied.missing) == ("float64", 0.5, 5.0, 0)
    assert dataset.columns[2].dtype == "string" and dataset.columns[2].mean is None
    size = exam.stat().st_size
    assert seen and seen[-1] == (size, size)

    assert client.dataset(dataset.id) == dataset
    page = client.datasets(limit=1000)
    assert dataset.id in [d.id for d in page.items] and page.total >= 1

    client.delete_dataset(dataset.id)
    with pytest.raises(NotFound):
        client.dataset(dataset.id)
    with pytest.raises(NotFound):
        client.delete_dataset(dataset.id)


def test_gzip_and_parquet_give_the_same_dataset(client: Client, exam: Path) -> None:
    gz = exam.with_name("exam.csv.gz")
    gz.write_bytes(gzip.compress(exam.read_bytes()))
    parquet = exam.with_name("exam.parquet")
    rows = [line.split(",") for line in EXAM.split()[1:]]
    table = pa.table(
        {
            "hours_studied": [float(r[0]) for r in rows],
            "hours_slept": [float(r[1]) for r in rows],
            "result": [r[2] for r in rows],
        }
    )
    pq.write_table(table, parquet)
    plain = client.upload(exam, label="result")
    for path in (gz, parquet):
        other = client.upload(path, label="result")
        assert (other.rows, other.columns) == (plain.rows, plain.columns), path.name


def test_bad_file_is_refused_naming_the_cell(client: Client, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,label\n1,2,x\n3,zz,y\n")
    with pytest.raises(InvalidInput) as info:
        client.upload(bad)
    assert "zz" in str(info.value) and "line 3" in str(info.value)


def test_train_file_at_once_and_as_a_job(client: Client, exam: Path) -> None:
    model = client.train_file(exam, label="result", name="exam-file", l2=1e-3)
    assert isinstance(model, ModelSummary) and model.classes == ["fail", "pass"]
    assert model.name == "exam-file" and model.dataset_id is not None
    assert model.feature_names == ["hours_studied", "hours_slept"]
    assert client.dataset(model.dataset_id).rows == 8
    answer = client.predict(model.id, [[0.5, 8.0], [5.0, 7.0]])
    assert answer.predictions == ["fail", "pass"]

    # no label: the column the upload kept as the label (the last)
    job = client.train_file(exam, wait=False, features=["hours_studied"])
    assert isinstance(job, Job) and job.id is not None
    trained = job.wait()
    assert trained.n_features == 1 and trained.feature_names == ["hours_studied"]
    assert trained.dataset_id is not None and trained.dataset_id != model.dataset_id

    # the dataset stays: train on it again, by its columns
    again = client.train_dataset(model.dataset_id, label="result", features=["hours_slept"])
    assert again.feature_names == ["hours_slept"]
    with pytest.raises(InvalidInput) as info:
        client.train_dataset(model.dataset_id, label="result", features=["nope"])
    assert "nope" in str(info.value)


def test_async_client(url: str, exam: Path) -> None:
    async def main() -> None:
        async with AsyncClient(url) as client:
            seen: list[int] = []
            model = await client.train_file(
                exam, label="result", progress=lambda s, t: seen.append(s)
            )
            assert model.classes == ["fail", "pass"] and model.dataset_id is not None
            assert seen[-1] == exam.stat().st_size
            dataset = await client.dataset(model.dataset_id)
            assert dataset.rows == 8
            assert dataset.id in [d.id for d in (await client.datasets(limit=1000)).items]
            job = await client.train_file(exam, label="result", wait=False)
            assert isinstance(job, AsyncJob)
            assert (await job.wait()).classes == ["fail", "pass"]
            await client.delete_dataset(dataset.id)
            with pytest.raises(NotFound):
                await client.dataset(dataset.id)

    asyncio.run(main())


# --- the CLI ------------------------------------------------------------------------------------


def test_cli_upload_datasets_and_train_through_a_dataset(url: str, exam: Path) -> None:
    upload = logreg("--json", "upload", str(exam), "--label", "result", "--name", "cli", url=url)
    assert upload.returncode == 0, upload.stderr
    dataset = json.loads(upload.stdout)
    assert dataset["rows"] == 8 and dataset["name"] == "cli"

    listing = logreg("datasets", "--limit", "1000", url=url)
    assert listing.returncode == 0, listing.stderr
    row = next(cells(line) for line in listing.stdout.splitlines() if dataset["id"] in line)
    assert row[:2] == [dataset["id"], "cli"] and row[3:5] == ["8", "3"]

    shown = logreg("upload", str(exam), url=url)  # plain: its fields and its columns
    assert shown.returncode == 0 and "hours_studied" in shown.stdout and "float64" in shown.stdout

    # Parquet goes through a dataset without being asked (POST /datasets alone takes it)
    parquet = exam.with_name("exam.parquet")
    pq.write_table(pa.table({"x": [0.0, 1.0, 2.0, 3.0], "y": ["a", "a", "b", "b"]}), parquet)
    train = logreg("--json", "train", str(parquet), "--wait", "--param", "l2=0.01", url=url)
    assert train.returncode == 0, train.stderr
    model = json.loads(train.stdout)
    assert model["classes"] == ["a", "b"] and model["dataset"]["id"] in train.stderr

    # --dataset asks for it for a small CSV: the job's id on stdout, the dataset on stderr
    job = logreg("train", str(exam), "--label", "result", "--dataset", url=url)
    assert job.returncode == 0, job.stderr
    assert job.stderr.startswith("dataset ")
    with Client(url) as client:
        trained = client.job(job.stdout.strip()).wait()
    assert trained.dataset_id is not None and trained.classes == ["fail", "pass"]


def test_cli_upload_exit_codes(url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,label\nzz,x\n")
    refused = logreg("upload", str(bad), url=url)
    assert refused.returncode == 1 and "zz" in refused.stderr
    assert logreg("upload", str(tmp_path / "none.csv"), url=url).returncode == 2
    assert logreg("datasets", url=f"http://127.0.0.1:{free_port()}").returncode == 3


def test_large_files_go_through_a_dataset(exam: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not cli.through_dataset(exam)
    gz = exam.with_name("exam.csv.gz")
    gz.write_bytes(gzip.compress(exam.read_bytes()))
    assert cli.through_dataset(gz)
    monkeypatch.setattr(cli, "DATASET_FROM_BYTES", exam.stat().st_size)
    assert cli.through_dataset(exam)


def test_upload_request_by_file_name() -> None:
    """The sans-IO builder: the media type by the file's name, gzip sent as it is on disk."""
    names = ("a.csv", "a.CSV.GZ", "a.parquet")
    headers = {name: _core.upload(Path(name)).headers for name in names}
    assert headers["a.csv"] == {"content-type": "text/csv"}
    assert headers["a.CSV.GZ"] == {"content-type": "text/csv", "content-encoding": "gzip"}
    assert headers["a.parquet"] == {"content-type": "application/vnd.apache.parquet"}
    call = _core.upload("a.csv", label="y", name="n")
    assert (call.method, call.path) == ("POST", "/datasets")
    assert dict(call.params) == {"label": "y", "name": "n"}
    assert call.retry_statuses == frozenset({429})
    with pytest.raises(ValueError, match="dataset id"):
        _core.get_dataset("../models")
