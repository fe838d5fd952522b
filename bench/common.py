"""What the benchmarks share: free ports and the environment of a production server."""

from __future__ import annotations

import os
import socket
import subprocess

BENCH_SECRET_KEY = "bench-only-secret-key-not-for-production-use-0123456789"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
