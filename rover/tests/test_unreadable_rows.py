"""One bad row already stored never takes a reader down (issue #13, point 1).

Rows are written with raw SQL, as an old release, a restore or a hand-made fix
could have: timestamps PostgreSQL stores but Python cannot load (year 1 BC in
UTC, year 10000, infinity) and, on SQLite, text Django cannot parse. Every
reader skips them, logs them, and keeps answering and streaming.
"""

from __future__ import annotations

import csv
import io
import json
import logging

import pytest
from asgiref.sync import sync_to_async
from django.db import connection

# Imported first: loading the ASGI application sets logging up again, which would
# drop the handler caplog installs for a test.
import mission_control.asgi  # noqa: F401
from rover.selectors import readable
from rover.services.telemetry import telemetry_store, telemetry_validate
from rover.tests.clients import SSEClient, TokenClient, asgi_request, post_frames
from rover.tests.factories import frame, jpeg_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def bad_timestamps() -> list[str]:
    """Return stored values that no Python datetime can hold, for this database."""
    if connection.vendor == "postgresql":
        return [
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:00:00-14:00",
            "infinity",
            "-infinity",
        ]
    # SQLite keeps text: what a UTC conversion of those values writes, and garbage.
    return ["0000-12-31 10:00:00", "10000-01-01 13:00:00", "infinity", "not a date"]


def insert_frames(rover, first_seq: int) -> list[int]:
    """Insert unloadable rows as a migrated database holds them: ingest id = seq, the
    rover's counter at the highest."""
    seqs = []
    with connection.cursor() as cursor:
        for offset, stamp in enumerate(bad_timestamps()):
            seq = first_seq + offset
            cursor.execute(
                "INSERT INTO rover_telemetryframe (rover_id, seq, ingest_id, recorded_at,"
                " received_at, battery_pct, signal_dbm, mode) VALUES (%s, %s, %s, %s,"
                " CURRENT_TIMESTAMP, 50, -90, 'idle')",
                [rover.pk, seq, seq, stamp],
            )
            seqs.append(seq)
        cursor.execute(
            "UPDATE rover_rover SET last_ingest_id = %s WHERE id = %s", [seqs[-1], rover.pk]
        )
    return seqs


def insert_images(rover) -> list[int]:
    ids = []
    with connection.cursor() as cursor:
        for stamp in bad_timestamps():
            cursor.execute(
                "INSERT INTO rover_roverimage (rover_id, camera, captured_at, received_at, file,"
                " original_name, size, sha256, content_type, width, height, thumbnail)"
                " VALUES (%s, 'navcam', %s, CURRENT_TIMESTAMP, 'rover-images/x.jpg', 'x.jpg',"
                " 1, %s, 'image/jpeg', 1, 1, '')",
                [rover.pk, stamp, "0" * 64],
            )
        cursor.execute("SELECT id FROM rover_roverimage WHERE original_name = 'x.jpg' ORDER BY id")
        ids = [row[0] for row in cursor.fetchall()]
    return ids


@pytest.fixture(autouse=True)
def _fresh_warnings():
    readable._last_warned.clear()
    yield
    readable._last_warned.clear()


@pytest.fixture
def poisoned_rover(rover):
    telemetry_store(rover=rover, frames=telemetry_validate(payload=[frame(1), frame(2)]))
    # The bad rows hold the highest seqs, so "newest frame" and "after seq" both meet them.
    insert_frames(rover, first_seq=100)
    return rover


async def test_history_json_points_and_csv_skip_unloadable_rows(
    poisoned_rover, viewer_token, caplog
):
    url = "/api/rovers/curiosity/telemetry"
    with caplog.at_level(logging.WARNING, logger="rover.selectors.readable"):
        status, _h, body = await asgi_request(url, token=viewer_token)
    assert status == 200, body
    assert [f["seq"] for f in json.loads(body)["frames"]] == [1, 2]
    assert any("skipped by every read" in r.getMessage() for r in caplog.records)

    status, _h, body = await asgi_request(
        url, token=viewer_token, query="since=2026-11-24T00:00:00Z&limit=10"
    )
    assert status == 200 and [f["seq"] for f in json.loads(body)["frames"]] == [1, 2]

    status, _h, body = await asgi_request(
        url,
        token=viewer_token,
        query="since=2026-11-24T12:00:00Z&until=2026-11-24T12:01:00Z&points=6",
    )
    assert status == 200 and sum(b["count"] for b in json.loads(body)["frames"]) == 2

    status, _h, body = await asgi_request(url, token=viewer_token, query="format=csv")
    assert status == 200
    rows = list(csv.reader(io.StringIO(body.decode())))
    assert [row[0] for row in rows] == ["seq", "1", "2"]


def frame_seqs(events: list[dict]) -> list[int]:
    """The rovers' seqs of the telemetry events (their SSE ids are ingest ids)."""
    return [json.loads(e["data"])["seq"] for e in events if e.get("event") == "telemetry"]


async def test_sse_first_connect_and_resume_skip_unloadable_rows(
    poisoned_rover, viewer_token, ingest_token
):
    stream = "/rovers/curiosity/telemetry/stream"
    first = await SSEClient(stream, token=viewer_token).connect()
    resumed = await SSEClient(f"{stream}?last_event_id=0", token=viewer_token).connect()
    try:
        assert first.status == resumed.status == 200
        # The newest readable frame, not the bad one with a higher seq.
        events = await first.read_until(lambda e: frame_seqs(e))
        assert frame_seqs(events) == [2] and not first.ended
        events = await resumed.read_until(lambda e: len(frame_seqs(e)) >= 2)
        assert frame_seqs(events) == [1, 2] and not resumed.ended
        # Both streams stay open and carry the next live frame.
        assert (await post_frames("curiosity", [frame(200)], ingest_token))[0] == 201
        for client in (first, resumed):
            events = await client.read_until(lambda e: 200 in frame_seqs(e))
            assert 200 in frame_seqs(events) and not client.ended
    finally:
        await first.close()
        await resumed.close()


@pytest.mark.usefixtures("own_media_root")
async def test_image_list_seed_stream_and_download_skip_unloadable_rows(
    rover, user_factory, token_for, store_image, caplog
):
    good = await sync_to_async(store_image)(data=jpeg_bytes(80, 60))
    bad_ids = await sync_to_async(insert_images)(rover)
    reader = TokenClient(await sync_to_async(token_for)(await sync_to_async(user_factory)()))

    with caplog.at_level(logging.WARNING, logger="rover.selectors.readable"):
        response = await reader.get("/api/rovers/curiosity/images")
    assert response.status_code == 200
    assert [item["id"] for item in response.json()["results"]] == [good.pk]
    assert any("RoverImage" in r.getMessage() for r in caplog.records)

    response = await reader.get("/stream/rover-image")
    assert response.status_code == 200
    assert response["ETag"] == f'"{good.sha256}"'
    async for _chunk in response.streaming_content:
        pass

    for image_id in bad_ids:
        response = await reader.get(f"/api/images/{image_id}/download")
        assert response.status_code == 404
