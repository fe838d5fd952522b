"""streams.sse on its own: generic over event names, resume by the caller's resumable event."""

from __future__ import annotations

import asyncio
import sys
import uuid

from streams.hub import publish
from streams.sse import event_stream, sse_encode


def reading(event_id: int) -> dict:
    return {"event": "reading", "id": event_id, "data": f"r{event_id}"}


async def test_only_the_named_resumable_event_is_deduplicated_by_id():
    """Replay, then live: stale `reading` ids are skipped; every other event passes."""
    stream = f"test.sse.{uuid.uuid4().hex}"
    stored = [reading(2), reading(3)]

    async def replay(after_id: int) -> list[dict]:
        return [event for event in stored if event["id"] > after_id]

    events = event_stream(stream=stream, resumable_event="reading", after=1, replay=replay)
    received = [await events.__anext__()]  # retry: sent once subscribed
    live = [
        reading(3),  # already replayed: skipped
        {"event": "note", "id": None, "data": "no id"},
        {"event": "telemetry", "id": 1, "data": "not the resumable event"},
        reading(4),
    ]
    for event in live:
        await publish(stream, event)
    try:
        async with asyncio.timeout(5):
            while not b"".join(received).endswith(sse_encode(reading(4))):
                received.append(await events.__anext__())
    finally:
        await events.aclose()
    assert b"".join(received) == b"".join(
        [b"retry: 2000\n\n", *(sse_encode(event) for event in stored + live[1:])]
    )


async def test_first_connect_sends_initial_then_live_above_its_id():
    stream = f"test.sse.{uuid.uuid4().hex}"

    async def replay(after_id: int) -> list[dict]:
        raise AssertionError("a first connect does not replay")

    async def initial() -> tuple[list[dict], int]:
        return [reading(7)], 7

    events = event_stream(
        stream=stream, resumable_event="reading", after=None, replay=replay, initial=initial
    )
    received = [await events.__anext__()]
    for event_id in (6, 7, 8):
        await publish(stream, reading(event_id))
    try:
        async with asyncio.timeout(5):
            while not b"".join(received).endswith(sse_encode(reading(8))):
                received.append(await events.__anext__())
    finally:
        await events.aclose()
    assert b"".join(received) == b"retry: 2000\n\n" + sse_encode(reading(7)) + sse_encode(
        reading(8)
    )


async def read_until(events, received: list[bytes], last: bytes) -> bytes:
    async with asyncio.timeout(5):
        while not b"".join(received).endswith(last):
            received.append(await events.__anext__())
    return b"".join(received)


async def test_live_ids_leave_in_order_once_each_whatever_order_they_arrive_in(settings):
    """Two publishers racing: an id that arrives early waits for the ones before it."""
    settings.STREAM_GAP_GRACE_SECONDS = 30  # the gap closes live; the store is never read
    stream = f"test.sse.{uuid.uuid4().hex}"

    async def replay(after_id: int) -> list[dict]:
        raise AssertionError("a gap that closes live is not read from the store")

    async def initial() -> tuple[list[dict], int]:
        return [], 10

    events = event_stream(
        stream=stream, resumable_event="reading", after=None, replay=replay, initial=initial
    )
    received = [await events.__anext__()]
    for event_id in (13, 12, 10, 13, 11, 12, 14):
        await publish(stream, reading(event_id))
    try:
        body = await read_until(events, received, sse_encode(reading(14)))
    finally:
        await events.aclose()
    assert body == b"retry: 2000\n\n" + b"".join(sse_encode(reading(i)) for i in range(11, 15))


async def test_a_gap_that_lasts_is_filled_from_the_store(settings):
    """A lost publish (id 12): after the grace the stream reads 12 from the store."""
    settings.STREAM_GAP_GRACE_SECONDS = 0.2
    stream = f"test.sse.{uuid.uuid4().hex}"
    asked: list[int] = []

    async def replay(after_id: int) -> list[dict]:
        # The store at connect holds 11..14; 15..17 are stored (and published) later.
        newest = 14 if len(asked) < 2 else 17
        asked.append(after_id)
        return [reading(i) for i in range(after_id + 1, newest + 1)]

    events = event_stream(stream=stream, resumable_event="reading", after=10, replay=replay)
    received = [await events.__anext__()]
    for event_id in (15, 17):  # 16 never arrives live
        await publish(stream, reading(event_id))
    try:
        body = await read_until(events, received, sse_encode(reading(17)))
    finally:
        await events.aclose()
    assert body == b"retry: 2000\n\n" + b"".join(sse_encode(reading(i)) for i in range(11, 18))
    assert asked[:3] == [10, 14, 15]  # connect, end of replay, the gap after 15


def test_sse_encode_splits_multiline_data_and_omits_a_missing_id():
    assert sse_encode({"event": "note", "id": None, "data": "a\nb"}) == (
        b"event: note\ndata: a\ndata: b\n\n"
    )


async def test_a_waiting_stream_sets_no_timer_of_its_own_per_event(monkeypatch, settings):
    """Idle streams share the loop's heartbeat ticker: no timeout is armed per wait."""
    settings.SSE_HEARTBEAT_SECONDS = 0.2
    stream = f"test.sse.{uuid.uuid4().hex}"
    armed = []
    original = asyncio.timeout

    def counting_timeout(delay):
        if sys._getframe(1).f_globals["__name__"] == "streams.sse":
            armed.append(delay)
        return original(delay)

    monkeypatch.setattr(asyncio, "timeout", counting_timeout)

    async def replay(after_id: int) -> list[dict]:
        return []

    events = event_stream(stream=stream, resumable_event="reading", after=0, replay=replay)
    received = [await events.__anext__()]
    try:
        for event_id in range(1, 6):
            await publish(stream, reading(event_id))
            received.append(await events.__anext__())
        # Idle: the ticker, not a timer per stream, sends the heartbeat.
        received.append(await events.__anext__())
    finally:
        await events.aclose()
    assert received[1:] == [*(sse_encode(reading(i)) for i in range(1, 6)), b": heartbeat\n\n"]
    assert armed == []
