"""Django's PostgreSQL backend whose connections are all `DeadlineConnection`s.

The pool creates them itself (`connection_class` in its options, see settings).
Without the pool (`DATABASE_POOL_MAX=0`) Django connects with `psycopg.connect()`,
which takes no connection class: it made plain connections, and a hung server
held such a request for ever. This backend turns those into `DeadlineConnection`s
before Django's first query on them (time zone, role), so the deadline armed in
server processes bounds every round trip in either mode.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.postgresql import base

from mission_control.database_deadline import DeadlineConnection


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        connection = super().get_new_connection(conn_params)
        if not isinstance(connection, DeadlineConnection):
            # DeadlineConnection adds behaviour only (one method, no state), so a
            # psycopg connection becomes one in place; psycopg.connect() takes no class.
            connection.__class__ = DeadlineConnection
        return connection
