"""The thread each HTTP request's sync code runs in: kept from one read to the next.

Django serves a request's sync code (the middleware chain, sync views, every
thread-sensitive `sync_to_async`) in a thread of the request's own: asgiref's
`ThreadSensitiveContext` starts a new thread for the request's first sync call
and, when the request ends, a second thread to join the first. Starting them,
on this machine's idle virtual CPUs, was one of the larger parts of an idle
worker's answer to an X-Accel download (bench/scaleout.py --only downloads):
0.2-0.3 ms on a quiet machine, several milliseconds on a busy one.

Reads (GET, HEAD) take an idle single-thread executor from a free list and give
it back afterwards: still one thread per request at a time, never two requests
in one thread at once, and a thread kept only when nothing it was given is
still running (a request cancelled while its view ran keeps its thread busy:
that thread ends once its work does). Requests with a body (uploads, ingest,
forms) still get a new thread that ends with them, as Django gives them: when
every request reused threads, four image uploads at once peaked at 437 MB of
worker RSS instead of 197 MB (rover/tests/test_image_memory.py), probably each
kept thread keeping the malloc arena its thumbnail decode had grown.

A kept thread also keeps its one `DatabaseWrapper` from request to request (as
under WSGI), where every new thread had made a new one.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager

from asgiref.sync import SyncToAsync, ThreadSensitiveContext

# Requests that reuse threads: they carry no body to parse or store.
READS = frozenset({"GET", "HEAD"})
# Idle threads kept; more reads at once than this start threads that end with them.
IDLE_THREADS = 8

_idle: list[RequestExecutor] = []
_idle_lock = threading.Lock()


class RequestExecutor(ThreadPoolExecutor):
    """One thread that runs a request's sync calls in turn and knows when it is idle."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="request")
        self._unfinished: set[Future] = set()
        self._retired = False

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future = super().submit(fn, *args, **kwargs)
        self._unfinished.add(future)
        future.add_done_callback(self._unfinished.discard)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        # streams.sse.release_request_thread retires a long stream's thread this way.
        self._retired = True
        super().shutdown(wait=wait, cancel_futures=cancel_futures)

    @property
    def reusable(self) -> bool:
        return not self._retired and not self._unfinished


def _take() -> RequestExecutor:
    with _idle_lock:
        if _idle:
            return _idle.pop()
    return RequestExecutor()


def _give_back(executor: ThreadPoolExecutor) -> None:
    if isinstance(executor, RequestExecutor) and executor.reusable:
        with _idle_lock:
            if len(_idle) < IDLE_THREADS:
                _idle.append(executor)
                return
    # Not joined here: the thread may be waiting for this event loop (asgiref's reason).
    executor.shutdown(wait=False)


class KeptThreadContext(ThreadSensitiveContext):
    """asgiref's per-request thread context, with the thread taken from the free list.

    Entered like Django's own `ThreadSensitiveContext()`, not with asgiref's
    `executor=` argument: that context refuses every thread-sensitive call made
    after it exits, and long-lived tasks started inside a request (the stream
    hub's reader, started by the first SSE request) inherit its context and
    call `sync_to_async` later; they get a fresh thread then, as under Django.
    """

    async def __aenter__(self):
        await super().__aenter__()
        if self.token is not None:  # the outermost context: this request's own thread
            SyncToAsync.context_to_thread_executor[self] = _take()
        return self

    async def __aexit__(self, exc, value, tb):
        # Taken before asgiref's exit, which would join and end the thread.
        executor = SyncToAsync.context_to_thread_executor.pop(self, None)
        await super().__aexit__(exc, value, tb)
        if executor is not None:
            _give_back(executor)


@asynccontextmanager
async def request_thread(scope: dict) -> AsyncIterator[None]:
    """Serve the request of `scope` in a kept thread if it is a read, else in a new one."""
    context = KeptThreadContext() if scope.get("method") in READS else ThreadSensitiveContext()
    async with context:
        yield
