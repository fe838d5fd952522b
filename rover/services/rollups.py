"""Telemetry rollups: keep per-rover time buckets of the frames, in the ingest's transaction.

Each stored frame adds to one bucket per resolution in ROLLUP_RESOLUTIONS:
count, sum, min and max of every measured field, the highest seq, the latest
receive time and the mode of the highest-seq frame. The buckets are upserted
(INSERT ... ON CONFLICT DO UPDATE) from the frames just inserted, so a late or
out-of-order frame lands in the bucket of its `recorded_at`, and a duplicate
that ingest refused is never counted.

Ingest sums its frames per bucket in Python and upserts them with VALUES; a
rebuild (a time range of stored frames) or the migration's backfill upserts
a GROUP BY over the frames for the finest resolution and over that one for
each coarser one. All meet in the same ON CONFLICT clause, on PostgreSQL and
SQLite alike; only the epoch arithmetic differs by backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction

from ..models import ROLLUP_FIELDS, Rover, TelemetryFrame, TelemetryRollup
from ..selectors.readable import READABLE_FROM, READABLE_UNTIL, readable

# Bucket widths in seconds, finest first, each a multiple of the one before.
# Chosen by bench/history.py: a window reads at most ~60 x points rows of a
# resolution before the next one takes over (per second: the dashboard's 1 h;
# per minute: a sol; per hour: 30 sols and more, which per minute read 44k rows).
ROLLUP_RESOLUTIONS: tuple[int, ...] = (1, 60, 3600)

FRAMES = TelemetryFrame._meta.db_table
ROLLUPS = TelemetryRollup._meta.db_table
# Rebuilds work one slice of rover time at a time: a short lock, a small GROUP BY.
REBUILD_SLICE = timedelta(hours=6)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


COLUMNS = (
    "rover_id",
    "resolution_s",
    "bucket_start",
    "frame_count",
    "offset_sum_s",
    "seq_max",
    "received_max",
    "mode",
    *(f"{name}_{part}" for name in ROLLUP_FIELDS for part in ("count", "sum", "min", "max")),
)


def epoch_sql(column: str) -> str:
    """Return SQL for a datetime column as seconds since 1970 (a float, microseconds kept)."""
    if connection.vendor == "postgresql":
        return f"date_part('epoch', {column})"
    # SQLite stores 'YYYY-MM-DD HH:MM:SS[.ffffff]' (UTC); its date functions keep
    # only milliseconds, so the fraction is read from the text itself.
    return f"(CAST(strftime('%%s', {column}) AS INTEGER) + CAST(substr({column}, 20) AS REAL))"


def _bucket_sql(column: str, resolution: int) -> tuple[str, str]:
    """Return SQL for (the bucket start of `column`, seconds from that start to `column`)."""
    if connection.vendor == "postgresql":
        epoch = epoch_sql(column)
        start = f"floor({epoch} / {resolution}) * {resolution}"
        return f"to_timestamp({start})", f"({epoch} - {start})"
    seconds = f"CAST(strftime('%%s', {column}) AS INTEGER)"
    # SQLite's % truncates toward zero; this is the floor remainder for any sign.
    remainder = f"((({seconds} %% {resolution}) + {resolution}) %% {resolution})"
    start = f"strftime('%%Y-%%m-%%d %%H:%%M:%%S', {seconds} - {remainder}, 'unixepoch')"
    return start, f"({remainder} + CAST(substr({column}, 20) AS REAL))"


def _greatest(a: str, b: str) -> str:
    return f"{'GREATEST' if connection.vendor == 'postgresql' else 'max'}({a}, {b})"


def _least(a: str, b: str) -> str:
    return f"{'LEAST' if connection.vendor == 'postgresql' else 'min'}({a}, {b})"


def _with_mode(resolution: int, grouped: str) -> str:
    """Wrap a grouped bucket query `g` with its resolution and the mode of its newest frame."""
    fields = ", ".join(f"g.{column}" for column in COLUMNS[8:])
    return (
        f"SELECT g.rover_id, {resolution} AS resolution_s, g.bucket_start, g.frame_count, "  # noqa: S608 (identifiers and integer constants only)
        f"g.offset_sum_s, g.seq_max, g.received_max, "
        f"(SELECT m.mode FROM {FRAMES} m WHERE m.rover_id = g.rover_id AND m.seq = g.seq_max)"
        f" AS mode, {fields} FROM ({grouped}) g"
    )


def _select_buckets(resolution: int, where: str) -> str:
    """Return a SELECT of the buckets of one resolution over the frames matching `where`."""
    start, offset = _bucket_sql("recorded_at", resolution)
    measures = ", ".join(
        f"COUNT({name}) AS {name}_count, COALESCE(SUM({name}), 0) AS {name}_sum, "
        f"MIN({name}) AS {name}_min, MAX({name}) AS {name}_max"
        for name in ROLLUP_FIELDS
    )
    return _with_mode(
        resolution,
        f"SELECT rover_id, {start} AS bucket_start, COUNT(*) AS frame_count, "  # noqa: S608 (identifiers and integer constants only)
        f"SUM({offset}) AS offset_sum_s, MAX(seq) AS seq_max, MAX(received_at) AS received_max, "
        f"{measures} FROM {FRAMES} WHERE {where} GROUP BY rover_id, {start}",
    )


def _select_coarser(resolution: int, source: int, where: str) -> str:
    """Return a SELECT of the buckets of `resolution` summed from the stored `source` buckets
    matching `where` (a rebuild reads frames once, for the finest resolution only)."""
    start, offset = _bucket_sql("bucket_start", resolution)
    measures = ", ".join(
        f"SUM({name}_count) AS {name}_count, SUM({name}_sum) AS {name}_sum, "
        f"MIN({name}_min) AS {name}_min, MAX({name}_max) AS {name}_max"
        for name in ROLLUP_FIELDS
    )
    return _with_mode(
        resolution,
        f"SELECT rover_id, {start} AS bucket_start, SUM(frame_count) AS frame_count, "  # noqa: S608 (identifiers and integer constants only)
        f"SUM(offset_sum_s + frame_count * {offset}) AS offset_sum_s, MAX(seq_max) AS seq_max, "
        f"MAX(received_max) AS received_max, {measures} FROM {ROLLUPS} "
        f"WHERE resolution_s = {source} AND {where} GROUP BY rover_id, {start}",
    )


def _rebuild_statements(frames_where: str, rollups_where: str) -> list[str]:
    """Return the upserts that build every resolution: the finest from the frames matching
    `frames_where`, each coarser one from the one below it (`rollups_where`)."""
    finest, *coarser = ROLLUP_RESOLUTIONS
    selects = [_select_buckets(finest, frames_where)]
    selects += [
        _select_coarser(resolution, source, rollups_where)
        for source, resolution in zip(ROLLUP_RESOLUTIONS, coarser, strict=False)
    ]
    # `WHERE true` keeps SQLite from reading ON CONFLICT as a join constraint.
    return [
        f"INSERT INTO {ROLLUPS} ({', '.join(COLUMNS)}) "  # noqa: S608 (identifiers only)
        f"SELECT * FROM ({select}) b WHERE true {_on_conflict_sql()}"
        for select in selects
    ]


def _on_conflict_sql() -> str:
    """Return the ON CONFLICT clause that adds an incoming bucket to the stored one."""
    old = ROLLUPS
    updates = [
        f"frame_count = {old}.frame_count + excluded.frame_count",
        f"offset_sum_s = {old}.offset_sum_s + excluded.offset_sum_s",
        # Every right-hand side reads the row as it was before this update.
        f"mode = CASE WHEN excluded.seq_max > {old}.seq_max THEN excluded.mode ELSE {old}.mode END",
        f"seq_max = {_greatest(f'{old}.seq_max', 'excluded.seq_max')}",
        f"received_max = {_greatest(f'{old}.received_max', 'excluded.received_max')}",
    ]
    for name in ROLLUP_FIELDS:
        updates.append(f"{name}_count = {old}.{name}_count + excluded.{name}_count")
        updates.append(f"{name}_sum = {old}.{name}_sum + excluded.{name}_sum")
        for part, pick in (("min", _least), ("max", _greatest)):
            column, new = f"{old}.{name}_{part}", f"excluded.{name}_{part}"
            # LEAST/GREATEST skip NULLs on PostgreSQL; SQLite's min()/max() return NULL.
            either = pick(f"COALESCE({column}, {new})", f"COALESCE({new}, {column})")
            updates.append(f"{name}_{part} = {either}")
    return "ON CONFLICT (rover_id, resolution_s, bucket_start) DO UPDATE SET " + ", ".join(updates)


class _Bucket:
    """One bucket's sums of the frames of one request, as the upsert adds them."""

    __slots__ = ("count", "mode", "offset_sum", "received_max", "seq_max", "values")

    def __init__(self) -> None:
        self.count = 0
        self.offset_sum = 0.0
        self.seq_max = -1
        self.received_max: datetime | None = None
        self.mode = ""
        # Per field: [count, sum, min, max].
        self.values: dict[str, list] = {name: [0, 0.0, None, None] for name in ROLLUP_FIELDS}

    def add(self, frame: TelemetryFrame, offset_s: float) -> None:
        self.count += 1
        self.offset_sum += offset_s
        if frame.seq > self.seq_max:
            self.seq_max, self.mode = frame.seq, frame.mode
        if self.received_max is None or frame.received_at > self.received_max:
            self.received_max = frame.received_at
        for name, stats in self.values.items():
            value = getattr(frame, name)
            if value is None:
                continue
            stats[0] += 1
            stats[1] += value
            stats[2] = value if stats[2] is None else min(stats[2], value)
            stats[3] = value if stats[3] is None else max(stats[3], value)


