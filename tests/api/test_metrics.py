"""GET /metrics: parsed with prometheus_client's own parser, counted against known requests.

Metrics are process-wide (as in any Prometheus client), so in-process tests compare a scrape
before and after their requests; their apps run no lifespan, so they share no folder (the
``shared`` fixture does, as a worker does at startup). The LiveServer tests start from a fresh
server and check totals over its processes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.middleware import Middleware

from app import metrics
from app.api.front.metrics import UNMATCHED, PrometheusMiddleware
from app.config import Settings
from app.main import create_app
from tests.asgi_client import ASGIClient
from tests.live_server import ROOT, LiveServer

Key = tuple[str, frozenset[tuple[str, str]]]


def parse(text: str) -> dict[Key, float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict[Key, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(client: ASGIClient | httpx.Client) -> dict[Key, float]:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(r.text)


ROWS = [[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 1.0]]
TRAIN = {"features": ROWS, "labels": ["a", "a", "b", "b"]}


def test_counts_after_known_requests(client):
    before = scrape(client)
    model_id = client.post("/train", json=TRAIN).json()["id"]
    for _ in range(3):
        assert client.post("/predict", json={"model_id": model_id, "features": ROWS}).is_success
    client.post("/predict", json={"model_id": model_id, "features": [[1.0]]})  # 422: 1 column
    for _ in range(2):
        client.get(f"/models/{'f' * 32}")  # 404, one series for every id
    client.get("/no/such/path")
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "logreg_http_requests_total"
    assert delta(requests, method="POST", route="/train", status="201") == 1
    assert delta(requests, method="POST", route="/predict", status="200") == 3
    assert delta(requests, method="POST", route="/predict", status="422") == 1
    assert delta(requests, method="GET", route="/models/{model_id}", status="404") == 2
    assert delta(requests, method="GET", route="<unmatched>", status="404") == 1
    assert delta(requests, method="GET", route="/metrics", status="200") == 1  # the first scrape
    # route templates, never raw paths: no label value holds the id that was asked for
    assert not any("f" * 32 in dict(labels).get("route", "") for _, labels in after)

    hist = "logreg_http_request_duration_seconds"
    ok = {"method": "POST", "route": "/predict", "status": "200"}
    assert delta(f"{hist}_count", **ok) == 3
    assert delta(f"{hist}_bucket", le="+Inf", **ok) == 3
    assert delta(f"{hist}_sum", **ok) > 0
    buckets = sorted(
        (float(dict(labels)["le"]), v)
        for (name, labels), v in after.items()
        if name == f"{hist}_bucket" and dict(labels).items() >= ok.items()
    )
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative

    assert delta("logreg_predicted_rows_total", model_id=model_id) == 3 * len(ROWS)
    assert delta("logreg_trainings_total", outcome="ok") == 1
    assert delta("logreg_training_duration_seconds_count") == 1
    assert value(after, "logreg_models") == 1
    client.delete(f"/models/{model_id}")
    assert value(scrape(client), "logreg_models") == 0


def render() -> dict[Key, float]:
    return parse(metrics.render(accept=None, count_models=lambda: 0)[0].decode())


def test_request_durations_land_in_the_bucket_histogram_observe_would_choose():
    """The service counts in its own structures, not in ``prometheus_client.Histogram``; a
    duration must land where ``Histogram.observe`` puts it (the first bucket whose upper bound is
    at least the duration: bounds are inclusive), with the same count and sum."""
    registry = prometheus_client.CollectorRegistry()
    reference = prometheus_client.Histogram(
        "logreg_http_request_duration_seconds",
        "reference",
        ["method", "route", "status"],
        buckets=metrics.HTTP_BUCKETS,
        registry=registry,
    )
    labels = ("PATCH", f"/bucket-check-{uuid.uuid4().hex}", "204")
    for seconds in (0.0, 0.0005, 0.0007, 0.005, 0.0051, 0.25, 299.0, 300.0, 301.0, 1e9):
        metrics.record_request(labels, seconds)
        reference.labels(*labels).observe(seconds)
    want = {
        key: v
        for key, v in parse(prometheus_client.generate_latest(registry).decode()).items()
        if key[0].endswith(("_bucket", "_count", "_sum"))
    }
    assert len(want) == len(metrics.HTTP_BUCKETS) + 3  # +Inf, _count, _sum
    got = render()
    assert {key: got.get(key) for key in want} == want
    route = {"method": "PATCH", "route": labels[1], "status": "204"}
    assert value(got, "logreg_http_requests_total", **route) == 10


def test_the_middleware_times_each_request_under_its_labels():
    async def answer(scope, receive, send):
        await asyncio.sleep(0.006)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def ignore(message):
        return None

    middleware = PrometheusMiddleware(answer)  # no app to list routes from: <unmatched>
    name = "logreg_http_request_duration_seconds"
    for method, label in (("PATCH", "PATCH"), ("BREW", "OTHER")):
        labels = (label, UNMATCHED, "204")
        empty = [0.0] * (len(metrics.HTTP_BUCKETS) + 2)
        before = metrics.counts()[name].get(labels, empty)
        scope = {
            "type": "http",
            "method": method,
            "path": f"/timed-{uuid.uuid4().hex}",
            "headers": [],
        }
        asyncio.run(middleware(scope, None, ignore))
        after = metrics.counts()[name][labels]
        added = [a - b for a, b in zip(after, before, strict=True)]
        assert added[0] >= 0.006  # the sum of durations
        buckets = added[1:]
        assert sum(buckets) == 1
        assert all(
            n == 0
            for bound, n in zip([*metrics.HTTP_BUCKETS, float("inf")], buckets, strict=True)
            if bound < 0.006
        )


def test_model_cache_hits_and_misses(client):
    model_id = client.post("/train", json=TRAIN).json()["id"]
    before = scrape(client)
    for _ in range(3):  # the fast path: the first loads the model, the next two find it cached
        assert client.post("/predict", json={"model_id": model_id, "features": ROWS}).is_success
    after = scrape(client)
    for name, want in (
        ("logreg_model_cache_misses_total", 1),
        ("logreg_model_cache_hits_total", 2),
    ):
        assert value(after, name) - value(before, name) == want, name


def test_failed_training_is_counted_as_an_error(client):
    before = scrape(client)
    r = client.post(
        "/train", json={**TRAIN, "params": {"learning_rate": 1e12, "standardize": False}}
    )
    assert r.status_code == 422, r.text
    after = scrape(client)
    assert value(after, "logreg_trainings_total", outcome="error") == (
        value(before, "logreg_trainings_total", outcome="error") + 1
    )
    assert value(after, "logreg_training_duration_seconds_count") == value(
        before, "logreg_training_duration_seconds_count"
    )


def test_model_id_labels_are_capped(tmp_path):
    env = {"METRICS_MAX_MODEL_IDS": "1"}
    with LiveServer(tmp_path / "models", env=env) as server, httpx.Client(base_url=server.url) as c:
        first, second = (c.post("/train", json=TRAIN).json()["id"] for _ in range(2))
        for model_id in (first, second, first):
            c.post("/predict", json={"model_id": model_id, "features": ROWS[:2]})
        after = scrape(c)
    rows = "logreg_predicted_rows_total"
    assert value(after, rows, model_id=first) == 4
    assert value(after, rows, model_id="_other") == 2
    assert value(after, rows, model_id=second) == 0


def test_an_unhandled_error_is_counted_as_500(settings):
    app = create_app(settings)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("boom")

    async def run() -> tuple[int, int]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            status = (await c.get("/boom")).status_code
            text = (await c.get("/metrics")).text
        count = value(
            parse(text), "logreg_http_requests_total", method="GET", route="/boom", status="500"
        )
        return status, int(count)

    assert asyncio.run(run()) == (500, 1)


def test_requests_answered_before_routing_keep_their_route(settings):
    """A pure ASGI fast path in front of the router (no scope["route"]) is still labelled by
    its route; unknown paths stay one label."""
    app = create_app(settings)

    class Early:
        def __init__(self, app):
            self.app = app

        async def __call__(self, scope, receive, send):
            if scope["type"] == "http" and scope["path"] == "/health":
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"early"})
                return
            await self.app(scope, receive, send)

    app.user_middleware.insert(1, Middleware(Early))  # inside the metrics middleware
    client = ASGIClient(app)
    try:
        before = scrape(client)
        assert client.get("/health").text == "early"
        client.get("/health/nope")
        after = scrape(client)
    finally:
        client.close()
    for route, status in (("/health", "200"), ("<unmatched>", "404")):
        labels = {"method": "GET", "route": route, "status": status}
        name = "logreg_http_requests_total"
        assert value(after, name, **labels) - value(before, name, **labels) == 1, route


def test_openmetrics_when_the_scraper_asks_for_it(client):
    r = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    assert r.text.rstrip().endswith("# EOF")


def test_an_unreadable_store_leaves_out_only_the_models_gauge():
    def unreadable() -> int:
        raise PermissionError("models/")

    body, _ = metrics.render(accept=None, count_models=unreadable)
    names = {family.name for family in text_string_to_metric_families(body.decode())}
    assert "logreg_models" not in names and "logreg_http_requests" in names


# --- the shared folder ----------------------------------------------------------------------


def test_importing_app_metrics_changes_nothing_outside_it(tmp_path):
    """No environment variable, folder, thread, or patch of prometheus_client at import: the
    folder is chosen and shared when the server starts."""
    code = """if True:
        import os, pathlib, threading
        env = dict(os.environ)
        from app import metrics
        assert dict(os.environ) == env, set(os.environ.items()) ^ set(env.items())
        from prometheus_client import values
        assert values.ValueClass is values.MutexValue, values.ValueClass
        assert threading.active_count() == 1, threading.enumerate()
        assert metrics.shared_folder() is None
        for d in (os.environ["TMPDIR"], "."):
            assert not any(pathlib.Path(d).iterdir()), list(pathlib.Path(d).iterdir())
    """
    (tmp_path / "tmp").mkdir()
    (tmp_path / "cwd").mkdir()
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp"), "PYTHONPATH": str(ROOT)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path / "cwd", env=env, check=True)


def test_an_empty_folder_setting_means_the_automatic_folder(monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    assert Settings().prometheus_multiproc_dir is None
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/run/logreg-metrics")
    assert Settings().prometheus_multiproc_dir == Path("/run/logreg-metrics")


def test_auto_dir_is_per_server_and_removes_folders_of_stopped_servers(tmp_path):
    gone = tmp_path / "999999999-123"  # no such pid
    reused = tmp_path / f"{os.getpid()}-1"  # this pid, but another start time: an older process
    alive = tmp_path / metrics.process_key(1)  # init runs
    for d in (gone, reused, alive):
        d.mkdir()
        (d / "metrics-1-1.json").write_bytes(b"{}")
    mine = metrics.auto_dir(root=tmp_path, pid=os.getpid())
    assert mine.name == metrics.process_key(os.getpid()) and mine.is_dir()
    assert not gone.exists() and not reused.exists()
    assert alive.exists()
    assert metrics.auto_dir(root=tmp_path, pid=os.getpid()) == mine  # a second worker: same folder


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[Path]:
    """This process shares ``tmp_path / "metrics"``, as a server's worker does after startup."""
    folder = tmp_path / "metrics"
    metrics.share(folder)
    yield folder
    metrics.unshare()


