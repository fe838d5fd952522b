"""Django's ASGI handler, changed so that a finished request leaves no reference cycle.

Objects in a reference cycle are freed only by the cyclic garbage collector,
and `mission_control.asgi` makes full collections rare (they stall every open
SSE stream). A request that outlives a young collection (any download: it
spans many) reaches the oldest generation, so every cycle it was in stayed in
memory until the next full collection: the worker's RSS crept up with the
download traffic. Each cycle below is broken where Django makes it; the tests
(rover/tests/test_download_cycles.py) fail if one comes back.

1. `listen_for_disconnect` raised `RequestAborted` on every request (uvicorn
   sends `http.disconnect` once the response is complete, not only when a
   client leaves). Its traceback held `handle`'s frame, whose `tasks` held the
   task holding that exception: request, response, body file, both tasks and
   the server's `receive`/`send` in one cycle. Django ticket #36700 (open);
   saleor#18416 and baserow#5733 return instead of raising, as here. On Django
   5.2 `handle` treats both the same: it cancels the response task because the
   listener finished first (`asyncio.wait(FIRST_COMPLETED)`), whatever its
   result. Django 6.1 rewrites `handle` around a TaskGroup where only a raising
   listener cancels: re-check this before upgrading (the abandoned-download test
   fails if the response is no longer cancelled).
2. The messages middleware stores `request._messages`, a storage that keeps
   `request`: a cycle holding the request, its session, user and META. Once the
   middleware chain has returned the response nobody reads messages any more
   (MessageMiddleware has already saved them), so the storage is dropped there.
3. `ThreadSensitiveContext` gives every request a new thread, and Django a new
   `DatabaseWrapper` for it; a wrapper is a cycle by design (its `ops`,
   `features`, `client`... each keep the wrapper), left behind when the thread
   ends. At request_finished (Django's last call on the request's thread; its
   receivers run there) the thread's wrappers are closed, dropped from
   `connections` and emptied, which breaks the cycle; nothing else holds a
   wrapper (code reaches it through `connections[alias]`). Only for requests
   of this handler: the test client's thread keeps its connection. A pool
   of reused threads would avoid the wrappers altogether, but it raised the
   peak RSS of four large uploads at once past rover/tests/test_image_memory.py's
   400 MB bound (2 runs in 3; main 0 in 3), so the threads stay Django's.
"""

from __future__ import annotations

import contextvars

import django
from asgiref.sync import ThreadSensitiveContext
from django.core.handlers.asgi import ASGIHandler
from django.core.signals import request_finished
from django.db import connections

# Set while this handler serves a request; sync_to_async copies it to the request's thread.
_own_request_thread = contextvars.ContextVar("own_request_thread", default=False)


def retire_thread_connections(**kwargs) -> None:
    """At request_finished, close the request thread's database wrappers and break their cycles.

    The thread is the request's own (asgiref shuts it down after the request),
    so its wrappers would never be used again (cycle 3).
    """
    if not _own_request_thread.get():
        return
    storage = connections._connections  # asgiref Local, thread-critical: this thread's own
    for alias in connections.settings:
        wrapper = getattr(storage, alias, None)
        if wrapper is None:
            continue
        wrapper.close()
        delattr(storage, alias)
        wrapper.__dict__.clear()


class CycleFreeASGIHandler(ASGIHandler):
    """Django's ASGIHandler without the three per-request cycles (module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        request_finished.connect(retire_thread_connections, dispatch_uid=__name__)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        async with ThreadSensitiveContext() as context:
            # Only the outermost context gives the request a thread of its own.
            token = _own_request_thread.set(context.token is not None)
            try:
                await self.handle(scope, receive, send)
            finally:
                _own_request_thread.reset(token)

    async def listen_for_disconnect(self, receive):
        """Return when the client is gone (Django raises RequestAborted: cycle 1)."""
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        # What Django does too; never happens with a conforming server.
        raise AssertionError(f"Invalid ASGI message after request body: {message['type']}")

    async def get_response_async(self, request):
        response = await super().get_response_async(request)
        # Cycle 2: MessageMiddleware has saved the messages; its storage keeps `request`.
        request.__dict__.pop("_messages", None)
        return response


def get_asgi_application() -> CycleFreeASGIHandler:
    """Set Django up and return the handler, as `django.core.asgi.get_asgi_application` does."""
    django.setup(set_prefix=False)
    return CycleFreeASGIHandler()
