"""The ``logreg`` command through subprocess, against a real server: the round trip and the exit
codes (0 done, 1 refused with the service's message on stderr, 2 usage, 3 unreachable)."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from logreg_client import Client
from logreg_client.cli import main
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
#: the console script pip made beside this Python (``python -m logreg_client`` is the same code)
LOGREG = Path(sys.executable).with_name("logreg")


def logreg(*args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGREG_")}
    if url is not None:
        env["LOGREG_URL"] = url
    return subprocess.run(
        [str(LOGREG), *args], capture_output=True, text=True, env=env, timeout=120
    )


def cells(line: str) -> list[str]:
    """A plain table's row: columns are two or more spaces apart (times hold one)."""
    return re.split(r"\s{2,}", line.strip())


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "exam.csv").write_text(EXAM)
    (tmp_path / "new.csv").write_text("hours_slept,hours_studied\n7.0,1.0\n6.5,4.5\n")
    return tmp_path


def test_round_trip(url: str, files: Path) -> None:
    train = logreg(
        "--json", "train", str(files / "exam.csv"), "--label", "result", "--name", "exam",
        "--param", "l2=0.001", "--param", "solver=newton", "--param", "standardize=true", "--wait",
        url=url,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr
    model = json.loads(train.stdout)
    assert model["name"] == "exam" and model["classes"] == ["fail", "pass"]

    out = files / "out.csv"
    predict = logreg("predict", model["id"], str(files / "new.csv"), "-o", str(out), url=url)
    assert predict.returncode == 0, predict.stderr
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert [r["prediction"] for r in rows] == ["fail", "pass"]
    assert set(rows[0]) == {"prediction", "proba_fail", "proba_pass"}

    listed = logreg("models", url=url)
    assert listed.returncode == 0 and model["id"] in listed.stdout and "exam" in listed.stdout
    # the common options also after the command
    as_json = logreg("models", "--json", "--limit", "1000", url=url)
    assert model["id"] in [m["id"] for m in json.loads(as_json.stdout)]
    shown = logreg("model", model["id"], url=url)
    assert shown.returncode == 0 and "l2=0.001" in shown.stdout and "newton" in shown.stdout

    # --url on the command line wins over LOGREG_URL
    deleted = logreg("--url", url, "delete", model["id"], url="http://127.0.0.1:9")
    assert deleted.returncode == 0 and model["id"] in deleted.stdout
    gone = logreg("model", model["id"], url=url)
    assert gone.returncode == 1 and f"404: no model with id '{model['id']}'" in gone.stderr


def test_names_aliases_rollback_audit(url: str, files: Path) -> None:
    start = datetime.now(UTC).isoformat()
    with Client(url) as client:  # version 1 (``logreg train`` is the round trip's)
        client.train_csv(files / "exam.csv", label="result", name="cli-exam", max_iter=2000)
    train = logreg("train", str(files / "exam.csv"), "--label", "result", "--name", "cli-exam",
                   "--param", "max_iter=2000", "--wait", url=url)  # fmt: skip
    assert train.returncode == 0 and "cli-exam:2" in train.stdout  # the version it made

    names = logreg("names", url=url)
    assert names.returncode == 0
    assert re.search(r"^cli-exam +2 +2 *$", names.stdout, re.MULTILINE), names.stdout
    assert logreg("alias", "set", "cli-exam", "champion", "1", url=url).stdout == (
        "cli-exam@champion -> version 1 (new)\n"
    )
    moved = logreg("--json", "alias", "set", "cli-exam", "champion", "2", url=url)
    assert json.loads(moved.stdout)["previous_version"] == 1
    shown = logreg("name", "cli-exam", url=url)  # newest first, the alias beside its version
    assert re.search(r"^2 +[0-9a-f]{32} .* champion$", shown.stdout.splitlines()[1])

    rollback = logreg("rollback", "cli-exam", "champion", url=url)
    assert rollback.stdout == "cli-exam@champion -> version 1 (was 2)\n"
    out = files / "out.csv"
    served = logreg("predict", "cli-exam@champion", str(files / "new.csv"), "-o", str(out), url=url)
    assert served.returncode == 0 and out.read_text().startswith("prediction,proba_fail")
    again = logreg("rollback", "cli-exam", "champion", url=url)
    assert again.returncode == 1 and "no previous version" in again.stderr

    history = logreg("alias", "history", "cli-exam", "champion", url=url).stdout.splitlines()
    assert [cells(line)[1] for line in history[1:]] == ["rollback", "set", "set"]
    assert logreg("alias", "delete", "cli-exam", "champion", url=url).returncode == 0
    unknown = logreg("alias", "set", "cli-exam", "champion", "9", url=url)
    assert unknown.returncode == 1 and "no version 9" in unknown.stderr

    expected = ["model.stored"] * 2 + ["alias.set"] * 2 + ["alias.rolled_back"] * 2
    expected += ["alias.deleted", "alias.set"]
    table = logreg("audit", "--since", start, url=url).stdout.splitlines()
    assert [cells(line)[1] for line in table[1:]] == expected
    assert "refused: name 'cli-exam' has no version 9" in table[-1]
    entries = json.loads(logreg("audit", "--since", "1h", "--json", url=url).stdout)
    assert [e["action"] for e in entries if e["target"].get("name") == "cli-exam"] == expected


@pytest.mark.parametrize(
    "argv",
    [
        ["alias", "set", "exam", "champion", "two"],
        ["alias", "history", "exam"],
        ["alias"],
        ["audit", "--since", "last week"],
    ],
)
def test_lifecycle_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:  # argparse's own exit, before any request
        main(argv)
    assert info.value.code == 2 and "usage: logreg" in capsys.readouterr().err


def test_refusals_print_the_service_detail(url: str, files: Path) -> None:
    wrong = logreg("train", str(files / "exam.csv"), "--label", "species", url=url)
    assert wrong.returncode == 1
    assert "query.label: there is no column 'species'" in wrong.stderr and wrong.stdout == ""
    bad = logreg("train", str(files / "exam.csv"), "--param", "max_iter=0", url=url)
    assert bad.returncode == 1 and "query.max_iter" in bad.stderr


def test_usage_errors_exit_2(url: str, files: Path) -> None:
    assert logreg("frobnicate", url=url).returncode == 2
    assert logreg("train", str(files / "exam.csv"), "--param", "nokey", url=url).returncode == 2
    missing = logreg("train", str(files / "nothing.csv"), url=url)
    assert missing.returncode == 2 and "nothing.csv" in missing.stderr


def test_unreachable_exits_3() -> None:
    result = logreg("models", url=f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 3 and "cannot reach" in result.stderr


def test_python_m_is_the_same_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "logreg_client", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout.startswith("logreg-client ")
