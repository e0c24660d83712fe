"""Service settings. Every field is read from the environment variable of the same name in
upper case (``MODEL_STORE_DIR``, ``MAX_ROWS``...); the README lists them all."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from model_store import check_store_url


class Settings(BaseSettings):
    # The docstrings below document the fields for readers of this file. They are not turned
    # into field descriptions (``use_attribute_docstrings``): pydantic would read this file's
    # source at every start, which costs startup time (docs/DEVELOPING.md).
    model_config = SettingsConfigDict(extra="ignore", protected_namespaces=())

    model_store_dir: Path = Path("models")
    """Folder where trained models are kept, one JSON file each (created if missing)."""

    model_store_url: str | None = None
    """Where models, their names, aliases and the audit log live. Unset (or empty): the folder
    ``MODEL_STORE_DIR``. ``file:///path``: that folder. ``postgresql://user:password@host:port/db``:
    a PostgreSQL database every replica reaches (docs/operations.md, "PostgreSQL"); its schema is
    made and migrated at start, and a database that cannot be reached stops the start."""

    @field_validator("model_store_url", mode="before")
    @classmethod
    def _check_store_url(cls, value: object) -> object:
        if value is None or value == "":
            return None
        return check_store_url(str(value))

    max_rows: int = Field(1_000_000, ge=1)
    """Most rows accepted in one training or prediction request."""

    max_features: int = Field(10_000, ge=1)
    """Most features (columns) a model may have."""

    max_classes: int = Field(1_000, ge=2)
    """Most distinct labels a training set may have."""

    max_train_memory_bytes: int = Field(4 * 1024**3, ge=1)
    """Most memory one training may need, in bytes (default 4 GiB: two trainings at once, one
    per worker, still leave most of a 24 GiB machine to predictions and the page cache). The
    need grows with products the other limits do not see (rows x expanded columns, rows x
    classes, the Newton solvers' Hessians); it is estimated from the request's sizes before
    fitting (``app.engine.footprint``), and past it ``POST /train`` answers 413 naming the field
    that makes it large (``params.polynomial_degree``, ``labels``...)."""

    max_model_bytes: int = Field(64 * 1024**2, ge=1)
    """Largest model file a training may write, in bytes (default 64 MiB: about two million
    coefficients), estimated before fitting from classes x coefficients; past it 413. It also
    bounds what ``GET /models/{id}`` answers and what a worker reads to load a model."""

    max_iter: int = Field(100_000, ge=1)
    """Largest ``params.max_iter`` a training request may ask for."""

    train_time_budget: float = Field(300.0, gt=0)
    """Seconds a training may run; past it the solver stops and reports ``converged: false``."""

    page_size_max: int = Field(1_000, ge=1)
    """Largest ``limit`` accepted by ``GET /models``."""

    max_body_bytes: int = Field(100 * 1024 * 1024, ge=1)
    """Largest request body in bytes (default 100 MiB); a larger one is refused with 413 before
    it is parsed, whether it declares its ``Content-Length`` or is streamed in chunks."""

    max_dataset_bytes: int = Field(20 * 1024**3, ge=1)
    """Largest upload to ``POST /datasets`` in bytes (default 20 GiB), as sent (a gzip body
    counts compressed) and again as stored once parsed; past it 413 and nothing is kept.
    ``MAX_BODY_BYTES`` does not apply there (it stays for JSON and CSV bodies)."""

    train_sync_max_rows: int = Field(1_000_000, ge=1)
    """Trainings from a dataset with more rows than this run as jobs (``/jobs``) whatever the
    ``Prefer`` header: ``POST /train`` answers 202 and the job."""

    body_read_timeout: float = Field(120.0, gt=0)
    """Seconds a request body may take to arrive in full, counted from the request's start; past
    it the answer is 408 and the connection is closed. The default takes a ``MAX_BODY_BYTES``
    body at about 0.9 MB/s (7 Mbit/s): raise it for large uploads over slower links."""

    api_key: SecretStr | None = None
    """When set, every route except health and the docs needs a key, sent in the
    ``X-API-Key`` header or as ``Authorization: Bearer <key>``; otherwise 401. This one is an
    ``admin`` key (every scope; see ``API_KEYS_FILE`` for scoped keys). Unset or empty
    (``API_KEY=``, as a compose file passes an unset variable) and no ``API_KEYS_FILE``: no
    authentication."""

    api_keys_file: Path | None = None
    """A JSON file of scoped API keys (``app.keys``): ``{"<key id>": {"sha256": "<hex of the
    key>", "scopes": ["predict" | "train" | "admin"]}}``; re-read within a second when it
    changes, so keys rotate without a restart. ``python -m app.keys add FILE ID SCOPE`` adds
    one and prints the key. With ``API_KEY`` too, that key is one more ``admin`` key."""

    @field_validator("api_keys_file", mode="before")
    @classmethod
    def _empty_file_is_no_file(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_is_no_key(cls, value: object) -> object:
        return None if value == "" else value

    prometheus_multiproc_dir: Path | None = None
    """Folder where each process keeps its metric counts, so ``GET /metrics`` totals all uvicorn
    workers and training processes. Unset or empty: a folder per server run under the system
    temp folder, cleaned automatically. Set: used as is (the name and contract of
    ``prometheus_client``'s multiprocess mode); empty it before starting the server. Chosen when
    the server starts (``app.metrics.folder_for``)."""

    @field_validator("prometheus_multiproc_dir", mode="before")
    @classmethod
    def _empty_dir_is_no_dir(cls, value: object) -> object:
        return None if value == "" else value

    metrics_max_model_ids: int = Field(100, ge=0)
    """Model ids that get their own ``model_id`` label on ``logreg_predicted_rows_total`` in each
    process; predictions of further models are counted under ``_other`` (bounds the series)."""

    metrics_max_features: int = Field(20, ge=0)
    """Features per model that get their own ``feature`` label on the input-drift metrics
    (``logreg_out_of_range_values_total``: the first seen out of range, the rest counted under
    ``_other``; ``logreg_input_psi``: the model's first features), in each process."""

    drift_window: int = Field(10_000, ge=1)
    """Predicted rows per model (in each process) over which ``logreg_input_psi`` compares the
    inputs with the training deciles: the most recent ones."""

    model_cache_size: int = Field(64, ge=0)
    """Trained models kept ready in memory by each worker process (least recently used are
    dropped first); 0 re-reads the model file on every prediction."""

    model_cache_bytes: int = Field(1024**3, ge=0)
    """Most memory the models kept by ``MODEL_CACHE_SIZE`` may hold in each worker process, in
    bytes (default 1 GiB); the least recently used are dropped first, and a model larger than
    this alone is served without being kept."""

    train_concurrency: int = Field(1, ge=1)
    """Trainings that may run at once in each worker process, each in its own child process;
    past it ``POST /train`` answers 429 with ``Retry-After``."""

    train_retry_after: int = Field(5, ge=1)
    """Seconds sent in ``Retry-After`` when training is at capacity."""

    train_inline_max_bytes: int = Field(262_144, ge=0)
    """Training bodies up to this size train in a thread of the worker (milliseconds of work);
    larger ones in a child process, off the worker's GIL. 0: always in a child process."""

    opentelemetry: bool = False
    """FastAPI's built-in OpenTelemetry spans, metrics and logs for each request (used when an
    OpenTelemetry provider is configured). Off by default: looking for providers costs every
    request, and this service exposes its own metrics."""

    train_jobs_in_server: bool = True
    """With the PostgreSQL store, training jobs wait in a queue in the database: this server's
    worker processes take them too (each up to ``TRAIN_CONCURRENCY`` at once). ``false``: only
    ``python -m app.worker`` processes run them (the cluster's API replicas). The folder store
    always runs its jobs in the server."""

    worker_stalled_seconds: float = Field(30.0, ge=1.0)
    """With the PostgreSQL store: a process running jobs that has not sent its heartbeat for
    this long is taken for dead, and its job is run again once by another, or marked failed.
    Heartbeats are sent every third of it."""

    job_retention_days: float = Field(30.0, ge=0)
    """Records of training jobs that ended (succeeded, failed or cancelled) more than this many
    days ago are deleted; their models stay. ``0`` keeps them for ever. Each server (folder
    store) or process running jobs (PostgreSQL) looks at start and then once an hour."""

    max_queued_jobs: int = Field(20, ge=1)
    """Training jobs (``POST /train`` with ``Prefer: respond-async``) that may wait to run, over
    every worker and replica sharing the model folder; past it 429 with ``Retry-After``. Each
    waiting job keeps its request body on disk (up to ``MAX_BODY_BYTES``) until it runs."""
