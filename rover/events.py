"""The rover stream: its name and the shape of every event on it, built only here.

Each rover has one hub stream, `rover.<slug>` (`rover_stream`). Its events are
dicts whose `data` is the JSON text every subscriber sends as is, encoded once:

- `{"event": "telemetry", "id": <ingest id>, "data": "<frame JSON>"}` (`frame_event`),
  the frame's fields in FRAME_FIELDS order (`frame_json`, with the rover's `seq`);
  the SSE feed sends it with `id: <ingest id>`, the server's consecutive per-rover
  number in commit order, so a client resumes with `Last-Event-ID` and a frame
  that arrived late (a lower seq) still has a position after what was sent.
- `{"event": "alarm", "id": None, "data": "<alarm JSON>"}` (`alarm_event`): an alarm
  raised, cleared or acknowledged (`alarm_json`).
- `{"event": "image", "id": None, "data": "<image JSON>"}` (`image_event`): a new
  image stored (`image_json`, also the image list API's item).

Alarms and images have no place in the ingest id order; a resume finds those a
client missed by time instead (`rover.selectors.resume`) and sends them again.

Times are UTC ISO 8601 with a 'Z' (`streams.encoding.utc_iso`).
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from streams.encoding import json_text, utc_iso

from .models import Alarm, RoverImage, TelemetryFrame

# The order of the JSON, CSV and SSE representations of a frame.
FRAME_FIELDS = (
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
)


def rover_stream(slug: str) -> str:
    """Return the hub stream name of a rover's live feed."""
    return f"rover.{slug}"


def frame_json(frame: TelemetryFrame) -> dict[str, Any]:
    """Return a frame's JSON shape: exactly the ingest field names plus received_at."""
    data = {name: getattr(frame, name) for name in FRAME_FIELDS}
    data["recorded_at"] = utc_iso(frame.recorded_at)
    data["received_at"] = utc_iso(frame.received_at)
    return data


def frame_event(frame: TelemetryFrame) -> dict[str, Any]:
    """Return the hub event of a frame, its JSON encoded once."""
    return {"event": "telemetry", "id": frame.ingest_id, "data": json_text(frame_json(frame))}


def alarm_json(alarm: Alarm, *, rover_slug: str | None = None) -> dict[str, Any]:
    """Return the JSON shape of an alarm, as the dashboard and the live stream see it."""
    user = alarm.acknowledged_by
    return {
        "id": alarm.id,
        "rover": rover_slug or alarm.rover.slug,
        "kind": alarm.kind,
        "message": alarm.message,
        "value": alarm.value,
        "seq": alarm.seq,
        "raised_at": utc_iso(alarm.raised_at),
        "cleared_at": utc_iso(alarm.cleared_at) if alarm.cleared_at else None,
        "acknowledged_by": user.get_username() if user is not None else None,
        "acknowledged_at": utc_iso(alarm.acknowledged_at) if alarm.acknowledged_at else None,
        "active": alarm.cleared_at is None,
    }


def alarm_event(alarm: Alarm, *, rover_slug: str | None = None) -> dict[str, Any]:
    """Return the hub event of an alarm, its JSON encoded once."""
    return {
        "event": "alarm",
        "id": None,
        "data": json_text(alarm_json(alarm, rover_slug=rover_slug)),
    }


def image_json(image: RoverImage) -> dict[str, Any]:
    """Return the API representation of an image (list items and `image` events)."""
    return {
        "id": image.pk,
        "rover": image.rover.slug,
        "camera": image.camera,
        "captured_at": utc_iso(image.captured_at),
        "size": image.size,
        "sha256": image.sha256,
        "content_type": image.content_type,
        "width": image.width,
        "height": image.height,
        "url": reverse("image-download", args=[image.pk]),
        "thumbnail_url": reverse("image-thumbnail", args=[image.pk]),
    }


def image_event(image: RoverImage) -> dict[str, Any]:
    """Return the hub event of a newly stored image, its JSON encoded once."""
    return {"event": "image", "id": None, "data": json_text(image_json(image))}
