"""Serving benchmark: the service against a bare reference endpoint, side by side, on loopback.

    python bench/serve.py                      # throughput/latency table (about 6 minutes)
    python bench/serve.py --mode training      # predict p50/p99 idle vs during a 200,000 x 50 fit
    python bench/serve.py --mode startup       # startup-to-first-answer and idle RSS
    python bench/serve.py --mode refs          # 1 row by model id vs by NAME@ALIAS and NAME

Both servers run under uvicorn with 1 worker and the same flags; the load generator is ``wrk``
(``apt-get install -y wrk``) with one thread, the same for both. Each cell runs the reference and
the service alternately, ``--rounds`` times ``--seconds`` each (``--instances`` processes of each
server taking turns; with 2 CPUs or more, the servers on CPU 1 and wrk on CPU 0), and prints the
medians of req/s, rows/s, p50 and p99 latency and the ratio service / reference. The model is a
logistic regression of scikit-learn's ``load_breast_cancer`` (569 x 30) trained by the service;
the reference uses the same weights with the standardisation folded in. Figures are only
comparable within one run (the machine's load changes them).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import orjson

ROOT = Path(__file__).resolve().parent.parent
LUA = """
local f = io.open("{body}", "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %f %f %f %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``uvicorn <target>`` on a free loopback port, no access log, optionally under
    ``taskset -c <cpus>``; ready once ``GET /health`` answers 200."""

    def __init__(
        self, target: str, env: dict[str, str], workers: int = 1, *, cpus: str | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            target,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--no-access-log",
            "--workers",
            str(workers),
        ]
        if cpus is not None:
            cmd = ["taskset", "-c", cpus, *cmd]
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.ready_after = self._wait()

    def _wait(self) -> float:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        return time.perf_counter() - self.started
            except OSError:
                time.sleep(0.005)
        self.stop()
        raise RuntimeError(f"server {self.url} did not start")

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def wrk(
    url: str,
    body_file: Path,
    *,
    connections: int,
    seconds: float,
    tmp: Path,
    cpus: str | None = None,
) -> dict:
    """``wrk -t1`` posting ``body_file`` to ``url``/predict, optionally under ``taskset``; fails
    on any error. req/s, p50 and p99 (ms), the requests and seconds, and wrk's own CPU time."""
    script = tmp / f"post-{body_file.stem}.lua"
    script.write_text(LUA.replace("{body}", str(body_file)))
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "30s"]
    cmd += ["-s", str(script), f"{url}/predict"]
    if cpus is not None:
        cmd = ["taskset", "-c", cpus, *cmd]
    before = os.times()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    after = os.times()
    m = re.search(r"RESULT (\d+) ([\d.]+) ([\d.]+) ([\d.]+) (\d+) (\d+)", out)
    if not m:
        raise RuntimeError(out)
    n, dur_us, p50, p99, bad_status, sock_err = m.groups()
    if int(bad_status) or int(sock_err):
        raise RuntimeError(f"{url}: {bad_status} non-2xx answers, {sock_err} socket errors\n{out}")
    secs = float(dur_us) / 1e6
    return {
        "rps": int(n) / secs,
        "p50": float(p50) / 1e3,
        "p99": float(p99) / 1e3,
        "requests": int(n),
        "seconds": secs,
        "wrk_cpu": (after.children_user - before.children_user)
        + (after.children_system - before.children_system),
    }


def prepare(tmp: Path, service_url: str) -> tuple[str, Path]:
    """Train the breast-cancer model through the service; write the reference's weights."""
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    r = httpx.post(
        f"{service_url}/train",
        json={"features": X.tolist(), "labels": y.tolist(), "params": {"max_iter": 2000}},
        timeout=120,
    )
    r.raise_for_status()
    mid = r.json()["id"]
    p = httpx.get(f"{service_url}/models/{mid}").json()["parameters"]
    coef, mean, scale = (np.asarray(p[k], dtype=float) for k in ("coef", "mean", "scale"))
    w = coef[0] / scale
    b = p["intercept"][0] - float(np.dot(coef[0], mean / scale))
    ref = tmp / "reference-model.json"
    ref.write_bytes(orjson.dumps({"w": w.tolist(), "b": b}))
    return mid, ref


