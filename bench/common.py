"""What the benchmarks share: a production server's environment and a fresh database.

Server processes themselves start through testing/servers.py, as the tests' do;
SERVER_CONFIGS names the servers bench/servers.py compares.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import psutil

from testing.servers import ServerProcess

BENCH_SECRET_KEY = "bench-only-secret-key-not-for-production-use-0123456789"


def production_env(*, settings_module: str, database: str, **extra: str) -> dict[str, str]:
    """Return this environment plus what production settings need, for a bench server.

    CONN_MAX_AGE stays 0: persistent connections leak under ASGI (Django #33497);
    the settings give PostgreSQL a connection pool instead.
    """
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE=settings_module,
        SECRET_KEY=BENCH_SECRET_KEY,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{database}",
        CONN_MAX_AGE="0",
        # Plain HTTP on 127.0.0.1 (no TLS in front), as testing/stack.py runs it:
        # otherwise every request would get the production settings' 301 to https.
        SECURE_SSL_REDIRECT="false",
        SECURE_COOKIES="false",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


PG = ["-h", "127.0.0.1", "-U", "postgres"]


def recreate_database(name: str) -> None:
    """Drop and create a bench database on the local PostgreSQL."""
    subprocess.run(["dropdb", *PG, "--if-exists", name], check=True)
    subprocess.run(["createdb", *PG, name], check=True)


def psql(sql: str, *, database: str) -> str:
    """Run one SQL statement with psql on a bench database; return its unaligned output."""
    done = subprocess.run(
        ["psql", *PG, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", database, "-c", sql],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


# The servers bench/servers.py compares (and bench/telemetry.py and bench/rooms.py take
# with --server): a name, the ServerProcess kind and its options. Each runs one worker
# process, tuned as production would run it.
SERVER_CONFIGS: dict[str, tuple[str, list[str]]] = {
    # As make serve runs it: httptools, websockets-sansio and uvloop (uvicorn's "auto").
    "uvicorn": (
        "uvicorn",
        ["--log-level", "warning", "--backlog", "8192", "--timeout-graceful-shutdown", "10"],
    ),
    # gunicorn as the process manager of one uvicorn worker (uvicorn-worker's class).
    "gunicorn": (
        "gunicorn",
        ["--workers", "1", "--backlog", "8192", "--graceful-timeout", "10", "--log-level", "error"],
    ),
}
_GRANIAN = ["--loop", "uvloop", "--ws", "--backlog", "8192", "--backpressure", "8192"]
_GRANIAN += ["--log-level", "warning", "--workers-kill-timeout", "10"]
# Granian's runtime modes: one Rust thread per worker (st), or a multi-threaded runtime (mt).
SERVER_CONFIGS["granian-st"] = ("granian", ["--runtime-mode", "st", *_GRANIAN])
SERVER_CONFIGS["granian-mt"] = (
    "granian",
    ["--runtime-mode", "mt", "--runtime-threads", "2", *_GRANIAN],
)


class CpuTimes(NamedTuple):
    user: float
    system: float


class ServerTree:
    """A server process and its children (Granian's and gunicorn's workers), measured as one.

    Duck-types the psutil.Process methods the benchmarks use: RSS and CPU are sums.
    """

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)

    def processes(self) -> list[psutil.Process]:
        found = [self.root]
        with contextlib.suppress(psutil.Error):
            found += self.root.children(recursive=True)
        return found

    def _sum(self, read) -> float:
        total = 0
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                total += read(proc)
        return total

    def memory_info(self) -> SimpleNamespace:
        return SimpleNamespace(rss=self._sum(lambda p: p.memory_info().rss))

    def cpu_times(self) -> CpuTimes:
        return CpuTimes(
            self._sum(lambda p: p.cpu_times().user), self._sum(lambda p: p.cpu_times().system)
        )

    def num_threads(self) -> int:
        return int(self._sum(lambda p: p.num_threads()))


def bench_server(
    config: str, *, env: dict[str, str], log_path: Path, application: str = "", extra=()
) -> ServerProcess:
    """Return (not started) one server process of SERVER_CONFIGS[config]."""
    kind, options = SERVER_CONFIGS[config]
    kwargs = {"application": application} if application else {}
    return ServerProcess(
        server=kind, env=env, log_path=log_path, options=[*options, *extra], **kwargs
    )
