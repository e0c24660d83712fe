"""Prometheus metrics: what is counted, and the totals over every process of a server.

Each process counts in plain structures of its own (``Counter``, ``Histogram``) under one lock.
``GET /metrics`` answers the totals of every process of the server (the uvicorn workers, and the
training children, which count trainings), whichever worker the scrape reaches: a process that
calls ``share(folder)`` writes its counts to a file of its own there (atomically) every
``FLUSH_SECONDS``, after each training and at exit, and a scrape adds the files of the other
processes to its own counts. A scrape is thus exact for the worker that answers and at most
``FLUSH_SECONDS`` behind for the others; a process killed with SIGKILL loses at most that much.
Files of ended processes are kept, so totals never go backwards when a worker is replaced.

The app's lifespan chooses the folder when the server starts (``folder_for``); training children
get it from their initializer:

* ``PROMETHEUS_MULTIPROC_DIR`` set (``Settings.prometheus_multiproc_dir``): used as it is;
  empty it before starting the server.
* unset: ``<system temp>/logreg-service-metrics-<uid>/<server pid>-<server start time>``, where
  the server is uvicorn's supervisor process when it runs workers, else this process. A fresh
  server starts from zero, its workers share one folder, and the folders of servers that are no
  longer running are deleted.

A process that shares no folder (an app whose lifespan does not run) reports its own counts
only. Importing this module changes nothing outside it: no environment, folder, thread or hook.

Not ``prometheus_client``'s multiprocess mode: it takes its folder from the environment when
metrics are created, so it had to be chosen (and ``os.environ`` written) at import, and it writes
a memory-mapped file at every increment, slow enough on the prediction path to have needed a
patched ``values.ValueClass`` and private attributes (docs/DEVELOPING.md). ``prometheus_client``
is used through its public API: metric families, a ``Collector``, the exposition formats.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import os
import shutil
import tempfile
import threading
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterator
from multiprocessing import parent_process
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from .engine.profile import bin_totals, bins, psi

log = logging.getLogger("app.metrics")

Labels = tuple[str, ...]

#: Guards every count of this process; replaced in a forked child (see ``_after_fork``).
_lock = threading.Lock()


class Counter:
    """A counter family: label values -> count, in this process."""

    def __init__(self, name: str, documentation: str, labelnames: Labels = ()) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = labelnames
        #: label values -> count; an unlabelled counter is shown (at 0) before its first count
        self.values: dict[Labels, float] = {} if labelnames else {(): 0.0}

    def inc(self, amount: float = 1.0, labels: Labels = ()) -> None:
        if amount < 0 or len(labels) != len(self.labelnames):
            raise ValueError(f"{self.name}: counters only go up, with {self.labelnames} labels")
        with _lock:
            self.values[labels] = self.values.get(labels, 0.0) + amount

    def copy(self) -> dict[Labels, list[float]]:
        """The counts as ``[value]`` lists, the form ``Histogram.copy`` and the files use."""
        with _lock:
            values = list(self.values.items())
        return {labels: [value] for labels, value in values}

    def family(self, totals: dict[str, dict[Labels, list[float]]]) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, (value,) in sorted(totals[self.name].items()):
            family.add_metric(labels, value)
        return family

    def clear(self) -> None:
        self.values = {} if self.labelnames else {(): 0.0}


class Histogram:
    """A histogram family: label values -> ``[sum, count of bucket 0, ..., count of +Inf]``, in
    this process. A value lands in the first bucket whose upper bound is at least the value, as
    in ``prometheus_client.Histogram.observe``; counts are per bucket, made cumulative when shown.
    """

    def __init__(
        self, name: str, documentation: str, labelnames: Labels = (), *, buckets: tuple[float, ...]
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = labelnames
        self.bounds = [*map(float, buckets), math.inf]
        self.values: dict[Labels, list[float]] = {}
        self.clear()

    def observe(self, value: float, labels: Labels = ()) -> None:
        index = bisect_left(self.bounds, value) + 1  # first bound >= value; [0] is the sum
        with _lock:
            series = self.values.get(labels)
            if series is None:
                if len(labels) != len(self.labelnames):
                    raise ValueError(f"{self.name}: expected {self.labelnames} labels")
                series = self.values[labels] = [0.0] * (len(self.bounds) + 1)
            series[0] += value
            series[index] += 1.0

    def copy(self) -> dict[Labels, list[float]]:
        with _lock:
            return {labels: list(series) for labels, series in self.values.items()}

    def family(self, totals: dict[str, dict[Labels, list[float]]]) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        les = [floatToGoString(bound) for bound in self.bounds]
        for labels, (total, *counts) in sorted(totals[self.name].items()):
            cumulative, buckets = 0.0, []
            for le, count in zip(les, counts, strict=True):
                cumulative += count
                buckets.append((le, cumulative))
            family.add_metric(labels, buckets, total)
        return family

    def clear(self) -> None:
        empty = [0.0] * (len(self.bounds) + 1)
        self.values = {} if self.labelnames else {(): empty}


class ObservationCount:
    """A counter of a histogram's observations, by its labels: kept by the histogram (its
    ``_count``), shown as a counter of its own, so that counting an event and its duration is
    one update."""

    def __init__(self, histogram: Histogram, name: str, documentation: str) -> None:
        self.histogram = histogram
        self.name = name
        self.documentation = documentation

    def family(self, totals: dict[str, dict[Labels, list[float]]]) -> Metric:
        labelnames = self.histogram.labelnames
        family = CounterMetricFamily(self.name, self.documentation, labels=labelnames)
        for labels, (_, *counts) in sorted(totals[self.histogram.name].items()):
            family.add_metric(labels, sum(counts))
        return family


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

HTTP_DURATION = Histogram(
    "logreg_http_request_duration_seconds",
    "Time from receiving a request to sending the end of its response.",
    ("method", "route", "status"),
    buckets=HTTP_BUCKETS,
)
HTTP_REQUESTS = ObservationCount(
    HTTP_DURATION,
    "logreg_http_requests",
    "HTTP requests answered, by method, route template and status code.",
)
PREDICTED_ROWS = Counter(
    "logreg_predicted_rows",
    "Rows classified, by model id (ids past METRICS_MAX_MODEL_IDS are counted as '_other').",
    ("model_id",),
)
TRAININGS = Counter(
    "logreg_trainings",
    "Trainings run by the engine, by outcome (ok, or error: the engine refused the data).",
    ("outcome",),
)
TRAINING_DURATION = Histogram(
    "logreg_training_duration_seconds",
    "Wall time of successful fits (the engine's work, without parsing or saving).",
    buckets=TRAIN_BUCKETS,
)
CACHE_HITS = Counter(
    "logreg_model_cache_hits", "Predictions served by a model already loaded in memory."
)
CACHE_MISSES = Counter(
    "logreg_model_cache_misses", "Predictions that had to load their model from the store."
)

OUT_OF_RANGE = Counter(
    "logreg_out_of_range_values",
    "Predicted input values outside the training range, by model id and feature (past "
    "METRICS_MAX_MODEL_IDS ids and METRICS_MAX_FEATURES features per model: '_other').",
    ("model_id", "feature"),
)


class DriftWindows:
    """``logreg_input_psi``: per model and feature, the population stability index of the last
    ``DRIFT_WINDOW`` predicted rows against the training deciles.

    Each process keeps, per model, the decile bin of each feature of its last rows (at most
    ``METRICS_MAX_FEATURES`` features); predictions only queue their rows (``add``: no binning on
    the request; the queue keeps about the newest window of rows), which are binned in bulk
    when the counts are read (the metrics flush thread, every second, or a scrape). The kept
    series is ``[count per bin...,
    expected count per bin...]`` (the training shares times the rows counted), so that the
    series of several processes add up and the gauge is computed from their totals.
    """

    name = "logreg_input_psi"
    documentation = (
        "Population stability index of each feature's last DRIFT_WINDOW predicted values (per "
        "process, totalled over processes) against its training deciles; under 0.1: stable, "
        "over 0.25: a large shift."
    )
    labelnames: Labels = ("model_id", "feature")
    n_bins = 10
    width = 2 * n_bins

    def __init__(self) -> None:
        self.models: dict[str, _ModelWindow] = {}

    def track(
        self, model_id: str, *, edges: Any, fractions: Any, features: list[str], window: int
    ) -> None:
        with _lock:
            if model_id not in self.models:
                self.models[model_id] = _ModelWindow(edges, fractions, features, window)

    def tracked(self, model_id: str) -> bool:
        return model_id in self.models

    def add(self, model_id: str, X: Any) -> bool:
        """Queue the rows ``X`` (n, n_features) predicted by a tracked model; ``False`` if the
        model is not tracked (``record_inputs`` decides whether it is)."""
        w = self.models.get(model_id)
        if w is None:
            return False
        with _lock:
            pending = w.pending
            pending.append(X)
            w.pending_rows += X.shape[0]
            # Only the newest window of rows is ever binned (``take``): older queued rows are
            # dropped here, so the queue holds about one window, whatever the request rate.
            while w.pending_rows - len(pending[0]) >= w.window:
                w.pending_rows -= len(pending.popleft())
        return True

    def fold(self) -> None:
        """Bin every queued row into its model's window."""
        with _lock:
            todo = [(w, w.pending) for w in self.models.values() if w.pending]
            for w, _ in todo:
                w.pending, w.pending_rows = deque(), 0
        for w, pending in todo:
            w.take(pending)

    def copy(self) -> dict[Labels, list[float]]:
        self.fold()
        out: dict[Labels, list[float]] = {}
        with _lock:
            for model_id, w in self.models.items():
                if w.rows == 0:
                    continue
                expected = w.fractions * w.rows
                for j, feature in enumerate(w.features):
                    out[(model_id, feature)] = [*w.counts[j].tolist(), *expected[j].tolist()]
        return out

    def family(self, totals: dict[str, dict[Labels, list[float]]]) -> Metric:
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, values in sorted(totals[self.name].items()):
            counts = np.asarray(values[: self.n_bins])
            expected = np.asarray(values[self.n_bins :])
            if counts.sum() > 0 and expected.sum() > 0:
                value = psi(expected[None] / expected.sum(), counts[None] / counts.sum())[0]
                family.add_metric(labels, float(value))
        return family

    def clear(self) -> None:
        self.models = {}


