"""Alarm acknowledgements and image uploads with a Redis that hangs (SIGSTOP).

Both store first, then publish once the transaction commits (`publish_on_commit`),
and the request's thread waited for each publish until redis-py gave up on it (5 s
each): an operator's Acknowledge answered after 10 s, a rover's image uplink after
5 s. Every HTTP request now waits for its publishes at most `PUBLISH_WAIT_SECONDS`
in all (`streams.middleware`), as an ingest does; the publishes go on in the
background and reach live clients once Redis answers again.

The tests at the end send the other writes the README names to a real server
process (daphne) on a private Redis frozen before the write: a tus upload's
last PATCH, an alarm acknowledged in the admin, an announcement posted to a
room from the admin. Each is stored and answered within its bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

from comms.models import Message
from comms.tests.factories import TeamFactory
from rover.models import Alarm, AlarmKind, RoverImage
from rover.tests.clients import SSEClient, asgi_request, post_frames, telemetry_seqs
from rover.tests.factories import frame, jpeg_bytes
from rover.tests.tus import created_path, patch
from streams import hub
from streams.tests.redis_server import RedisServer, use_redis
from testing.servers import ServerProcess

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
# An announcement is one publish, as an upload.
ANNOUNCE_WITHIN = UPLOAD_WITHIN
# The CSRF secret the admin tests send as cookie and form field (an unmasked token).
CSRF = "a" * 32


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


@contextlib.contextmanager
def server_on_private_redis(server_process) -> Iterator[tuple[RedisServer, ServerProcess]]:
    """Yield a private Redis and a daphne process using it; the test freezes the Redis."""
    redis = RedisServer().start()
    try:
        yield redis, server_process(redis_url=redis.url)
    finally:
        redis.stop()  # resumes a paused server first


async def _admin_client(server: ServerProcess, user) -> httpx.AsyncClient:
    """Return an HTTP client of `server` logged in to the admin as `user`."""
    browser = Client()
    await sync_to_async(browser.force_login)(user)
    cookies = {"sessionid": browser.cookies["sessionid"].value, "csrftoken": CSRF}
    return httpx.AsyncClient(base_url=server.url, cookies=cookies, timeout=30)


async def _timed(request) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await request
    return response, time.monotonic() - started


@pytest.mark.slow  # a daphne process
async def test_a_tus_upload_finishing_answers_while_redis_hangs(
    server_process, rover, user_factory, token_for
):
    uplink = await sync_to_async(user_factory)("camera", perms=("rover.add_roverimage",))
    token = await sync_to_async(token_for)(uplink)
    data = jpeg_bytes(120, 90)
    with server_on_private_redis(server_process) as (redis, server):
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as client:
            url = await created_path(client, len(data))  # nothing is published yet
            redis.pause()
            done, took = await _timed(patch(client, url, 0, data))
    assert done.status_code == 204, done.content
    assert took < UPLOAD_WITHIN, f"the last PATCH answered after {took:.2f} s"
    assert await sync_to_async(RoverImage.objects.filter(rover=rover).exists)()


@pytest.mark.slow  # a daphne process
async def test_an_alarm_acknowledged_in_the_admin_answers_while_redis_hangs(
    server_process, rover, user_factory
):
    flight = await sync_to_async(user_factory)("flight", is_staff=True, is_superuser=True)
    alarm = await sync_to_async(Alarm.objects.create)(
        rover=rover, kind=AlarmKind.BATTERY_LOW, message="Battery at 5.0%."
    )
    with server_on_private_redis(server_process) as (redis, server):
        async with await _admin_client(server, flight) as admin:
            redis.pause()
            # Two publishes: the feed's alarm event, the alarm room's message.
            answer, took = await _timed(
                admin.post(
                    "/admin/rover/alarm/",
                    data={
                        "action": "acknowledge",
                        "_selected_action": [alarm.pk],
                        "csrfmiddlewaretoken": CSRF,
                    },
                )
            )
    assert answer.status_code == 302, answer.text
    assert took < ACK_WITHIN, f"the admin answered after {took:.2f} s"
    await sync_to_async(alarm.refresh_from_db)()
    assert alarm.acknowledged_by_id == flight.pk
    assert await sync_to_async(
        Message.objects.filter(body="flight acknowledged Curiosity: Battery low.").exists
    )()


@pytest.mark.slow  # a daphne process
async def test_an_announcement_posted_from_the_admin_answers_while_redis_hangs(
    server_process, user_factory
):
    flight = await sync_to_async(user_factory)("flight", is_staff=True, is_superuser=True)
    team = await sync_to_async(TeamFactory)(slug="ops", name="Ops")
    with server_on_private_redis(server_process) as (redis, server):
        async with await _admin_client(server, flight) as admin:
            redis.pause()
            answer, took = await _timed(
                admin.post(
                    "/admin/comms/team/",
                    data={
                        "action": "post_announcement",
                        "_selected_action": [team.pk],
                        "post": "yes",
                        "body": "Drive at 14:00",
                        "csrfmiddlewaretoken": CSRF,
                    },
                )
            )
    assert answer.status_code == 302, answer.text
    assert took < ANNOUNCE_WITHIN, f"the admin answered after {took:.2f} s"
    assert await sync_to_async(Message.objects.filter(team=team, body="Drive at 14:00").exists)()
