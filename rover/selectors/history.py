"""Downsampled telemetry history, aggregated in the database at the resolution the window needs.

`points=N` over [since, until) asks for at most N buckets of width
(until - since) / N. The source is chosen as Grafana's min-interval and Open
MCT's request strategies do: raw frames when a bucket is narrower than the
finest rollup, otherwise the coarsest rollup that still fits in one bucket,
with the partial buckets at both ends of the window read from finer rollups
and, last, raw frames (so the edges are exact and a spike one second before
`until` shows). The cost follows the rows read, at most about
N x (next resolution / this one), not the frames in the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection

from streams.encoding import utc_iso

from ..events import FRAME_FIELDS
from ..models import ROLLUP_FIELDS, Rover, TelemetryFrame
from ..services.rollups import (
    EPOCH,
    FRAMES,
    ROLLUP_RESOLUTIONS,
    ROLLUPS,
    ceil_time,
    epoch_sql,
    floor_time,
)
from .readable import unreadable_warn

MEASURE_PARTS = ("count", "sum", "min", "max")


@dataclass
class Downsampled:
    """Buckets of a window, the rollup resolution they were read from (None: raw frames)."""

    frames: list[dict[str, Any]]
    resolution_s: int | None
    bucket_s: float


def history_resolution(*, span_s: float, points: int) -> int | None:
    """Return the coarsest rollup resolution no wider than one bucket, or None for raw frames."""
    width = span_s / points
    fitting = [r for r in ROLLUP_RESOLUTIONS if r <= width]
    return max(fitting) if fitting else None


def _frames_partials(since_e: float) -> str:
    """Return a SELECT of raw frames in [%s, %s) shaped as one-frame partial buckets."""
    position = f"({epoch_sql('recorded_at')} - {since_e!r})"
    measures = ", ".join(
        f"CASE WHEN {name} IS NULL THEN 0 ELSE 1 END AS {name}_count, "
        f"COALESCE({name}, 0) AS {name}_sum, {name} AS {name}_min, {name} AS {name}_max"
        for name in ROLLUP_FIELDS
    )
    return (
        f"SELECT {position} AS pos, {position} AS t_sum, 1 AS n, seq AS seq_max, "  # noqa: S608 (identifiers and numbers only)
        f"received_at AS received_max, mode, {measures} FROM {FRAMES} "
        f"WHERE rover_id = %s AND recorded_at >= %s AND recorded_at < %s"
    )


def _rollup_partials(since_e: float, resolution: int) -> str:
    """Return a SELECT of one resolution's rows starting in [%s, %s) as partial buckets."""
    position = f"({epoch_sql('bucket_start')} - {since_e!r})"
    measures = ", ".join(f"{name}_{part}" for name in ROLLUP_FIELDS for part in MEASURE_PARTS)
    return (
        f"SELECT {position} AS pos, offset_sum_s + frame_count * {position} AS t_sum, "  # noqa: S608 (identifiers and numbers only)
        f"frame_count AS n, seq_max, received_max, mode, {measures} FROM {ROLLUPS} "
        f"WHERE rover_id = %s AND resolution_s = {int(resolution)} "
        f"AND bucket_start >= %s AND bucket_start < %s"
    )


def _bucket_index(width: float, points: int) -> str:
    """Return SQL for the bucket number of `pos`, clamped into [0, points - 1]."""
    if connection.vendor == "postgresql":
        return f"LEAST({points - 1}, GREATEST(0, floor(pos / {width!r})))"
    # CAST truncates toward zero, which is floor for the non-negative positions here.
    return f"max(0, min({points - 1}, CAST(pos / {width!r} AS INTEGER)))"


