"""The middleware chain under ASGI: Django's hooks run in one thread visit, not one hop each.

Each hop between the event loop and a request's thread wakes one of them; on an
idle worker that cost a download's first byte most of its time
(bench/scaleout.py --only downloads), so the hops are counted here.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import SyncToAsync, sync_to_async
from django.core.signals import request_started

from mission_control.asgi_handler import _RequestThread
from rover.tests.clients import asgi_request

# request_started's receivers, the whole middleware chain with the URL resolver,
# the view hooks and a sync view (one visit: the chain is built in sync mode),
# and the response's close() (request_finished). Each MiddlewareMixin hook in an
# async chain would add one more: 15 per request before the CSP middleware
# became sync-only, 4 while Django's async chain returned to the event loop
# below it (CsrfViewMiddleware.process_view was a hop of its own).
THREAD_HOPS = 3


@pytest.fixture
def thread_hops(monkeypatch) -> list[int]:
    """Count the `sync_to_async` calls made while the test runs."""
    calls = [0]
    original = SyncToAsync.__call__

    async def counting(self, *args, **kwargs):
        calls[0] += 1
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counting)
    return calls


async def test_a_request_visits_a_thread_a_few_times_not_once_per_middleware_hook(thread_hops):
    # /healthz touches no database, so every hop counted is the handler's own.
    status, headers, _body = await asgi_request("/healthz")
    assert status == 200
    # The sync middlewares still ran: SecurityMiddleware's and XFrameOptions' headers.
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert thread_hops[0] == THREAD_HOPS


async def test_requests_one_after_another_reuse_one_thread():
    # asgiref's ThreadSensitiveContext started a thread per request (and one to join it).
    threads: list[threading.Thread] = []

    def note_thread(**kwargs):
        threads.append(threading.current_thread())

    request_started.connect(note_thread)
    try:
        for _ in range(3):
            status, _headers, _body = await asgi_request("/healthz")
            assert status == 200
    finally:
        request_started.disconnect(note_thread)
    assert len(threads) == 3
    assert threads[0] is threads[1] is threads[2]
    assert threads[0] is not threading.main_thread()


async def test_requests_at_the_same_time_never_share_a_thread():
    inside = asyncio.Barrier(2)

    async def one_request() -> threading.Thread:
        async with _RequestThread():
            thread = await sync_to_async(threading.current_thread)()
            await inside.wait()  # both requests hold their thread here at once
            assert await sync_to_async(threading.current_thread)() is thread
            return thread

    first, second = await asyncio.gather(one_request(), one_request())
    assert first is not second


async def test_a_task_outliving_its_request_can_still_call_sync_code():
    # The stream hub's reader is started inside an SSE request and outlives it;
    # asgiref's `executor=` contexts would refuse its later sync_to_async calls.
    release = asyncio.Event()

    async def later():
        await release.wait()
        return await sync_to_async(threading.current_thread)()

    async with _RequestThread():
        task = asyncio.get_running_loop().create_task(later())
    release.set()
    thread = await asyncio.wait_for(task, 5)
    assert thread is not threading.main_thread()
