"""GET /models/{ref}/report without a browser (tests/api/test_report_browser.py draws it): the
page and its chart specifications, the link from GET /models/{ref}, and what a model without an
evaluation or without stored training ranges shows (issue 15)."""

from __future__ import annotations

import hashlib
import json
import re

from app.api.docs_ui import STATIC_DIR
from app.api.report import VEGA_EMBED_VERSION, VEGA_LITE_VERSION, VEGA_VERSION
from model_store import JsonFileStore, new_model_id
from tests.conftest import make_blobs, train


def charts(page: str) -> list[dict]:
    block = re.search(r'<script id="charts" type="application/json">(.*?)</script>', page, re.S)
    assert block is not None
    return json.loads(block.group(1))


def test_the_page_its_charts_and_the_link(client, settings):
    X, y = make_blobs(n=100, d=2, k=3, seed=6)
    model = train(client, X, [int(v) for v in y], feature_names=["a</script><b>", "b"])
    detail = client.get(f"/models/{model['id']}").json()
    assert detail["links"]["report"] == f"/models/{model['id']}/report"
    r = client.get(detail["links"]["report"])
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "/static/vega/vega-embed.min.js" in r.text and "https://" not in r.text.split(
        '<script id="charts"'
    )[0].replace("https://vega.github.io/schema", "")
    # the name cannot end the page's script early, nor add markup to its table
    assert "a</script><b>" not in r.text and "a&lt;/script&gt;&lt;b&gt;" in r.text
    assert [c["id"] for c in charts(r.text)] == ["coefficients", "loss", "boundary"]
    assert "No evaluation yet" in r.text

    client.post(
        f"/models/{model['id']}/evaluate",
        json={"features": X.tolist(), "labels": [int(v) for v in y]},
    )
    got = charts(client.get(f"/models/{model['id']}/report").text)
    assert [c["id"] for c in got] == [
        "coefficients",
        "loss",
        "roc",
        "calibration",
        "confusion",
        "boundary",
    ]
    roc = next(c for c in got if c["id"] == "roc")["spec"]
    assert {v["label"] for v in roc["data"]["values"]} == {"0", "1", "2"}

    # a model stored before training ranges: no boundary, said in a note
    store = JsonFileStore(settings.model_store_dir)
    record = store.load(model["id"])
    del record["inputs"], record["design_mean"]
    record["id"] = new_model_id()
    store.save(record)
    old = client.get(f"/models/{record['id']}/report").text
    assert "boundary" not in [c["id"] for c in charts(old)] and "training ranges" in old
    assert client.get(f"/models/{'f' * 32}/report").status_code == 404


def test_vendored_chart_files_are_the_versions_the_code_names():
    folder = STATIC_DIR / "vega"
    readme = (STATIC_DIR / "README.md").read_text()
    for file, version in (
        ("vega.min.js", VEGA_VERSION),
        ("vega-lite.min.js", VEGA_LITE_VERSION),
        ("vega-embed.min.js", VEGA_EMBED_VERSION),
    ):
        text = (folder / file).read_text()
        assert f'"{version}"' in text, file
        assert hashlib.sha256(text.encode()).hexdigest() in readme, file
        assert f"| {version} |" in readme
        assert (folder / f"LICENSE-{file.removesuffix('.min.js')}").is_file()
