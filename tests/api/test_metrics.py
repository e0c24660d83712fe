"""GET /metrics: parsed with prometheus_client's own parser, counted against known requests.

Metrics are process-wide (as in any Prometheus client), so in-process tests compare a scrape
before and after their requests; the LiveServer tests start from a fresh server and check totals.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from starlette.middleware import Middleware

from app import metrics
from app.main import create_app
from tests.asgi_client import ASGIClient
from tests.live_server import LiveServer

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


def test_request_durations_land_in_the_bucket_histogram_observe_would_choose(monkeypatch):
    """The middleware counts a request's series under one lock (``_Series``), not through
    ``Histogram.observe``; a duration must land where ``observe`` puts it: the first bucket whose
    upper bound is at least the duration (bounds are inclusive)."""

    async def answer(scope, receive, send):
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def ignore(message):
        return None

    middleware = metrics.PrometheusMiddleware(answer)
    middleware._fixed_paths = {}  # no app to list routes from
    series = middleware._series(("PATCH", metrics.UNMATCHED, "204"))
    bounds = [*metrics.HTTP_BUCKETS, float("inf")]
    assert series.bounds == bounds
    scope = {"type": "http", "method": "PATCH", "path": "/bucket-check"}
    for seconds, le in [
        (0.0, 0.0005),
        (0.0005, 0.0005),
        (0.0007, 0.001),
        (0.005, 0.005),
        (0.0051, 0.01),
        (299.0, 300),
        (301.0, float("inf")),
    ]:
        monkeypatch.setattr(metrics, "_clock", iter([0.0, seconds]).__next__)
        before = [b.get() for b in series.buckets]
        count, total = series.count.get(), series.sum.get()
        asyncio.run(middleware(scope, None, ignore))
        added = [b.get() - x for b, x in zip(series.buckets, before, strict=True)]
        assert added == [float(bound == le) for bound in bounds], seconds
        assert series.count.get() == count + 1
        assert series.sum.get() == pytest.approx(total + seconds)


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


def test_model_id_labels_are_capped(settings, monkeypatch):
    monkeypatch.setattr(metrics, "_model_children", {})
    client = ASGIClient(create_app(settings.model_copy(update={"metrics_max_model_ids": 1})))
    try:
        first, second = (client.post("/train", json=TRAIN).json()["id"] for _ in range(2))
        before = scrape(client)
        for model_id in (first, second, first):
            client.post("/predict", json={"model_id": model_id, "features": ROWS[:2]})
        after = scrape(client)
    finally:
        client.close()
    rows = "logreg_predicted_rows_total"
    assert value(after, rows, model_id=first) - value(before, rows, model_id=first) == 4
    assert value(after, rows, model_id="_other") - value(before, rows, model_id="_other") == 2
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


# --- the multiprocess folder -----------------------------------------------------------------


def test_auto_dir_is_per_server_and_removes_folders_of_stopped_servers(tmp_path):
    gone = tmp_path / "999999999-123"  # no such pid
    reused = tmp_path / f"{os.getpid()}-1"  # this pid, but another start time: an older process
    alive = tmp_path / metrics._server_key(1)  # init runs
    for d in (gone, reused, alive):
        d.mkdir()
        (d / "counter_1.db").write_bytes(b"")
    mine = metrics.auto_dir(root=tmp_path, pid=os.getpid())
    assert mine.name == metrics._server_key(os.getpid()) and mine.is_dir()
    assert not gone.exists() and not reused.exists()
    assert alive.exists()
    assert metrics.auto_dir(root=tmp_path, pid=os.getpid()) == mine  # a second worker: same folder


def test_this_process_uses_multiprocess_mode():
    assert Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]) == metrics.METRICS_DIR
    assert any(metrics.METRICS_DIR.glob("counter_*.db"))


# --- real servers ----------------------------------------------------------------------------


def server_dir(server: LiveServer) -> Path:
    assert server.proc is not None
    (found,) = metrics.AUTO_ROOT.glob(f"{server.proc.pid}-*")
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


def test_a_folder_set_by_the_user_is_used_as_is(tmp_path):
    folder = tmp_path / "prometheus"
    env = {"PROMETHEUS_MULTIPROC_DIR": str(folder)}
    with LiveServer(tmp_path / "models", env=env) as server, httpx.Client(base_url=server.url) as c:
        c.post("/train", json=TRAIN)
        assert value(scrape(c), "logreg_trainings_total", outcome="ok") == 1
        assert server.proc is not None
        assert (folder / f"counter_{server.proc.pid}.db").is_file()
        assert not list(metrics.AUTO_ROOT.glob(f"{server.proc.pid}-*"))


def per_worker_predicts(folder: Path) -> dict[str, float]:
    """/predict requests counted by each worker's own file."""
    out = {}
    for path in folder.glob("counter_*.db"):
        total = 0.0
        for family in MultiProcessCollector.merge([str(path)]):
            for s in family.samples:
                if s.name == "logreg_http_requests_total" and s.labels.get("route") == "/predict":
                    total += s.value
        out[path.stem.removeprefix("counter_")] = total
    return out


def fresh_connection_predicts(url: str, model_id: str, n: int) -> Iterator[int]:
    def one(_: int) -> int:
        # a new connection each time, so the kernel hands them to either worker
        with httpx.Client(base_url=url) as c:
            return c.post("/predict", json={"model_id": model_id, "features": ROWS}).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        yield from pool.map(one, range(n))


@pytest.mark.slow
def test_totals_add_up_across_two_workers(tmp_path):
    with LiveServer(tmp_path / "models", args=["--workers", "2"]) as server:
        folder = server_dir(server)
        with httpx.Client(base_url=server.url) as c:
            model_id = c.post("/train", json=TRAIN).json()["id"]
        sent = 0
        deadline = time.monotonic() + 60
        while True:
            assert all(s == 200 for s in fresh_connection_predicts(server.url, model_id, 40))
            sent += 40
            time.sleep(2 * metrics.FLUSH_SECONDS)  # each worker writes its counts this often
            workers = per_worker_predicts(folder)
            if sum(v > 0 for v in workers.values()) >= 2 or time.monotonic() > deadline:
                break
        assert sum(v > 0 for v in workers.values()) == 2, workers  # both workers served some
        assert sum(workers.values()) == sent
        # whichever worker answers the scrape, it reports the total of both
        for _ in range(6):
            with httpx.Client(base_url=server.url) as c:
                samples = scrape(c)
            predicts = value(
                samples, "logreg_http_requests_total", method="POST", route="/predict", status="200"
            )
            assert predicts == sent
            assert value(samples, "logreg_predicted_rows_total", model_id=model_id) == sent * len(
                ROWS
            )
            assert value(samples, "logreg_trainings_total", outcome="ok") == 1
            assert value(samples, "logreg_models") == 1


def test_increments_reach_the_shared_file_within_the_flush_interval(client):
    """Counts are buffered in the process; the flusher thread writes them without a scrape."""
    folder = metrics.METRICS_DIR
    before = sum(
        s.value
        for f in MultiProcessCollector.merge([str(p) for p in folder.glob("counter_*.db")])
        for s in f.samples
        if s.name == "logreg_model_cache_misses_total"
    )
    metrics.CACHE_MISSES.inc(3)
    deadline = time.monotonic() + 10 * metrics.FLUSH_SECONDS
    while True:
        after = sum(
            s.value
            for f in MultiProcessCollector.merge([str(p) for p in folder.glob("counter_*.db")])
            for s in f.samples
            if s.name == "logreg_model_cache_misses_total"
        )
        if after == before + 3 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert after == before + 3