def test_a_scrape_adds_the_counts_other_processes_left_in_the_folder(shared):
    other = """if True:
        import sys
        from pathlib import Path
        from app import metrics
        metrics.share(Path(sys.argv[1]))
        metrics.CACHE_MISSES.inc(5)
        metrics.record_predictions("m-other-process", 7, max_model_ids=100)
    """  # and exits: its counts are written at exit
    subprocess.run([sys.executable, "-c", other, str(shared)], cwd=ROOT, check=True)
    (shared / "metrics-1-1.json").write_text("not json")  # skipped, with a warning in the log
    files = sorted(p.name for p in shared.glob("metrics-*.json"))
    assert len(files) == 3 and metrics.process_file(shared, os.getpid()).name in files
    own = metrics.counts()["logreg_model_cache_misses"][()][0]
    scraped = render()
    assert value(scraped, "logreg_model_cache_misses_total") == own + 5
    assert value(scraped, "logreg_predicted_rows_total", model_id="m-other-process") == 7


def test_increments_reach_the_shared_file_within_the_flush_interval(shared):
    """A process writes its counts to its file without waiting for a scrape."""
    own = metrics.process_file(shared, os.getpid())

    def misses() -> float:
        return metrics.load_counts(own)["logreg_model_cache_misses"][()][0]

    before = misses()
    metrics.CACHE_MISSES.inc(3)
    deadline = time.monotonic() + 10 * metrics.FLUSH_SECONDS
    while misses() != before + 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert misses() == before + 3


