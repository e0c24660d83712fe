"""The docs pages in a real browser: headless Chromium driven by playwright-core (Node), against a
real uvicorn process, with every request the pages make recorded.

Needs ``/usr/bin/chromium`` (or ``CHROMIUM``), ``node`` and ``npm ci --prefix tests/browser``;
without them the test is skipped, unless ``REQUIRE_BROWSER=1`` (set by ``.ci/run``) makes that a
failure. Screenshots go to ``artifacts/`` (or ``ARTIFACTS_DIR``).
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.live_server import ROOT, LiveServer

BROWSER_DIR = ROOT / "tests" / "browser"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def missing_tools() -> list[str]:
    missing = []
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        missing.append(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    if shutil.which("node") is None:
        missing.append("node")
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        missing.append("playwright-core (npm ci --prefix tests/browser)")
    return missing


@pytest.fixture
def browser_tools() -> None:
    missing = missing_tools()
    if not missing:
        return
    reason = "browser test needs " + ", ".join(missing)
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"REQUIRE_BROWSER=1 but the {reason}")
    pytest.skip(reason)


def operations(spec: dict) -> set[tuple[str, str]]:
    return {(method, path) for path, item in spec["paths"].items() for method in item}


@pytest.mark.slow
def test_docs_and_redoc_render_offline_in_chromium(browser_tools, tmp_path):
    artifacts = Path(os.environ.get("ARTIFACTS_DIR", ROOT / "artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "failure.png").unlink(missing_ok=True)
    with LiveServer(tmp_path / "models") as server:
        spec = httpx.get(f"{server.url}/openapi.json").json()
        run = subprocess.run(
            ["node", str(BROWSER_DIR / "check_docs.mjs"), server.url, str(artifacts)],
            env={**os.environ, "CHROMIUM": CHROMIUM},
            capture_output=True,
            text=True,
            timeout=240,
        )
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout)
    assert "error" not in seen, seen["error"]

    # nothing left the machine: every request went to the server under test
    assert seen["outside"] == []
    assert seen["requests"] and all(
        u.startswith(f"{server.url}/") or u.startswith(("data:", "blob:")) for u in seen["requests"]
    ), seen["requests"]
    assert f"{server.url}/static/swagger-ui/swagger-ui-bundle.js" in " ".join(seen["requests"])
    assert seen["page_errors"] == [] and seen["console_errors"] == []

    # Swagger UI rendered every operation of /openapi.json, and nothing else
    rendered = {(op["method"], op["path"]) for op in seen["docs_operations"]}
    assert rendered == operations(spec)
    assert len(seen["docs_operations"]) == len(rendered)

    # "Try it out" with the shipped examples: train, then predict with the model just trained
    trained, predicted = seen["try_it_out"]["/train"], seen["try_it_out"]["/predict"]
    assert trained["status"] == "201", trained
    assert predicted["status"] == "200", predicted
    model_id = json.loads(trained["body"])["id"]
    assert json.loads(predicted["body"])["model_id"] == model_id

    # ReDoc rendered a section for every operation
    op_ids = {op["operationId"] for item in spec["paths"].values() for op in item.values()}
    assert set(seen["redoc_operations"]) == op_ids
    assert seen["docs_title"].endswith("Swagger UI") and seen["redoc_title"].endswith("ReDoc")
    assert "HeadlessChrome" in seen["user_agent"]
    for shot in ("docs.png", "docs-try-it-out.png", "redoc.png"):
        assert (artifacts / shot).stat().st_size > 10_000, shot
