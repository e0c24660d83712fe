"""The service as users run it: a real uvicorn process on a free loopback port."""

import httpx
import pytest

from tests.live_server import LiveServer


@pytest.fixture
def server(tmp_path):
    with LiveServer(tmp_path / "models") as live:
        yield live.url, live.model_dir


def test_train_predict_list_delete_over_real_http(server):
    base, folder = server
    with httpx.Client(base_url=base, timeout=30) as c:
        r = c.post(
            "/train",
            json={"features": [[0.0], [1.0], [2.0], [3.0]], "labels": ["lo", "lo", "hi", "hi"]},
        )
        assert r.status_code == 201
        mid = r.json()["id"]
        assert (folder / f"{mid}.json").is_file()
        p = c.post("/predict", json={"model_id": mid, "features": [[0.0], [3.0]]}).json()
        assert p["predictions"] == ["lo", "hi"]
        assert [m["id"] for m in c.get("/models").json()["items"]] == [mid]
        assert c.delete(f"/models/{mid}").status_code == 204
        assert c.get(f"/models/{mid}").status_code == 404
        bad = c.post("/train", content=b"{oops", headers={"content-type": "application/json"})
        assert bad.status_code == 400 and "Traceback" not in bad.text
        assert c.get("/docs").status_code == 200
