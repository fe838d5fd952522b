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
3. `ThreadSensitiveContext` gave every request a new thread, and Django a new
   `DatabaseWrapper` for it; a wrapper is a cycle by design (its `ops`,
   `features`, `client`... each keep the wrapper), left behind when the thread
   ended. Requests now borrow a one-thread executor from a small pool, so a
   thread and its (closed, reusable) wrapper serve request after request, as a
   WSGI worker thread does. Which thread runs a request's sync code changes;
   how it is used does not: one thread per request at a time, the connection
   closed at request_finished (CONN_MAX_AGE=0).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import django
from asgiref.sync import SyncToAsync, ThreadSensitiveContext
from django.core.handlers.asgi import ASGIHandler

# Idle request threads kept for the next requests; beyond this many requests at
# once, the extra threads end with their request (their wrapper is then garbage).
IDLE_REQUEST_THREADS = 16


class RequestThreads:
    """One-thread executors lent to requests and given back when the request ends."""

    def __init__(self, keep_idle: int = IDLE_REQUEST_THREADS) -> None:
        self.keep_idle = keep_idle
        self._idle: list[ThreadPoolExecutor] = []
        self._lock = threading.Lock()  # one worker may run several event loops (tests)

    def _borrow(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")

    def _give_back(self, executor: ThreadPoolExecutor) -> None:
        with self._lock:
            if len(self._idle) < self.keep_idle:
                self._idle.append(executor)
                return
        executor.shutdown(wait=False)

    @contextmanager
    def lent_to(self, context: ThreadSensitiveContext) -> Iterator[None]:
        """Run the thread-sensitive calls of `context` (just entered) on a pooled thread.

        Sets the executor asgiref would otherwise create on the context's first
        sync call, and takes it back before asgiref's exit would shut it down.
        `streams.sse.release_request_thread` may retire it mid-request (it pops
        and shuts down the context's executor): then it is not given back, and
        whatever replaced it is left to asgiref's exit as before.
        """
        executors = SyncToAsync.context_to_thread_executor
        if context.token is None:  # nested in another context: it decides
            yield
            return
        executor = self._borrow()
        executors[context] = executor
        try:
            yield
        finally:
            if executors.get(context) is executor:
                del executors[context]
                self._give_back(executor)


class CycleFreeASGIHandler(ASGIHandler):
    """Django's ASGIHandler without the three per-request cycles (module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.request_threads = RequestThreads()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        async with ThreadSensitiveContext() as context:
            with self.request_threads.lent_to(context):
                await self.handle(scope, receive, send)

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
