"""A client resuming the live feed gets the alarm changes and images it missed, once each.

Alarms and images carry no `id:` (the stream's ids are the frames' ingest ids), so
before the resume replayed them from the store a client that was away for a few
seconds never heard of an alarm raised, cleared or acknowledged, nor of an image
stored, while it was away.
"""

from __future__ import annotations

import io
import json

import pytest

from rover.tests.clients import SSEClient, asgi_request, post_frames, telemetry_seqs
from rover.tests.factories import frame, jpeg_bytes

pytestmark = pytest.mark.django_db(transaction=True)
STREAM = "/rovers/curiosity/telemetry/stream"


def of_kind(events: list[dict], name: str) -> list[dict]:
    return [json.loads(e["data"]) for e in events if e.get("event") == name]


def upload(data: bytes, **fields: str) -> dict:
    file = io.BytesIO(data)
    file.name = "navcam.jpg"
    return {"file": file, **fields}


@pytest.fixture
def operator_token(user_factory, token_for):
    """A token of an operator who may acknowledge alarms."""
    return token_for(user_factory("operator", perms=("rover.change_alarm",)))


async def test_resume_replays_alarm_changes_and_images_stored_while_away_once_each(
    rover, ingest_token, viewer_token, operator_token, uploader
):
    await post_frames("curiosity", [frame(1)], ingest_token)
    client = await SSEClient(STREAM, token=viewer_token).connect()
    try:
        await client.read_until(lambda events: 1 in telemetry_seqs(events))
        # Seen live: frame 2 raises the battery alarm.
        await post_frames("curiosity", [frame(2, battery_pct=5.0)], ingest_token)
        events = await client.read_until(
            lambda events: 2 in telemetry_seqs(events) and of_kind(events, "alarm")
        )
    finally:
        await client.close()
    (battery,) = of_kind(events, "alarm")
    assert battery["active"] and battery["acknowledged_by"] is None
    last_id = str(telemetry_seqs(events)[-1])

    # While the client is away: the battery alarm is acknowledged, then cleared; safe mode
    # raises another; two images are stored, one captured long ago (a late downlink).
    status, _, _ = await asgi_request(
        f"/api/alarms/{battery['id']}/acknowledge", method="POST", token=operator_token
    )
    assert status == 200
    await post_frames("curiosity", [frame(3, battery_pct=5.0, mode="safe_mode")], ingest_token)
    new = await uploader.post("/api/rovers/curiosity/images", upload(jpeg_bytes(seed=2)))
    old = await uploader.post(
        "/api/rovers/curiosity/images",
        upload(jpeg_bytes(seed=3), captured_at="2026-01-02T03:04:05Z"),
    )
    assert new.status_code == old.status_code == 201
    await post_frames("curiosity", [frame(4, battery_pct=90.0, mode="safe_mode")], ingest_token)

    resumed = await SSEClient(
        STREAM, token=viewer_token, headers={"Last-Event-ID": last_id}
    ).connect()
    try:
        events = await resumed.read_until(lambda events: 4 in telemetry_seqs(events))
    finally:
        await resumed.close()
    assert telemetry_seqs(events) == [3, 4]
    alarms = of_kind(events, "alarm")
    by_id = {alarm["id"]: alarm for alarm in alarms}
    assert len(alarms) == len(by_id) == 2, alarms  # each alarm once, in its current state
    assert by_id[battery["id"]]["active"] is False
    assert by_id[battery["id"]]["acknowledged_by"] == "operator"
    (safe,) = [alarm for alarm in alarms if alarm["kind"] == "safe_mode"]
    assert safe["active"] is True
    images = of_kind(events, "image")
    assert sorted(image["id"] for image in images) == sorted([new.json()["id"], old.json()["id"]])
    assert all("id" not in e for e in events if e.get("event") in ("alarm", "image"))


async def test_a_first_connect_sends_frames_only_as_the_seed_curl_shows(
    rover, ingest_token, viewer_token, uploader
):
    """No Last-Event-ID: the newest frame, then live; stored alarms and images are not resent."""
    await post_frames("curiosity", [frame(1, battery_pct=5.0), frame(2)], ingest_token)
    stored = await uploader.post("/api/rovers/curiosity/images", upload(jpeg_bytes()))
    assert stored.status_code == 201
    client = await SSEClient(STREAM, token=viewer_token).connect()
    try:
        await client.read_until(lambda events: 2 in telemetry_seqs(events))
        await post_frames("curiosity", [frame(3)], ingest_token)
        events = await client.read_until(lambda events: 3 in telemetry_seqs(events))
    finally:
        await client.close()
    assert [e.get("event") for e in events if "event" in e] == ["telemetry", "telemetry"]


async def test_a_resume_leaves_out_alarms_and_images_older_than_its_frame(
    rover, ingest_token, viewer_token, uploader
):
    """Only what changed since shortly before the frame resumed after is sent again."""
    from datetime import timedelta

    from django.utils import timezone

    from rover.models import Alarm, RoverImage, TelemetryFrame

    await post_frames("curiosity", [frame(1, battery_pct=5.0), frame(2)], ingest_token)
    old = await uploader.post("/api/rovers/curiosity/images", upload(jpeg_bytes(seed=4)))
    assert old.status_code == 201
    # Frames 1 and 2 were received two hours ago, the alarm (raised and cleared) and the
    # image an hour before that.
    now = timezone.now()
    await TelemetryFrame.objects.aupdate(received_at=now - timedelta(hours=2))
    await Alarm.objects.aupdate(
        raised_at=now - timedelta(hours=3), cleared_at=now - timedelta(hours=3)
    )
    await RoverImage.objects.aupdate(received_at=now - timedelta(hours=3))
    new = await uploader.post("/api/rovers/curiosity/images", upload(jpeg_bytes(seed=5)))
    await post_frames("curiosity", [frame(3)], ingest_token)

    resumed = await SSEClient(STREAM, token=viewer_token, headers={"Last-Event-ID": "2"}).connect()
    try:
        events = await resumed.read_until(lambda events: 3 in telemetry_seqs(events))
    finally:
        await resumed.close()
    assert of_kind(events, "alarm") == []
    assert [image["id"] for image in of_kind(events, "image")] == [new.json()["id"]]
