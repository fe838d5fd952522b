"""Django's ASGI handler, changed so that a finished request leaves no reference cycle.

Objects in a reference cycle are freed only by the cyclic garbage collector,
and `mission_control.asgi` makes full collections rare (they stall every open
SSE stream). A request that outlives a young collection (any download: it
spans many) reaches the oldest generation, so every cycle it was in stayed in
memory until the next full collection: the worker's RSS crept up with the
download traffic. Cycles 1 and 2 below are broken where Django makes them; the tests
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
3. Not broken, left to the collector: `ThreadSensitiveContext` gives every
   request a new thread, and Django a new `DatabaseWrapper` for it, a cycle by
   design (its `ops`, `features`, `client`... each keep the wrapper). Emptying
   the thread's wrappers at request_finished broke that cycle, but made the
   worker's psycopg pool run dry after a PostgreSQL restart (every request 503
   until the worker restarted: tests/test_postgres_outage.py), for a reason not
   found before this was reverted. Since request threads are reused (below) a
   thread keeps its one wrapper from request to request, as under WSGI, so
   there is no longer a wrapper per request to become garbage.

Request threads are reused. Django runs each request's sync code (middleware,
`sync_to_async` calls) in a thread of its own: asgiref's `ThreadSensitiveContext`
started a new thread for every request and a second one to join it afterwards.
Starting them, and the new `DatabaseWrapper` of each new thread, cost a
download's access check about 0.3-0.5 ms of its first byte (bench/scaleout.py
downloads). `_RequestThread` gives each request one idle single-thread executor
from a free list instead and takes it back afterwards: still one thread per
request at a time, never shared by two requests at once.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import django
from asgiref.sync import SyncToAsync, ThreadSensitiveContext, sync_to_async
from django.core.handlers.asgi import ASGIHandler

# Idle request threads kept for the next requests; more requests at once than
# this start threads that end after their request, as every request's did before.
IDLE_THREADS = 32
_idle: list[ThreadPoolExecutor] = []
_idle_lock = threading.Lock()


def _take_executor() -> ThreadPoolExecutor:
    with _idle_lock:
        if _idle:
            return _idle.pop()
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")


def _give_back(executor: ThreadPoolExecutor) -> None:
    with _idle_lock:
        if len(_idle) < IDLE_THREADS:
            _idle.append(executor)
            return
    # Not joined here: the thread may be waiting for this event loop (asgiref's reason).
    executor.shutdown(wait=False)


class _RequestThread(ThreadSensitiveContext):
    """asgiref's per-request thread context, with the thread taken from a free list.

    Entered like Django's own `ThreadSensitiveContext()` (not with asgiref's
    `executor=` argument, whose context refuses every thread-sensitive call made
    after it exits: long-lived tasks that an SSE request starts, such as the
    stream hub's reader, inherit the request's context and may still call
    `sync_to_async` later; they get a fresh executor then, as they did before).
    The executor goes back to the free list on exit; work still queued on it
    runs first, in the same single thread, before the next request's.
    """

    async def __aenter__(self):
        await super().__aenter__()
        if self.token is not None:  # the outermost context: this request's thread
            SyncToAsync.context_to_thread_executor[self] = _take_executor()
        return self

    async def __aexit__(self, exc, value, tb):
        executor = SyncToAsync.context_to_thread_executor.pop(self, None)
        await super().__aexit__(exc, value, tb)
        if executor is not None:
            _give_back(executor)


class CycleFreeASGIHandler(ASGIHandler):
    """Django's ASGIHandler without two of its per-request cycles (module docstring)."""

    async def __call__(self, scope, receive, send):
        """Handle one HTTP request, as Django does, in a reused request thread."""
        if scope["type"] != "http":
            # Django's own refusal (channels routes WebSockets elsewhere).
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        async with _RequestThread():
            await self.handle(scope, receive, send)

    async def listen_for_disconnect(self, receive):
        """Return when the client is gone (Django raises RequestAborted: cycle 1)."""
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        # What Django does too; never happens with a conforming server.
        raise AssertionError(f"Invalid ASGI message after request body: {message['type']}")

    def load_middleware(self, is_async=False):
        """Build the middleware chain as for WSGI: sync from the top to the view.

        Django's async chain went through the request's thread for the sync
        middleware, back to the event loop for URL resolving and the view hooks,
        to the thread again for each sync view hook (CsrfViewMiddleware's) and a
        sync view, and back: each hop wakes a thread or the loop, which cost a
        download's first byte most of its time on an idle worker (bench/scaleout.py
        downloads). Here `get_response_async` runs the whole sync chain in one
        visit to the request's thread: sync views run there directly, async views
        are called back on the event loop (async_to_sync), as before.
        """
        super().load_middleware(is_async=False)

    async def get_response_async(self, request):
        # The sync chain and its ≥400 log line in one visit to the request's thread.
        response = await sync_to_async(self.get_response, thread_sensitive=True)(request)
        # Cycle 2: MessageMiddleware has saved the messages; its storage keeps `request`.
        request.__dict__.pop("_messages", None)
        return response


def get_asgi_application() -> CycleFreeASGIHandler:
    """Set Django up and return the handler, as `django.core.asgi.get_asgi_application` does."""
    django.setup(set_prefix=False)
    return CycleFreeASGIHandler()
