"""Files damaged on disk, through a real server: the damaged model answers a clear 409, the others
keep working, the listing marks it, and the process keeps running."""

from __future__ import annotations

import httpx
import orjson

from model_store.json_store import checksum
from tests.live_server import LiveServer

GOOD = {
    "features": [[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 3.0]],
    "labels": ["a", "a", "b", "b"],
}


def reseal(body: dict) -> bytes:
    """A hand edit made by someone who also recomputed the checksum."""
    body = {k: v for k, v in body.items() if k != "checksum"}
    body["checksum"] = checksum(body)
    return orjson.dumps(body)


DAMAGE = {
    "truncated": lambda raw: raw[: len(raw) // 2],
    "empty": lambda raw: b"",
    "weight edited": lambda raw: (
        raw.replace(b'"coef": [\n', b'"coef": [\n [0.5],', 1)
        if b'"coef": [\n' in raw
        else raw.replace(b"[[", b"[[9.0, ", 1)
    ),
    "checksum removed": lambda raw: orjson.dumps(
        {k: v for k, v in orjson.loads(raw).items() if k != "checksum"}
    ),
    "resealed, wrong shape": lambda raw: reseal(
        {**orjson.loads(raw), "model": {**orjson.loads(raw)["model"], "coef": [[1.0]]}}
    ),
    "resealed, no model": lambda raw: reseal(
        {k: v for k, v in orjson.loads(raw).items() if k != "model"}
    ),
    "resealed, NaN-like null weight": lambda raw: reseal(
        {**orjson.loads(raw), "model": {**orjson.loads(raw)["model"], "intercept": [None]}}
    ),
    "future schema version": lambda raw: reseal({**orjson.loads(raw), "schema_version": 99}),
    "not an object": lambda raw: b"[1, 2, 3]",
}


def test_damaged_files_are_409s_and_the_rest_keeps_working(tmp_path):
    with (
        LiveServer(tmp_path / "models") as server,
        httpx.Client(base_url=server.url, timeout=30) as c,
    ):
        ids = [c.post("/train", json=GOOD).json()["id"] for _ in range(len(DAMAGE) + 1)]
        good, damaged = ids[0], dict(zip(DAMAGE, ids[1:], strict=True))
        for how, model_id in damaged.items():
            path = server.model_dir / f"{model_id}.json"
            path.write_bytes(DAMAGE[how](path.read_bytes()))
        (server.model_dir / "notes.json").write_text("not a model")

        for how, model_id in damaged.items():
            p = c.post("/predict", json={"model_id": model_id, "features": [[1.0, 2.0]]})
            assert p.status_code == 409, (how, p.text)
            assert "corrupt" in p.json()["detail"] and model_id in p.json()["detail"], how
            assert c.get(f"/models/{model_id}").status_code == 409, how

        listing = c.get("/models", params={"limit": 100}).json()
        assert [m["id"] for m in listing["items"]] == [good]
        assert sorted(listing["unreadable"]) == sorted(damaged.values())
        assert listing["total"] == len(ids)
        ok = c.post("/predict", json={"model_id": good, "features": [[3.0, 3.0]]})
        assert ok.status_code == 200 and ok.json()["predictions"] == ["b"]
        assert c.get("/health").status_code == 200

        for model_id in damaged.values():  # a damaged model can be deleted, then it is gone
            assert c.delete(f"/models/{model_id}").status_code == 204
            assert c.get(f"/models/{model_id}").status_code == 404
        assert c.get("/models").json() == {
            **c.get("/models").json(),
            "total": 1,
            "unreadable": [],
        }
        assert server.proc is not None and server.proc.poll() is None
        assert "Traceback" not in server.log()