# --- real servers ----------------------------------------------------------------------------


def server_dir(server: LiveServer) -> Path:
    assert server.proc is not None
    (found,) = metrics.auto_root().glob(f"{server.proc.pid}-*")
    return found


def test_a_fresh_server_starts_from_zero_and_cleans_up(tmp_path):
    predicts = {"method": "POST", "route": "/predict", "status": "200"}
    with LiveServer(tmp_path / "models") as server:
        first_dir = server_dir(server)
        with httpx.Client(base_url=server.url) as c:
            model_id = c.post("/train", json=TRAIN).json()["id"]
            c.post("/predict", json={"model_id": model_id, "features": ROWS})
            assert value(scrape(c), "logreg_http_requests_total", **predicts) == 1
        server.stop()
        server.start()
        assert server_dir(server) != first_dir and not first_dir.exists()
        with httpx.Client(base_url=server.url) as c:
            after = scrape(c)
        assert value(after, "logreg_http_requests_total", **predicts) == 0
        assert value(after, "logreg_predicted_rows_total", model_id=model_id) == 0
        assert value(after, "logreg_models") == 1  # the store, unlike the counters, persists


def test_a_folder_set_by_the_user_is_used_as_is_and_training_children_count_there(tmp_path):
    folder = tmp_path / "prometheus"
    # every training in a child process, which gets the folder from its initializer
    env = {"PROMETHEUS_MULTIPROC_DIR": str(folder), "TRAIN_INLINE_MAX_BYTES": "0"}
    with LiveServer(tmp_path / "models", env=env) as server, httpx.Client(base_url=server.url) as c:
        assert c.post("/train", json=TRAIN).status_code == 201
        samples = scrape(c)
        assert value(samples, "logreg_trainings_total", outcome="ok") == 1
        assert value(samples, "logreg_training_duration_seconds_count") == 1
        assert server.proc is not None
        files = {p.name.split("-")[1]: p for p in folder.glob("metrics-*.json")}
        assert str(server.proc.pid) in files and len(files) == 2, files  # the server, the child
        (child,) = (p for pid, p in files.items() if pid != str(server.proc.pid))
        assert metrics.load_counts(child)["logreg_trainings"] == {("ok",): [1.0]}
        assert not list(metrics.auto_root().glob(f"{server.proc.pid}-*"))


