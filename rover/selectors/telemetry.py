"""Reads of telemetry: live-stream replay pages, history pages, CSV (downsampling: history.py)."""

from __future__ import annotations

from datetime import datetime

from django.db.models import F, QuerySet

from ..events import FRAME_FIELDS
from ..models import Rover, TelemetryFrame
from .readable import aunreadable_warn, readable, unreadable_warn


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
    """Return the newest frame by rover time (or None) and the rover's last ingest id.

    Newest by `recorded_at`, then seq, not by seq alone: one bogus seq (2**63 - 1)
    would stay the rover's "current state" for good, while rover time cannot run
    more than a minute ahead of ours (`rover.services.telemetry`). Both come from
    one statement, so one snapshot: every frame up to that id is stored and no
    later one is, which makes it a first connect's exact position even when the
    newest frame is not the last one received.
    """
    _warn_unreadable(rover)
    frame = (
        _readable_frames(rover)
        .annotate(stream_position=F("rover__last_ingest_id"))
        .order_by("-recorded_at", "-seq")
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
    `limit` frames by rover time (what a chart opening on "now" wants, and what
    `simulate_rover` resumes after: by seq, one bogus 2**63 - 1 would be newest
    for good; see `telemetry_latest`).
    """
    _warn_unreadable(rover)
    frames = telemetry_frames(rover=rover, since=since, until=until)
    if since is None:
        page = list(frames.order_by("-recorded_at", "-seq")[: limit + 1])
        truncated = len(page) > limit
        return sorted(page[:limit], key=lambda f: f.seq), truncated
    page = list(frames.order_by("seq")[: limit + 1])
    return page[:limit], len(page) > limit


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
