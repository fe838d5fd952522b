"""Ingest ids: the server's order of frames, for the SSE `id:` and Last-Event-ID replay.

A frame that arrives late (a lower seq than one already sent) or in a batch out
of order is stored with the next ingest id, so it is pushed live and replayed;
a retried seq is never stored, numbered or sent twice.
"""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async

from rover.models import Rover, TelemetryFrame
from rover.services.telemetry import TelemetryInvalid, telemetry_store, telemetry_validate
from rover.tests.clients import SSEClient, post_frames
from rover.tests.factories import RoverFactory, frame

STREAM = "/rovers/curiosity/telemetry/stream"


def store(rover: Rover, seqs: list[int]):
    return telemetry_store(rover=rover, frames=telemetry_validate(payload=[frame(s) for s in seqs]))


def ids_by_seq(rover: Rover) -> dict[int, int]:
    return dict(TelemetryFrame.objects.filter(rover=rover).values_list("seq", "ingest_id"))


def sent(events: list[dict]) -> list[tuple[int, int]]:
    """Return (ingest id, seq) of each telemetry event, in the order sent."""
    return [
        (int(e["id"]), json.loads(e["data"])["seq"])
        for e in events
        if e.get("event") == "telemetry"
    ]


def has_id(wanted: int):
    return lambda events: any(event_id == wanted for event_id, _ in sent(events))


def test_ids_are_consecutive_per_rover_and_follow_seq_within_a_request(rover):
    other = RoverFactory(slug="spirit", name="Spirit")
    store(rover, [5, 3, 4])
    assert ids_by_seq(rover) == {3: 1, 4: 2, 5: 3}
    result, previous_max = store(rover, [3, 6, 1, 6])
    assert [f.seq for f in result.stored] == [1, 6]
    assert [f.ingest_id for f in result.stored] == [4, 5]
    assert result.duplicates == [3, 6] and previous_max == 5
    store(other, [100])
    assert ids_by_seq(other) == {100: 1}
    # Nothing new: no id taken. A refused batch: nothing stored, no id taken.
    store(rover, [1, 3])
    with pytest.raises(TelemetryInvalid):
        store(rover, [7, -1])
    rover.refresh_from_db()
    assert rover.last_ingest_id == 5
    store(rover, [2])
    assert ids_by_seq(rover)[2] == 6


@pytest.mark.django_db(transaction=True)
async def test_a_late_frame_is_pushed_live_and_replayed(rover, ingest_token, viewer_token):
    """Seq 5 and then 1, 3 arrive after 6 went live: each is sent live with the next id."""
    await post_frames("curiosity", [frame(2), frame(4), frame(6)], ingest_token)
    client = await SSEClient(STREAM, token=viewer_token).connect()
    try:
        # A first connect: the newest frame (seq 6), with the stream's position as its id.
        await client.read_until(has_id(3))
        assert (await post_frames("curiosity", [frame(5)], ingest_token))[0] == 201
        assert (await post_frames("curiosity", [frame(3), frame(1)], ingest_token))[0] == 201
        events = await client.read_until(has_id(6))
        assert sent(events) == [(3, 6), (4, 5), (5, 1), (6, 3)]
    finally:
        await client.close()
    # A client that had id 3 (seq 6) gets exactly the late frames on resume.
    again = await SSEClient(STREAM, token=viewer_token, headers={"Last-Event-ID": "3"}).connect()
    try:
        events = await again.read_until(has_id(6))
        assert sent(events) == [(4, 5), (5, 1), (6, 3)]
    finally:
        await again.close()


@pytest.mark.django_db(transaction=True)
async def test_duplicates_and_an_out_of_order_batch_are_sent_once_each_in_ingest_order(
    rover, ingest_token, viewer_token
):
    client = await SSEClient(f"{STREAM}?last_event_id=0", token=viewer_token).connect()
    try:
        await client.read_until(lambda events: any("retry" in e for e in events))
        assert (await post_frames("curiosity", [frame(9), frame(7), frame(8)], ingest_token))[
            1
        ] == {"stored": 3, "duplicates": []}
        # Retries, alone and mixed with new frames, repeated inside a batch.
        assert (await post_frames("curiosity", [frame(8), frame(7)], ingest_token))[1] == {
            "stored": 0,
            "duplicates": [7, 8],
        }
        assert (
            await post_frames(
                "curiosity", [frame(12), frame(9), frame(10), frame(12)], ingest_token
            )
        )[1] == {"stored": 2, "duplicates": [9, 12]}
        assert (await post_frames("curiosity", [frame(11)], ingest_token))[0] == 201
        events = await client.read_until(has_id(6))
        assert sent(events) == [(1, 7), (2, 8), (3, 9), (4, 10), (5, 12), (6, 11)]
    finally:
        await client.close()
    resumed = await SSEClient(f"{STREAM}?last_event_id=2", token=viewer_token).connect()
    try:
        events = await resumed.read_until(has_id(6))
        assert sent(events) == [(3, 9), (4, 10), (5, 12), (6, 11)]
    finally:
        await resumed.close()


@pytest.mark.django_db(transaction=True)
async def test_first_connect_shows_the_newest_seq_and_resumes_at_the_last_id(
    rover, ingest_token, viewer_token
):
    """The last frame received was late (seq 1): the dashboard still starts on seq 4."""
    await post_frames("curiosity", [frame(4)], ingest_token)
    await post_frames("curiosity", [frame(1)], ingest_token)
    client = await SSEClient(STREAM, token=viewer_token).connect()
    try:
        await client.read_until(has_id(2))
        await post_frames("curiosity", [frame(5)], ingest_token)
        events = await client.read_until(has_id(3))
        assert sent(events) == [(2, 4), (3, 5)]
    finally:
        await client.close()
    assert await sync_to_async(ids_by_seq)(rover) == {4: 1, 1: 2, 5: 3}


@pytest.mark.django_db(transaction=True)
async def test_an_id_the_rover_never_gave_starts_afresh_instead_of_skipping_everything(
    rover, ingest_token, viewer_token
):
    await post_frames("curiosity", [frame(1), frame(2)], ingest_token)
    client = await SSEClient(STREAM, token=viewer_token, headers={"Last-Event-ID": "999"}).connect()
    try:
        await client.read_until(has_id(2))
        await post_frames("curiosity", [frame(3)], ingest_token)
        events = await client.read_until(has_id(3))
        assert sent(events) == [(2, 2), (3, 3)]
    finally:
        await client.close()