def bodies(tmp: Path, mid: str, sizes: tuple[int, ...] = (1, 100, 10_000)) -> dict[int, Path]:
    from sklearn.datasets import load_breast_cancer

    X = load_breast_cancer().data
    out = {}
    for n in sizes:
        rows = np.resize(X, (n, X.shape[1]))
        path = tmp / f"rows-{n}.json"
        path.write_bytes(orjson.dumps({"model_id": mid, "features": rows.tolist()}))
        out[n] = path
    return out


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def mode_table(args: argparse.Namespace, tmp: Path) -> None:
    # servers on one core and wrk on the other: they do not take each other's core by turns
    server_cpu, wrk_cpu = ("1", "0") if args.pin else (None, None)
    env = {"MODEL_STORE_DIR": str(tmp / "models")}
    svcs = [Server("app.main:app", env, cpus=server_cpu)]
    refs: list[Server] = []
    try:
        mid, ref_model = prepare(tmp, svcs[0].url)
        # Several processes of each: one process can be several per cent faster or slower than
        # another of the same code for its whole life (its memory layout); rounds take turns.
        svcs += [Server("app.main:app", env, cpus=server_cpu) for _ in range(args.instances - 1)]
        refs = [
            Server(
                "bench.reference_server:app", {"REFERENCE_MODEL": str(ref_model)}, cpus=server_cpu
            )
            for _ in range(args.instances)
        ]
        svc, ref = svcs[0], refs[0]
        files = bodies(tmp, mid, tuple(sorted({100, *args.rows})))
        check = [
            httpx.post(
                f"{u}/predict",
                content=files[100].read_bytes(),
                headers={"content-type": "application/json"},
            ).json()
            for u in (svc.url, ref.url)
        ]
        np.testing.assert_allclose(
            np.array(check[0]["probabilities"]),
            np.array(check[1]["probabilities"]),
            rtol=1e-9,
            atol=1e-12,
        )
        print(
            f"load average before: {loadavg()}; medians of {args.rounds} alternating runs of "
            f"{args.seconds:g} s per server and cell (x4 for 10,000 rows at 32), wrk -t1, "
            f"{args.instances} processes of each server taking turns"
            + (", servers on CPU 1 and wrk on CPU 0" if args.pin else "")
        )
        print(
            "| rows | conc | reference req/s | service req/s | ratio | rounds' ratios "
            "| ref p50 ms | svc p50 ms | ref p99 ms | svc p99 ms | p99 ratio | svc rows/s |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for n, path in files.items():
            if n not in args.rows:
                continue  # the 100-row body is only for the check above
            for conc in args.conc_table:
                # big bodies at 32 connections need longer for a few hundred samples
                secs = args.seconds * (4 if n >= 10_000 and conc > 1 else 1)
                for s in (*refs, *svcs):  # warm-up
                    wrk(s.url, path, connections=conc, seconds=1, tmp=tmp, cpus=wrk_cpu)
                # alternate the servers over several rounds; medians damp drifts in machine load
                runs: dict[str, list[dict]] = {"ref": [], "svc": []}
                for i in range(args.rounds):
                    pair = (("ref", refs[i % len(refs)]), ("svc", svcs[i % len(svcs)]))
                    for name, s in pair if i % 2 == 0 else pair[::-1]:
                        w = wrk(s.url, path, connections=conc, seconds=secs, tmp=tmp, cpus=wrk_cpu)
                        runs[name].append(w)
                r, v = (
                    {k: statistics.median(x[k] for x in runs[name]) for k in ("rps", "p50", "p99")}
                    for name in ("ref", "svc")
                )
                ratio = v["rps"] / r["rps"] if r["rps"] else float("nan")
                p99_ratio = v["p99"] / r["p99"] if r["p99"] else float("nan")
                # each round's two runs side by side: how far the machine moved the ratio
                pairs = zip(runs["ref"], runs["svc"], strict=True)
                rounds = [b["rps"] / a["rps"] for a, b in pairs]
                print(
                    f"| {n} | {conc} | {r['rps']:.1f} | {v['rps']:.1f} | {ratio:.2f} | "
                    f"{min(rounds):.2f}-{max(rounds):.2f} | "
                    f"{r['p50']:.2f} | {v['p50']:.2f} | {r['p99']:.2f} | {v['p99']:.2f} | "
                    f"{p99_ratio:.2f} | {v['rps'] * n:.0f} |",
                    flush=True,
                )
        print(f"load average after: {loadavg()}")
    finally:
        for s in (*svcs, *refs):
            s.stop()


def mode_refs(args: argparse.Namespace, tmp: Path) -> None:
    """1-row predictions on one server by model id, by ``NAME@ALIAS`` and by ``NAME``: what
    resolving a reference costs (issue 13's budget: at most 5% of the throughput)."""
    from sklearn.datasets import load_breast_cancer

    svc = Server("app.main:app", {"MODEL_STORE_DIR": str(tmp / "models")})
    try:
        X, y = load_breast_cancer(return_X_y=True)
        body = {"features": X.tolist(), "labels": y.tolist(), "name": "cancer"}
        r = httpx.post(f"{svc.url}/train", json={**body, "params": {"max_iter": 2000}}, timeout=120)
        r.raise_for_status()
        mid = r.json()["id"]
        httpx.put(
            f"{svc.url}/names/cancer/aliases/champion", json={"version": 1}
        ).raise_for_status()
        files = {}
        for ref in (mid, "cancer@champion", "cancer"):
            path = tmp / f"ref-{len(files)}.json"
            path.write_bytes(orjson.dumps({"model_id": ref, "features": X[:1].tolist()}))
            files[ref] = path
        print(
            f"load average before: {loadavg()}; medians of {args.rounds} alternating runs of "
            f"{args.seconds:g} s per reference, 1 row, wrk -t1, 1 worker"
        )
        print("| conc | by id req/s | by NAME@ALIAS req/s | ratio | by NAME req/s | ratio |")
        print("|---|---|---|---|---|---|")
        for conc in args.conc_table:
            for path in files.values():  # warm-up
                wrk(svc.url, path, connections=conc, seconds=1, tmp=tmp)
            runs: dict[str, list[float]] = {ref: [] for ref in files}
            for _ in range(args.rounds):
                for ref, path in files.items():
                    got = wrk(svc.url, path, connections=conc, seconds=args.seconds, tmp=tmp)
                    runs[ref].append(got["rps"])
            by_id, by_alias, by_name = (statistics.median(v) for v in runs.values())
            print(
                f"| {conc} | {by_id:.1f} | {by_alias:.1f} | {by_alias / by_id:.3f} | "
                f"{by_name:.1f} | {by_name / by_id:.3f} |",
                flush=True,
            )
        print(f"load average after: {loadavg()}")
    finally:
        svc.stop()


def post_file(port: int, path: str, *, body: Path, content_type: str) -> tuple[int, bytes]:
    """POST the file ``body`` with ``socket.sendfile``; returns the status and the answer's body
    (everything after the headers: the service answers with a Content-Length and closes).

    The uploading client shares the two cores with the server and wrk, so it must cost them as
    little as a client on another machine would. Measured for the 188 MiB training body: 0.02 s
    of client CPU this way, 0.3 s with httpx streaming the file, and 1.9 s with httpx sending it
    from memory (httpcore's sync ``write`` copies the unsent rest of the buffer after each
    partial send: encode/httpcore#1029). That 1.9 s, not the server, was most of the predict
    p99 during the upload.
    """
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {body.stat().st_size}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=600) as s, body.open("rb") as fh:
        s.sendall(head.encode())
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendfile(fh)  # a server that answers early (413) stops reading: read its answer
        answer = []
        with contextlib.suppress(ConnectionResetError):
            while chunk := s.recv(1 << 16):
                answer.append(chunk)
    status_line, _, rest = b"".join(answer).partition(b"\r\n")
    if not status_line.startswith(b"HTTP/1.1 "):
        raise RuntimeError(f"POST {path}: no HTTP answer ({status_line[:80]!r})")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def mode_training(args: argparse.Namespace, tmp: Path) -> None:
    # the training body (188 MiB at the default size) is over the default MAX_BODY_BYTES (100 MiB)
    env = {"MODEL_STORE_DIR": str(tmp / "models"), "MAX_BODY_BYTES": str(1 << 30)}
    svc = Server("app.main:app", env)
    try:
        mid, _ = prepare(tmp, svc.url)
        path = bodies(tmp, mid)[1]
        wrk(svc.url, path, connections=args.conc, seconds=1, tmp=tmp)  # warm-up, not counted
        rng = np.random.default_rng(0)
        n, d = args.train_rows, args.train_features
        X = rng.normal(size=(n, d))
        y = (X @ rng.normal(size=d) + rng.normal(size=n) > 0).astype(int)
        big = tmp / "train-big.json"
        big.write_bytes(
            orjson.dumps(
                {
                    "features": X.tolist(),
                    "labels": y.tolist(),
                    "params": {"max_iter": args.train_iter, "tol": 0.0},
                }
            )
        )
        del X, y
        print(
            f"load average before: {loadavg()}; training body "
            f"{big.stat().st_size / 2**20:.0f} MiB ({n} x {d}), predict 1 row at c={args.conc}"
        )
        # idle and busy are measured the same way: windows of --seconds, median of their p99s
        idle = [
            wrk(svc.url, path, connections=args.conc, seconds=args.seconds, tmp=tmp)
            for _ in range(args.idle_windows)
        ]
        result: dict = {}

        def train() -> None:
            t0 = time.perf_counter()
            status, answer = post_file(
                svc.port, "/train", body=big, content_type="application/json"
            )
            result.update(
                status=status,
                seconds=time.perf_counter() - t0,
                training=orjson.loads(answer).get("training") if status == 201 else answer,
            )

        t = threading.Thread(target=train)
        t.start()
        busy = []
        while t.is_alive():
            busy.append(wrk(svc.url, path, connections=args.conc, seconds=args.seconds, tmp=tmp))
        t.join()
        if result.get("status") != 201:
            raise SystemExit(f"the training was not accepted: {result}")
        print(
            f"training: HTTP {result['status']} in {result['seconds']:.1f} s "
            f"({result['training']['iterations']} iterations)"
        )
        print("| state | windows | req/s | p50 ms | p99 ms (median) | p99 of each window (ms) |")
        print("|---|---|---|---|---|---|")
        for name, windows in (("idle", idle), ("during training", busy)):
            each = " ".join(f"{w['p99']:.1f}" for w in windows)
            print(
                f"| {name} | {len(windows)} x {args.seconds:g} s "
                f"| {statistics.mean(w['rps'] for w in windows):.0f} "
                f"| {statistics.median(w['p50'] for w in windows):.2f} "
                f"| {statistics.median(w['p99'] for w in windows):.2f} "
                f"| {each} |"
            )
        ratio = statistics.median(b["p99"] for b in busy) / statistics.median(
            i["p99"] for i in idle
        )
        print(f"p99 during / idle: {ratio:.2f}; load average after: {loadavg()}")
    finally:
        svc.stop()


