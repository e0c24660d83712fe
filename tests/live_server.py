"""A real uvicorn process on a free loopback port, for tests that need the service as users run it.

Shared by every test that starts the server (crash tests, workers, browser, clients), so
that starting, waiting for health and stopping are written once::

    with LiveServer(model_dir) as server:
        httpx.get(f"{server.url}/health")
        server.kill()            # SIGKILL, e.g. mid-way through writes
        server.start()           # same port, same folder
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def children(pid: int) -> set[int]:
    """The pids of ``pid``'s child processes (a training pool's, nginx's workers), found by
    their parent in ``/proc`` (so whichever of its threads started them)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended meanwhile
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


class ServiceProcess:
    """One of the service's processes, its output in a log file beside ``model_dir``: started by
    a subclass's ``start`` (``_launch``, then ``_wait_until`` it is ready), then ``stop``
    (SIGTERM, SIGKILL after ``stop_timeout`` s) or ``kill``; a context manager."""

    stop_timeout = 15.0

    def __init__(self, model_dir: Path, env: Mapping[str, str], log_name: str) -> None:
        self.model_dir = Path(model_dir)
        self.env = {**os.environ, "MODEL_STORE_DIR": str(self.model_dir), **env}
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = self.model_dir.parent / log_name

    def start(self) -> Self:
        raise NotImplementedError

    def _launch(self, cmd: Sequence[str]) -> None:
        self.model_dir.parent.mkdir(parents=True, exist_ok=True)
        with self._log.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def _wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while not ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{what} did not start:\n{self.log()[-3000:]}")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        return self._log.read_text(errors="replace") if self._log.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers run, as in a crash or an OOM kill."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class LiveServer(ServiceProcess):
    """``python -m uvicorn app.main:app`` serving ``model_dir`` on 127.0.0.1.

    Parameters
    ----------
    model_dir : Path
        Passed as ``MODEL_STORE_DIR``.
    env : mapping, optional
        More environment variables (settings) for the server process.
    args : sequence of str, optional
        More uvicorn arguments, e.g. ``["--workers", "2"]``.
    port : int, optional
        Defaults to a free port, kept across restarts.
    """

    def __init__(
        self,
        model_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
        port: int | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.port = port or free_port()
        super().__init__(model_dir, env or {}, f"uvicorn-{self.port}.log")
        if "PROMETHEUS_MULTIPROC_DIR" not in (env or {}):
            # one set in the environment of the tests would be shared: each server picks its own
            self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.args = list(args)
        self.url = f"http://127.0.0.1:{self.port}"
        self.startup_timeout = startup_timeout

    def start(self) -> Self:
        cmd = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1"]
        self._launch([*cmd, "--port", str(self.port), *self.args])
        self._wait_until(self._healthy, self.startup_timeout, "server")
        return self

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False


class WorkerProcess(ServiceProcess):
    """``python -m app.worker``: a training worker on the PostgreSQL queue (``env`` holds
    ``MODEL_STORE_URL``), started with ``start`` (ready once it says so in its log)."""

    READY = b"trainings at once"
    stop_timeout = 20.0

    def __init__(
        self, model_dir: Path, *, env: Mapping[str, str], args: Sequence[str] = ()
    ) -> None:
        super().__init__(model_dir, env, f"worker-{id(self)}.log")
        self.args = list(args)

    def start(self, timeout: float = 30.0) -> Self:
        self._launch([sys.executable, "-m", "app.worker", *self.args])
        self._wait_until(lambda: self.READY in self._log.read_bytes(), timeout, "worker")
        return self