def _tune_bulk_statement(cursor) -> None:
    """Set PostgreSQL up for one big GROUP BY in this transaction.

    The planner prices the per-bucket mode lookup high enough to JIT-compile
    the statement, which took longer than the statement itself (2.4 of 4.4 s
    per 6 h slice in bench/history.py); and the default 4 MB work_mem sorted
    a slice on disk.
    """
    if connection.vendor == "postgresql":
        cursor.execute("SET LOCAL jit = off")
        cursor.execute("SET LOCAL work_mem = '64MB'")


def telemetry_rollups_add(*, rover: Rover, frames: Sequence[TelemetryFrame]) -> None:
    """Add just-stored frames to their buckets.

    Call it inside ingest's transaction, with the rover's row locked, so
    buckets and frames commit together. The buckets of the request are summed
    here and upserted in one INSERT ... VALUES ... ON CONFLICT DO UPDATE: at
    10 Hz, one frame per request, re-reading the frames in SQL cost more
    (bench/history.py).
    """
    if not frames:
        return
    buckets: dict[tuple[int, int], _Bucket] = {}
    for frame in frames:
        micros = (frame.recorded_at - EPOCH) // timedelta(microseconds=1)
        for resolution in ROLLUP_RESOLUTIONS:
            step = resolution * 1_000_000
            start = micros // step * step
            bucket = buckets.setdefault((resolution, start), _Bucket())
            bucket.add(frame, (micros - start) / 1_000_000)
    adapt = connection.ops.adapt_datetimefield_value
    params: list = []
    for (resolution, start), bucket in buckets.items():
        params += [
            rover.pk,
            resolution,
            adapt(EPOCH + timedelta(microseconds=start)),
            bucket.count,
            bucket.offset_sum,
            bucket.seq_max,
            adapt(bucket.received_max),
            bucket.mode,
        ]
        for stats in bucket.values.values():
            params += stats
    row = f"({', '.join(['%s'] * len(COLUMNS))})"
    sql = (
        f"INSERT INTO {ROLLUPS} ({', '.join(COLUMNS)}) "  # noqa: S608 (identifiers only)
        f"VALUES {', '.join([row] * len(buckets))} {_on_conflict_sql()}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def floor_time(value: datetime, seconds: int) -> datetime:
    """Return `value` rounded down to a multiple of `seconds` since 1970 (a bucket start)."""
    step = seconds * 1_000_000
    micros = (value - EPOCH) // timedelta(microseconds=1)
    return EPOCH + timedelta(microseconds=micros // step * step)


def ceil_time(value: datetime, seconds: int) -> datetime:
    """Return `value` rounded up to a multiple of `seconds` since 1970."""
    step = seconds * 1_000_000
    micros = (value - EPOCH) // timedelta(microseconds=1)
    return EPOCH + timedelta(microseconds=-(-micros // step) * step)


def telemetry_rollups_rebuild(*, rover: Rover, slice_length: timedelta = REBUILD_SLICE) -> int:
    """Recompute a rover's buckets from its stored frames; return the number of frames read.

    Works slice by slice of rover time (aligned to the coarsest resolution, so
    no bucket straddles two slices), each in its own transaction with the
    rover's row locked, so ingest may continue meanwhile and never sees a
    slice half rebuilt. Buckets with no frames left (pruned) are kept.
    """
    coarsest = max(ROLLUP_RESOLUTIONS)
    step = max(coarsest, int(slice_length.total_seconds()) // coarsest * coarsest)
    # Frames with timestamps Python cannot load are skipped by every read; so here.
    frames = readable(TelemetryFrame.objects.filter(rover=rover), "recorded_at")
    first = frames.order_by("recorded_at").values_list("recorded_at", flat=True).first()
    last = frames.order_by("-recorded_at").values_list("recorded_at", flat=True).first()
    if first is None or last is None:
        return 0
    statements = _rebuild_statements(
        "rover_id = %s AND recorded_at >= %s AND recorded_at < %s",
        "rover_id = %s AND bucket_start >= %s AND bucket_start < %s",
    )
    total = 0
    start = floor_time(first, coarsest)
    while start <= last:
        end = start + timedelta(seconds=step)
        with transaction.atomic():
            Rover.objects.select_for_update().filter(pk=rover.pk).values_list("pk").first()
            TelemetryRollup.objects.filter(
                rover=rover, bucket_start__gte=start, bucket_start__lt=end
            ).filter(resolution_s__in=ROLLUP_RESOLUTIONS).delete()
            params = [
                rover.pk,
                connection.ops.adapt_datetimefield_value(start),
                connection.ops.adapt_datetimefield_value(end),
            ]
            with connection.cursor() as cursor:
                _tune_bulk_statement(cursor)
                for sql in statements:
                    cursor.execute(sql, params)
            total += frames.filter(recorded_at__gte=start, recorded_at__lt=end).count()
        start = end
    return total


def telemetry_rollups_prune(*, before: datetime, rover: Rover | None = None, batch: int) -> int:
    """Delete buckets that start before `before`, `batch` rows per transaction; return the count."""
    rollups = TelemetryRollup.objects.filter(bucket_start__lt=before)
    if rover is not None:
        rollups = rollups.filter(rover=rover)
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(rollups.order_by("pk").values_list("pk", flat=True)[:batch])
            if not ids:
                return deleted
            deleted += TelemetryRollup.objects.filter(pk__in=ids).delete()[0]


def telemetry_rollups_backfill() -> None:
    """Build every rover's buckets from all stored frames in one statement.

    For the migration that adds rollups (no ingest runs during `migrate`); later
    rebuilds go through telemetry_rollups_rebuild, slice by slice.
    """
    adapt = connection.ops.adapt_datetimefield_value
    finest, *coarser = _rebuild_statements("recorded_at >= %s AND recorded_at < %s", "true")
    with transaction.atomic(), connection.cursor() as cursor:
        _tune_bulk_statement(cursor)
        # Only frames every read can load (see rover.selectors.readable).
        cursor.execute(finest, [adapt(READABLE_FROM), adapt(READABLE_UNTIL)])
        for sql in coarser:
            cursor.execute(sql, [])
