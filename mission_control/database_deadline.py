"""A client-side deadline for every round trip to PostgreSQL in a server process.

A PostgreSQL that hangs (processes alive but not answering: frozen, storage
stalled, a network that drops packets) never raises: the kernel still ACKs, so
TCP keepalive does not fire, `statement_timeout` is enforced by the hung server
itself, and psycopg has no query deadline of its own. A request would wait for
ever, holding its thread and its pooled connection.

psycopg runs every round trip of a connection (execute, fetch of a server-side
cursor, commit, rollback, the pool's checks) through `Connection.wait()`, whose
wait function already takes a `timeout` (psycopg raises its `_WaitTimeout`).
`DeadlineConnection` passes the deadline there; the pool creates its connections
with it (`connection_class` in the pool options, see settings), and the project's
database backend (`mission_control.postgresql`) makes Django's own connections
one when the pool is off (`DATABASE_POOL_MAX=0`). Connecting is bounded apart, by
libpq's `connect_timeout` (`DATABASE_CONNECT_TIMEOUT`). On expiry the
connection is closed (`PQfinish`) and `QueryDeadlineExceeded`, an
`OperationalError`, is raised: Django wraps it as its own `OperationalError`,
which the outage handling (`mission_control.database_outage`) answers with 503.
The closed connection is never reused: Django sees it unusable at the end of the
request and hands it back to the pool, which discards it and connects anew (or,
without the pool, drops it: every request connects anew anyway).

A write cut off this way is all or nothing: the server, once it answers again,
reads what was sent, then the connection's end, and rolls back an open
transaction; a COMMIT already sent may still be carried out, so a client that got
503 retries (telemetry, room messages and images are stored once however often sent).

No thread, no timer: the deadline costs one global lookup per round trip. It is
armed by the ASGI application only (`arm`), so management commands (migrations,
pruning) keep their long queries.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import errors
from psycopg.connection import _WAIT_INTERVAL

# Seconds one round trip may take in this process; None: no deadline (not armed, or 0).
_deadline: float | None = None


class QueryDeadlineExceeded(psycopg.OperationalError):
    """The database did not answer within the deadline; the connection was closed."""


class DeadlineConnection(psycopg.Connection):
    """A psycopg connection whose round trips give up after the armed deadline."""

    def wait(self, gen: Any, interval: float = _WAIT_INTERVAL, timeout: float | None = None) -> Any:
        """Run `gen` as psycopg does, within the deadline unless the caller set its own."""
        deadline = _deadline
        if deadline is None or timeout is not None:
            return super().wait(gen, interval, timeout)
        try:
            return super().wait(gen, interval, deadline)
        except errors._WaitTimeout:  # psycopg's own, raised by its wait function
            # Mid-protocol: nothing can be sent on it any more. Closing is what makes
            # the server roll back, and the pool discard it when it comes back.
            self.pgconn.finish()
            raise QueryDeadlineExceeded(
                f"the database did not answer within {deadline:g} s; connection closed"
            ) from None


def arm(seconds: float) -> None:
    """Give every round trip of this process's connections `seconds` (0: none)."""
    global _deadline  # one value per process, read on every round trip
    _deadline = float(seconds) if seconds and seconds > 0 else None


def armed() -> float | None:
    """Return the deadline in force in this process, or None."""
    return _deadline