def mode_startup(args: argparse.Namespace, tmp: Path) -> None:
    floors: dict[str, list[float]] = {"": [], "1": []}
    for _ in range(3):  # what any FastAPI (+ NumPy) service pays on this interpreter
        for numpy_too, runs in floors.items():
            bare = Server("bench.bare_fastapi:app", {"BARE_WITH_NUMPY": numpy_too})
            runs.append(bare.ready_after)
            bare.stop()
    times = []
    for i in range(3):
        s = Server("app.main:app", {"MODEL_STORE_DIR": str(tmp / f"m{i}")})
        times.append(s.ready_after)
        if i < 2:
            s.stop()
    try:
        mid, _ = prepare(tmp, s.url)
        path = bodies(tmp, mid)[1]
        httpx.post(
            f"{s.url}/predict",
            content=path.read_bytes(),
            headers={"content-type": "application/json"},
        )
        time.sleep(0.5)
        mods = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys, app.main; print(sorted(m for m in "
                "('scipy', 'sklearn', 'pandas', 'threadpoolctl') if m in sys.modules))",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        print(f"load average: {loadavg()}")
        print(
            f"startup to first answer: median {statistics.median(times):.2f} s "
            f"(runs: {', '.join(f'{t:.2f}' for t in times)})"
        )
        for numpy_too, floor in floors.items():
            each = ", ".join(f"{t:.2f}" for t in floor)
            print(
                f"a one-route FastAPI app{' importing numpy' if numpy_too else ''} "
                f"(bench/bare_fastapi.py): median {statistics.median(floor):.2f} s (runs: {each})"
            )
        print(f"idle RSS of one worker after training + a prediction: {s.rss_mib():.1f} MiB")
        print(f"heavy modules imported by app.main: {mods or 'none'}")
    finally:
        s.stop()


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--mode", choices=["table", "training", "startup", "refs", "all"], default="table"
    )
    ap.add_argument("--seconds", type=float, default=3.0, help="wrk duration per run")
    ap.add_argument("--rounds", type=int, default=4, help="runs per server and cell (medians)")
    ap.add_argument(
        "--instances", type=int, default=2, help="--mode table: processes of each server"
    )
    ap.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=(os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None,
        help="--mode table: servers on CPU 1, wrk on CPU 0 (default with 2 CPUs or more)",
    )
    ap.add_argument("--conc", type=int, default=8, help="connections in --mode training")
    ap.add_argument("--idle-windows", type=int, default=3, help="--mode training: idle windows")
    ap.add_argument(
        "--rows", type=_ints, default=(1, 100, 10_000), help="--mode table: rows per request"
    )
    ap.add_argument("--conc-table", type=_ints, default=(1, 32), help="--mode table: connections")
    ap.add_argument("--train-rows", type=int, default=200_000)
    ap.add_argument("--train-features", type=int, default=50)
    ap.add_argument("--train-iter", type=int, default=300)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench/serve.py needs wrk: apt-get install -y wrk")
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as d:
        tmp = Path(d)
        modes = ["startup", "table", "training"] if args.mode == "all" else [args.mode]
        for m in modes:
            print(f"\n## {m}")
            modes_by_name = {
                "table": mode_table,
                "training": mode_training,
                "startup": mode_startup,
                "refs": mode_refs,
            }
            modes_by_name[m](args, tmp)


if __name__ == "__main__":
    main()
