"""The handoff middleware: a handed-over stream is written after the app returns, or closed."""

from __future__ import annotations

import asyncio

from django.http import StreamingHttpResponse
from django.test import RequestFactory

from streams.handoff import MARKER, SCOPE_KEY, handoff_response, stream_handoff


class Request:
    """What handoff_response reads of a Django ASGI request: its scope."""

    def __init__(self, scope: dict) -> None:
        self.scope = scope


def events_recording(closed: list[str]):
    async def events():
        try:
            yield b"retry: 1\n\n"
            yield b"data: x\n\n"
        finally:
            closed.append("closed")

    return events()


async def run(app, messages_in: list[dict]) -> list[dict]:
    sent: list[dict] = []
    queue: asyncio.Queue = asyncio.Queue()
    for message in messages_in:
        queue.put_nowait(message)

    async def send(message: dict) -> None:
        sent.append(message)

    await stream_handoff(app)({"type": "http"}, queue.get, send)
    return sent


async def test_a_handed_over_stream_is_written_after_the_app_returned():
    closed: list[str] = []
    order: list[str] = []

    async def app(scope, receive, send):
        response = handoff_response(Request(scope), events_recording(closed))
        headers = [(k.lower().encode(), v.encode()) for k, v in response.items()]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        order.append("app returned")

    sent = await run(app, [])
    assert order == ["app returned"]
    assert MARKER not in dict(sent[0]["headers"])
    assert [m.get("body") for m in sent[1:]] == [b"retry: 1\n\n", b"data: x\n\n", b""]
    assert sent[-1]["more_body"] is False
    assert closed == ["closed"]


async def test_another_response_in_its_place_closes_the_stream_unsent():
    closed: list[str] = []
    events = events_recording(closed)

    async def app(scope, receive, send):
        handoff_response(Request(scope), events)
        # A middleware answered instead (e.g. an error page): no marker on these headers.
        await send({"type": "http.response.start", "status": 500, "headers": []})
        await send({"type": "http.response.body", "body": b"error", "more_body": False})

    sent = await run(app, [])
    assert [m.get("body") for m in sent[1:]] == [b"error"]
    # Closed before it started: it never subscribed, and it can never run now.
    assert events.ag_frame is None
    assert closed == []


async def test_a_client_that_leaves_cancels_the_stream_where_it_waits():
    closed: list[str] = []
    waiting = asyncio.Event()

    async def endless():
        try:
            yield b"retry: 1\n\n"
            waiting.set()
            await asyncio.sleep(3600)
        finally:
            closed.append("closed")

    async def app(scope, receive, send):
        response = handoff_response(Request(scope), endless())
        headers = [(k.lower().encode(), v.encode()) for k, v in response.items()]
        await send({"type": "http.response.start", "status": 200, "headers": headers})

    queue: asyncio.Queue = asyncio.Queue()
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    task = asyncio.ensure_future(stream_handoff(app)({"type": "http"}, queue.get, send))
    await asyncio.wait_for(waiting.wait(), 5)
    queue.put_nowait({"type": "http.disconnect"})
    await asyncio.wait_for(task, 5)
    assert closed == ["closed"]
    assert not task.cancelled()


def test_without_the_middleware_the_response_streams_the_events_itself():
    closed: list[str] = []
    request = RequestFactory().get("/")
    request.scope = {"type": "http"}  # served without the middleware: no slot
    response = handoff_response(request, events_recording(closed))
    assert isinstance(response, StreamingHttpResponse)
    assert MARKER.decode() not in response
    assert SCOPE_KEY not in request.scope
