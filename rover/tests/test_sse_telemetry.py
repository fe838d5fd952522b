"""The live feed through the real ASGI application: wire format, resume, cut-off, disconnect."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers

from rover.events import frame_event
from rover.services.telemetry import telemetry_store, telemetry_validate
from rover.tests.clients import SSEClient, post_frames, telemetry_seqs
from rover.tests.factories import frame
from streams.hub import get_hub, publish

pytestmark = pytest.mark.django_db(transaction=True)
STREAM = "/rovers/curiosity/telemetry/stream"


def has_seqs(*wanted: int):
    return lambda events: set(wanted) <= set(telemetry_seqs(events))


async def test_wire_format_headers_retry_and_events(rover, ingest_token, viewer_token):
    # Resuming from 0: every frame after it, none skipped by a first connect's "newest frame".
    client = await SSEClient(f"{STREAM}?last_event_id=0", token=viewer_token).connect()
    try:
        assert client.status == 200
        assert client.headers["content-type"].startswith("text/event-stream")
        assert client.headers["cache-control"] == "no-cache"
        assert client.headers["x-accel-buffering"] == "no"
        assert "content-encoding" not in client.headers
        await client.read_until(lambda events: any("retry" in e for e in events))
        assert (await post_frames("curiosity", [frame(1), frame(2)], ingest_token))[0] == 201
        await client.read_until(has_seqs(1, 2))
        assert client.buffer.startswith("retry: 2000\n\n")
        block = client.buffer.split("\n\n")[1]
        lines = block.split("\n")
        assert lines[:2] == ["id: 1", "event: telemetry"]
        data = json.loads(lines[2].removeprefix("data: "))
        assert list(data) == [
            "seq",
            "recorded_at",
            "received_at",
            "x_m",
            "y_m",
            "heading_deg",
            "battery_pct",
            "battery_v",
            "signal_dbm",
            "temp_internal_c",
            "temp_ambient_c",
            "speed_mps",
            "mode",
        ]
        assert data["seq"] == 1 and data["recorded_at"] == "2026-11-24T12:00:01Z"
        assert data["battery_pct"] == 80.0 and data["mode"] == "driving"
    finally:
        await client.close()


async def test_heartbeat_comment_when_idle(settings, rover, viewer_token):
    settings.SSE_HEARTBEAT_SECONDS = 0.1
    client = await SSEClient(STREAM, token=viewer_token).connect()
    try:
        events = await client.read_until(
            lambda events: sum(e.get("comment") == "heartbeat" for e in events) >= 2
        )
        assert not telemetry_seqs(events)
        assert ": heartbeat\n\n" in client.buffer
    finally:
        await client.close()


async def test_first_connect_starts_with_the_newest_frame_then_live(
    rover, ingest_token, viewer_token
):
    await post_frames("curiosity", [frame(1), frame(2), frame(3)], ingest_token)
    client = await SSEClient(STREAM, token=viewer_token).connect()
    try:
        await client.read_until(has_seqs(3))
        await post_frames("curiosity", [frame(4)], ingest_token)
        events = await client.read_until(has_seqs(4))
        assert telemetry_seqs(events) == [3, 4]
    finally:
        await client.close()


async def test_resume_replays_what_was_missed_then_live_exactly_once(
    rover, ingest_token, viewer_token
):
    """Frames ingested while the client is away, and during its reconnect, arrive once."""
    await post_frames("curiosity", [frame(i) for i in range(1, 6)], ingest_token)
    first = await SSEClient(STREAM, token=viewer_token).connect()
    await first.read_until(has_seqs(5))
    await first.close()
    # While away: 6..40 stored. Then reconnect while 41..80 are being ingested.
    await post_frames("curiosity", [frame(i) for i in range(6, 41)], ingest_token)

    async def ingest_during_reconnect():
        for start in range(41, 81, 4):
            await post_frames(
                "curiosity", [frame(i) for i in range(start, start + 4)], ingest_token
            )
            await asyncio.sleep(0)

    second = SSEClient(STREAM, token=viewer_token, headers={"Last-Event-ID": "5"})
    writer = asyncio.ensure_future(ingest_during_reconnect())
    await second.connect()
    try:
        events = await second.read_until(has_seqs(80))
        await writer
        assert telemetry_seqs(events) == list(range(6, 81))
    finally:
        await second.close()


async def test_resume_by_query_parameter_and_bad_ids(rover, ingest_token, viewer_token):
    await post_frames("curiosity", [frame(i) for i in range(1, 4)], ingest_token)
    client = await SSEClient(f"{STREAM}?last_event_id=1", token=viewer_token).connect()
    try:
        events = await client.read_until(has_seqs(3))
        assert telemetry_seqs(events) == [2, 3]
    finally:
        await client.close()
    bad = await SSEClient(STREAM, token=viewer_token, headers={"Last-Event-ID": "-3"}).connect()
    assert bad.status == 400
    await bad.read_until(lambda events: False, timeout=5) if not bad.ended else None


async def test_slow_subscriber_is_cut_off_with_a_final_overflow_event(
    settings, rover, ingest_token, viewer_token
):
    settings.STREAM_SUBSCRIBER_QUEUE = 3
    # In-process layer: a burst is dispatched in one go, so the overflow is deterministic
    # (over Redis the reader may receive one event at a time and the client keep up).
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    channel_layers.backends.clear()
    settings.SSE_HEARTBEAT_SECONDS = 0.05
    client = await SSEClient(STREAM, token=viewer_token).connect()
    # A heartbeat means the generator is past its start and waits on the live queue.
    await client.read_until(lambda events: any(e.get("comment") == "heartbeat" for e in events))
    # Ten stored frames published at once: the hub queues them all before this
    # subscriber's generator runs again, more than its queue of 3 holds.
    result, _ = await sync_to_async(telemetry_store)(
        rover=rover, frames=telemetry_validate(payload=[frame(i) for i in range(1, 11)])
    )
    await asyncio.gather(*(publish("rover.curiosity", frame_event(f)) for f in result.stored))
    events = await client.read_until(lambda events: False)
    assert client.ended
    assert events[-1]["event"] == "overflow"
    assert "Last-Event-ID" in json.loads(events[-1]["data"])["detail"]
    sent = telemetry_seqs(events)
    assert len(sent) < 10
    await client.comm.wait(5)
    # It resumes by id and gets every remaining frame.
    last = str(sent[-1]) if sent else "0"
    again = await SSEClient(STREAM, token=viewer_token, headers={"Last-Event-ID": last}).connect()
    try:
        resumed = await again.read_until(has_seqs(10))
        assert sorted(sent + telemetry_seqs(resumed)) == list(range(1, 11))
    finally:
        await again.close()
        channel_layers.backends.clear()


async def test_disconnect_releases_the_subscription(rover, viewer_token):
    hub = get_hub()
    client = await SSEClient(STREAM, token=viewer_token).connect()
    await client.read_until(lambda events: any("retry" in e for e in events))
    assert hub.local_subscriber_count == 1
    await client.close()
    assert hub.local_subscriber_count == 0
    assert hub._reader is None


async def test_alarm_events_are_sent_without_an_id(rover, ingest_token, viewer_token):
    client = await SSEClient(STREAM, token=viewer_token).connect()
    try:
        await client.read_until(lambda events: any("retry" in e for e in events))
        await post_frames("curiosity", [frame(1, battery_pct=5.0)], ingest_token)
        events = await client.read_until(lambda evs: any(e.get("event") == "alarm" for e in evs))
        alarm = next(e for e in events if e.get("event") == "alarm")
        assert "id" not in alarm
        assert json.loads(alarm["data"])["kind"] == "battery_low"
    finally:
        await client.close()


async def test_stream_needs_a_login_and_the_seed_url_opens_with_public_feeds(
    settings, rover, viewer_token
):
    denied = await SSEClient(STREAM).connect()
    assert denied.status == 401
    await denied.comm.wait(5)
    seed = await SSEClient("/stream/rover-telemetry").connect()
    assert seed.status == 401
    await seed.comm.wait(5)
    settings.PUBLIC_FEEDS = True
    public = await SSEClient("/stream/rover-telemetry").connect()
    try:
        assert public.status == 200
        assert public.headers["content-type"].startswith("text/event-stream")
    finally:
        await public.close()
    missing = await SSEClient("/rovers/spirit/telemetry/stream", token=viewer_token).connect()
    assert missing.status == 404
    await missing.comm.wait(5)
