"""Private servers the fault suite may stop, crash and restart: never the shared ones.

``PrivateCluster`` is a throwaway PostgreSQL cluster (initdb + pg_ctl, run as the postgres
user, in a temporary directory, on a free port); ``PrivateRedis`` a throwaway redis-server.
Both are removed when the scenario ends, whatever happened.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _missing(what: str):
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing, and CI must run the fault suite")
    pytest.skip(f"{what} is missing")


def _ready(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not come up within {timeout}s")
        time.sleep(0.1)


class PrivateCluster:
    """A PostgreSQL cluster of our own: crash it with ``stop("immediate")``."""

    def __init__(self, settings: dict | None = None):
        if not (PG_BIN / "initdb").exists() or not shutil.which("runuser"):
            _missing(f"PostgreSQL binaries in {PG_BIN} (or runuser)")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="jobs-faults-pg-"))
        shutil.chown(self.dir, "postgres")
        self.data = self.dir / "data"
        self._as_postgres(PG_BIN / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres")
        lines = {
            "port": str(self.port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.dir}'",
            "max_connections": "60",
            "shared_buffers": "'16MB'",
            **(settings or {}),
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in lines.items())
        self.start()
        self._as_postgres(PG_BIN / "createdb", "-h", "127.0.0.1", "-p", self.port, "jobs")

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/jobs"

    def _as_postgres(self, *args, timeout: float = 120) -> None:
        command = ["runuser", "-u", "postgres", "--", *map(str, args)]
        subprocess.run(command, check=True, capture_output=True, timeout=timeout)

    def start(self) -> None:
        log = self.dir / "server.log"
        self._as_postgres(PG_BIN / "pg_ctl", "-D", self.data, "-l", log, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """``mode`` "immediate" is a crash: no checkpoint, unflushed WAL is gone."""
        self._as_postgres(PG_BIN / "pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")

    def restart_after_crash(self) -> None:
        self.stop("immediate")
        self.start()

    def accepts(self) -> bool:
        probe = [PG_BIN / "pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port)]
        return subprocess.run(probe, check=False).returncode == 0

    def close(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass  # already down
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    """A redis-server of our own (no persistence): FLUSHDB it, kill it, at will."""

    def __init__(self):
        if not shutil.which("redis-server"):
            _missing("redis-server")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _ready(self.accepts, 20, "redis-server")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
