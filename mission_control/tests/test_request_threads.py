"""Reads reuse their request's thread; requests with a body, or still busy, do not.

A new thread per request (asgiref's default, as Django enters it) was one of
the larger parts of an idle worker's answer to an X-Accel download; a kept
thread for requests with a body grew the worker's RSS under concurrent uploads
(mission_control/request_threads.py).
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from django.core.signals import request_started

from mission_control.request_threads import KeptThreadContext
from rover.tests.clients import asgi_request


@pytest.fixture
def request_threads():
    """The thread each request's `request_started` ran in, in order."""
    threads: list[threading.Thread] = []

    def note_thread(**kwargs):
        threads.append(threading.current_thread())

    request_started.connect(note_thread)
    yield threads
    request_started.disconnect(note_thread)


async def test_reads_one_after_another_reuse_one_thread(request_threads):
    for _ in range(3):
        status, _headers, _body = await asgi_request("/healthz")
        assert status == 200
    assert len(request_threads) == 3
    assert request_threads[0] is request_threads[1] is request_threads[2]
    assert request_threads[0] is not threading.main_thread()
    assert request_threads[0].is_alive()


async def test_a_request_with_a_body_gets_a_thread_that_ends_with_it(request_threads):
    for _ in range(2):
        # Refused by CSRF (no cookie): through the middleware chain all the same.
        status, _headers, _body = await asgi_request("/healthz", method="POST", body=b"x" * 100)
        assert status == 403
    first, second = request_threads
    assert first is not second
    assert not first.is_alive() and not second.is_alive()


async def test_reads_at_the_same_time_never_share_a_thread():
    inside = asyncio.Barrier(2)

    async def one_read() -> threading.Thread:
        async with KeptThreadContext():
            thread = await sync_to_async(threading.current_thread)()
            await inside.wait()  # both requests hold their thread here at once
            assert await sync_to_async(threading.current_thread)() is thread
            return thread

    first, second = await asyncio.gather(one_read(), one_read())
    assert first is not second


async def test_a_thread_still_busy_after_its_read_is_not_given_to_the_next():
    # A read cancelled while its sync view still runs (the client left): the
    # view's thread runs on, and the next read must not queue behind it.
    running, release = threading.Event(), threading.Event()

    def stuck() -> None:
        running.set()
        release.wait(10)

    async with KeptThreadContext():
        busy_thread = await sync_to_async(threading.current_thread)()
        call = asyncio.ensure_future(sync_to_async(stuck)())
        await asyncio.to_thread(running.wait, 5)
        call.cancel()
    try:
        async with KeptThreadContext():
            thread = await asyncio.wait_for(sync_to_async(threading.current_thread)(), 5)
        assert thread is not busy_thread
    finally:
        release.set()


async def test_a_task_outliving_its_read_can_still_call_sync_code():
    # The stream hub's reader is started inside an SSE request and outlives it;
    # asgiref's `executor=` contexts would refuse its later sync_to_async calls.
    release = asyncio.Event()

    async def later():
        await release.wait()
        return await sync_to_async(threading.current_thread)()

    async with KeptThreadContext():
        task = asyncio.get_running_loop().create_task(later())
    release.set()
    thread = await asyncio.wait_for(task, 5)
    assert thread is not threading.main_thread()