class _ModelWindow:
    """One model's last ``window`` rows, as decile bins of its tracked features."""

    def __init__(self, edges: Any, fractions: Any, features: list[str], window: int) -> None:
        k = len(features)
        self.edges = np.asarray(edges, dtype=np.float64)[:k]
        self.fractions = np.asarray(fractions, dtype=np.float64)[:k]
        self.features = features
        self.window = window
        self.pending: deque[Any] = deque()  # queued row arrays, oldest first
        self.pending_rows = 0
        self.chunks: deque[np.ndarray] = deque()  # (rows, k) bins, oldest first
        self.counts = np.zeros((k, DriftWindows.n_bins), dtype=np.int64)
        self.rows = 0
        self.fold_lock = threading.Lock()

    def take(self, pending: deque[Any]) -> None:
        k = len(self.features)
        # the rows of a model all have its width: one concatenate, then one cut (a view per
        # queued array cost ~0.3 us each: 3 ms for a window of 1-row requests)
        X = np.concatenate(list(pending))[-self.window :, :k]
        b = bins(X, self.edges)
        with self.fold_lock:
            added = bin_totals(b, DriftWindows.n_bins)
            self.chunks.append(b)
            with _lock:
                self.counts += added
                self.rows += len(b)
            while self.rows > self.window:
                oldest = self.chunks[0]
                drop = min(len(oldest), self.rows - self.window)
                gone = oldest[:drop]
                removed = bin_totals(gone, DriftWindows.n_bins)
                with _lock:
                    self.counts -= removed
                    self.rows -= drop
                if drop == len(oldest):
                    self.chunks.popleft()
                else:
                    self.chunks[0] = oldest[drop:]


