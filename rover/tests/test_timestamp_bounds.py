"""Client timestamps are bounded on the way in (issue #13, point 1).

After 1970, at most TIMESTAMP_MAX_FUTURE_SECONDS ahead, offsets within ±14:00:
each refusal is a 400 naming the field, and nothing is stored.
"""

from __future__ import annotations

import base64
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import sync_to_async

from rover.models import ImageUpload, RoverImage, TelemetryFrame
from rover.tests.clients import asgi_request, post_frames
from rover.tests.factories import frame, jpeg_bytes

pytestmark = pytest.mark.django_db(transaction=True)

OUT_OF_BOUNDS = [
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:00:00-14:00",
    "2026-11-24T12:00:00-23:59",
    "2026-11-24T12:00:00+14:30",
    "1969-12-31T23:59:59Z",
    "2999-01-01T00:00:00Z",
]


def in_a_week() -> str:
    return (datetime.now(UTC) + timedelta(days=7)).isoformat()


@pytest.mark.parametrize("stamp", [*OUT_OF_BOUNDS, "in a week"])
async def test_ingest_refuses_recorded_at_out_of_bounds(rover, ingest_token, stamp):
    stamp = in_a_week() if stamp == "in a week" else stamp
    status, body = await post_frames(
        "curiosity", [frame(1), frame(2, recorded_at=stamp)], ingest_token
    )
    assert status == 400, body
    assert body["error"] == "invalid_frames"
    assert body["frames"][0]["index"] == 1 and "recorded_at" in body["frames"][0]["errors"]
    assert await TelemetryFrame.objects.acount() == 0


async def test_ingest_stores_extreme_but_valid_offsets_in_utc(rover, ingest_token):
    frames = [
        frame(1, recorded_at="2026-11-24T12:00:00+14:00"),
        frame(2, recorded_at="2026-11-24T12:00:00-12:00"),
    ]
    assert (await post_frames("curiosity", frames, ingest_token))[0] == 201
    stored = [f async for f in TelemetryFrame.objects.order_by("seq")]
    assert [f.recorded_at for f in stored] == [
        datetime(2026, 11, 23, 22, 0, tzinfo=UTC),
        datetime(2026, 11, 25, 0, 0, tzinfo=UTC),
    ]


@pytest.mark.parametrize("parameter", ["since", "until"])
@pytest.mark.parametrize("stamp", OUT_OF_BOUNDS)
async def test_history_refuses_since_and_until_out_of_bounds(rover, viewer_token, parameter, stamp):
    from urllib.parse import quote

    status, _headers, body = await asgi_request(
        "/api/rovers/curiosity/telemetry", token=viewer_token, query=f"{parameter}={quote(stamp)}"
    )
    assert status == 400, body
    assert json.loads(body)["parameter"] == parameter


@pytest.mark.usefixtures("own_media_root")
@pytest.mark.parametrize("stamp", OUT_OF_BOUNDS)
async def test_uploads_refuse_captured_at_out_of_bounds(rover, uploader, stamp):
    upload = io.BytesIO(jpeg_bytes())
    upload.name = "shot.jpg"
    response = await uploader.post(
        "/api/rovers/curiosity/images", {"file": upload, "captured_at": stamp}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_captured_at"
    assert response.json()["parameter"] == "captured_at"

    encoded = base64.b64encode(stamp.encode()).decode()
    response = await uploader.post(
        "/api/rovers/curiosity/uploads/",
        headers={
            "Tus-Resumable": "1.0.0",
            "Upload-Length": "100",
            "Upload-Metadata": f"captured_at {encoded}",
        },
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_captured_at"
    assert response.json()["parameter"] == "captured_at"
    assert await sync_to_async(RoverImage.objects.count)() == 0
    assert await sync_to_async(ImageUpload.objects.count)() == 0
