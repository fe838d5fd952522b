"""Telemetry ingest: validate the rover's frames, store the new ones, then publish them.

A frame is the rover's flat downlink record (see FIELDS). A batch is all or
nothing: one bad frame answers 400 and stores nothing. A frame whose `seq` is
already stored (or repeated in the batch) is reported as a duplicate and not
stored again, so the rover may retry freely and send frames out of order.

Each new frame is published on the hub stream `rover.<slug>` as a `telemetry`
event (`rover/events.py`); the SSE view and the history API use the same field
names. Evaluating alarms on the new frames is `rover/services/alarms.py`.

Which frame is newer than which: the rover's `seq` and its clock (`recorded_at`)
both say, and either can be wrong (a bit flip in the seq, a clock reset). A new
frame is *late* only when a stored frame is newer by both, so one bogus value of
either kind cannot make every later frame look late (see `Newest`). The clock is
also bounded: `recorded_at` may run at most RECORDED_AT_MAX_AHEAD_SECONDS ahead
of the server's clock (a rover's frames reach the ground after they are made).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from mission_control.parsing import BadParameter, parse_timestamp
from streams.hub import publish_stored

from ..events import frame_event, rover_stream
from ..models import Rover, RoverMode, TelemetryFrame
from ..selectors.readable import READABLE_FROM, READABLE_UNTIL
from .alarms import alarms_evaluate, link_watchdog_ensure
from .partitions import partitions_ensure_ahead
from .rollups import telemetry_rollups_add

MAX_BATCH_FRAMES = 1000
MAX_BODY_BYTES = 1024 * 1024
SEQ_MAX = 2**63 - 1
COORD_LIMIT_M = 1e7
# Rover time ahead of ground time is a clock fault; a frame far ahead would otherwise
# stay "the newest" (the feed's first frame, the reference for late frames) until then.
RECORDED_AT_MAX_AHEAD_SECONDS = 60.0

# name: (required, minimum, maximum, maximum is exclusive)
NUMBER_FIELDS: dict[str, tuple[bool, float | None, float | None, bool]] = {
    "battery_pct": (True, 0.0, 100.0, False),
    "signal_dbm": (True, -200.0, 0.0, False),
    "x_m": (False, -COORD_LIMIT_M, COORD_LIMIT_M, False),
    "y_m": (False, -COORD_LIMIT_M, COORD_LIMIT_M, False),
    "heading_deg": (False, 0.0, 360.0, True),
    "battery_v": (False, 0.0, 1000.0, False),
    "temp_internal_c": (False, -273.15, 500.0, False),
    "temp_ambient_c": (False, -273.15, 500.0, False),
    "speed_mps": (False, 0.0, 100.0, False),
}
FIELDS = ("seq", "recorded_at", *NUMBER_FIELDS, "mode")


class TelemetryInvalid(ValueError):
    """The payload or one of its frames is refused; nothing was stored."""

    def __init__(self, detail: str, frames: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.frames = frames or []


@dataclass(frozen=True)
class Newest:
    """The stored frames a new one is compared with: the highest seq, the latest rover time.

    A new frame is late when either of them is newer than it by both seq and
    `recorded_at`. A bogus seq (2**63 - 1 recorded now) does not outrank the
    frames recorded after it, and a clock gone wrong (a year back, or up to a
    minute ahead) does not outrank frames with a higher seq; a truly late frame
    (a retry, a backlog sent after live frames) is below the latest frame in
    both. Exact dominance by any stored frame would need a query per frame; two
    bogus frames of different kinds at once can let a late frame through, which
    the next live frame corrects. A time is None when it is unreadable
    (`rover.selectors.readable`): such a frame outranks nothing.
    """

    by_seq: tuple[int, datetime | None] | None = None
    by_time: tuple[int, datetime | None] | None = None

    def outranks(self, frame: TelemetryFrame) -> bool:
        """Return whether a stored frame is newer than `frame` by both seq and rover time."""
        return any(
            stored[0] > frame.seq and stored[1] is not None and stored[1] > frame.recorded_at
            for stored in (self.by_seq, self.by_time)
            if stored is not None
        )

    @property
    def highest_seq(self) -> int | None:
        return None if self.by_seq is None else self.by_seq[0]


@dataclass
class IngestResult:
    """What an ingest stored (new frames, in seq and ingest id order) and the duplicate seqs.

    `before` holds the newest frames stored before it, which the new ones are judged against.
    """

    stored: list[TelemetryFrame] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    before: Newest = field(default_factory=Newest)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _clean_number(name: str, value: Any) -> tuple[float | None, str | None]:
    _, low, high, high_exclusive = NUMBER_FIELDS[name]
    if not _is_number(value):
        return None, "must be a number"
    value = float(value)
    if not math.isfinite(value):
        return None, "must be a finite number"
    if low is not None and value < low:
        return None, f"must be at least {low:g}"
    if high is not None and (value >= high if high_exclusive else value > high):
        return None, f"must be {'below' if high_exclusive else 'at most'} {high:g}"
    return value, None


def _clean_seq(value: Any) -> tuple[int | None, str | None]:
    if not isinstance(value, int) or isinstance(value, bool):
        return None, "must be an integer"
    if not 0 <= value <= SEQ_MAX:
        return None, f"must be between 0 and {SEQ_MAX}"
    return value, None


def _clean_recorded_at(value: Any) -> tuple[datetime | None, str | None]:
    """Return the frame time in UTC, or why it is refused (see mission_control.parsing)."""
    if not isinstance(value, str) or not value.strip():
        return None, "must be an ISO 8601 timestamp string"
    try:
        recorded_at = parse_timestamp(value, name="recorded_at", naive_is_utc=False)
    except BadParameter as exc:
        return None, exc.detail.removeprefix("'recorded_at' ")
    if (recorded_at - timezone.now()).total_seconds() > RECORDED_AT_MAX_AHEAD_SECONDS:
        return None, (
            f"must be at most {RECORDED_AT_MAX_AHEAD_SECONDS:g} seconds ahead of the "
            "server's clock (the rover's clock is wrong)"
        )
    return recorded_at, None


def frame_clean(raw: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Return a frame's cleaned fields and its errors by field name (empty when valid)."""
    if not isinstance(raw, dict):
        return {}, {"frame": "must be a JSON object"}
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    for name in raw:
        if name not in FIELDS:
            errors[str(name)] = "unknown field"
    for name, cleaner in (("seq", _clean_seq), ("recorded_at", _clean_recorded_at)):
        if raw.get(name) is None:
            errors[name] = "is required"
            continue
        value, error = cleaner(raw[name])
        if error:
            errors[name] = error
        else:
            clean[name] = value
    for name, (required, *_rest) in NUMBER_FIELDS.items():
        if name not in raw or raw[name] is None:
            if required:
                errors[name] = "is required"
            continue
        value, error = _clean_number(name, raw[name])
        if error:
            errors[name] = error
        else:
            clean[name] = value
    mode = raw.get("mode")
    if mode is not None:
        if not isinstance(mode, str) or mode not in RoverMode.values:
            errors["mode"] = f"must be one of {', '.join(RoverMode.values)}"
        else:
            clean["mode"] = mode
    return clean, errors


