"""A real nginx in front of LiveServer replicas, on loopback: the load balancer of
docker-compose.cluster.yml with its own configuration (deploy/nginx.conf.template) rendered
for the test's ports. Without an nginx binary, tests that need it are skipped (or fail under
``REQUIRE_NGINX=1``, which .ci/run sets after installing Debian's ``nginx-light``)::

    with NginxProxy(["127.0.0.1:8001", "127.0.0.1:8002"], tmp_path / "nginx") as lb:
        httpx.get(f"{lb.url}/health")
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import httpx

from tests.live_server import free_port

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "deploy" / "nginx.conf.template"
#: The per-replica failure accounting the compose file uses too.
SERVER_OPTIONS = "max_fails=2 fail_timeout=5s"

#: The main configuration around the template's ``server {}``: what the nginx image's own
#: nginx.conf provides, with every path in the test's folder (nginx runs unprivileged there).
MAIN = """\
{user}worker_processes {workers};
pid {root}/nginx.pid;
error_log {root}/error.log notice;
events {{ worker_connections 512; }}
http {{
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    log_format upstream '$remote_addr "$request" $status upstream=$upstream_addr '
                        'upstream_status=$upstream_status request_id=$logreg_request_id';
    access_log {root}/access.log upstream;
    include {root}/logreg.conf;
}}
"""


def find_nginx() -> str | None:
    """The nginx binary (``NGINX`` overrides), or ``None``."""
    override = os.environ.get("NGINX")
    if override:
        return override
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None
    )


def upstream_servers(addresses: Sequence[str]) -> str:
    """``API_SERVERS`` for the template: one ``server`` line per ``host:port``."""
    return " ".join(f"server {a} {SERVER_OPTIONS};" for a in addresses)


def render(*, port: int, addresses: Sequence[str], template: Path = TEMPLATE) -> str:
    """The template with its two variables filled in, as the nginx image's envsubst does."""
    text = template.read_text()
    for name in ("NGINX_PORT", "API_SERVERS"):
        assert f"${{{name}}}" in text, f"{template} lacks ${{{name}}}"
    return text.replace("${NGINX_PORT}", str(port)).replace(
        "${API_SERVERS}", upstream_servers(addresses)
    )


class NginxProxy:
    """``nginx -g 'daemon off;'`` listening on a free loopback port in front of ``addresses``."""

    def __init__(
        self, addresses: Sequence[str], root: Path | None = None, *, workers: int = 1
    ) -> None:
        binary = find_nginx()
        if binary is None:
            raise FileNotFoundError("nginx is not installed")
        self.binary = binary
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="logreg-nginx-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.addresses = list(addresses)
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None

    def write_config(self) -> Path:
        # as root, nginx's workers switch to a user ("nobody" with a group of the same name,
        # which Debian lacks): keep them as the current user, who owns the folder
        user = f"user {pwd.getpwuid(os.getuid()).pw_name};\n" if os.geteuid() == 0 else ""
        (self.root / "logreg.conf").write_text(render(port=self.port, addresses=self.addresses))
        main = self.root / "nginx.conf"
        main.write_text(MAIN.format(root=self.root, user=user, workers=self.workers))
        return main

    def start(self, timeout: float = 15.0, *, prefix: Sequence[str] = ()) -> NginxProxy:
        """``prefix``: a command to run nginx under, e.g. ``["taskset", "-c", "0"]``."""
        main = self.write_config()
        cmd = [*prefix, self.binary, "-p", str(self.root), "-e", str(self.root / "error.log")]
        check = subprocess.run([*cmd, "-t", "-c", str(main)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t refused the configuration:\n{check.stderr}")
        self.proc = subprocess.Popen(
            [*cmd, "-c", str(main), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                httpx.get(f"{self.url}/health", timeout=1)  # any answer: nginx listens
                return self
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nginx did not start:\n{self.error_log()[-3000:]}")
            time.sleep(0.05)

    def error_log(self) -> str:
        path = self.root / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def access_log(self) -> list[str]:
        path = self.root / "access.log"
        return path.read_text(errors="replace").splitlines() if path.exists() else []

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: finish what is in flight
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def __enter__(self) -> NginxProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
