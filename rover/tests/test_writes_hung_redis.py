"""Alarm acknowledgements and image uploads with a Redis that hangs (SIGSTOP).

Both store first, then publish once the transaction commits (`publish_on_commit`),
and the request's thread waited for each publish until redis-py gave up on it (5 s
each): an operator's Acknowledge answered after 10 s, a rover's image uplink after
5 s. Every HTTP request now waits for its publishes at most `PUBLISH_WAIT_SECONDS`
in all (`streams.middleware`), as an ingest does; the publishes go on in the
background and reach live clients once Redis answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator

import pytest
from asgiref.sync import sync_to_async
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

from comms.models import Message
from rover.models import Alarm, AlarmKind, RoverImage
from rover.tests.clients import SSEClient, asgi_request, post_frames, telemetry_seqs
from rover.tests.factories import frame, jpeg_bytes
from streams import hub
from streams.tests.redis_server import RedisServer, use_redis

pytestmark = [
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("own_media_root"),
    # As the ingest's hung-Redis test: the production pair, PostgreSQL and Redis.
    pytest.mark.one_pass("services", why="PostgreSQL and a private Redis, as in production"),
]
STREAM = "/rovers/curiosity/telemetry/stream"
# Hang detectors above PUBLISH_WAIT_SECONDS. Without the bound, each publish waits
# until redis-py gives up on it (its default socket timeout, 5 s): an acknowledgement
# (two publishes) answered after 10 s, an upload (one) after 5 s, so the upload's
# detector must stay under 5 s.
ACK_WITHIN = 3 * hub.PUBLISH_WAIT_SECONDS + 2
UPLOAD_WITHIN = hub.PUBLISH_WAIT_SECONDS + 2.5


@contextlib.asynccontextmanager
async def live_feed_on_private_redis(
    settings, viewer_token: str, ingest_token: str
) -> AsyncIterator[tuple[RedisServer, SSEClient]]:
    """Yield a private Redis and an SSE client of Curiosity's feed whose live path works."""
    server = RedisServer().start()
    use_redis(settings, server.url)
    client = None
    try:
        client = await SSEClient(STREAM, token=viewer_token).connect()
        await client.read_until(lambda events: any("retry" in e for e in events))
        # Frame 1 arriving live proves the feed's subscription works before Redis hangs.
        assert (await post_frames("curiosity", frame(1), ingest_token))[0] == 201
        await client.read_until(lambda events: 1 in telemetry_seqs(events))
        yield server, client
    finally:
        try:
            if client is not None:
                await client.close()  # raises when the stream's task has failed
        finally:
            server.stop()  # resumes a paused server first; never outlives the test


def _named(data: bytes, name: str) -> io.BytesIO:
    upload = io.BytesIO(data)
    upload.name = name
    return upload


def _events_named(events: list[dict], name: str) -> list[dict]:
    return [json.loads(e["data"]) for e in events if e.get("event") == name]


async def _read_after_resume(client: SSEClient, predicate) -> list[dict]:
    """Read the feed until `predicate(events)`; a resync instead fails the test."""
    events = await client.read_until(
        lambda events: predicate(events) or any(e.get("event") == "overflow" for e in events),
        timeout=30,
    )
    assert not any(e.get("event") == "overflow" for e in events), events
    return events


async def _nothing_twice(client: SSEClient, ingest_token: str) -> list[dict]:
    """Post frame 2 once Redis answers again; return every event read up to it."""
    assert (await post_frames("curiosity", frame(2), ingest_token))[0] == 201
    return await _read_after_resume(client, lambda events: 2 in telemetry_seqs(events))


async def test_an_alarm_acknowledgement_answers_while_redis_hangs_and_reaches_the_feed_once(
    settings, rover, ingest_token, viewer_token, user_factory, token_for
):
    engineer = await sync_to_async(user_factory)("engineer", perms=("rover.change_alarm",))
    token = await sync_to_async(token_for)(engineer)
    alarm = await sync_to_async(Alarm.objects.create)(
        rover=rover, kind=AlarmKind.BATTERY_LOW, message="Battery at 5.0%."
    )
    async with live_feed_on_private_redis(settings, viewer_token, ingest_token) as (server, client):
        server.pause()
        # Two publishes (the feed's alarm event, the alarm room's message): 2 s in all.
        status, _headers, body = await asyncio.wait_for(
            asgi_request(
                f"/api/alarms/{alarm.pk}/acknowledge",
                method="POST",
                token=token,
                timeout=ACK_WITHIN,
            ),
            ACK_WITHIN,
        )
        assert status == 200, body
        assert json.loads(body)["acknowledged_by"] == "engineer"
        await sync_to_async(alarm.refresh_from_db)()
        assert alarm.acknowledged_at is not None
        assert await sync_to_async(
            Message.objects.filter(body="engineer acknowledged Curiosity: Battery low.").exists
        )()
        server.resume()

        def acknowledged(events: list[dict]) -> list[dict]:
            return [a for a in _events_named(events, "alarm") if a["acknowledged_by"]]

        await _read_after_resume(client, acknowledged)
        events = await _nothing_twice(client, ingest_token)
        assert [a["id"] for a in acknowledged(events)] == [alarm.pk]


async def test_an_image_upload_answers_while_redis_hangs_and_reaches_the_feed_once(
    settings, rover, ingest_token, viewer_token, user_factory, token_for
):
    uplink = await sync_to_async(user_factory)("camera", perms=("rover.add_roverimage",))
    token = await sync_to_async(token_for)(uplink)
    upload = {"file": _named(jpeg_bytes(120, 90), "shot.jpg"), "camera": "hazcam_front"}
    payload = encode_multipart(BOUNDARY, upload)
    async with live_feed_on_private_redis(settings, viewer_token, ingest_token) as (server, client):
        server.pause()
        status, _headers, body = await asyncio.wait_for(
            asgi_request(
                "/api/rovers/curiosity/images",
                method="POST",
                body=payload,
                token=token,
                timeout=UPLOAD_WITHIN,
                content_type=MULTIPART_CONTENT,
            ),
            UPLOAD_WITHIN,
        )
        assert status == 201, body
        image_id = json.loads(body)["id"]
        assert await sync_to_async(RoverImage.objects.filter(pk=image_id).exists)()
        server.resume()
        await _read_after_resume(client, lambda events: _events_named(events, "image"))
        events = await _nothing_twice(client, ingest_token)
        assert [i["id"] for i in _events_named(events, "image")] == [image_id]
