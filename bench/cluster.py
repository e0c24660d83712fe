"""Scaling out: the PostgreSQL store against the folder store on the hot path, and throughput
through nginx with 1 and 2 replicas, side by side in one run, on loopback.

    python bench/cluster.py                  # --mode stores, then --mode scale (~4 minutes)
    python bench/cluster.py --mode stores    # 1 replica on PostgreSQL vs on the folder store
    python bench/cluster.py --mode scale     # nginx + 1 vs 2 replicas; per-core with taskset
    python bench/cluster.py --mode jobs      # trainings per minute with 1 vs 2 workers

- ``stores``: two replicas (uvicorn, 1 worker each), one with ``MODEL_STORE_URL`` on a
  PostgreSQL cluster of its own (tests/pg.py), one on a model folder; the same model trained on
  each; ``wrk`` (bench/serve.py's script) alternating between them, ``--rounds`` x
  ``--seconds``, medians; ratio PostgreSQL / folder. Both serve from the in-memory cache.
- ``scale``: replicas on PostgreSQL (1 uvicorn worker each) behind nginx (the deployment's
  template, tests/nginx.py), loaded by ``wrk`` at ``--conc`` connections: 1 replica direct
  (no nginx), 1 behind nginx, 2 behind nginx, alternating. Then the per-core figure: 1 replica
  pinned to CPU 1 with ``taskset``, nginx and wrk pinned to CPU 0; the CPU time each process
  used per request (from /proc) gives the model printed at the end.
- ``jobs``: trainings per minute with 1 vs 2 training workers (bench/workers.py's setups).

Figures are only comparable within one run; the load generator and nginx share the machine's
cores with the replicas. The load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.serve import Server, bodies, loadavg, prepare, wrk  # noqa: E402
from tests.live_server import children  # noqa: E402
from tests.nginx import NginxProxy  # noqa: E402
from tests.pg import PostgresCluster, find_bin  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


@dataclass
class Load:
    rps: float
    p50: float
    p99: float
    requests: int
    seconds: float
    wrk_cpu: float


def run_wrk(
    url: str, body: Path, *, conc: int, seconds: float, tmp: Path, cpus: str | None = None
) -> Load:
    """bench/serve.py's ``wrk`` (one thread) against ``url``/predict; fails on any error."""
    got = wrk(url, body, connections=conc, seconds=seconds, tmp=tmp, cpus=cpus)
    return Load(got["rps"], got["p50"], got["p99"], got["requests"], got["seconds"], got["wrk_cpu"])


def median_load(runs: list[Load]) -> Load:
    rps, p50, p99 = (statistics.median(getattr(r, k) for r in runs) for k in ("rps", "p50", "p99"))
    return Load(
        rps,
        p50,
        p99,
        requests=sum(r.requests for r in runs),
        seconds=sum(r.seconds for r in runs),
        wrk_cpu=sum(r.wrk_cpu for r in runs),
    )


def ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


# --- stores: PostgreSQL vs folder, one replica each -----------------------------------------


def mode_stores(args: argparse.Namespace, tmp: Path, pg: PostgresCluster) -> None:
    folder = Server("app.main:app", {"MODEL_STORE_DIR": str(tmp / "folder")})
    postgres = Server(
        "app.main:app",
        {"MODEL_STORE_DIR": str(tmp / "pg-data"), "MODEL_STORE_URL": pg.new_database()},
    )
    try:
        files = {}
        for name, replica in (("folder", folder), ("postgres", postgres)):
            mid, _ = prepare(tmp, replica.url)  # the same data, the same model, in each store
            (tmp / name).mkdir(exist_ok=True)
            files[name] = bodies(tmp / name, mid, args.rows)
        print(
            f"load average before: {loadavg()}; medians of {args.rounds} alternating runs of "
            f"{args.seconds:g} s per replica and cell, wrk -t1, 1 uvicorn worker each"
        )
        print(
            "| rows | conc | folder req/s | PostgreSQL req/s | ratio | folder p50 ms | PG p50 ms |"
        )
        print("|---|---|---|---|---|---|---|")
        for n in args.rows:
            for conc in args.conc:
                for name, replica in (("folder", folder), ("postgres", postgres)):  # warm-up
                    run_wrk(replica.url, files[name][n], conc=conc, seconds=1, tmp=tmp)
                runs: dict[str, list[Load]] = {"folder": [], "postgres": []}
                for _ in range(args.rounds):
                    for name, replica in (("folder", folder), ("postgres", postgres)):
                        load = run_wrk(
                            replica.url, files[name][n], conc=conc, seconds=args.seconds, tmp=tmp
                        )
                        runs[name].append(load)
                f, p = median_load(runs["folder"]), median_load(runs["postgres"])
                print(
                    f"| {n} | {conc} | {f.rps:.0f} | {p.rps:.0f} | {p.rps / f.rps:.2f} | "
                    f"{f.p50:.2f} | {p.p50:.2f} |",
                    flush=True,
                )
        print(f"load average after: {loadavg()}")
    finally:
        folder.stop()
        postgres.stop()


