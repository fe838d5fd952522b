"""PostgreSQL outages: the API answers 503 JSON with Retry-After, sockets close 1013.

When the database does not answer, every query raises `django.db.OperationalError`
(or `InterfaceError` on a connection the server dropped); a psycopg pool that has
no connection within DATABASE_POOL_TIMEOUT raises `PoolTimeout`, which Django
wraps as `OperationalError` too. So no request waits longer than the pool timeout.
A server that hangs with its connections open raises nothing by itself: the query
deadline (`mission_control.database_deadline`) closes such a connection and raises
an `OperationalError` as well.

- HTTP: `server_error` is the project's `handler500`. Django calls it for every
  uncaught exception, including those raised in middleware (the session, the
  bearer token), which a view-level `process_exception` would miss. A database
  outage answers 503 with `Retry-After`: JSON on API paths (`accounts.paths`),
  a short text page elsewhere. Anything else keeps Django's 500.
- WebSockets: `close_1013_on_database_outage` wraps the socket application. A
  database error anywhere in the handshake (token or session lookup, the
  consumer's connect) or later closes the socket with 1013 "try again later",
  accepting it first if needed, since a refused handshake carries no close code.
"""

from __future__ import annotations

import logging
import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from accounts.paths import token_path

logger = logging.getLogger(__name__)

try:  # psycopg's own errors, should one escape Django's wrapping (a pool's PoolTimeout is one)
    import psycopg

    _DRIVER_ERRORS: tuple[type[Exception], ...] = (psycopg.OperationalError, psycopg.InterfaceError)
except ImportError:  # SQLite-only installs
    _DRIVER_ERRORS = ()

DATABASE_ERRORS = (OperationalError, InterfaceError, *_DRIVER_ERRORS)
CLOSE_TRY_AGAIN_LATER = 1013
# Seconds a client should wait before retrying: a restart or a fail-over takes a few.
RETRY_AFTER_SECONDS = 5


def is_database_outage(exc: BaseException | None) -> bool:
    """Return whether `exc` (or an exception it was raised from) means the database is away."""
    while exc is not None:
        if isinstance(exc, DATABASE_ERRORS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: 503 + Retry-After while the database is away, else Django's 500."""
    if not is_database_outage(sys.exc_info()[1]):
        return defaults.server_error(request)
    if token_path(request.path_info):
        response: HttpResponse = JsonResponse(
            {
                "error": "database_unavailable",
                "detail": "The database is not answering; retry later.",
            },
            status=503,
        )
    else:
        response = HttpResponse(
            "The database is not answering; retry in a few seconds.\n",
            status=503,
            content_type="text/plain; charset=utf-8",
        )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _close_code(send) -> int:
    # daphne (autobahn) cannot send 1013 and turns it into 1011: see comms.frames.
    # Imported here: comms.frames loads Channels and Django models, which urls.py
    # (handler500) must not need before the apps are ready.
    from comms.frames import _served_by_daphne

    return 4013 if _served_by_daphne(send) else CLOSE_TRY_AGAIN_LATER


class _TrackedSend:
    """The server's send, noting accept and close.

    A bound method whose object holds `real_send`, so comms.frames can still
    tell daphne's send (which cannot send 1009 or 1013) through this wrapper.
    """

    def __init__(self, real_send) -> None:
        self.real_send = real_send
        self.accepted = False
        self.closed = False

    async def send(self, message) -> None:
        if message["type"] == "websocket.accept":
            self.accepted = True
        elif message["type"] == "websocket.close":
            self.closed = True
        await self.real_send(message)


class DatabaseOutageCloser:
    """Wrap a WebSocket ASGI application: a database outage closes the socket with 1013.

    `application` names the wrapped app, as channels' middlewares do, so the route
    walk of the access matrix test can look through it.
    """

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        tracked = _TrackedSend(send)
        connect_received = False

        async def tracked_receive():
            nonlocal connect_received
            message = await receive()
            if message["type"] == "websocket.connect":
                connect_received = True
            elif message["type"] == "websocket.disconnect":
                tracked.closed = True
            return message

        try:
            return await self.application(scope, tracked_receive, tracked.send)
        except Exception as exc:
            if not is_database_outage(exc) or tracked.closed:
                raise
            logger.warning("socket %s closed 1013: the database is away (%r)", scope["path"], exc)
            if not tracked.accepted:
                if not connect_received:
                    await receive()
                await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": _close_code(send)})


def close_1013_on_database_outage(application) -> DatabaseOutageCloser:
    """Return `application` wrapped so that a database outage closes its sockets with 1013."""
    return DatabaseOutageCloser(application)
