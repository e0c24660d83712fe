"""Files written atomically in a folder: a reader sees the whole file or none, and a write that
returned survives a crash. Shared by the models, their names and the datasets."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
import time
from pathlib import Path
from typing import Any

import orjson

TMP_PREFIX = ".tmp-"
#: Where file locks are not supported, temporary files older than this are taken for leftovers
#: of interrupted writes (a live write takes milliseconds).
STALE_TMP_SECONDS = 300.0


def checksum(body: dict[str, Any]) -> str:
    """SHA-256 of the canonical (sorted-key) JSON of ``body``."""
    return "sha256:" + hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


class AtomicFolder:
    """Writes go to a temporary file in the same folder, are flushed and fsynced, then renamed
    over the final name (atomic on POSIX), and the folder is fsynced."""

    def __init__(self, root: str | os.PathLike[str], *, create: bool = True) -> None:
        """``create``: make the folder if missing (the server at startup). The training child
        passes ``False``: a folder that vanished under a running server (a volume unmounted)
        must not be recreated empty, where models would be written and then lost."""
        self.root = Path(root)
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        self._prefix = os.path.join(self.root, "")  # str paths: fingerprint is on the hot path

    def _write(self, final: str, data: bytes) -> None:
        fd, tmp = self._create_locked_temporary(os.path.basename(final))
        try:
            with open(fd, "wb", closefd=False) as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        finally:
            os.close(fd)  # releases the lock, after the rename
        self._fsync_dir()

    def _create_locked_temporary(self, name: str) -> tuple[int, str]:
        """A new temporary file in the folder, open and exclusively ``flock``-ed.

        The lock is how ``remove_stale_temporaries`` (in another worker, or at startup) tells a
        live write from the leftover of a process that died: the kernel drops a dead process's
        locks, even after ``kill -9``. A cleaner may unlink our file between its creation and our
        lock; we then see a different inode at the path and start again.
        """
        while True:
            tmp = f"{self._prefix}{TMP_PREFIX}{name}.{os.getpid()}.{secrets.token_hex(4)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    pass  # a cleaner holds it and is about to unlink it: start again
                except OSError:  # no locks on this filesystem: the cleaner goes by age
                    return fd, tmp
                else:
                    if os.stat(tmp).st_ino == os.fstat(fd).st_ino:
                        return fd, tmp
            except FileNotFoundError:
                pass
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)

    def _fsync_dir(self) -> None:
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def remove_stale_temporaries(self, *, older_than: float = STALE_TMP_SECONDS) -> int:
        """Delete leftovers of interrupted writes; returns how many were removed.

        A temporary file is a leftover when no process holds its lock (its writer died), or,
        where locks are not supported, when it is older than ``older_than`` seconds. Writes in
        progress in other processes are left alone, so any worker may call this at any time.
        """
        now = time.time()
        removed = 0
        for entry in os.scandir(self.root):
            if not entry.name.startswith(TMP_PREFIX):
                continue
            try:
                fd = os.open(entry.path, os.O_RDONLY)
            except FileNotFoundError:  # its writer just renamed it into place
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live writer holds it
                except OSError:
                    if now - os.fstat(fd).st_mtime <= older_than:
                        continue
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
            finally:
                os.close(fd)
        return removed
