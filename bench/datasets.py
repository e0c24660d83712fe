"""Datasets end to end: upload + parse + fit through a real server against pandas + scikit-learn,
and the out-of-core fit's time and memory against the same fit in memory. Prints two tables.

Usage::

    python bench/datasets.py                 # 1,000,000 x 20 CSV end to end (~2 minutes)
    python bench/datasets.py --big           # ... and the 10,000,000 x 20 fit (~4 min, 5 GB disk)
    python bench/datasets.py --rows 100000   # a quicker first table

1. A 1,000,000 x 20 CSV (features of various scales and offsets, bench/fit.py's ``synthetic``,
   and a 0/1 label; ~400 MB) is

   - uploaded to ``POST /datasets`` of a real ``uvicorn app.main:app`` (1 worker, sent with
     ``socket.sendfile`` so that the client costs the two shared cores nothing), which streams
     it to disk and parses it in the training child with pyarrow; then trained on with
     ``POST /train {"dataset": id, "label": "label"}``, in the training child, rows read in
     blocks from the memory-mapped file;
   - read with ``pandas.read_csv`` and fitted with scikit-learn's ``LogisticRegression`` (lbfgs)
     in this process, under ``threadpool_limits(1)`` (the training child uses one BLAS thread).

   Both solve the same problem with the same stopping rule, as in bench/fit.py: mean
   cross-entropy + l2/2 ||w||^2 on standardised features (scikit-learn: ``StandardScaler`` then
   ``C = 1 / (l2 n)``, inside its timed fit), stopped when the largest gradient component is at
   most ``--tol``. "parse" is the upload's answer (upload, parse, store) against ``read_csv``;
   "fit" is the training request (open the dataset, fit, store the model) against scaler + fit.
   ``--rounds`` rounds, the two sides alternately, against one server; the table shows the
   median of each part (the first round also starts the server's training child, ~1 s).

2. ``--big``: a 10,000,000 x 20 dataset (1.6 GB as float64) is uploaded as Parquet, then fitted
   in a fresh process twice, as the training child does it (``ModelService.train_dataset``:
   RowBlocks over the memory-mapped file) and from the same rows copied into one array
   (``app.engine.fit``). The parent samples each process's ``RssAnon`` (anonymous memory: what
   the file's mapped pages are not) every 10 ms; "peak" is the largest sample.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from fit import synthetic  # noqa: E402
from serve import Server, post_file  # noqa: E402


def write_csv(path: Path, n: int, d: int) -> None:
    """``synthetic(n, d)`` as CSV (shortest round-trip floats, via pyarrow's writer)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    X, y = synthetic(n, d)
    table = pa.table({**{f"x{j}": X[:, j] for j in range(d)}, "label": y})
    pacsv.write_csv(table, path)


def reference(path: Path, *, l2: float, tol: float) -> dict[str, float]:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        t = time.perf_counter()
        frame = pd.read_csv(path)
        parse = time.perf_counter() - t
        X = frame.drop(columns="label").to_numpy(dtype=np.float64)
        y = frame["label"].to_numpy()
        t = time.perf_counter()
        Xs = StandardScaler().fit_transform(X)
        model = LogisticRegression(C=1.0 / (l2 * len(y)), tol=tol, max_iter=100_000).fit(Xs, y)
        fit_s = time.perf_counter() - t
    return {
        "parse": parse,
        "fit": fit_s,
        "iterations": float(model.n_iter_[0]),
        "accuracy": float(model.score(Xs, y)),
    }


def service(svc: Server, path: Path, *, l2: float, tol: float) -> dict[str, float]:
    t = time.perf_counter()
    status, body = post_file(svc.port, "/datasets?label=label", body=path, content_type="text/csv")
    parse = time.perf_counter() - t
    if status != 201:
        raise RuntimeError(f"POST /datasets: {status} {body[:300]!r}")
    dataset = json.loads(body)
    t = time.perf_counter()
    r = httpx.post(
        f"{svc.url}/train",
        json={"dataset": dataset["id"], "label": "label", "params": {"l2": l2, "tol": tol}},
        timeout=3600,
    )
    fit_s = time.perf_counter() - t
    if r.status_code != 201:
        raise RuntimeError(f"POST /train: {r.status_code} {r.text[:300]}")
    training = r.json()["training"]
    httpx.delete(f"{svc.url}/datasets/{dataset['id']}")
    return {
        "parse": parse,
        "fit": fit_s,
        "iterations": float(training["iterations"]),
        "accuracy": float(training["accuracy"]),
        "engine fit": float(training["seconds"]),
    }


def table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for k, r in enumerate(rows):
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
        if k == 0:
            print("-|-".join("-" * w for w in widths))


def end_to_end(args: argparse.Namespace, tmp: Path) -> None:
    path = tmp / "data.csv"
    write_csv(path, args.rows, 20)
    size = path.stat().st_size
    print(f"{args.rows:,} x 20 CSV, {size / 2**20:.0f} MiB; l2={args.l2:g} tol={args.tol:g}")
    svc = Server("app.main:app", {"MODEL_STORE_DIR": str(tmp / "models")})
    runs: list[tuple[dict[str, float], dict[str, float]]] = []
    try:
        for _ in range(args.rounds):  # alternately, so that a busy spell hits both sides
            runs.append(
                (
                    service(svc, path, l2=args.l2, tol=args.tol),
                    reference(path, l2=args.l2, tol=args.tol),
                )
            )
    finally:
        svc.stop()
    print(
        "each round, service / reference end to end (s): "
        + ", ".join(f"{o['parse'] + o['fit']:.2f} / {r['parse'] + r['fit']:.2f}" for o, r in runs)
    )
    # the median of the rounds, part by part (the first upload also starts the training child)
    ours = {k: statistics.median(r[0][k] for r in runs) for k in runs[0][0]}
    ref = {k: statistics.median(r[1][k] for r in runs) for k in runs[0][1]}
    total_o, total_r = ours["parse"] + ours["fit"], ref["parse"] + ref["fit"]
    table(
        [
            ["", "service s", "pandas + sklearn s", "ratio"],
            [
                "parse (upload+parse / read_csv)",
                f"{ours['parse']:.2f}",
                f"{ref['parse']:.2f}",
                f"{ours['parse'] / ref['parse']:.2f}",
            ],
            [
                "fit (train request / scaler+fit)",
                f"{ours['fit']:.2f}",
                f"{ref['fit']:.2f}",
                f"{ours['fit'] / ref['fit']:.2f}",
            ],
            ["end to end", f"{total_o:.2f}", f"{total_r:.2f}", f"{total_o / total_r:.2f}"],
            ["iterations", f"{ours['iterations']:.0f}", f"{ref['iterations']:.0f}", ""],
            ["training accuracy", f"{ours['accuracy']:.4f}", f"{ref['accuracy']:.4f}", ""],
        ]
    )
    print(f"(of the service's fit, the engine's own fit took {ours['engine fit']:.2f} s)")


# ---- the 10M x 20 out-of-core fit ------------------------------------------------------------


def rss_anon(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return 0


CHILD = """
import json, os, sys, time
os.environ["OPENBLAS_NUM_THREADS"] = "1"
from pathlib import Path
import numpy as np
from app.config import Settings
from app.datasets import read_training_columns
from app.engine import FitParams, fit
from app.schemas import DatasetTrainRequest, TrainParams
from app.service import ModelService
from model_store import FileDatasetStore, JsonFileStore
root, dataset, mode, params = Path(sys.argv[1]), sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
datasets = FileDatasetStore(root / "datasets")
t = time.perf_counter()
if mode == "blocks":
    settings = Settings(model_store_dir=root, train_time_budget=3600)
    service = ModelService(JsonFileStore(root), settings)
    out = service.train_dataset(
        DatasetTrainRequest(dataset=dataset, label="label", params=TrainParams(**params)), datasets
    ).training
    print(json.dumps({"seconds": time.perf_counter() - t, "fit": out.seconds,
                      "iterations": out.iterations, "solver": out.solver}))
else:
    cols = read_training_columns(datasets, dataset, label="label", features=None)
    X = np.empty((cols.rows, len(cols.feature_names)))
    at = 0
    for batch in cols.batches:
        m = len(batch[0])
        for j, column in enumerate(batch):
            X[at:at + m, j] = column
        at += m
    labels = cols.labels
    del cols
    f = time.perf_counter()
    report = fit(X, labels, params=FitParams(**params)).report
    print(json.dumps({"seconds": time.perf_counter() - t, "fit": time.perf_counter() - f,
                      "iterations": report.iterations, "solver": report.solver}))
"""


def measured_fit(root: Path, dataset: str, mode: str, params: dict) -> dict:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), dataset, mode, json.dumps(params)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    peak = 0
    while proc.poll() is None:
        peak = max(peak, rss_anon(proc.pid) or 0)
        time.sleep(0.01)
    out = proc.stdout.read() if proc.stdout else ""
    if proc.returncode:
        raise RuntimeError(f"{mode} fit failed ({proc.returncode})")
    return {**json.loads(out), "peak": peak}


def big(args: argparse.Namespace, tmp: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n, d = 10_000_000, 20
    path = tmp / "big.parquet"
    rng = np.random.default_rng(0)
    w = rng.normal(size=d)
    schema = pa.schema(
        [pa.field(f"x{j}", pa.float64()) for j in range(d)] + [("label", pa.int64())]
    )
    with pq.ParquetWriter(path, schema, compression="none") as writer:
        for _ in range(n // 1_000_000):
            X = rng.normal(size=(1_000_000, d)) * rng.uniform(0.5, 5.0, size=d)
            y = (X @ w / 3 + rng.logistic(size=len(X)) > 0).astype(np.int64)
            writer.write_table(pa.table([*(X[:, j] for j in range(d)), y], schema=schema))
    svc = Server("app.main:app", {"MODEL_STORE_DIR": str(tmp / "models")})
    try:
        t = time.perf_counter()
        status, body = post_file(
            svc.port,
            "/datasets?label=label",
            body=path,
            content_type="application/vnd.apache.parquet",
        )
        upload = time.perf_counter() - t
    finally:
        svc.stop()
    if status != 201:
        raise RuntimeError(f"POST /datasets: {status} {body[:300]!r}")
    dataset = json.loads(body)
    path.unlink()
    size = n * d * 8
    params = {"l2": args.l2, "tol": args.tol}
    print(
        f"\n{n:,} x {d} (float64: {size / 1e9:.2f} GB; stored {dataset['bytes'] / 1e9:.2f} GB, "
        f"Parquet upload + parse {upload:.1f} s); l2={args.l2:g} tol={args.tol:g}"
    )
    rows = [["fit", "solver", "iterations", "process s", "fit s", "peak RssAnon", "of 1.6 GB"]]
    for mode, label in (("blocks", "out of core (dataset)"), ("memory", "in memory (array)")):
        r = measured_fit(tmp / "models", dataset["id"], mode, params)
        rows.append(
            [
                label,
                r["solver"],
                str(r["iterations"]),
                f"{r['seconds']:.1f}",
                f"{r['fit']:.1f}",
                f"{r['peak'] / 2**20:.0f} MiB",
                f"{r['peak'] / size:.1%}",
            ]
        )
    table(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--tol", type=float, default=1e-6, help="gradient tolerance for both")
    ap.add_argument("--l2", type=float, default=1e-4, help="lambda (C = 1 / (lambda n))")
    ap.add_argument("--rounds", type=int, default=5, help="end-to-end rounds (median)")
    ap.add_argument("--big", action="store_true", help="also the 10M x 20 out-of-core fit")
    ap.add_argument("--skip-end-to-end", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-datasets-") as tmp:
        if not args.skip_end_to_end:
            end_to_end(args, Path(tmp))
        if args.big:
            big(args, Path(tmp))


if __name__ == "__main__":
    main()