def telemetry_validate(*, payload: Any) -> list[dict[str, Any]]:
    """Return the cleaned frames of a payload (one object or a list); raise TelemetryInvalid."""
    frames = [payload] if isinstance(payload, dict) else payload
    if not isinstance(frames, list):
        raise TelemetryInvalid("Send one frame (a JSON object) or a batch (a JSON array).")
    if not frames:
        raise TelemetryInvalid("The batch is empty.")
    if len(frames) > MAX_BATCH_FRAMES:
        raise TelemetryInvalid(f"A batch has at most {MAX_BATCH_FRAMES} frames.")
    cleaned: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    for index, raw in enumerate(frames):
        clean, errors = frame_clean(raw)
        if errors:
            entry: dict[str, Any] = {"index": index, "errors": errors}
            if isinstance(raw, dict) and _clean_seq(raw.get("seq"))[1] is None:
                entry["seq"] = raw["seq"]
            bad.append(entry)
        cleaned.append(clean)
    if bad:
        raise TelemetryInvalid(f"{len(bad)} of {len(frames)} frame(s) are invalid.", bad)
    return cleaned


def telemetry_store(
    *, rover: Rover, frames: list[dict[str, Any]]
) -> tuple[IngestResult, int | None]:
    """Store the frames whose seq is new; return the result and the highest seq stored before.

    The rover's row is locked for the transaction by the update of its ingest
    counter (a row lock on PostgreSQL; SQLite's IMMEDIATE transactions already
    serialise writers), so the check for existing seqs and the insert are one
    step: two workers receiving the same retry never both store or both publish
    a frame. `bulk_create(ignore_conflicts=True)` alone would keep the table
    right but could not say which rows this request inserted, so a concurrent
    duplicate would be published twice. This check is what refuses a duplicate
    seq: on PostgreSQL the frames table is partitioned by `recorded_at`, and its
    unique constraints include that column (rover.services.partitions), so they
    only refuse an exact repeat (same seq and same time).

    The new frames take the rover's next ingest ids (`Rover.last_ingest_id` + 1,
    + 2, ..., in seq order within the request). The lock is held until commit,
    so ids are consecutive and commit order is id order: once a frame with id n
    is visible, so is every frame below n, which is what lets a live stream
    fill a gap from the store (`streams.sse.event_stream`). A rolled-back
    request rolls its counter back too, leaving no hole.
    """
    result = IngestResult()
    seen: set[int] = set()
    unique: list[dict[str, Any]] = []
    for frame in frames:
        if frame["seq"] in seen:
            result.duplicates.append(frame["seq"])
        else:
            seen.add(frame["seq"])
            unique.append(frame)
    partitions_ensure_ahead()
    with transaction.atomic():
        # Take ids for every frame first: that update is also the row lock, so the
        # common case (nothing retried) costs no statement more than a plain lock.
        first_id = _ingest_ids_take(rover_id=rover.pk, count=len(unique)) + 1
        result.before, existing = _seqs_known(rover=rover, seqs=[f["seq"] for f in unique])
        new = [
            TelemetryFrame(rover=rover, **frame)
            for frame in sorted(unique, key=lambda f: f["seq"])
            if frame["seq"] not in existing
        ]
        result.duplicates.extend(f["seq"] for f in unique if f["seq"] in existing)
        for offset, frame in enumerate(new):
            frame.ingest_id = first_id + offset
        if existing:
            # Duplicates take no id: give theirs back while the row is still locked.
            Rover.objects.filter(pk=rover.pk).update(last_ingest_id=first_id - 1 + len(new))
        TelemetryFrame.objects.bulk_create(new)
        telemetry_rollups_add(rover=rover, frames=new)
    result.stored = new
    result.duplicates.sort()
    return result, result.before.highest_seq


