"""Prometheus metrics: what is counted, where the counts are kept, and the request middleware.

The counts live in ``prometheus_client``'s multiprocess mode (one small memory-mapped file per
process and metric type in a shared folder), so ``GET /metrics`` answers the totals over every
uvicorn worker, whichever worker the scrape reaches. The folder:

* ``PROMETHEUS_MULTIPROC_DIR`` set: used as it is, the standard ``prometheus_client`` contract
  (works under any process manager); empty it before starting the server.
* unset: ``<system temp>/logreg-service-metrics-<uid>/<server pid>-<server start time>``, where the
  server is uvicorn's supervisor process when it runs workers, else this process. A fresh server
  therefore always starts from zero, all its workers share one folder, a restarted worker keeps
  adding to the same totals, and the folders of servers that are no longer running are deleted.

The folder must be chosen before the first metric is created, so it is done when this module is
imported. The number of models in the store is not a multiprocess gauge: it is read from the
store at scrape time (``StoreCollector``), so it is right whichever worker answers.

Increments are buffered in the process (``BufferedValue``): the hot path adds to a float, and a
daemon thread writes the totals to the memory-mapped files every ``FLUSH_SECONDS``. A scrape
flushes the answering process first, so it is exact for that worker and at most
``FLUSH_SECONDS`` behind for its siblings; a worker killed with SIGKILL loses at most its last
``FLUSH_SECONDS`` of counts. Writing each increment straight to the file cost about 2 us per
value, five per prediction: about 15% of a 1-row prediction's time in the server.

This module does not import FastAPI: the service layer records predictions and trainings here.
"""

from __future__ import annotations

import atexit
import bisect
import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from multiprocessing import parent_process
from pathlib import Path
from typing import Any

import prometheus_client
from prometheus_client import values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry

log = logging.getLogger("app.metrics")

ENV_DIR = "PROMETHEUS_MULTIPROC_DIR"
# one root per user, so that users sharing /tmp cannot block or delete each other's folders
AUTO_ROOT = Path(tempfile.gettempdir()) / f"logreg-service-metrics-{getattr(os, 'getuid', int)()}"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell reused pids apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name (field 2) may hold spaces, so count after its closing ')'.
    return stat.rpartition(")")[2].split()[19]


def _server_key(pid: int) -> str:
    start = _start_time(pid)
    return f"{pid}-{start}" if start else str(pid)


def _is_running(key: str) -> bool:
    pid_text, _, start = key.partition("-")
    if not pid_text.isdigit():
        return False
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it runs
    return not start or _start_time(pid) in (start, None)


def server_pid() -> int:
    """uvicorn's supervisor when this is one of its workers (spawned by multiprocessing)."""
    parent = parent_process()
    return parent.pid if parent is not None and parent.pid is not None else os.getpid()


def auto_dir(*, root: Path = AUTO_ROOT, pid: int | None = None) -> Path:
    """This server's own folder under ``root``; deletes the folders of servers that are gone."""
    key = _server_key(server_pid() if pid is None else pid)
    root.mkdir(parents=True, exist_ok=True)
    for old in root.iterdir():
        if old.name != key and not _is_running(old.name):
            shutil.rmtree(old, ignore_errors=True)
    path = root / key
    path.mkdir(exist_ok=True)
    return path


#: How often buffered increments reach the shared files (seconds).
FLUSH_SECONDS = 1.0
_buffered: list[BufferedValue] = []
_pending_lock = threading.Lock()  # guards every BufferedValue._pending
_flush_lock = threading.Lock()  # one flush at a time, so a scrape waits for one under way
_flusher_pid: int | None = None


class BufferedValue:
    """A ``prometheus_client`` value whose increments wait in this process for ``flush``.

    Wraps the multiprocess ``MmapedValue`` (``inner``); ``set`` (gauges) writes through.
    """

    _multiprocess = True
    inner_class: Any = None  # set by buffered_value_class

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._inner = self.inner_class(*args, **kwargs)
        self._pending = 0.0
        with _pending_lock:
            _buffered.append(self)
        _start_flusher()

    def inc(self, amount: float) -> None:
        with _pending_lock:
            self._pending += amount

    def set(self, value: float, timestamp: float | None = None) -> None:
        with _flush_lock:
            with _pending_lock:
                self._pending = 0.0
            self._inner.set(value, timestamp)

    def set_exemplar(self, exemplar: Any) -> None:
        return  # not supported in multiprocess mode

    def get(self) -> float:
        with _flush_lock, _pending_lock:
            return float(self._inner.get()) + self._pending

    def get_exemplar(self) -> None:
        return None


