"""Other sessions on the test database, for tests of what concurrent sessions do (PostgreSQL)."""

from __future__ import annotations

import psycopg
from django.db import connection


def other_session(**kwargs) -> psycopg.Connection:
    """Open a connection of its own (another backend) to the test database."""
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    return psycopg.connect(**params, **kwargs)


def database_url() -> str:
    """The test database as a URL, for a process of its own (DATABASE_URL)."""
    db = connection.settings_dict
    user = db.get("USER") or "postgres"
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{db['NAME']}"