INPUT_PSI = DriftWindows()

#: What this process keeps count of (``counts()``, and the files of a shared folder).
KEPT: tuple[Counter | Histogram | DriftWindows, ...] = (
    HTTP_DURATION,
    PREDICTED_ROWS,
    TRAININGS,
    TRAINING_DURATION,
    CACHE_HITS,
    CACHE_MISSES,
    OUT_OF_RANGE,
    INPUT_PSI,
)
#: Every metric a scrape shows, in order.
METRICS: tuple[Counter | Histogram | ObservationCount | DriftWindows, ...] = (HTTP_REQUESTS, *KEPT)

OTHER_MODELS = "_other"
_labelled_model_ids: set[str] = set()  # the ids that have their own label in this process


def record_request(labels: tuple[str, str, str], seconds: float) -> None:
    """Count one answered HTTP request, labelled ``(method, route template, status)``, and its
    duration (``HTTP_REQUESTS`` is the number of durations observed)."""
    HTTP_DURATION.observe(seconds, labels)


def record_predictions(model_id: str, rows: int, *, max_model_ids: int) -> None:
    """Count ``rows`` predictions for ``model_id``.

    Each model id is a label value, and every label value is a time series kept until the server
    restarts, so a process gives its own label to the first ``max_model_ids`` ids it sees and
    counts the rest under ``_other``.
    """
    PREDICTED_ROWS.inc(rows, (model_label(model_id, max_model_ids=max_model_ids),))


def model_label(model_id: str, *, max_model_ids: int) -> str:
    """``model_id``, or ``_other`` past the first ``max_model_ids`` ids of this process."""
    if model_id not in _labelled_model_ids:
        with _lock:
            if len(_labelled_model_ids) < max_model_ids:
                _labelled_model_ids.add(model_id)
            elif model_id not in _labelled_model_ids:  # not added by another thread meanwhile
                return OTHER_MODELS
    return model_id


