"""CPU time of one ``POST /predict`` through the whole ASGI app, called directly (no sockets).

    PYTHONPATH=. python bench/inprocess.py                 # 1, 100 and 10,000 rows
    PYTHONPATH=. python bench/inprocess.py --profile 100   # cProfile of 100-row requests

The service runs inside its lifespan, as a server runs it; a breast-cancer model (569 x 30,
``load_breast_cancer``) is trained through ``POST /train``, and the bodies are rows of that data
set (inside the training range), the bodies ``bench/serve.py`` sends. Printed: microseconds of
process CPU time (``time.process_time``) per request, the minimum and the median over
``--repeat`` runs of ``--n`` requests. The machine's other load shows in the median more than
in the minimum; compare trees alternately in one session (``PYTHONPATH`` names the tree).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib
import os
import pstats
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from app.config import Settings
from app.main import create_app


def scope_for(path: str, body: bytes, method: str = "POST") -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }


async def call(app: Any, path: str, body: bytes, method: str = "POST") -> tuple[int, bytes]:
    scope = scope_for(path, body, method)
    status: list[int] = []
    out: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
        else:
            out.append(message.get("body", b""))

    await app(scope, receive, send)
    return status[0], b"".join(out)


async def timed(app: Any, body: bytes, n: int) -> float:
    """CPU microseconds per request over ``n`` requests."""
    scope = scope_for("/predict", body)
    message = {"type": "http.request", "body": body, "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    async def send(message: dict[str, Any]) -> None:
        return None

    start = time.process_time()
    for _ in range(n):
        await app(dict(scope), receive, send)
    return (time.process_time() - start) / n * 1e6


def reference_app(folder: Path, parameters: dict[str, Any]) -> Any:
    """bench/reference_server.py's app, on the model's weights with its standardisation folded in
    (as bench/serve.py gives it)."""
    coef, mean, scale = (np.asarray(parameters[k], dtype=float) for k in ("coef", "mean", "scale"))
    w = coef[0] / scale
    b = parameters["intercept"][0] - float(np.dot(coef[0], mean / scale))
    path = folder / "reference-model.json"
    path.write_bytes(orjson.dumps({"w": w.tolist(), "b": b}))
    os.environ["REFERENCE_MODEL"] = str(path)
    return importlib.import_module("bench.reference_server").app


async def run(args: argparse.Namespace) -> None:
    from sklearn.datasets import load_breast_cancer

    folder = Path(tempfile.mkdtemp())
    app = create_app(Settings(model_store_dir=folder / "models"))
    X, y = load_breast_cancer(return_X_y=True)
    async with app.router.lifespan_context(app):
        train = {"features": X.tolist(), "labels": y.tolist(), "params": {"max_iter": 2000}}
        status, answer = await call(app, "/train", orjson.dumps(train))
        assert status == 201, answer
        model_id = orjson.loads(answer)["id"]
        status, answer = await call(app, f"/models/{model_id}", b"", "GET")
        reference = reference_app(folder, orjson.loads(answer)["parameters"])
        bodies = {
            n: orjson.dumps({"model_id": model_id, "features": np.resize(X, (n, 30)).tolist()})
            for n in args.rows
        }
        for body in bodies.values():
            status, answer = await call(app, "/predict", body)
            assert status == 200, answer
            assert "warnings" not in orjson.loads(answer), "rows outside the training range"
            status, expected = await call(reference, "/predict", body)
            np.testing.assert_allclose(
                orjson.loads(answer)["probabilities"],
                orjson.loads(expected)["probabilities"],
                rtol=1e-9,
                atol=1e-12,
            )
        if args.profile:
            body = bodies[args.profile]
            await timed(app, body, 200)
            profiler = cProfile.Profile(time.process_time)
            profiler.enable()
            await timed(app, body, args.n)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(35)
            return
        print(f"load average: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
        print(f"{'rows':>6} {'service min/median us':>22} {'reference min/median us':>24} ratio")
        for n, body in bodies.items():
            count = max(20, args.n // max(1, n // 10)) if n > 100 else args.n
            runs: dict[Any, list[float]] = {app: [], reference: []}
            for target in runs:
                await timed(target, body, min(count, 500))  # warm-up
            for _ in range(args.repeat):
                for target, times in runs.items():
                    times.append(await timed(target, body, count))
            ours, ref = runs[app], runs[reference]
            print(
                f"{n:>6} {min(ours):10.1f} {statistics.median(ours):10.1f} "
                f"{min(ref):12.1f} {statistics.median(ref):11.1f} {min(ref) / min(ours):9.2f}"
                f"   ({args.repeat} x {count} requests each, CPU time)"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=lambda s: [int(v) for v in s.split(",")], default=[1, 100])
    ap.add_argument("--n", type=int, default=2000, help="requests per run")
    ap.add_argument("--repeat", type=int, default=7, help="runs (min and median printed)")
    ap.add_argument("--profile", type=int, default=0, help="cProfile requests of this many rows")
    args = ap.parse_args()
    if args.profile and args.profile not in args.rows:
        args.rows.append(args.profile)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
