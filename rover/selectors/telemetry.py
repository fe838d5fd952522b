"""Reads of telemetry: replay pages for the live stream, history, downsampling, CSV pages."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import F, QuerySet

from streams.encoding import utc_iso

from ..events import FRAME_FIELDS
from ..models import Rover, TelemetryFrame
from ..services.telemetry import NUMBER_FIELDS
from .readable import aunreadable_warn, readable, unreadable_warn

# Every measured value, in the frame's field order.
AVERAGED_FIELDS = tuple(name for name in FRAME_FIELDS if name in NUMBER_FIELDS)


def _readable_frames(rover: Rover) -> QuerySet[TelemetryFrame]:
    """Return the rover's frames whose recorded_at Python can load (see `readable`)."""
    return readable(TelemetryFrame.objects.filter(rover=rover), "recorded_at")


def _warn_unreadable(rover: Rover) -> None:
    unreadable_warn(TelemetryFrame, "recorded_at", rover_id=rover.pk)


def telemetry_frames(
    *, rover: Rover, since: datetime | None = None, until: datetime | None = None
) -> QuerySet[TelemetryFrame]:
    """Return the rover's frames recorded in [since, until) (rover time), unordered."""
    frames = _readable_frames(rover)
    if since is not None:
        frames = frames.filter(recorded_at__gte=since)
    if until is not None:
        frames = frames.filter(recorded_at__lt=until)
    return frames


def telemetry_after(*, rover: Rover, after_id: int, limit: int) -> list[TelemetryFrame]:
    """Return up to `limit` stored frames with ingest_id > after_id, in ingest id order."""
    _warn_unreadable(rover)
    frames = _readable_frames(rover).filter(ingest_id__gt=after_id).order_by("ingest_id")
    return list(frames[:limit])


def telemetry_latest(*, rover: Rover) -> tuple[TelemetryFrame | None, int]:
    """Return the frame with the highest seq (or None) and the rover's last ingest id.

    Both come from one statement, so one snapshot: every frame up to that id is
    stored and no later one is, which makes it a first connect's exact position
    even when the newest frame by seq is not the last one received.
    """
    _warn_unreadable(rover)
    frame = (
        _readable_frames(rover)
        .annotate(stream_position=F("rover__last_ingest_id"))
        .order_by("-seq")
        .first()
    )
    if frame is None:
        position = Rover.objects.filter(pk=rover.pk).values_list("last_ingest_id", flat=True)
        return None, position.get()
    return frame, frame.stream_position


def telemetry_history(
    *, rover: Rover, since: datetime | None, until: datetime | None, limit: int
) -> tuple[list[TelemetryFrame], bool]:
    """Return frames in seq order and whether more matched than `limit`.

    With `since`, the first `limit` frames from there; without it, the newest
    `limit` frames (what a chart opening on "now" wants).
    """
    _warn_unreadable(rover)
    frames = telemetry_frames(rover=rover, since=since, until=until)
    if since is None:
        page = list(frames.order_by("-seq")[: limit + 1])
        truncated = len(page) > limit
        return list(reversed(page[:limit])), truncated
    page = list(frames.order_by("seq")[: limit + 1])
    return page[:limit], len(page) > limit


@dataclass
class _Bucket:
    count: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    time_sum: float = 0.0
    last: dict[str, Any] = field(default_factory=dict)


def telemetry_downsample(
    *, rover: Rover, since: datetime, until: datetime, points: int
) -> list[dict[str, Any]]:
    """Return at most `points` buckets of equal rover-time width over [since, until).

    Each bucket averages the numeric fields of its frames (fields absent from
    every frame stay null), carries the seq, received_at and mode of its
    newest frame, the mean recorded_at, and `count`. Frames are streamed from
    the database in recorded_at order, so memory grows with `points`, not with
    the number of frames in the range.
    """
    _warn_unreadable(rover)
    span = (until - since).total_seconds()
    if span <= 0 or points <= 0:
        return []
    width = span / points
    start = since.timestamp()
    buckets: dict[int, _Bucket] = {}
    rows = (
        telemetry_frames(rover=rover, since=since, until=until)
        .order_by("recorded_at", "seq")
        .values_list(*FRAME_FIELDS)
        .iterator(chunk_size=5000)
    )
    for row in rows:
        values = dict(zip(FRAME_FIELDS, row, strict=True))
        recorded = values["recorded_at"].timestamp()
        index = min(points - 1, int((recorded - start) / width))
        bucket = buckets.setdefault(index, _Bucket())
        bucket.count += 1
        bucket.time_sum += recorded
        for name in AVERAGED_FIELDS:
            value = values[name]
            if value is not None:
                bucket.sums[name] = bucket.sums.get(name, 0.0) + value
                bucket.counts[name] = bucket.counts.get(name, 0) + 1
        bucket.last = values
    result = []
    for index in sorted(buckets):
        bucket = buckets[index]
        item: dict[str, Any] = {
            "seq": bucket.last["seq"],
            "recorded_at": utc_iso(
                datetime.fromtimestamp(bucket.time_sum / bucket.count, since.tzinfo)
            ),
            "received_at": utc_iso(bucket.last["received_at"]),
        }
        for name in AVERAGED_FIELDS:
            n = bucket.counts.get(name)
            item[name] = round(bucket.sums[name] / n, 6) if n else None
        item["mode"] = bucket.last["mode"]
        item["count"] = bucket.count
        result.append({name: item[name] for name in (*FRAME_FIELDS, "count")})
    return result


async def telemetry_csv_page(
    *,
    rover: Rover,
    since: datetime | None,
    until: datetime | None,
    after_seq: int,
    limit: int,
) -> list[tuple]:
    """Return the next page of CSV rows (FRAME_FIELDS order) with seq > after_seq."""
    await aunreadable_warn(TelemetryFrame, "recorded_at", rover_id=rover.pk)
    rows = (
        telemetry_frames(rover=rover, since=since, until=until)
        .filter(seq__gt=after_seq)
        .order_by("seq")
        .values_list(*FRAME_FIELDS)
    )
    return [row async for row in rows[:limit]]