def per_process_predicts(folder: Path) -> dict[int, float]:
    """/predict requests counted in each process's file, by pid."""
    out = {}
    for path in folder.glob("metrics-*.json"):
        series = metrics.load_counts(path)["logreg_http_request_duration_seconds"]
        pid = int(path.name.split("-")[1])
        out[pid] = sum(sum(v[1:]) for labels, v in series.items() if labels[1] == "/predict")
    return out


def fresh_connection_predicts(url: str, model_id: str, n: int) -> Iterator[int]:
    def one(_: int) -> int:
        # a new connection each time, so the kernel hands them to either worker
        with httpx.Client(base_url=url) as c:
            return c.post("/predict", json={"model_id": model_id, "features": ROWS}).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        yield from pool.map(one, range(n))


def predict_on_both_workers(server: LiveServer, folder: Path, model_id: str) -> int:
    """Sends predictions until both workers have served some; returns how many were sent."""
    sent = 0
    deadline = time.monotonic() + 60
    while True:
        assert all(s == 200 for s in fresh_connection_predicts(server.url, model_id, 40))
        sent += 40
        time.sleep(2 * metrics.FLUSH_SECONDS)  # each worker writes its counts this often
        workers = per_process_predicts(folder)
        if sum(v > 0 for v in workers.values()) >= 2 or time.monotonic() > deadline:
            break
    assert sum(v > 0 for v in workers.values()) == 2, workers  # both workers served some
    assert sum(workers.values()) == sent
    return sent


def assert_totals(server: LiveServer, model_id: str, predicts: int) -> None:
    """Whichever worker answers the scrape, it reports the total of every process."""
    for _ in range(6):
        with httpx.Client(base_url=server.url) as c:
            samples = scrape(c)
        ok = {"method": "POST", "route": "/predict", "status": "200"}
        assert value(samples, "logreg_http_requests_total", **ok) == predicts
        rows = value(samples, "logreg_predicted_rows_total", model_id=model_id)
        assert rows == predicts * len(ROWS)
        assert value(samples, "logreg_trainings_total", outcome="ok") == 1
        assert value(samples, "logreg_models") == 1


@pytest.mark.slow
def test_totals_add_up_across_two_workers(tmp_path):
    with LiveServer(tmp_path / "models", args=["--workers", "2"]) as server:
        folder = server_dir(server)
        with httpx.Client(base_url=server.url) as c:
            model_id = c.post("/train", json=TRAIN).json()["id"]
        sent = predict_on_both_workers(server, folder, model_id)
        assert_totals(server, model_id, sent)


@pytest.mark.slow
def test_counts_of_a_killed_worker_stay_in_the_totals(tmp_path):
    """Counters never go backwards: a worker's file outlives it, and its replacement counts in a
    file of its own."""
    with LiveServer(tmp_path / "models", args=["--workers", "2"]) as server:
        folder = server_dir(server)
        with httpx.Client(base_url=server.url) as c:
            model_id = c.post("/train", json=TRAIN).json()["id"]
        sent = predict_on_both_workers(server, folder, model_id)
        victim = min(per_process_predicts(folder))
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while len(per_process_predicts(folder)) < 3:  # uvicorn starts a new worker
            assert time.monotonic() < deadline, "no replacement worker"
            time.sleep(0.1)
        assert_totals(server, model_id, sent)
        assert all(s == 200 for s in fresh_connection_predicts(server.url, model_id, 20))
        time.sleep(2 * metrics.FLUSH_SECONDS)
        assert_totals(server, model_id, sent + 20)
