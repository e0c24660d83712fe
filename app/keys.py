"""Scoped API keys: the ``API_KEYS_FILE`` table, re-read when it changes, and the command that
adds a key to it. No FastAPI here (``app.api.front.auth`` is the HTTP side).

The file maps a key id to the SHA-256 of the key and its scopes; keys are never stored::

    {"ci-bot": {"sha256": "9f86d0...", "scopes": ["predict"]}}

Scopes grow: ``predict`` (predictions, reading models and names), ``train`` (also trainings and
their jobs), ``admin`` (also deletes, alias changes and the audit log). Add a key with one
command, which prints the new key once::

    python -m app.keys add keys.json ci-bot predict
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import os
import secrets
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("app.keys")

SCOPES = ("predict", "train", "admin")
RANK = {scope: rank for rank, scope in enumerate(SCOPES)}
#: How often the file's ``stat`` is checked for a change (seconds): a rotated key takes effect
#: within this.
RELOAD_SECONDS = 1.0
#: The key id the ``API_KEY`` setting gets: one ``admin`` key.
API_KEY_ID = "API_KEY"


class KeyFileError(ValueError):
    """``API_KEYS_FILE`` cannot be used; the message names the entry and what is wrong."""


@dataclass(frozen=True)
class Key:
    key_id: str
    rank: int  # of its highest scope

    def allows(self, scope: str) -> bool:
        return self.rank >= RANK[scope]


def digest(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


def parse_table(data: bytes, source: str) -> dict[bytes, Key]:
    """The key table in ``data`` (a file's bytes), by the SHA-256 digest of each key."""
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise KeyFileError(f"{source}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise KeyFileError(f"{source}: must be a JSON object of key id -> entry")
    table: dict[bytes, Key] = {}
    for key_id, entry in raw.items():
        where = f"{source}: key {key_id!r}"
        if not isinstance(entry, dict) or set(entry) - {"sha256", "scopes"}:
            raise KeyFileError(f"{where}: must be {{'sha256': ..., 'scopes': [...]}}")
        hexdigest = entry.get("sha256")
        try:
            raw_digest = bytes.fromhex(hexdigest) if isinstance(hexdigest, str) else b""
        except ValueError:
            raw_digest = b""
        if len(raw_digest) != 32:
            raise KeyFileError(f"{where}: sha256 must be 64 hex digits (the key's SHA-256)")
        scopes = entry.get("scopes")
        if not isinstance(scopes, list) or not scopes or any(s not in RANK for s in scopes):
            raise KeyFileError(f"{where}: scopes must be a non-empty list of {list(SCOPES)}")
        table[raw_digest] = Key(key_id=key_id, rank=max(RANK[s] for s in scopes))
    return table


class KeyTable:
    """The keys the server accepts: those of ``path`` (re-read when it changes) and ``api_key``
    (one admin key). Thread-safe; ``find`` costs a hash and, at most every ``RELOAD_SECONDS``,
    one ``stat``."""

    def __init__(self, *, path: Path | None = None, api_key: str | None = None) -> None:
        self.path = path
        self._fixed: dict[bytes, Key] = {}
        if api_key:
            self._fixed[digest(api_key.encode())] = Key(API_KEY_ID, RANK["admin"])
        self._table: dict[bytes, Key] = dict(self._fixed)
        self._stamp: tuple[int, int, int] | None = None
        self._checked = float("-inf")
        self._lock = threading.Lock()
        if path is not None:
            self._reload(strict=True)

    def _reload(self, *, strict: bool) -> None:
        assert self.path is not None
        try:
            st = os.stat(self.path)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            if stamp == self._stamp:
                return
            table = parse_table(self.path.read_bytes(), str(self.path))
        except (OSError, KeyFileError) as exc:
            if strict:
                raise KeyFileError(f"API_KEYS_FILE: {exc}") from None
            log.error("API_KEYS_FILE: %s; the keys read before stay in use", exc)
            return
        self._table = {**table, **self._fixed}
        self._stamp = stamp

    def find(self, candidate: bytes) -> Key | None:
        if self.path is not None:
            now = time.monotonic()
            if now - self._checked >= RELOAD_SECONDS:
                with self._lock:
                    if now - self._checked >= RELOAD_SECONDS:
                        self._reload(strict=False)
                        self._checked = now
        # Looked up by the key's SHA-256: what the time of a look-up could reveal is about the
        # digest, which tells nothing of a key that is not known already.
        return self._table.get(digest(candidate))


def add_key(path: Path, key_id: str, scopes: list[str]) -> str:
    """Add a new key to the file at ``path`` (created if missing), atomically; the key."""
    if not key_id or any(s not in RANK for s in scopes) or not scopes:
        raise KeyFileError(f"a key needs an id and scopes among {list(SCOPES)}")
    data: dict[str, Any] = orjson.loads(path.read_bytes()) if path.exists() else {}
    parse_table(orjson.dumps(data), str(path))  # refuse to extend a file the server refuses
    if key_id in data:
        raise KeyFileError(f"{path}: key {key_id!r} exists; remove it first to rotate it")
    key = secrets.token_urlsafe(32)
    data[key_id] = {"sha256": hashlib.sha256(key.encode()).hexdigest(), "scopes": scopes}
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=".keys-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(orjson.dumps(data, option=orjson.OPT_INDENT_2))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.keys", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="make a new key, add its hash to FILE, print the key once")
    add.add_argument("file", type=Path)
    add.add_argument("key_id")
    add.add_argument("scopes", nargs="+", choices=SCOPES)
    args = parser.parse_args(argv)
    try:
        key = add_key(args.file, args.key_id, args.scopes)
    except (KeyFileError, OSError, orjson.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
