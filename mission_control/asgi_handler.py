"""Django's ASGI handler, changed so that a finished request leaves no reference cycle
and a write is finished even if its client leaves.

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
   found before this was reverted; one wrapper per request with a body stays
   garbage (reads keep their thread, and its wrapper: `request_threads`).

4. Not a cycle: a write is finished even if its client leaves. Django cancels
   the view when the client disconnects; a write's view runs its database work
   in a thread that cancelling cannot stop, so the write committed and what
   followed it in the view was dropped: an ingest whose uplink gave up stored
   its frames but never published them nor evaluated their alarms, and live
   clients saw them only when a later frame's gap made them replay
   (rover/tests/test_ingest_client_gone.py). Its body is read in full before the
   view runs (a client leaving earlier stores nothing), and every wait after
   that is bounded (a publish by `streams.middleware`, a query by
   `database_deadline`), so not listening for the disconnect of a write costs
   a departed client at most those bounds of work. Reads (GET, HEAD, OPTIONS:
   an SSE stream, a download) are still cancelled as soon as their client leaves.

Besides, to answer an idle worker's request sooner (an X-Accel download's first
byte is the worker's answer): reads reuse a kept thread (`request_threads`), the
middleware chain runs in one visit to it (`load_middleware`), and
`request_started` is sent in that same visit (`handle`).
"""

from __future__ import annotations

import asyncio
import contextlib

import django
from asgiref.sync import sync_to_async
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.urls import set_script_prefix

from .request_threads import request_thread

# Requests cancelled when their client leaves; any other method is a write, finished (4.).
READS = frozenset({"GET", "HEAD", "OPTIONS"})


class CycleFreeASGIHandler(ASGIHandler):
    """Django's ASGIHandler without two of its per-request cycles (module docstring)."""

    async def __call__(self, scope, receive, send):
        """Serve one HTTP request in a thread of its own (`request_thread`)."""
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        async with request_thread(scope):
            await self.handle(scope, receive, send)

    async def handle(self, scope, receive, send):
        """Django 5.2's `handle`, with `request_started` sent in the chain's thread visit.

        Django sends it on its own (`asend`: one visit to the request's thread for
        its sync receivers, which close stale database connections and reset the
        query log) before building the request; here `get_response_async` sends it
        in the visit that runs the middleware chain, one thread hop fewer per
        request; and a write is not cancelled when its client leaves (module
        docstring, 4.). The rest is Django's, line for line: re-check it before
        upgrading.
        """
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            await signals.request_started.asend(sender=self.__class__, scope=scope)
            body_file.close()
            await self.send_response(error_response, send)
            await sync_to_async(error_response.close)()
            return

        async def process_request(request, send):
            response = await self.run_get_response(request)
            # The client may leave while the answer is being sent.
            with contextlib.suppress(asyncio.CancelledError):
                await self.send_response(response, send)
            return response

        tasks = [asyncio.create_task(process_request(request, send))]
        if request.method in READS:
            # The disconnect listener first: it raises nothing that would keep the
            # response task from being cancelled. A write is not listened for (4.).
            tasks.insert(0, asyncio.create_task(self.listen_for_disconnect(receive)))
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()  # views may handle their cancellation
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:
            response = tasks[-1].result()
        except asyncio.CancelledError:
            await signals.request_finished.asend(sender=self.__class__)
        else:
            await sync_to_async(response.close)()
        body_file.close()

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

    def _started_and_answered(self, request):
        signals.request_started.send(sender=self.__class__, scope=request.scope)
        return self.get_response(request)

    async def get_response_async(self, request):
        # request_started, the sync chain and its ≥400 log line in one thread visit.
        response = await sync_to_async(self._started_and_answered, thread_sensitive=True)(request)
        # Cycle 2: MessageMiddleware has saved the messages; its storage keeps `request`.
        request.__dict__.pop("_messages", None)
        return response


def get_asgi_application() -> CycleFreeASGIHandler:
    """Set Django up and return the handler, as `django.core.asgi.get_asgi_application` does."""
    django.setup(set_prefix=False)
    return CycleFreeASGIHandler()
