"""Long-lived streams leave Django once their headers are sent (ASGI middleware).

Django serves a `StreamingHttpResponse` from inside its request handler: for as
long as the stream lasts it keeps the request (META, cookies, session, user,
resolver match), the response, two tasks (the response and a disconnect
listener), asgiref's thread-sensitive context and the request body's spooled
file. An SSE stream lasts hours and a worker holds thousands, so that was about
half of the ~38 KiB each idle stream cost (tracemalloc, bench/telemetry.py).

Here a view answers as usual, through every middleware (authentication, CSP,
security headers), but with `handoff_response(request, events)`: Django sends the
headers and finishes the request (request_finished, connections, thread); this
middleware swallows Django's empty end of body and then writes `events` to the
client itself, with one small task that waits for the client to leave. A stream
then costs its generator, its subscription and the server's connection.

A request that did not come through this middleware (Django's test client, WSGI)
gets an ordinary `StreamingHttpResponse` of the same events.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from django.http import HttpRequest, StreamingHttpResponse

from .direct_write import body_writer, raw_body_writer

Message = dict[str, Any]
Send = Callable[[Message], Awaitable[None]]
Receive = Callable[[], Awaitable[Message]]
ASGIApp = Callable[[dict, Receive, Send], Awaitable[None]]

SCOPE_KEY = "mission_control.stream_handoff"
# Marks the response that hands its stream over; never sent to the client.
MARKER = b"x-mc-stream-handoff"


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield  # an async generator that yields nothing: Django writes no body


def handoff_response(
    request: HttpRequest, events: AsyncIterator[bytes], **kwargs: Any
) -> StreamingHttpResponse:
    """Return a streaming response whose body `events` the handoff middleware writes.

    `kwargs` go to StreamingHttpResponse (content_type, status, headers).
    """
    slot = getattr(request, "scope", {}).get(SCOPE_KEY)
    if slot is None or slot:
        return StreamingHttpResponse(events, **kwargs)
    slot.append(events)
    response = StreamingHttpResponse(_nothing(), **kwargs)
    response[MARKER.decode()] = "1"
    return response


def stream_handoff(app: ASGIApp) -> ASGIApp:
    """Wrap an ASGI application so handed-over streams are written outside it."""

    async def application(scope: dict, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        slot: list[AsyncIterator[bytes]] = []
        handed_over = False

        async def django_send(message: Message) -> None:
            nonlocal handed_over
            if message["type"] == "http.response.start":
                headers = message.get("headers", ())
                if slot and any(name == MARKER for name, _ in headers):
                    handed_over = True
                    message = {
                        **message,
                        "headers": [(n, v) for n, v in headers if n != MARKER],
                    }
            elif handed_over:
                return  # Django's empty body: the stream is written below
            await send(message)

        await app({**scope, SCOPE_KEY: slot}, receive, django_send)
        if not slot:
            return
        events = slot.pop()
        if not handed_over:
            # Another response went out instead (an exception, a middleware's answer).
            await events.aclose()
            return
        await _write_stream(events, receive, send)

    return application


async def _write_stream(events: AsyncIterator[bytes], receive: Receive, send: Send) -> None:
    """Write every chunk of `events` until it ends or the client leaves.

    A client that leaves cancels the stream where it waits (as Django does), so
    its `finally` blocks and `async with` exits run. The generator runs in this
    task, so it finds the server's raw writer for this response in `body_writer`.
    """
    body_writer.set(raw_body_writer(send))
    task = asyncio.current_task()
    assert task is not None
    left = False

    async def wait_for_disconnect() -> None:
        nonlocal left
        while (await receive())["type"] != "http.disconnect":
            pass
        left = True
        task.cancel()

    watcher = asyncio.get_running_loop().create_task(wait_for_disconnect())
    try:
        async for chunk in events:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if not left:
            raise
        task.uncancel()
    finally:
        watcher.cancel()
        await events.aclose()