def _seqs_known(*, rover: Rover, seqs: list[int]) -> tuple[Newest, set[int]]:
    """Return the rover's newest stored frames (`Newest`) and which of `seqs` are stored.

    One statement instead of two MAXes and an IN (round trips less inside the
    row lock, which the hub's dispatch waits for): the rows whose seq is asked
    for, plus the row holding the highest seq and the rows holding the latest
    readable rover time. Every stored seq and time is at most those, so the
    highest of the rows read are the highest stored. The rover is in every
    branch of the OR, so each is an index search of its own (SQLite's
    multi-index OR, PostgreSQL's BitmapOr). A time is read only when readable:
    loading an unreadable one would raise (`rover.selectors.readable`). Raw SQL
    because building this statement through the ORM cost 1.1 ms of Python per
    ingest, twice the whole statement it replaced.
    """
    table = connection.ops.quote_name(TelemetryFrame._meta.db_table)
    ops = connection.ops
    window = [
        ops.adapt_datetimefield_value(READABLE_FROM),
        ops.adapt_datetimefield_value(READABLE_UNTIL),
    ]
    in_list = ", ".join(["%s"] * len(seqs)) or "NULL"
    # Only the table name and placeholders are formatted in.
    sql = (
        "SELECT seq, CASE WHEN recorded_at >= %s AND recorded_at < %s THEN recorded_at END "  # noqa: S608
        f"FROM {table} WHERE (rover_id = %s AND seq IN ({in_list})) "
        f"OR (rover_id = %s AND seq = (SELECT seq FROM {table} WHERE rover_id = %s "
        "ORDER BY seq DESC LIMIT 1)) "
        f"OR (rover_id = %s AND recorded_at = (SELECT recorded_at FROM {table} "
        "WHERE rover_id = %s AND recorded_at >= %s AND recorded_at < %s "
        "ORDER BY recorded_at DESC LIMIT 1))"
    )
    params = [*window, rover.pk, *seqs, rover.pk, rover.pk, rover.pk, rover.pk, *window]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = [(seq, _loaded_time(value)) for seq, value in cursor.fetchall()]
    if not rows:
        return Newest(), set()
    by_seq = max(rows, key=lambda row: row[0])
    timed = [row for row in rows if row[1] is not None]
    by_time = max(timed, key=lambda row: (row[1], row[0])) if timed else None
    return Newest(by_seq=by_seq, by_time=by_time), {row[0] for row in rows}.intersection(seqs)


