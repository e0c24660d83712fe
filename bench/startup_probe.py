"""Startup to first answer of ``uvicorn app.main:app`` (1 worker) with this interpreter, using
the standard library only, so it also runs inside the Docker image, whose Python is not the
development machine's:

    docker run --rm -v "$PWD/bench/startup_probe.py:/tmp/probe.py:ro" \\
        --entrypoint python logreg-service /tmp/probe.py

Prints the median of 3 starts. ``bench/serve.py --mode startup`` measures the same on the
development machine, beside a one-route FastAPI app.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_once() -> float:
    port = free_port()
    env = {**os.environ, "UVICORN_WORKERS": "1", "MODEL_STORE_DIR": tempfile.mkdtemp()}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        return time.perf_counter() - started
            except OSError:
                time.sleep(0.005)
        raise RuntimeError("the server did not answer /health within 60 s")
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def main() -> None:
    times = [start_once() for _ in range(3)]
    print(
        f"startup to first answer ({sys.executable}, Python {sys.version.split()[0]}): "
        f"median {statistics.median(times):.2f} s (runs: {', '.join(f'{t:.2f}' for t in times)})"
    )


if __name__ == "__main__":
    main()
