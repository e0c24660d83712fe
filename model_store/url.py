"""Which store ``MODEL_STORE_URL`` names: ``open_store``; and the job and dataset stores that go
with it: ``job_store_for``, ``dataset_store_for`` (callers never pick the classes themselves)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .base import ModelStore
from .datasets import FileDatasetStore
from .jobs import JobStore, JsonJobStore
from .json_store import JsonFileStore

#: The schemes ``MODEL_STORE_URL`` accepts.
SCHEMES = ("file", "postgresql", "postgres")
URL_RULE = "file:///absolute/path or postgresql://user:password@host:port/database"


def check_store_url(url: str) -> str:
    """``url`` if it names a store, else ``ValueError`` saying the accepted forms."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ValueError(f"MODEL_STORE_URL: {parts.scheme or url!r} is not a store; use {URL_RULE}")
    if parts.scheme == "file" and (parts.netloc not in ("", "localhost") or not parts.path):
        raise ValueError(f"MODEL_STORE_URL: {url!r} is not a local folder; use {URL_RULE}")
    return url


def store_folder(url: str | None, folder: str | os.PathLike[str]) -> Path | None:
    """The folder of the folder store ``url`` names (``folder`` when unset); ``None`` for a
    database."""
    if url is None:
        return Path(folder)
    parts = urlsplit(check_store_url(url))
    return Path(unquote(parts.path)) if parts.scheme == "file" else None


def open_store(
    url: str | None, folder: str | os.PathLike[str], *, create: bool = True
) -> ModelStore:
    """The store ``url`` names: unset, the folder store at ``folder``; ``file:///path``, the
    folder store there; ``postgresql://...``, ``PostgresStore`` (psycopg is imported only then).

    ``create``: make the folder, or migrate the database's schema (the server at start); a
    training child passes ``False``. A PostgreSQL database that cannot be reached raises
    ``DatabaseUnavailable``.
    """
    path = store_folder(url, folder)
    if path is not None:
        return JsonFileStore(path, create=create)
    assert url is not None
    from .postgres import PostgresStore

    return PostgresStore(url, create=create)


#: The folders of jobs and datasets inside the model folder (or ``MODEL_STORE_DIR``).
JOBS_FOLDER = "jobs"
DATASETS_FOLDER = "datasets"


def job_store_for(store: ModelStore, folder: str | os.PathLike[str]) -> JobStore:
    """The job store that goes with ``store``: ``PgJobStore`` in a ``PostgresStore``'s database
    (bodies being received are spooled in ``folder``), else ``JsonJobStore`` in
    ``<folder>/jobs``. ``folder``: the folder store's model folder, or ``MODEL_STORE_DIR``."""
    if not isinstance(store, JsonFileStore):
        from .postgres import PostgresStore

        if isinstance(store, PostgresStore):
            from .postgres_jobs import PgJobStore

            return PgJobStore(store, spool_dir=folder)
    return JsonJobStore(Path(folder) / JOBS_FOLDER)


def dataset_store_for(store: ModelStore, folder: str | os.PathLike[str]) -> FileDatasetStore:
    """The dataset store that goes with ``store``: data files in ``<folder>/datasets`` always
    (a volume shared by every replica and worker), their metadata in a ``PostgresStore``'s
    database (``PgDatasetStore``) or beside them (``FileDatasetStore``)."""
    root = Path(folder) / DATASETS_FOLDER
    if not isinstance(store, JsonFileStore):
        from .postgres import PostgresStore

        if isinstance(store, PostgresStore):
            from .postgres_datasets import PgDatasetStore

            return PgDatasetStore(root, store)
    return FileDatasetStore(root)