def _loaded_time(value: Any) -> datetime | None:
    """Return a recorded_at read by raw SQL as an aware datetime (SQLite gives text, in UTC)."""
    if value is None or isinstance(value, datetime):
        return value
    parsed = parse_datetime(value)
    return parsed if parsed is None or timezone.is_aware(parsed) else parsed.replace(tzinfo=UTC)


def _ingest_ids_take(*, rover_id: int, count: int) -> int:
    """Move the rover's ingest counter on by `count` (locking its row); return it as it was.

    One `UPDATE ... RETURNING` (PostgreSQL, SQLite 3.35+): the ORM's update()
    cannot return the new value, and a SELECT ... FOR UPDATE followed by an
    UPDATE costs a round trip more on every ingest.
    """
    table = connection.ops.quote_name(Rover._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            # Only the table name is formatted in, and it comes from the model.
            f"UPDATE {table} SET last_ingest_id = last_ingest_id + %s "  # noqa: S608
            "WHERE id = %s RETURNING last_ingest_id",
            [count, rover_id],
        )
        row = cursor.fetchone()
    if row is None:
        raise Rover.DoesNotExist(f"No rover with id {rover_id}.")
    return row[0] - count


@dataclass
class Stored:
    """What `telemetry_ingest_store` committed, for `telemetry_ingest_announce`."""

    rover: Rover
    result: IngestResult
    previous_max: int | None


def telemetry_ingest_store(*, rover: Rover, payload: Any) -> Stored:
    """Validate and store a frame or a batch (synchronous: the first half of an ingest).

    Raises TelemetryInvalid (nothing stored) when any frame is bad. Then call
    `telemetry_ingest_announce`: a caller in a thread does both halves'
    database work in one visit instead of one hand-over each.
    """
    frames = telemetry_validate(payload=payload)
    result, previous_max = telemetry_store(rover=rover, frames=frames)
    return Stored(rover=rover, result=result, previous_max=previous_max)


async def telemetry_ingest_announce(stored: Stored) -> IngestResult:
    """Publish what an ingest stored, then evaluate the rover's alarms on it.

    New frames are published in ingest id order once they are committed (a
    failed publish is logged: subscribers replay the stored frames by id); an
    HTTP request waits for its publishes and alarm announcements at most
    `PUBLISH_WAIT_SECONDS` in all (`streams.middleware`), then they go on in
    the background, so with Redis hung the uplink (which retries after 10 s)
    gets its answer. Alarms are evaluated only on frames no stored frame
    outranks (`Newest`), in rover time order, so a late, out-of-order frame
    cannot clear or raise an alarm that later frames decided, and one bogus seq
    or clock cannot make every later frame late.
    """
    rover, result = stored.rover, stored.result
    fresh = sorted(
        (f for f in result.stored if not result.before.outranks(f)),
        key=lambda f: (f.recorded_at, f.seq),
    )
    events = [frame_event(frame) for frame in result.stored]
    await publish_stored(rover_stream(rover.slug), events)
    if result.stored:
        # Late frames judge nothing, but they were heard: they end "link lost".
        await sync_to_async(alarms_evaluate)(rover=rover, frames=fresh, received=result.stored)
    link_watchdog_ensure()
    return result