# --- scale: nginx in front of 1 and 2 replicas; per-core figures with taskset ---------------


def mode_scale(args: argparse.Namespace, tmp: Path, pg: PostgresCluster) -> None:
    url = pg.new_database()
    env = {"MODEL_STORE_DIR": str(tmp / "scale"), "MODEL_STORE_URL": url}
    ncpu = os.cpu_count() or 1
    replicas = [Server("app.main:app", env), Server("app.main:app", env)]
    # nginx with one worker per core, as the image's `worker_processes auto`
    lb1 = NginxProxy([f"127.0.0.1:{replicas[0].port}"], tmp / "nginx-1", workers=ncpu).start()
    lb2 = NginxProxy([f"127.0.0.1:{r.port}" for r in replicas], tmp / "nginx-2", workers=ncpu)
    lb2.start()
    try:
        mid, _ = prepare(tmp, replicas[0].url)
        files = bodies(tmp, mid, args.rows)
        setups = {
            "1 replica, direct": replicas[0].url,
            "1 replica, nginx": lb1.url,
            "2 replicas, nginx": lb2.url,
        }
        print(
            f"load average before: {loadavg()}; {ncpu} cores shared by wrk (1 thread), nginx "
            f"({ncpu} workers) and the replicas (1 uvicorn worker each, PostgreSQL store); "
            f"medians of {args.rounds} alternating runs of {args.seconds:g} s at "
            f"{args.scale_conc} connections"
        )
        print("| rows | " + " | ".join(f"{s} req/s" for s in setups) + " | 2 / 1 via nginx |")
        print("|---|" + "---|" * (len(setups) + 1))
        for n in args.rows:
            for u in setups.values():  # warm-up; both replicas' caches
                run_wrk(u, files[n], conc=args.scale_conc, seconds=1, tmp=tmp)
            runs: dict[str, list[Load]] = {s: [] for s in setups}
            for _ in range(args.rounds):
                for s, u in setups.items():
                    runs[s].append(
                        run_wrk(u, files[n], conc=args.scale_conc, seconds=args.seconds, tmp=tmp)
                    )
            rps = {s: median_load(r).rps for s, r in runs.items()}
            print(
                f"| {n} | "
                + " | ".join(f"{v:.0f}" for v in rps.values())
                + f" | {rps['2 replicas, nginx'] / rps['1 replica, nginx']:.2f} |",
                flush=True,
            )
    finally:
        lb1.stop()
        lb2.stop()
        for r in replicas:
            r.stop()
    if ncpu < 2 or not shutil.which("taskset"):
        print("per-core figures need 2 cores and taskset")
        return
    per_core(args, tmp, env, mid)
    print(f"load average after: {loadavg()}")


