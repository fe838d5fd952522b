"""The hub writes to idle SSE streams through uvicorn's transport, and through ASGI otherwise.

A real uvicorn httptools protocol serves the stream over a recording transport,
so the test sees the exact bytes on the wire and every ASGI `send` of a body.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from streams.direct_write import chunk, raw_body_writer
from streams.handoff import handoff_response, stream_handoff
from streams.hub import get_hub, publish, publish_many
from streams.sse import event_stream, sse_encode


def reading(event_id: int) -> dict:
    return {"event": "reading", "id": event_id, "data": f"r{event_id}"}


class Transport:
    """What uvicorn's protocol uses of an asyncio transport; keeps what is written."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default=None):
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class Request:
    """What handoff_response reads of a Django ASGI request: its scope."""

    def __init__(self, scope: dict) -> None:
        self.scope = scope


@pytest.fixture
def asgi_bodies(monkeypatch) -> list[bytes]:
    """Record every body uvicorn's ASGI `send` carries (still uvicorn's bound `send`)."""
    bodies: list[bytes] = []
    original = RequestResponseCycle.send

    async def send(self, message):
        if message["type"] == "http.response.body":
            bodies.append(message.get("body", b""))
        await original(self, message)

    monkeypatch.setattr(RequestResponseCycle, "send", send)
    return bodies


async def until(condition, seconds: float = 5) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.005)


async def open_stream(stream: str) -> tuple[HttpToolsProtocol, Transport]:
    """Serve one SSE stream (resumable `reading`, after id 0) on uvicorn; return it once live."""

    async def replay(after_id: int) -> list[dict]:
        return []

    async def app(scope, receive, send):
        events = event_stream(stream=stream, resumable_event="reading", after=0, replay=replay)
        response = handoff_response(Request(scope), events, content_type="text/event-stream")
        headers = [(k.lower().encode(), v.encode()) for k, v in response.items()]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    config = Config(app=stream_handoff(app), http="httptools", lifespan="off", log_level="error")
    protocol = HttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
    transport = Transport()
    protocol.connection_made(transport)
    protocol.data_received(b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    await until(lambda: chunk(b"retry: 2000\n\n") in transport.written)
    await until(lambda: get_hub()._subscribers.get(stream))
    # The stream has written what it had and waits for the hub.
    await asyncio.sleep(0.05)
    return protocol, transport


async def close_stream(protocol: HttpToolsProtocol, stream: str) -> None:
    protocol.connection_lost(None)
    await until(lambda: not get_hub()._subscribers.get(stream))


async def test_an_idle_stream_is_written_by_the_hub_in_one_chunk_per_batch(asgi_bodies):
    stream = f"test.direct.{uuid.uuid4().hex}"
    protocol, transport = await open_stream(stream)
    sent_before = len(asgi_bodies)
    try:
        await publish_many(stream, [reading(1), reading(2)])
        batch = chunk(sse_encode(reading(1)) + sse_encode(reading(2)))
        await until(lambda: transport.written.endswith(batch))
        assert len(asgi_bodies) == sent_before  # the stream's task wrote nothing itself

        # A repeated id cannot be written blindly: the stream orders it, through ASGI.
        await publish_many(stream, [reading(2), reading(3)])
        await until(lambda: transport.written.endswith(chunk(sse_encode(reading(3)))))
        assert asgi_bodies[sent_before:] == [sse_encode(reading(3))]

        # Idle again: the next batch is written by the hub again.
        await asyncio.sleep(0.05)
        await publish(stream, reading(4))
        await until(lambda: transport.written.endswith(chunk(sse_encode(reading(4)))))
        assert len(asgi_bodies) == sent_before + 1
    finally:
        await close_stream(protocol, stream)


async def test_a_paused_transport_gets_events_through_asgi_once_drained(asgi_bodies):
    """Back-pressure: nothing is written past a full transport; ASGI `send` waits for it."""
    stream = f"test.direct.{uuid.uuid4().hex}"
    protocol, transport = await open_stream(stream)
    sent_before = len(asgi_bodies)
    try:
        protocol.pause_writing()
        written = len(transport.written)
        await publish(stream, reading(1))
        await publish(stream, reading(2))
        await asyncio.sleep(0.1)
        assert len(transport.written) == written
        protocol.resume_writing()
        await until(lambda: sse_encode(reading(2)) in transport.written)
        assert b"".join(asgi_bodies[sent_before:]) == sse_encode(reading(1)) + sse_encode(
            reading(2)
        )
        assert transport.written[written:].count(b"id: ") == 2
    finally:
        await close_stream(protocol, stream)


def test_only_uvicorns_httptools_send_is_written_to_directly():
    async def asgi_send(message):
        pass

    assert raw_body_writer(asgi_send) is None
    assert raw_body_writer(None) is None
