"""The cluster on loopback, without Docker: PostgreSQL, 2 API replicas (real uvicorn) that only
queue training jobs, 2 training workers (``python -m app.worker``), all on one database and one
dataset folder, and a real nginx in front with the deployment's own configuration
(deploy/nginx.conf.template, see tests/nginx.py). Through nginx: a training, then predictions
served by both replicas, the request id and the client address passed on; an alias move
followed by both; a training job run by a worker and watched to its end as server-sent events; a
replica SIGKILLed under load and no request lost. And the database password from libpq's
environment, not the URL, as the compose file gives it."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_blobs, record_figures
from tests.live_server import LiveServer, WorkerProcess
from tests.nginx import NginxProxy, find_nginx
from tests.pg import PostgresCluster

ROWS = [[0.5, -0.5], [1.0, 2.0]]


class Cluster:
    """``replicas`` LiveServers and ``workers`` WorkerProcesses on ``store_url``, with one shared
    ``MODEL_STORE_DIR`` (the datasets' volume in docker-compose.cluster.yml), behind one nginx.
    The replicas only queue training jobs (``TRAIN_JOBS_IN_SERVER=false``), as in the compose
    file; the workers run them."""

    def __init__(self, root: Path, store_url: str, *, replicas: int = 2, workers: int = 2) -> None:
        self.root = root
        self.env = {"MODEL_STORE_URL": store_url}
        folder = root / "shared"
        self.replicas = [
            LiveServer(folder, env={**self.env, "TRAIN_JOBS_IN_SERVER": "false"})
            for _ in range(replicas)
        ]
        self.workers = [
            WorkerProcess(folder, env=self.env, args=["--name", f"w{i}"]) for i in range(workers)
        ]
        self.lb = NginxProxy([f"127.0.0.1:{r.port}" for r in self.replicas], root / "nginx")

    def start(self) -> Cluster:
        # the replicas and the workers start side by side (the first migrates the schema, the
        # others wait for it)
        processes: list[LiveServer | WorkerProcess] = [*self.replicas, *self.workers]
        with ThreadPoolExecutor(len(processes)) as pool:
            list(pool.map(lambda p: p.start(), processes))
        self.lb.start()
        return self

    def served_by(self, *request_ids: str) -> dict[str, str]:
        """Request id -> the replica (``host:port``) nginx passed it to, from nginx's access log
        (which nginx writes once the answer is sent: waits for ``request_ids`` to be there)."""
        deadline = time.monotonic() + 10
        while True:
            out = {}
            for line in self.lb.access_log():
                m = re.search(r"upstream=(\S+?),? .*request_id=(\S+)$", line)
                if m:
                    out[m.group(2)] = m.group(1)
            if all(i in out for i in request_ids) or time.monotonic() > deadline:
                return out
            time.sleep(0.01)

    def stop(self) -> None:
        self.lb.stop()
        processes: list[LiveServer | WorkerProcess] = [*self.workers, *self.replicas]
        for process in processes:
            process.stop()


@pytest.fixture(scope="module")
def cluster(
    pg_cluster: PostgresCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """One cluster for this module's tests (each trains under its own name); the SIGKILL test,
    last, restarts the replica it kills."""
    if find_nginx() is None:
        if os.environ.get("REQUIRE_NGINX") == "1":  # .ci/run: a skip would hide the cluster
            pytest.fail("nginx is not installed (apt-get install nginx-light)")
        pytest.skip("nginx is not installed")
    c = Cluster(tmp_path_factory.mktemp("cluster"), pg_cluster.new_database())
    try:
        yield c.start()
    finally:
        c.stop()


def train(c: httpx.Client, name: str, seed: int) -> dict:
    X, y = make_blobs(n=60, d=2, seed=seed)
    r = c.post("/train", json={"features": X.tolist(), "labels": y.tolist(), "name": name})
    assert r.status_code == 201, r.text
    return r.json()


def predicted_rows(server: LiveServer, model_id: str) -> float:
    """``logreg_predicted_rows_total`` of ``model_id`` in that replica's own /metrics."""
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    m = re.search(
        rf'^logreg_predicted_rows_total\{{model_id="{model_id}"\}} (\S+)$', text, re.MULTILINE
    )
    return float(m.group(1)) if m else 0.0


def test_a_model_trained_through_nginx_is_served_by_both_replicas(cluster: Cluster) -> None:
    addresses = {f"127.0.0.1:{r.port}" for r in cluster.replicas}
    with httpx.Client(base_url=cluster.lb.url, timeout=30) as c:
        r = c.get("/health")
        assert r.status_code == 200 and r.headers["x-request-id"]
        # a client behind its own proxy: nginx adds the address it sees (127.0.0.1, trusted by
        # uvicorn's FORWARDED_ALLOW_IPS default), so the service records the original client
        X, y = make_blobs(n=60, d=2, seed=1)
        r = c.post(
            "/train",
            json={"features": X.tolist(), "labels": y.tolist(), "name": "churn"},
            headers={"X-Request-ID": "train-1", "X-Forwarded-For": "203.0.113.7"},
        )
        assert r.status_code == 201, r.text
        model = r.json()
        entry = next(e for e in c.get("/audit").json()["items"] if e["request_id"] == "train-1")
        assert entry["action"] == "model.stored"
        assert entry["client"].startswith("203.0.113.7:"), entry
        for i in range(10):
            r = c.post(
                "/predict",
                json={"model_id": "churn", "features": ROWS},
                headers={"X-Request-ID": f"predict-{i}"},
            )
            assert r.status_code == 200, r.text
            assert r.json()["model_id"] == model["id"]
            assert r.headers["x-request-id"] == f"predict-{i}"  # passed through, and back
        # no id sent: nginx makes one, and the replica answers with nginx's
        r = c.get("/health")
        nginx_id = r.headers["x-request-id"]
    served = cluster.served_by(nginx_id, *(f"predict-{i}" for i in range(10)))
    assert {served[f"predict-{i}"] for i in range(10)} == addresses  # round robin
    assert served[nginx_id] in addresses
    # each replica counted its own share of the 10 predictions (2 rows each)
    counts = [predicted_rows(server, model["id"]) for server in cluster.replicas]
    assert all(n > 0 for n in counts) and sum(counts) == 20, counts


def test_an_alias_moved_through_nginx_is_followed_by_both_replicas(cluster: Cluster) -> None:
    """After each move returns, requests through nginx (round robin: one replica, then the
    other) until each replica has answered with the new version. The contract is "within
    100 ms" (PostgreSQL NOTIFY to each replica's cache), not "the very next request": the
    figures count the next requests that still got the old version, and the worst delay."""
    addresses = {f"127.0.0.1:{r.port}" for r in cluster.replicas}
    with httpx.Client(base_url=cluster.lb.url, timeout=30) as c:
        ids = {v: train(c, "moving", seed=v)["id"] for v in (1, 2)}
        stale_next, worst, n = 0, 0.0, 0
        for i in range(10):
            version = 1 + i % 2
            r = c.put("/names/moving/aliases/prod", json={"version": version})
            assert r.status_code == 200, r.text
            moved = time.monotonic()
            fresh: set[str] = set()
            sent: list[tuple[str, bool]] = []
            while fresh != addresses:
                n += 1
                rid = f"move-{n}"
                r = c.post(
                    "/predict",
                    json={"model_id": "moving@prod", "features": ROWS},
                    headers={"X-Request-ID": rid},
                )
                assert r.status_code == 200, r.text
                ok = r.json()["model_id"] == ids[version]
                sent.append((rid, ok))
                if ok:
                    fresh.add(cluster.served_by(rid)[rid])
                else:
                    worst = max(worst, time.monotonic() - moved)
                assert time.monotonic() - moved < 10, "a replica kept serving the old version"
            stale_next += sum(not ok for _, ok in sent[:2])
    record_figures(
        "alias moved through nginx -> both replicas serve the new version",
        moves=10,
        stale_among_the_next_two_requests=stale_next,
        worst_stale_ms=round(1000 * worst, 1),
        target_ms=100,
    )


def test_a_job_queued_through_nginx_is_run_by_a_worker_and_streamed_to_its_end(
    cluster: Cluster,
) -> None:
    """``Prefer: respond-async`` through nginx: 202 and a job, which a worker (not a replica)
    runs; its server-sent events come through nginx as they happen (unbuffered), ending with
    ``succeeded``."""
    X, y = make_blobs(n=200, d=3, seed=5)
    body = {"features": X.tolist(), "labels": y.tolist(), "name": "queued"}
    with httpx.Client(base_url=cluster.lb.url, timeout=60) as c:
        r = c.post("/train", json=body, headers={"Prefer": "respond-async"})
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        events, last = [], {}
        with c.stream("GET", f"/jobs/{job_id}/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    events.append(line.removeprefix("event: "))
                elif line.startswith("data: "):
                    last = json.loads(line.removeprefix("data: "))
        assert events and events[-1] == "succeeded", events
        job = c.get(f"/jobs/{job_id}").json()
    assert job["status"] == "succeeded" and last["status"] == "succeeded"
    worker_pids = {w.pid for w in cluster.workers}
    assert int(job["runner"].rsplit("/", 1)[1]) in worker_pids, job["runner"]


def test_a_replica_killed_under_load_loses_no_request(cluster: Cluster) -> None:
    """4 clients send predictions (POST, resent by nginx: they change nothing) and reads (GET)
    through nginx while one replica is SIGKILLed: every request answers 200; nginx never
    answers 502. The one loss nginx cannot prevent: an answer the replica had begun to send
    (its headers passed on) is cut when it dies; at most one per client is in flight, and the
    client sends it again, as a client does with an idempotent request on a broken connection.
    Then the replica comes back on its port and gets traffic again."""
    with httpx.Client(base_url=cluster.lb.url, timeout=30) as c:
        model = train(c, "churn", seed=1)
    stop = threading.Event()
    answers: list[tuple[str, int]] = []
    cut: list[str] = []

    def load(k: int) -> None:
        with httpx.Client(base_url=cluster.lb.url, timeout=30) as c:
            n = 0
            while not stop.is_set():
                n += 1
                if n % 3:
                    request = c.build_request(
                        "POST", "/predict", json={"model_id": model["id"], "features": ROWS}
                    )
                else:
                    request = c.build_request(
                        "GET", f"/models/{model['id']}" if n % 2 else "/health"
                    )
                try:
                    r = c.send(request)
                except httpx.RemoteProtocolError as exc:  # cut mid-answer: sent again, once
                    cut.append(f"{request.method} {request.url.path}: {exc}")
                    r = c.send(request)
                answers.append((f"{request.method} {request.url.path}", r.status_code))

    threads = [threading.Thread(target=load, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        before = len(answers)
        cluster.replicas[0].kill()
        time.sleep(2.0)
        after_kill = len(answers) - before
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    failed = [a for a in answers if a[1] != 200]
    assert failed == [], f"{len(failed)} of {len(answers)} failed: {failed[:5]}"
    assert len(cut) <= len(threads), cut  # only what was in flight at the kill
    assert after_kill > 0  # requests went on after the kill
    record_figures(
        "nginx failover, 1 of 2 replicas SIGKILLed under 4 clients",
        requests=len(answers),
        answered_after_the_kill=after_kill,
        failed=len(failed),
        cut_mid_answer_and_sent_again=len(cut),
    )
    # the replica comes back: nginx tries it again after fail_timeout (5 s) and it serves
    cluster.replicas[0].start()
    back = f"127.0.0.1:{cluster.replicas[0].port}"
    deadline = time.monotonic() + 15
    with httpx.Client(base_url=cluster.lb.url, timeout=30) as c:
        i = 0
        while True:
            i += 1
            r = c.get("/health", headers={"X-Request-ID": f"rejoin-{i}"})
            assert r.status_code == 200
            if cluster.served_by(f"rejoin-{i}").get(f"rejoin-{i}") == back:
                break
            assert time.monotonic() < deadline, "the restarted replica got no traffic"
            time.sleep(0.2)


def test_the_password_comes_from_libpq_not_from_the_url(
    pg_cluster: PostgresCluster, tmp_path: Path
) -> None:
    """docker-compose.cluster.yml gives MODEL_STORE_URL without a password; libpq finds it in
    PGPASSWORD (the compose file's .env.cluster) or a PGPASSFILE, for the server's store and its
    listeners alike. A password file that others may read is ignored by libpq."""
    import psycopg

    user, password = "logreg_pw", "s3cret-" + os.urandom(4).hex()
    with psycopg.connect(pg_cluster.url(), autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
        admin.execute(f"CREATE DATABASE {user} OWNER {user}")
        # this role, and only it, must give its password over TCP (the cluster trusts the rest)
        hba = pg_cluster.data / "pg_hba.conf"
        hba.write_text(f"host all {user} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        admin.execute("SELECT pg_reload_conf()")
    url = f"postgresql://{user}@127.0.0.1:{pg_cluster.port}/{user}"
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(url, connect_timeout=5).close()
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{pg_cluster.port}:{user}:{user}:{password}\n")
    passfile.chmod(0o644)
    with pytest.raises(psycopg.OperationalError, match="password"):  # ignored: others may read it
        psycopg.connect(url, connect_timeout=5, passfile=str(passfile)).close()
    passfile.chmod(0o600)
    env = {"MODEL_STORE_URL": url, "PGPASSFILE": str(passfile)}
    with (
        LiveServer(tmp_path / "models", env=env) as server,
        httpx.Client(base_url=server.url, timeout=30) as c,
    ):
        train(c, "secret", seed=1)
        r = c.post("/predict", json={"model_id": "secret", "features": ROWS})
        assert r.status_code == 200, r.text
        with psycopg.connect(url, passfile=str(passfile)) as conn:  # its caches listen too
            listening = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'logreg-listen'"
                " AND usename = %s",
                (user,),
            ).fetchone()
        assert listening == (2,)
