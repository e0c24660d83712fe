"""The docs pages load only the service's own assets, and the schemas' examples work as shipped.

The real browser test is ``test_docs_browser.py``; these run everywhere, without a browser.
"""

import asyncio
import hashlib
import re

import httpx

from app.api.docs_ui import REDOC_VERSION, STATIC_DIR, SWAGGER_UI_VERSION
from app.main import create_app


def asset_urls(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)


def test_docs_pages_load_their_assets_from_the_service(client):
    for page in ("/docs", "/redoc"):
        r = client.get(page)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        urls = asset_urls(r.text)
        assert urls, r.text
        for url in urls:
            assert url.startswith("/"), f"{page} loads {url} from outside the service"
            assert client.get(url).status_code == 200, url
        assert "cdn." not in r.text and "fonts.googleapis" not in r.text
    docs = client.get("/docs").text
    assert f"/static/swagger-ui/swagger-ui-bundle.js?v={SWAGGER_UI_VERSION}" in docs
    assert '"validatorUrl": null' in docs  # no badge fetched from validator.swagger.io
    css = client.get(f"/static/swagger-ui/swagger-ui.css?v={SWAGGER_UI_VERSION}")
    assert css.headers["content-type"].startswith("text/css")
    js = client.get(f"/static/redoc/redoc.standalone.js?v={REDOC_VERSION}")
    assert "javascript" in js.headers["content-type"]


def test_vendored_files_are_the_versions_the_code_names():
    bundle = (STATIC_DIR / "swagger-ui" / "swagger-ui-bundle.js").read_text()
    assert f'PACKAGE_VERSION:"{SWAGGER_UI_VERSION}"' in bundle
    redoc = (STATIC_DIR / "redoc" / "redoc.standalone.js").read_text()
    assert f'"{REDOC_VERSION}"' in redoc
    # the one change to the npm file: ReDoc's footer logo no longer comes from its CDN
    assert "cdn.redoc.ly" not in redoc
    for licence in ("swagger-ui/LICENSE", "swagger-ui/NOTICE", "redoc/LICENSE"):
        assert (STATIC_DIR / licence).is_file()
    readme = (STATIC_DIR / "README.md").read_text()
    assert f"| {SWAGGER_UI_VERSION} |" in readme and f"| {REDOC_VERSION} |" in readme
    for name in ("redoc/redoc.standalone.js", "swagger-ui/swagger-ui-bundle.js"):
        digest = hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()
        assert digest in readme, f"{name} differs from the checksum app/static/README.md gives"


def test_docs_pages_keep_a_proxy_prefix(settings):
    """Behind a proxy at /api (uvicorn --root-path /api) the pages link to /api/static/..."""

    async def get(path: str) -> str:
        transport = httpx.ASGITransport(app=create_app(settings), root_path="/api")
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return (await c.get(path)).text

    for page in ("/docs", "/redoc"):
        urls = asset_urls(asyncio.run(get(page)))
        assert urls and all(u.startswith("/api/") for u in urls), urls


def test_try_it_out_examples_train_then_predict(client):
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    train_example = schemas["TrainRequest"]["examples"][0]
    predict_example = schemas["PredictRequest"]["examples"][0]
    assert predict_example["model_id"] == "latest"
    assert client.post("/predict", json=predict_example).status_code == 404  # nothing trained yet

    trained = client.post("/train", json=train_example)
    assert trained.status_code == 201, trained.text
    r = client.post("/predict", json=predict_example)
    assert r.status_code == 200, r.text
    assert r.json()["model_id"] == trained.json()["id"]  # the real id, not the alias
    assert r.json()["predictions"] == ["fail", "pass"]


def test_latest_is_the_newest_model(client):
    first = client.post("/train", json={"features": [[0.0], [1.0]], "labels": [0, 1]}).json()
    second = client.post("/train", json={"features": [[0.0], [1.0]], "labels": [1, 0]}).json()
    assert second["id"] > first["id"]
    r = client.post("/predict", json={"model_id": "latest", "features": [[0.0]]})
    assert r.json()["model_id"] == second["id"] and r.json()["predictions"] == [1]
    client.delete(f"/models/{second['id']}")
    r = client.post("/predict", json={"model_id": "latest", "features": [[0.0]]})
    assert r.json()["model_id"] == first["id"] and r.json()["predictions"] == [0]


def test_every_request_body_has_an_example(client):
    """Each JSON or CSV body on the docs page comes with an example, on the media
    type itself or on the schema it refers to. Raw tensor bytes (the V2 binary
    extension) are the one body no docs page can show as an example."""
    spec = client.get("/openapi.json").json()
    checked = 0
    for path, item in spec["paths"].items():
        for method, op in item.items():
            body = op.get("requestBody")
            if body is None:
                continue
            for media_type, media in body["content"].items():
                if media_type == "application/octet-stream":
                    continue
                example = media.get("example") or media.get("examples")
                if example is None and "$ref" in media["schema"]:
                    ref = media["schema"]["$ref"].rsplit("/", 1)[1]
                    example = spec["components"]["schemas"][ref].get("examples")
                assert example, f"{method} {path} {media_type}"
                checked += 1
    assert checked >= 6