OTHER_FEATURES = "_other"
_labelled_features: dict[str, set[str]] = {}  # model label -> features with their own label


def record_out_of_range(
    model_id: str, counts: dict[str, int], *, max_model_ids: int, max_features: int
) -> None:
    """Count out-of-range values of ``model_id`` by feature name (``counts``); a model's first
    ``max_features`` features seen out of range get their own label, the rest ``_other``."""
    label = model_label(model_id, max_model_ids=max_model_ids)
    with _lock:
        own = _labelled_features.setdefault(label, set())
        merged: dict[str, int] = {}
        for feature, n in counts.items():
            if feature not in own and len(own) < max_features:
                own.add(feature)
            key = feature if feature in own else OTHER_FEATURES
            merged[key] = merged.get(key, 0) + n
    for feature, n in merged.items():
        OUT_OF_RANGE.inc(float(n), (label, feature))


def record_inputs(
    model_id: str,
    X: Any,
    *,
    edges: Any,
    fractions: Any,
    feature_names: list[str],
    window: int,
    max_model_ids: int,
    max_features: int,
) -> None:
    """Queue the predicted rows ``X`` (n, n_features) for ``logreg_input_psi`` (a model with
    its own ``model_id`` label only: the windows of several models cannot be mixed). The hot
    path calls ``INPUT_PSI.add`` first, and this only for a model not tracked yet."""
    if not INPUT_PSI.tracked(model_id):
        if max_features == 0 or model_label(model_id, max_model_ids=max_model_ids) != model_id:
            return
        INPUT_PSI.track(
            model_id,
            edges=edges,
            fractions=fractions,
            features=feature_names[:max_features],
            window=window,
        )
    INPUT_PSI.add(model_id, X)


@contextlib.contextmanager
def timed_training() -> Iterator[None]:
    """Count a fit, and time it when it succeeds."""
    start = time.perf_counter()
    try:
        yield
    except Exception:
        TRAININGS.inc(1.0, ("error",))
        flush()
        raise
    TRAINING_DURATION.observe(time.perf_counter() - start)
    TRAININGS.inc(1.0, ("ok",))
    flush()  # trainings are rare, and may run in a child process that ends soon


def counts() -> dict[str, dict[Labels, list[float]]]:
    """This process's counts: metric name -> label values -> ``[count]`` for a counter,
    ``[sum, count of each bucket]`` for a histogram."""
    return {metric.name: metric.copy() for metric in KEPT}


# --- the files of a shared folder ---------------------------------------------------------


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell reused pids apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name (field 2) may hold spaces, so count after its closing ')'.
    return stat.rpartition(")")[2].split()[19]


def process_key(pid: int) -> str:
    """``<pid>-<start time>``: names a process, even once its pid is reused."""
    start = _start_time(pid)
    return f"{pid}-{start}" if start else str(pid)


def process_file(folder: Path, pid: int) -> Path:
    """The file where process ``pid`` keeps its counts in ``folder``."""
    return folder / f"metrics-{process_key(pid)}.json"


def load_counts(path: Path) -> dict[str, dict[Labels, list[float]]]:
    """The counts kept in ``path`` (a file written by ``flush``), in the form of ``counts()``.
    Series that do not fit today's metrics (labels, buckets) are left out. Raises ``OSError``
    and ``ValueError``."""
    raw = json.loads(path.read_bytes())
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: not a file of metric counts")
    out: dict[str, dict[Labels, list[float]]] = {}
    for metric in KEPT:
        width = (
            len(metric.bounds) + 1
            if isinstance(metric, Histogram)
            else metric.width
            if isinstance(metric, DriftWindows)
            else 1
        )
        series = out[metric.name] = {}
        for labels, values in raw.get(metric.name, ()):
            if len(labels) == len(metric.labelnames) and len(values) == width:
                series[tuple(map(str, labels))] = [float(v) for v in values]
    return out


def _add(totals: dict[str, dict[Labels, list[float]]], more: dict[str, dict[Labels, Any]]) -> None:
    for name, series in more.items():
        into = totals.setdefault(name, {})
        for labels, values in series.items():
            have = into.setdefault(labels, [0.0] * len(values))
            for i, value in enumerate(values):
                have[i] += value


