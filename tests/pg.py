"""A real PostgreSQL for the tests: one cluster per test run (Debian's PostgreSQL 15 binaries),
a fresh database per test (``CREATE DATABASE`` is cheap), no mocks.

``initdb`` refuses to run as root: as root the cluster runs as the ``postgres`` user (through
``runuser``) in a temporary folder it owns; otherwise as the current user. The server listens on
a unix socket in that folder and on a free loopback TCP port, with ``trust`` authentication.
Without the binaries, tests that need the database are skipped.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.live_server import free_port

#: Where Debian installs the server binaries; the newest version found is used.
BIN_GLOB = "/usr/lib/postgresql/*/bin"


def find_bin() -> Path | None:
    """The PostgreSQL server's binaries (``PG_BIN`` overrides), or ``None``: none installed, or
    running as root with no ``postgres`` user to run them as."""
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return None
    found = [p for p in glob.glob(BIN_GLOB) if os.path.exists(os.path.join(p, "pg_ctl"))]
    override = os.environ.get("PG_BIN")
    if override:
        return Path(override)
    return Path(max(found, key=lambda p: int(p.split("/")[-2]))) if found else None


class PostgresCluster:
    """``initdb`` + ``pg_ctl start`` in a temporary folder; ``stop`` removes it."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="logreg-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.user = "postgres"
        self._as: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self._as, *args], capture_output=True, cwd=self.root, timeout=120)
        if done.returncode != 0:
            log = self.root / "server.log"
            raise RuntimeError(
                f"{' '.join(args[:1])} failed: {done.stderr.decode(errors='replace')}"
                + (log.read_text(errors="replace")[-2000:] if log.exists() else "")
            )

    def start(self) -> PostgresCluster:
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            self.user,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )
        # durability is PostgreSQL's business, not what these tests check: no fsync, for speed
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-o",
            options,
            "-w",
            "start",
        )
        return self

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def new_database(self) -> str:
        """A new empty database's URL."""
        import psycopg

        name = f"t_{secrets.token_hex(6)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} STRATEGY FILE_COPY")
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
