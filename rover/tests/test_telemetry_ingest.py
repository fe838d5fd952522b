"""Ingest: validation, all-or-nothing batches, duplicates and out-of-order frames."""

from __future__ import annotations

import json

import pytest

from rover.models import TelemetryFrame
from rover.tests.factories import frame

URL = "/api/rovers/curiosity/telemetry"


def post(client, payload, token, *, raw: bytes | None = None):
    body = raw if raw is not None else json.dumps(payload)
    return client.post(
        URL, data=body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )


def stored_seqs(rover) -> list[int]:
    return list(TelemetryFrame.objects.filter(rover=rover).values_list("seq", flat=True))


def test_single_frame_is_stored_with_every_field(client, rover, ingest_token):
    payload = frame(
        7,
        x_m=12.5,
        y_m=-3.25,
        heading_deg=359.9,
        battery_v=28.4,
        temp_ambient_c=-60.5,
        speed_mps=0.04,
        recorded_at="2026-11-24T12:00:07Z",
    )
    response = post(client, payload, ingest_token)
    assert response.status_code == 201
    assert response.json() == {"stored": 1, "duplicates": []}
    stored = TelemetryFrame.objects.get(rover=rover, seq=7)
    assert (stored.x_m, stored.y_m, stored.heading_deg) == (12.5, -3.25, 359.9)
    assert stored.mode == "driving"
    assert stored.recorded_at.isoformat() == "2026-11-24T12:00:07+00:00"
    assert stored.received_at is not None


def test_batch_with_one_bad_frame_stores_nothing_and_names_each_bad_field(
    client, rover, ingest_token
):
    batch = [
        frame(1),
        frame(2, battery_pct=101, signal_dbm="loud"),
        frame(3, heading_deg=360, speed_mps=-1, mode="warp", colour="red"),
        {"battery_pct": 50, "signal_dbm": -80},
        frame(5, recorded_at="2026-11-24T12:00:00"),
        frame(6, battery_pct=True, temp_internal_c=float("nan")),
        "not a frame",
    ]
    response = post(client, batch, ingest_token)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_frames"
    errors = {entry["index"]: entry["errors"] for entry in body["frames"]}
    assert set(errors) == {1, 2, 3, 4, 5, 6}
    assert set(errors[1]) == {"battery_pct", "signal_dbm"}
    assert set(errors[2]) == {"heading_deg", "speed_mps", "mode", "colour"}
    assert errors[2]["colour"] == "unknown field"
    assert set(errors[3]) == {"seq", "recorded_at"}
    assert "time zone" in errors[4]["recorded_at"]
    assert set(errors[5]) == {"battery_pct", "temp_internal_c"}
    assert errors[6] == {"frame": "must be a JSON object"}
    assert body["frames"][0]["seq"] == 2
    assert stored_seqs(rover) == []


@pytest.mark.parametrize(
    "raw",
    [
        b'{"seq": 1, "recorded_at": "2026-11-24T12:00:00Z", "battery_pct": Infinity, '
        b'"signal_dbm": -80}',
        b'{"seq": 1.5, "recorded_at": "2026-11-24T12:00:00Z", "battery_pct": 5, "signal_dbm": -80}',
        b'{"seq": -1, "recorded_at": "2026-11-24T12:00:00Z", "battery_pct": 5, "signal_dbm": -80}',
        b'{"seq": 1, "recorded_at": "yesterday", "battery_pct": 5, "signal_dbm": -80}',
        b'{"seq": 1, "recorded_at": "2026-11-24T12:00:00Z", "battery_pct": 5, "signal_dbm": -201}',
    ],
)
def test_out_of_range_or_malformed_values_answer_400(client, rover, ingest_token, raw):
    response = post(client, None, ingest_token, raw=raw)
    assert response.status_code == 400
    assert response.json()["frames"][0]["index"] == 0
    assert stored_seqs(rover) == []


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", "bad_json"),
        (b"[]", "invalid_frames"),
        (b'"a string"', "invalid_frames"),
        (b"[" * 100000 + b"]" * 100000, "bad_json"),
    ],
)
def test_bad_bodies_answer_400_json(client, rover, ingest_token, raw, code):
    response = post(client, None, ingest_token, raw=raw)
    assert response.status_code == 400
    assert response.json()["error"] == code


def test_body_over_the_limit_answers_413(client, rover, ingest_token):
    big = [frame(i, mode="driving") for i in range(12000)]
    response = post(client, big, ingest_token)
    assert response.status_code == 413
    assert stored_seqs(rover) == []


def test_duplicates_are_reported_and_not_stored_twice(client, rover, ingest_token):
    assert post(client, [frame(1), frame(2)], ingest_token).json() == {
        "stored": 2,
        "duplicates": [],
    }
    # The rover retries 2, repeats 3 inside the batch, and sends 5 before 4.
    response = post(client, [frame(2), frame(5), frame(3), frame(3), frame(4)], ingest_token)
    assert response.status_code == 201
    assert response.json() == {"stored": 3, "duplicates": [2, 3]}
    response = post(client, [frame(1), frame(5)], ingest_token)
    assert response.status_code == 200
    assert response.json() == {"stored": 0, "duplicates": [1, 5]}
    assert sorted(stored_seqs(rover)) == [1, 2, 3, 4, 5]


def test_late_frame_is_stored(client, rover, ingest_token):
    post(client, [frame(10)], ingest_token)
    assert post(client, frame(9), ingest_token).json() == {"stored": 1, "duplicates": []}
    assert sorted(stored_seqs(rover)) == [9, 10]


def test_ingest_needs_the_add_permission(client, rover, viewer_token):
    assert post(client, frame(1), viewer_token).status_code == 403
    response = client.post(URL, data=json.dumps(frame(1)), content_type="application/json")
    assert response.status_code == 401
    assert stored_seqs(rover) == []


def test_unknown_rover_answers_404(client, rover, ingest_token):
    response = client.post(
        "/api/rovers/opportunity/telemetry",
        data=json.dumps(frame(1)),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {ingest_token}",
    )
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
