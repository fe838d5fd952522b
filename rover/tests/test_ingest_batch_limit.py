"""Ingest's batch bound: at most 1,000 frames a request, the 1,001st refuses the whole batch.

README (Live telemetry, Ingest): "a batch (an array, at most 1,000 frames, 1 MiB)".
The 1 MiB bound has its test (test_telemetry_ingest.py); this is the frame count,
with frames small enough that 1,001 of them stay well under 1 MiB.
"""

from __future__ import annotations

import json

from rover.models import TelemetryFrame

URL = "/api/rovers/curiosity/telemetry"


def _post(client, frames: list[dict], token: str):
    body = json.dumps(frames, separators=(",", ":"))
    assert len(body) < 1024 * 1024 / 2
    return client.post(
        URL, data=body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )


def _frames(count: int) -> list[dict]:
    return [
        {"seq": seq, "recorded_at": "2026-11-24T12:00:00Z", "battery_pct": 50, "signal_dbm": -90}
        for seq in range(1, count + 1)
    ]


def test_a_batch_of_1001_frames_is_refused_whole_and_1000_are_stored(client, rover, ingest_token):
    refused = _post(client, _frames(1001), ingest_token)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_frames"
    assert not TelemetryFrame.objects.exists()
    stored = _post(client, _frames(1000), ingest_token)
    assert stored.status_code == 201
    assert stored.json()["stored"] == 1000