def per_core(args: argparse.Namespace, tmp: Path, env: dict[str, str], mid: str) -> None:
    """1 replica on CPU 1; nginx (1 worker) and wrk on CPU 0. What each costs per request."""
    replica = Server("app.main:app", env, cpus="1")
    lb = NginxProxy([f"127.0.0.1:{replica.port}"], tmp / "nginx-pinned", workers=1)
    lb.start(prefix=["taskset", "-c", "0"])
    assert lb.proc is not None
    try:
        files = bodies(tmp, mid, args.rows)
        print(
            "\nper core: 1 replica pinned to CPU 1; nginx (1 worker) and wrk pinned to CPU 0; "
            f"{args.rounds} runs of {args.seconds:g} s at {args.scale_conc} connections; CPU "
            "time per request from /proc"
        )
        print(
            "| rows | req/s | replica CPU busy | replica us/req | nginx us/req | wrk us/req "
            "| model: req/s per core of replicas | model: req/s per core, nginx on the same cores |"
        )
        print("|---|---|---|---|---|---|---|---|")
        model = {}
        for n in args.rows:
            run_wrk(lb.url, files[n], conc=args.scale_conc, seconds=1, tmp=tmp, cpus="0")
            nginx = [lb.proc.pid, *children(lb.proc.pid)]  # its master and workers
            rep0, lb0 = cpu_seconds([replica.proc.pid]), cpu_seconds(nginx)
            runs = [
                run_wrk(
                    lb.url, files[n], conc=args.scale_conc, seconds=args.seconds, tmp=tmp, cpus="0"
                )
                for _ in range(args.rounds)
            ]
            rep = cpu_seconds([replica.proc.pid]) - rep0
            ngx = cpu_seconds(nginx) - lb0
            m = median_load(runs)
            t_rep, t_ngx, t_wrk = rep / m.requests, ngx / m.requests, m.wrk_cpu / m.requests
            model[n] = (1 / t_rep, 1 / (t_rep + t_ngx))
            print(
                f"| {n} | {m.rps:.0f} | {rep / m.seconds:.0%} | {1e6 * t_rep:.0f} | "
                f"{1e6 * t_ngx:.0f} | {1e6 * t_wrk:.0f} | {model[n][0]:.0f} | {model[n][1]:.0f} |",
                flush=True,
            )
        print(
            "\nmodel: the hot path needs no database query (the in-memory cache) and replicas "
            "share nothing else, so throughput grows with the cores given to replicas: C cores of "
            "replicas ~ C x (req/s per core); with nginx on the same machine, C x (req/s per "
            "core, nginx on the same cores). Load generators run elsewhere."
        )
        for n, (per, with_ngx) in model.items():
            alone = ", ".join(f"{c} cores ~{c * per:,.0f}" for c in (1, 2, 4, 8, 16))
            shared = ", ".join(f"{c} cores ~{c * with_ngx:,.0f}" for c in (2, 4, 8, 16))
            print(f"  {n} row(s), req/s: {alone} (replicas only); {shared} (nginx on them too)")
    finally:
        lb.stop()
        replica.stop()


# --- jobs: trainings per minute with 1 vs 2 workers (bench/workers.py's setups) -----------


def mode_jobs(args: argparse.Namespace, tmp: Path, pg: PostgresCluster) -> None:
    """Training jobs per minute with 1 vs 2 training workers (``python -m app.worker``) on a
    queue of ``--jobs`` small trainings sent at once with ``Prefer: respond-async``, beside one
    server running its own jobs on the folder store: bench/workers.py's setups and trainings
    (2,000 x 20, L-BFGS), ``--rounds`` alternating runs here, medians."""
    from bench import workers

    jobs = workers.bodies(args.jobs, 2000, 20)
    setups = {
        "folder store, jobs in the server": workers.folder_reference,
        "PostgreSQL, 1 worker": workers.postgres_workers(pg, 1),
        "PostgreSQL, 2 workers": workers.postgres_workers(pg, 2),
    }
    print(f"load average before: {loadavg()}; {args.jobs} jobs of 2,000 x 20 (L-BFGS) per run")
    seconds: dict[str, list[float]] = {name: [] for name in setups}
    for _ in range(args.rounds):
        for name, run in setups.items():
            seconds[name].append(run(jobs))
    print("| setup | median s | jobs per minute | vs 1 worker |")
    print("|---|---|---|---|")
    one = statistics.median(seconds["PostgreSQL, 1 worker"])
    for name, values in seconds.items():
        med = statistics.median(values)
        print(f"| {name} | {med:.2f} | {60 * args.jobs / med:.0f} | {one / med:.2f} |")
    print(f"load average after: {loadavg()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--mode", choices=["stores", "scale", "jobs", "all"], default="all")
    ap.add_argument("--seconds", type=float, default=3.0, help="wrk duration per run")
    ap.add_argument("--rounds", type=int, default=3, help="runs per setup and cell (medians)")
    ap.add_argument("--rows", type=ints, default=(1, 100), help="rows per prediction")
    ap.add_argument("--conc", type=ints, default=(1, 32), help="--mode stores: connections")
    ap.add_argument("--scale-conc", type=int, default=32, help="--mode scale: connections")
    ap.add_argument("--jobs", type=int, default=20, help="--mode jobs: trainings queued")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench/cluster.py needs wrk: apt-get install -y wrk")
    bin_dir = find_bin()
    if bin_dir is None:
        sys.exit("bench/cluster.py needs PostgreSQL's server binaries: apt-get install postgresql")
    modes = ["stores", "scale", "jobs"] if args.mode == "all" else [args.mode]
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as d:
        tmp = Path(d)
        pg = PostgresCluster(bin_dir).start()
        try:
            for m in modes:
                print(f"\n## {m}", flush=True)
                {"stores": mode_stores, "scale": mode_scale, "jobs": mode_jobs}[m](args, tmp, pg)
        finally:
            pg.stop()


if __name__ == "__main__":
    main()
