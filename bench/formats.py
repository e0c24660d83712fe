"""Latency of one prediction request per body format, against a real uvicorn process.

    python bench/formats.py [--rows 1000] [--features 20] [--repeat 30]

Prints the median and 90th percentile wall time of: /predict with JSON, /predict with CSV (CSV
answer), V2 infer with JSON tensors, and V2 infer with binary tensors (tritonclient's default).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.live_server import LiveServer


def timed(fn: Callable[[], httpx.Response], repeat: int) -> tuple[float, float]:
    fn()  # warm-up (model load, connection)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        r = fn()
        times.append(time.perf_counter() - t)
        assert r.status_code == 200, r.text
    times.sort()
    return statistics.median(times) * 1e3, times[int(0.9 * (len(times) - 1))] * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--features", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=30)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(a.rows, a.features))
    y = (X[:, 0] + rng.normal(size=a.rows) > 0).astype(int).tolist()
    with tempfile.TemporaryDirectory() as tmp, LiveServer(Path(tmp) / "models") as server:
        web = httpx.Client(base_url=server.url, timeout=60)
        mid = web.post(
            "/train", json={"features": X.tolist(), "labels": y, "params": {"max_iter": 50}}
        ).json()["id"]
        names = [f"f{j}" for j in range(a.features)]
        csv_body = (
            ",".join(names) + "\n" + "\n".join(",".join(map(repr, r)) for r in X.tolist())
        ).encode()
        v2_json = orjson.dumps(
            {
                "inputs": [
                    {
                        "name": "features",
                        "shape": list(X.shape),
                        "datatype": "FP64",
                        "data": X.ravel().tolist(),
                    }
                ]
            }
        )
        raw = X.astype("<f8").tobytes()
        header = orjson.dumps(
            {
                "inputs": [
                    {
                        "name": "features",
                        "shape": list(X.shape),
                        "datatype": "FP64",
                        "parameters": {"binary_data_size": len(raw)},
                    }
                ],
                "parameters": {"binary_data_output": True},
            }
        )
        cases: dict[str, Callable[[], httpx.Response]] = {
            "/predict JSON": lambda: web.post(
                "/predict", json={"model_id": mid, "features": X.tolist()}
            ),
            "/predict CSV -> CSV": lambda: web.post(
                f"/predict?model_id={mid}",
                content=csv_body,
                headers={"content-type": "text/csv", "accept": "text/csv"},
            ),
            "V2 infer JSON": lambda: web.post(f"/v2/models/{mid}/infer", content=v2_json),
            "V2 infer binary": lambda: web.post(
                f"/v2/models/{mid}/infer",
                content=header + raw,
                headers={"Inference-Header-Content-Length": str(len(header))},
            ),
        }
        print(f"{a.rows} rows x {a.features} features, {a.repeat} requests each")
        for name, fn in cases.items():
            median, p90 = timed(fn, a.repeat)
            print(f"{name:22s} median {median:8.2f} ms   p90 {p90:8.2f} ms")
        web.close()


if __name__ == "__main__":
    main()
