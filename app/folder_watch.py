"""Change notifications for the model folder (Linux inotify), so that the model cache need not
``stat`` a model's file on every prediction. No FastAPI here.

The kernel queues an event on the watch's file descriptor inside the very system call that
deletes, renames or writes a file, so before the process that made the change can answer its
client. The descriptor is read by the event loop (``loop.add_reader``), in the same poll that
delivers the sockets' requests; request handlers run after that poll's I/O callbacks. So a request
sent after another worker or replica answered "deleted" is handled after this process has heard
of the deletion. That is what lets a cache hit skip the ``stat``: measured, the ``stat`` cost
about 7% of the 1-row throughput (bench/serve.py), mostly in what it evicts from the CPU's caches.

Only changes made through this machine's kernel are seen (not, say, by another host writing to
an NFS share): the cache therefore still checks each model's file at least every
``model_cache.REVALIDATE_SECONDS``. Elsewhere than Linux, or when the watch cannot be set up,
``FolderWatcher.start`` returns ``False`` and the cache checks the file on every hit.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import struct
from collections.abc import Callable

log = logging.getLogger("app.folder_watch")

IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_UNMOUNT = 0x2000
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000
FILE_EVENTS = (
    IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
)
#: The watch is over: the folder went away or the kernel dropped events.
LOST = IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT | IN_Q_OVERFLOW | IN_IGNORED
_HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then the name


def _libc() -> ctypes.CDLL | None:
    try:
        # the C library is already loaded into the interpreter: look its symbols up there
        # (ctypes.util.find_library would run a subprocess, tens of ms of startup)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.inotify_init1.argtypes = [ctypes.c_int]
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    except (OSError, AttributeError):  # not Linux
        return None
    return libc


def parse_events(data: bytes) -> list[tuple[int, str | None]]:
    """``(mask, file name or None)`` for each ``inotify_event`` in ``data``."""
    out = []
    offset = 0
    while offset + _HEADER.size <= len(data):
        _, mask, _, length = _HEADER.unpack_from(data, offset)
        offset += _HEADER.size
        raw = data[offset : offset + length].rstrip(b"\0")
        offset += length
        out.append((mask, os.fsdecode(raw) if raw else None))
    return out


class FolderWatcher:
    """Calls ``on_change(name)`` for each file created, written, renamed or deleted in ``folder``,
    and ``on_change(None)`` when the watch is lost (then ``alive`` is ``False`` for good)."""

    def __init__(self, folder: str, on_change: Callable[[str | None], None]) -> None:
        self.folder = folder
        self.on_change = on_change
        self.alive = False
        self._fd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Watch from ``loop``; ``False`` if notifications are not available here."""
        libc = _libc()
        if libc is None:
            return False
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            log.warning(
                "model folder: no change notifications (%s)", os.strerror(ctypes.get_errno())
            )
            return False
        path = os.fsencode(self.folder)
        if (
            libc.inotify_add_watch(
                fd, path, FILE_EVENTS | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR
            )
            < 0
        ):
            log.warning(
                "model folder %s: no change notifications (%s)",
                self.folder,
                os.strerror(ctypes.get_errno()),
            )
            os.close(fd)
            return False
        self._fd, self._loop = fd, loop
        loop.add_reader(fd, self._read)
        self.alive = True
        return True

    def _read(self) -> None:
        assert self._fd is not None
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                log.warning("model folder: change notifications failed", exc_info=True)
                self._lose()
                return
            for mask, name in parse_events(data):
                if mask & LOST:
                    self._lose()
                    return
                if name is not None:
                    self.on_change(name)

    def _lose(self) -> None:
        self.stop()
        self.on_change(None)

    def stop(self) -> None:
        self.alive = False
        if self._fd is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
