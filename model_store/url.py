"""Which store ``MODEL_STORE_URL`` names: ``open_store``."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .base import ModelStore
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


def open_store(
    url: str | None, folder: str | os.PathLike[str], *, create: bool = True
) -> ModelStore:
    """The store ``url`` names: unset, the folder store at ``folder``; ``file:///path``, the
    folder store there; ``postgresql://...``, ``PostgresStore`` (psycopg is imported only then).

    ``create``: make the folder, or migrate the database's schema (the server at start); a
    training child passes ``False``. A PostgreSQL database that cannot be reached raises
    ``DatabaseUnavailable``.
    """
    if url is None:
        return JsonFileStore(folder, create=create)
    check_store_url(url)
    parts = urlsplit(url)
    if parts.scheme == "file":
        return JsonFileStore(Path(unquote(parts.path)), create=create)
    from .postgres import PostgresStore

    return PostgresStore(url, create=create)