def buffered_value_class(inner: Any) -> type[BufferedValue]:
    return type("BufferedValue", (BufferedValue,), {"inner_class": inner})


def flush() -> None:
    """Write every buffered increment of this process to its memory-mapped file."""
    with _flush_lock:
        with _pending_lock:
            work = [(v, v._pending) for v in _buffered if v._pending]
            for v, _ in work:
                v._pending = 0.0
        for v, amount in work:
            v._inner.inc(amount)


def _flush_forever() -> None:
    while True:
        time.sleep(FLUSH_SECONDS)
        try:
            flush()
        except Exception:  # a full disk must not end the counting for good
            log.warning("metrics: could not write the counts", exc_info=True)


def _start_flusher() -> None:
    global _flusher_pid
    if _flusher_pid == os.getpid():
        return
    _flusher_pid = os.getpid()
    threading.Thread(target=_flush_forever, name="metrics-flush", daemon=True).start()


def _after_fork_in_child() -> None:
    # the parent's pending increments are the parent's to write; threads do not survive a fork
    global _flusher_pid
    for v in _buffered:
        v._pending = 0.0
    _flusher_pid = None
    if _buffered:
        _start_flusher()


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(flush)


def setup_dir() -> Path:
    """Choose the multiprocess folder (see the module docstring) and switch ``prometheus_client``
    to multiprocess mode, whatever was imported first."""
    given = os.environ.get(ENV_DIR)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
    else:
        path = auto_dir()
        # prometheus_client reads the folder from the environment when it opens its files;
        # child processes (a process pool, say) inherit it and add to the same totals.
        os.environ[ENV_DIR] = str(path)
    if not issubclass(values.ValueClass, BufferedValue):
        values.ValueClass = buffered_value_class(values.MultiProcessValue())
    return path


METRICS_DIR = setup_dir()

#: Latency buckets from 0.5 ms (a small /predict) to 5 minutes (the default training budget).
HTTP_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
)
TRAIN_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600)

HTTP_REQUESTS = prometheus_client.Counter(
    "logreg_http_requests",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_DURATION = prometheus_client.Histogram(
    "logreg_http_request_duration_seconds",
    "Time from receiving a request to sending the end of its response.",
    ["method", "route", "status"],
    buckets=HTTP_BUCKETS,
)
PREDICTED_ROWS = prometheus_client.Counter(
    "logreg_predicted_rows",
    "Rows classified, by model id (ids past METRICS_MAX_MODEL_IDS are counted as '_other').",
    ["model_id"],
)
TRAININGS = prometheus_client.Counter(
    "logreg_trainings",
    "Trainings run by the engine, by outcome (ok, or error: the engine refused the data).",
    ["outcome"],
)
TRAINING_DURATION = prometheus_client.Histogram(
    "logreg_training_duration_seconds",
    "Wall time of successful fits (the engine's work, without parsing or saving).",
    buckets=TRAIN_BUCKETS,
)
CACHE_HITS = prometheus_client.Counter(
    "logreg_model_cache_hits", "Predictions served by a model already loaded in memory."
)
CACHE_MISSES = prometheus_client.Counter(
    "logreg_model_cache_misses", "Predictions that had to load their model from the store."
)

OTHER_MODELS = "_other"
# model id -> its own counter, for at most max_model_ids ids per process
_model_children: dict[str, Any] = {}
_model_children_lock = threading.Lock()


def record_predictions(model_id: str, rows: int, *, max_model_ids: int) -> None:
    """Count ``rows`` predictions for ``model_id``.

    Each model id is a label value, and every label value is a time series kept until the server
    restarts, so a process gives its own label to the first ``max_model_ids`` ids it sees and
    counts the rest under ``_other``.
    """
    child = _model_children.get(model_id)
    if child is None:
        with _model_children_lock:
            if len(_model_children) < max_model_ids:
                child = _model_children[model_id] = PREDICTED_ROWS.labels(model_id)
            else:
                child = PREDICTED_ROWS.labels(OTHER_MODELS)
    child.inc(rows)


@contextlib.contextmanager
def timed_training() -> Iterator[None]:
    """Count a fit, and time it when it succeeds."""
    start = time.perf_counter()
    try:
        yield
    except Exception:
        TRAININGS.labels("error").inc()
        flush()
        raise
    TRAINING_DURATION.observe(time.perf_counter() - start)
    TRAININGS.labels("ok").inc()
    flush()  # trainings are rare, and may run in a child process that ends soon


class StoreCollector(Collector):
    """``logreg_models``: models in the store, counted when Prometheus scrapes."""

    def __init__(self, count: Callable[[], int]) -> None:
        self.count = count

    def collect(self) -> Iterator[Metric]:
        try:
            count = self.count()
        except OSError:
            # an unreadable model folder must not take the other metrics down with it
            log.warning("logreg_models: cannot count the models in the store", exc_info=True)
            return
        yield GaugeMetricFamily("logreg_models", "Models in the store.", value=count)


def render(*, accept: str | None, count_models: Callable[[], int]) -> tuple[bytes, str]:
    """The exposition of every process's counts plus the store gauge, and its content type
    (Prometheus text format, or OpenMetrics when the scraper asks for it)."""
    flush()  # this process's counts, exactly; the other workers' as of their last flush
    registry = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(registry, path=str(METRICS_DIR))
    registry.register(StoreCollector(count_models))
    encoder, content_type = prometheus_client.exposition.choose_encoder(accept or "")
    return encoder(registry), content_type


# --- request instrumentation: a pure ASGI middleware --------------------------------------

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "<unmatched>"


def _template(route: Any) -> str | None:
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) else None


