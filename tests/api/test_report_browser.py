"""GET /models/{ref}/report in a real browser (issue 15): headless Chromium (playwright-core)
against a real uvicorn process; no request leaves the machine, no console error, every chart
has drawn marks (counted in the DOM), and a screenshot of each page is kept in ``artifacts/``
(or ``ARTIFACTS_DIR``) as the docs pages' are. Skipped without the browser tools, unless
``REQUIRE_BROWSER=1`` (tests/api/test_docs_browser.py says how to get them)."""

import json
import os
import subprocess
from pathlib import Path

import httpx

from tests.api.test_docs_browser import BROWSER_DIR, CHROMIUM, browser_tools  # noqa: F401
from tests.conftest import make_blobs, train
from tests.live_server import ROOT, LiveServer


def test_report_page_offline_in_chromium(browser_tools, tmp_path):  # noqa: F811
    artifacts = Path(os.environ.get("ARTIFACTS_DIR", ROOT / "artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    with LiveServer(tmp_path / "models") as server, httpx.Client(base_url=server.url) as c:
        # a binary polynomial model of two features, unpenalised (statistics), evaluated
        X, y = make_blobs(n=200, d=2, k=2, seed=1, spread=3.0)
        names = ["hours </script> studied", "hours_slept"]  # escaped in the page's JSON
        binary = train(c, X, y.tolist(), feature_names=names, params={"l2": 0}, name="exam")
        r = c.post("/models/exam/evaluate", json={"features": X.tolist(), "labels": y.tolist()})
        assert r.status_code == 200
        # a three-class model of four features, never evaluated
        X3, y3 = make_blobs(n=150, d=4, k=3, seed=2)
        multi = train(c, X3, [["a", "b", "c"][i] for i in y3])
        link = c.get(f"/models/{binary['id']}").json()["links"]["report"]
        assert c.get(link).headers["content-type"].startswith("text/html")
        run = subprocess.run(
            [
                "node",
                str(BROWSER_DIR / "check_report.mjs"),
                str(artifacts),
                f"{server.url}{link}",
                "binary",
                f"{server.url}/models/{multi['id']}/report",
                "multiclass",
            ],
            env={**os.environ, "CHROMIUM": CHROMIUM},
            capture_output=True,
            text=True,
            timeout=240,
        )
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout)
    assert "error" not in seen, seen["error"]
    assert seen["outside"] == []
    assert all(u.startswith(f"{server.url}/") for u in seen["requests"]), seen["requests"]
    assert f"{server.url}/static/vega/vega-embed.min.js?v=7.3.0" in seen["requests"]
    assert seen["page_errors"] == [] and seen["console_errors"] == []

    page = seen["pages"]["binary"]
    assert set(page["marks"]) == {
        "coefficients",
        "loss",
        "roc",
        "calibration",
        "confusion",
        "boundary",
    }
    for chart, groups in page["marks"].items():
        assert sum(groups.values()) > 0, (chart, groups)

    def count(chart: str, mark: str) -> list[int]:
        return [n for key, n in page["marks"][chart].items() if key.endswith(mark)]

    # the zero line, then a 95% interval and a point per coefficient: intercept + 2
    assert count("coefficients", "mark-rule") == [1, 3]
    assert count("coefficients", "mark-symbol") == [3]
    assert count("calibration", "mark-symbol")[0] >= 5
    assert count("confusion", "mark-rect") == [4] and count("confusion", "mark-text") == [4]
    assert count("boundary", "mark-rect")[0] == 60 * 60  # the grid
    assert sum(count("loss", "mark-symbol")) >= 2
    assert page["notes"] == []

    page = seen["pages"]["multiclass"]
    assert set(page["marks"]) == {"coefficients", "loss"}  # no evaluation, four features
    assert count_multi(page, "coefficients", "mark-symbol") == [3 * 4]
    assert "No evaluation yet" in page["notes"][0]
    for name in ("binary", "multiclass"):
        assert (artifacts / f"report-{name}.png").stat().st_size > 10_000


def count_multi(page: dict, chart: str, mark: str) -> list[int]:
    return [n for key, n in page["marks"][chart].items() if key.endswith(mark)]


def test_report_page_opens_in_chromium_when_api_keys_are_on(browser_tools, tmp_path):  # noqa: F811
    """A browser cannot send X-API-Key when it navigates: the page asks for HTTP Basic
    credentials and Chromium, given the key as password, opens it and draws it."""
    artifacts = Path(os.environ.get("ARTIFACTS_DIR", ROOT / "artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    key = "browser-key-0123456789abcdef"
    env = {"API_KEY": key}
    with LiveServer(tmp_path / "models", env=env) as server:
        X, y = make_blobs(n=150, d=4, k=3, seed=2)
        model = httpx.post(
            f"{server.url}/train",
            json={"features": X.tolist(), "labels": [["a", "b", "c"][i] for i in y]},
            headers={"X-API-Key": key},
        ).json()
        url = f"{server.url}/models/{model['id']}/report"
        assert httpx.get(url).status_code == 401

        def browse(credentials: str | None) -> dict:
            extra = {} if credentials is None else {"REPORT_CREDENTIALS": credentials}
            run = subprocess.run(
                ["node", str(BROWSER_DIR / "check_report.mjs"), str(artifacts), url, "keyed"],
                env={**os.environ, "CHROMIUM": CHROMIUM, **extra},
                capture_output=True,
                text=True,
                timeout=240,
            )
            assert run.returncode == 0, run.stderr[-3000:]
            return json.loads(run.stdout)

        seen = browse(f"analyst:{key}")
        assert "error" not in seen, seen["error"]
        assert seen["page_errors"] == [] and seen["console_errors"] == []
        page = seen["pages"]["keyed"]
        assert set(page["marks"]) == {"coefficients", "loss"}
        assert count_multi(page, "coefficients", "mark-symbol") == [3 * 4]
        refused = browse(f"analyst:{key}x")  # a wrong key: the page never renders
        assert "error" in refused or "keyed" not in refused["pages"]