class _Sharing:
    """This process's file in a shared folder, and the thread that keeps it up to date."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = process_file(folder, os.getpid())
        self.written: bytes | None = None  # what the file holds, so unchanged counts cost nothing
        self.write_lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._flush_every, name="metrics-flush", daemon=True)

    def _flush_every(self) -> None:
        while not self.stop.wait(FLUSH_SECONDS):
            try:
                self.flush()
            except Exception:  # the counting goes on; the next flush may succeed
                log.exception("metrics: could not write %s", self.path)

    def flush(self) -> None:
        with self.write_lock:  # counts taken and written in turn: a file never goes backwards
            data = json.dumps(
                {
                    name: [[labels, values] for labels, values in series.items()]
                    for name, series in counts().items()
                },
                separators=(",", ":"),
            ).encode()
            if data == self.written:
                return
            temp = self.path.with_name(f".{self.path.name}.tmp")
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                temp.write_bytes(data)
                os.replace(temp, self.path)
            except OSError:  # a full disk must not end the counting, nor fail a request
                log.warning("metrics: could not write %s", self.path, exc_info=True)
                return
            self.written = data


#: How often a process writes its counts to its file in the shared folder (seconds).
FLUSH_SECONDS = 1.0
_sharing: _Sharing | None = None
_hooks_installed = False  # at-exit and at-fork hooks (a forked child inherits both)


def share(folder: Path) -> None:
    """Keep this process's counts in ``folder`` (created if missing) from now on, and total the
    files of every process there when scraped. Starts the flusher thread; called at startup."""
    global _sharing, _hooks_installed
    folder = Path(folder)
    if _sharing is not None and _sharing.folder == folder:
        return
    unshare()
    folder.mkdir(parents=True, exist_ok=True)
    _sharing = _Sharing(folder)
    _sharing.flush()  # the process's file exists from the start
    _sharing.thread.start()
    if not _hooks_installed:
        _hooks_installed = True
        atexit.register(flush)
        os.register_at_fork(after_in_child=_after_fork)


def unshare() -> None:
    """Write this process's counts a last time and stop sharing them (server shutdown)."""
    global _sharing
    sharing, _sharing = _sharing, None
    if sharing is not None:
        sharing.stop.set()
        sharing.flush()


def shared_folder() -> Path | None:
    """The folder this process keeps its counts in, if any: pass it on to child processes."""
    return None if _sharing is None else _sharing.folder


def flush() -> None:
    """Write this process's counts to its file now, if it shares a folder."""
    sharing = _sharing
    if sharing is not None:
        sharing.flush()


def _after_fork() -> None:
    # The child is a new process: the counts are its parent's, the lock may have been held by a
    # thread that did not survive the fork, and its file is not the parent's. It shares a folder
    # only if it calls ``share`` itself.
    global _lock, _sharing
    _lock = threading.Lock()
    _sharing = None
    for metric in KEPT:
        metric.clear()
    _labelled_model_ids.clear()
    _labelled_features.clear()


# --- choosing the folder ------------------------------------------------------------------


def auto_root() -> Path:
    """The parent of the automatic folders: one per user, so that users sharing the temp folder
    cannot block or delete each other's."""
    return Path(tempfile.gettempdir()) / f"logreg-service-metrics-{getattr(os, 'getuid', int)()}"


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


def auto_dir(*, root: Path | None = None, pid: int | None = None) -> Path:
    """This server's own folder under ``root``; deletes the folders of servers that are gone."""
    root = auto_root() if root is None else root
    key = process_key(server_pid() if pid is None else pid)
    root.mkdir(parents=True, exist_ok=True)
    for old in root.iterdir():
        if old.name != key and not _is_running(old.name):
            shutil.rmtree(old, ignore_errors=True)
    path = root / key
    path.mkdir(exist_ok=True)
    return path


def folder_for(configured: Path | None) -> Path:
    """The folder of this server's counts: ``configured`` as it is, else ``auto_dir()``."""
    return Path(configured) if configured is not None else auto_dir()


# --- the scrape ---------------------------------------------------------------------------


class TotalsCollector(Collector):
    """Every metric of ``METRICS``: this process's counts plus those in the files of the other
    processes of the folder it shares."""

    def collect(self) -> Iterator[Metric]:
        totals = counts()
        sharing = _sharing
        if sharing is not None:
            for path in sorted(sharing.folder.glob("metrics-*.json")):
                if path == sharing.path:
                    continue  # this process: counted from memory, up to date
                try:
                    _add(totals, load_counts(path))
                except (OSError, ValueError, TypeError):
                    log.warning("metrics: skipped the unreadable %s", path, exc_info=True)
        for metric in METRICS:
            yield metric.family(totals)


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
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TotalsCollector())
    registry.register(StoreCollector(count_models))
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
