"""Telemetry ingest with a Redis that hangs: connections open, nothing answered (SIGSTOP).

A Redis that refuses (stopped) fails a publish at once; one that hangs does not,
and an ingest that awaited its publish and its alarm announcements answered only
once redis-py gave up on each of them (20 s in the audit), long after the rover's
uplink (`simulate_rover`, 10 s) had given up and sent the batch again. The frames
are committed before anything is published, so the ingest answers 201 after a
bounded wait and the publish finishes (or fails into a resync) in the background.
"""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from asgiref.sync import sync_to_async

from rover.models import Alarm, AlarmKind, TelemetryFrame
from rover.tests.clients import SSEClient, post_frames, telemetry_seqs
from rover.tests.factories import frame
from streams import hub
from streams.tests.redis_server import RedisServer, use_redis

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]
STREAM = "/rovers/curiosity/telemetry/stream"


async def _read_ids(client: SSEClient, wanted: int, timeout: float) -> tuple[list[int], bool]:
    """Read telemetry ids until `wanted` arrives or the stream asks for a resync."""
    events = await client.read_until(
        lambda events: (
            wanted in telemetry_seqs(events) or any(e.get("event") == "resync" for e in events)
        ),
        timeout=timeout,
    )
    return telemetry_seqs(events), any(e.get("event") == "resync" for e in events)


# Production's combination (PostgreSQL and Redis) only: in the first pass (SQLite with this
# private Redis, a mix no deployment runs) one CI run timed out waiting for frame 1 live,
# before Redis was stopped; cause not found (closing note of 2026-11-26).
@pytest.mark.one_pass("services", why="PostgreSQL and a private Redis, as in production")
async def test_an_ingest_answers_while_redis_hangs_and_subscribers_get_each_frame_once(
    settings, rover, ingest_token, viewer_token
):
    server = RedisServer().start()
    use_redis(settings, server.url)
    client = None
    stopped = False
    try:
        client = await SSEClient(STREAM, token=viewer_token).connect()
        await client.read_until(lambda events: any("retry" in e for e in events))
        assert (await post_frames("curiosity", frame(1), ingest_token))[0] == 201
        assert (await client.read_until(lambda events: 1 in telemetry_seqs(events)))[-1]["id"]
        os.kill(server.proc.pid, signal.SIGSTOP)
        stopped = True
        # Battery 5 %: the frame raises an alarm, announced on the stream and in the room.
        # The bound is a hang detector far above PUBLISH_WAIT_SECONDS and far below the
        # 10 s after which the uplink gives up and retries.
        status, answer = await asyncio.wait_for(
            post_frames("curiosity", frame(2, battery_pct=5.0), ingest_token),
            3 * hub.PUBLISH_WAIT_SECONDS + 2,
        )
        assert (status, answer) == (201, {"stored": 1, "duplicates": []})
        assert await sync_to_async(TelemetryFrame.objects.filter(rover=rover).count)() == 2
        assert await sync_to_async(
            Alarm.objects.filter(rover=rover, kind=AlarmKind.BATTERY_LOW).exists
        )()
        os.kill(server.proc.pid, signal.SIGCONT)
        stopped = False
        # Frame 2 reaches the subscriber once: by its late publish, or by the resync the
        # hub sends after a failed one (then the client replays from its last id).
        ids, resync = await _read_ids(client, 2, timeout=30)
        seen = list(ids)
        if resync and 2 not in ids:
            await client.close()
            last = str(seen[-1]) if seen else "0"
            client = await SSEClient(
                STREAM, token=viewer_token, headers={"last-event-id": last}
            ).connect()
            ids, _ = await _read_ids(client, 2, timeout=30)
            seen += ids
        assert seen == [1, 2]
        # And nothing comes twice afterwards: a frame sent after Redis answered again
        # arrives right behind it.
        assert (await post_frames("curiosity", frame(3), ingest_token))[0] == 201
        events = await client.read_until(lambda events: 3 in telemetry_seqs(events), timeout=30)
        assert telemetry_seqs(events)[-2:] == [2, 3]
        assert telemetry_seqs(events).count(2) == 1
    finally:
        if stopped:
            os.kill(server.proc.pid, signal.SIGCONT)
        try:
            if client is not None:
                await client.close()  # raises when the stream's task has failed
        finally:
            server.stop()  # the private redis-server never outlives the test