def _aggregate_sql(partials: list[str], width: float, points: int) -> str:
    """Return the query combining partial buckets into at most `points` answer buckets."""
    measures = ", ".join(
        f"SUM({name}_count), SUM({name}_sum), MIN({name}_min), MAX({name}_max)"
        for name in ROLLUP_FIELDS
    )
    union = " UNION ALL ".join(partials)
    return (
        f"SELECT idx, SUM(n), SUM(t_sum), MAX(seq_max), MAX(received_max), MAX(last_mode), "  # noqa: S608 (identifiers and numbers only)
        f"{measures} FROM ("
        f"SELECT q.*, FIRST_VALUE(mode) OVER (PARTITION BY idx ORDER BY seq_max DESC) "
        f"AS last_mode FROM (SELECT p.*, {_bucket_index(width, points)} AS idx "
        f"FROM ({union}) p) q) z GROUP BY idx ORDER BY idx"
    )


def _pieces(
    since: datetime, until: datetime, levels: list[int]
) -> list[tuple[int | None, datetime, datetime]]:
    """Split [since, until) into whole buckets of levels[0], the ends into whole buckets of
    the next finer level, and so on; what no level covers whole comes from raw frames (None).

    Each end is less than one bucket of the level above, so it adds at most
    that ratio of rows: the window's edges are exact at little cost.
    """
    if since >= until:
        return []
    if not levels:
        return [(None, since, until)]
    level, finer = levels[0], levels[1:]
    first, last = ceil_time(since, level), floor_time(until, level)
    if first >= last:
        return _pieces(since, until, finer)
    return [*_pieces(since, first, finer), (level, first, last), *_pieces(last, until, finer)]


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(value).replace(tzinfo=UTC)  # SQLite's stored text, UTC


def telemetry_downsample(
    *, rover: Rover, since: datetime, until: datetime, points: int
) -> Downsampled:
    """Return at most `points` buckets of equal rover-time width over [since, until).

    Each bucket carries the mean of every measured field and its `<field>_min`
    and `<field>_max`, the mean `recorded_at` of its frames, `count`, and the
    `seq`, `received_at` and `mode` of its newest frame (highest seq; latest
    receive time). Fields absent from every frame of a bucket stay null.
    """
    unreadable_warn(TelemetryFrame, "recorded_at", rover_id=rover.pk)
    span = (until - since).total_seconds()
    if span <= 0 or points <= 0:
        return Downsampled(frames=[], resolution_s=None, bucket_s=0.0)
    width = span / points
    since_e = (since - EPOCH).total_seconds()
    adapt = connection.ops.adapt_datetimefield_value
    resolution = history_resolution(span_s=span, points=points)
    levels = sorted((r for r in ROLLUP_RESOLUTIONS if resolution and r <= resolution), reverse=True)
    partials: list[str] = []
    params: list[Any] = []
    for level, start, end in _pieces(since, until, levels):
        if level is None:
            partials.append(_frames_partials(since_e))
        else:
            partials.append(_rollup_partials(since_e, level))
        params += [rover.pk, adapt(start), adapt(end)]
    with connection.cursor() as cursor:
        cursor.execute(_aggregate_sql(partials, width, points), params)
        rows = cursor.fetchall()
    frames = [_bucket_json(row, since) for row in rows]
    return Downsampled(frames=frames, resolution_s=resolution, bucket_s=width)


def _bucket_json(row: tuple, since: datetime) -> dict[str, Any]:
    _idx, count, t_sum, seq, received, mode, *measures = row
    item: dict[str, Any] = {
        "seq": seq,
        "recorded_at": utc_iso(since + timedelta(seconds=float(t_sum) / int(count))),
        "received_at": utc_iso(_as_datetime(received)),
        "mode": mode,
        "count": int(count),  # PostgreSQL sums bigints as numeric
    }
    extremes: dict[str, Any] = {}
    for index, name in enumerate(ROLLUP_FIELDS):
        n, total, low, high = measures[index * 4 : index * 4 + 4]
        item[name] = round(float(total) / int(n), 6) if n else None
        extremes[f"{name}_min"] = low
        extremes[f"{name}_max"] = high
    ordered = {name: item[name] for name in (*FRAME_FIELDS, "count")}
    ordered.update(extremes)
    return ordered
