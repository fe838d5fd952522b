"""What the benchmarks share: a production server's environment and a fresh database.

Server processes themselves start through testing/servers.py, as the tests' do.
"""

from __future__ import annotations

import os
import subprocess

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