def route_template(scope: Scope) -> str | None:
    """The matched route's path template (``/models/{model_id}``, ``/static/{path}``), never the
    raw path, so the number of label values stays bounded whatever paths clients send; ``None``
    when the router did not match the request."""
    route = scope.get("route")
    path = None if route is None else _template(route)
    if path is not None:
        return path
    # FastAPI sets scope["route"] for its own routes only; for plain Starlette routes and mounts
    # (/openapi.json, /static) find the route whose endpoint or app handled the request.
    endpoint = scope.get("endpoint")
    if endpoint is not None:
        for route in getattr(scope.get("app"), "routes", ()):
            if (
                getattr(route, "endpoint", None) is endpoint
                or getattr(route, "app", None) is endpoint
            ):
                return _template(route)
    return None


_clock = time.perf_counter


class PrometheusMiddleware:
    """Counts and times every HTTP request by method, route template and status.

    A plain ASGI middleware (no ``BaseHTTPMiddleware``: no extra task or body copying), whose
    cost per request is a dict lookup and three buffered increments (``_Series``).
    """

    def __init__(self, app: ASGIApp, *, routes_of: Any = None) -> None:
        self.app = app
        self.routes_of = routes_of  # the app whose routes name requests answered before routing
        self._children: dict[tuple[str, str, str], _Series] = {}
        self._fixed_paths: dict[str, str] | None = None

    def _route(self, scope: Scope) -> str:
        template = route_template(scope)
        if template is not None:
            return template
        # Answered before routing (e.g. a fast path in front of the router), or not found: a
        # route without parameters is known by its path; anything else is one bounded label.
        if self._fixed_paths is None:
            app = self.routes_of or scope.get("app")
            paths = [_template(route) for route in getattr(app, "routes", ())]
            # routers included in FastAPI apps are not flattened into app.routes; the OpenAPI
            # document lists their full paths
            openapi = getattr(app, "openapi", None)
            paths += list(openapi().get("paths", {})) if callable(openapi) else []
            self._fixed_paths = {p: p for p in paths if p is not None and "{" not in p}
        return self._fixed_paths.get(scope["path"], UNMATCHED)

    def _series(self, key: tuple[str, str, str]) -> _Series:
        series = self._children.get(key)
        if series is None:
            series = self._children[key] = _Series(
                HTTP_REQUESTS.labels(*key), HTTP_DURATION.labels(*key)
            )
        return series

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = _clock()
        status = 500  # if the app raises before answering, the server answers 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            self._series((method, self._route(scope), str(status))).add(_clock() - start)


class _Series:
    """One request counter and one duration histogram (children of the same labels), counted
    under one lock: what ``Counter.inc`` and ``Histogram.observe`` do, in a third of the time.
    Relies on the children's values being ``BufferedValue`` (this module's multiprocess mode);
    tests/api/test_metrics.py checks the buckets against ``Histogram.observe``."""

    def __init__(self, requests: Any, duration: Any) -> None:
        self.count: BufferedValue = requests._value
        self.sum: BufferedValue = duration._sum
        self.buckets: list[BufferedValue] = duration._buckets
        self.bounds: list[float] = duration._upper_bounds  # ends with +Inf

    def add(self, seconds: float) -> None:
        bucket = self.buckets[bisect.bisect_left(self.bounds, seconds)]  # first bound >= seconds
        with _pending_lock:
            self.count._pending += 1.0
            self.sum._pending += seconds
            bucket._pending += 1.0
