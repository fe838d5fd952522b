"""Weekly partitions of the telemetry frames table (PostgreSQL only).

On PostgreSQL the frames table is partitioned by range of `recorded_at`, one
partition per ISO week (Monday 00:00 UTC), plus a DEFAULT partition so that a
frame is never refused for lack of one (`rover/migrations/0005_*`). Retention
then drops whole weeks (`prune_telemetry`) instead of deleting their rows.

Partitions are created ahead of time: ingest calls `partitions_ensure_ahead`,
which costs one comparison per request and, about once a week per worker,
creates the next weeks. Frames are at most TIMESTAMP_MAX_FUTURE_SECONDS (a day)
ahead of the clock, so they always find their week; a late frame from before
the oldest partition lands in DEFAULT, which `prune_telemetry` empties by
DELETE. SQLite keeps a plain table, and every function here is a no-op there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from ..models import TelemetryFrame

logger = logging.getLogger(__name__)

FRAMES = TelemetryFrame._meta.db_table
DEFAULT_PARTITION = f"{FRAMES}_default"
WEEK = timedelta(days=7)
# Weeks kept ready beyond the furthest time a frame may carry; creating them
# again after one of them has started keeps about a week in hand.
WEEKS_AHEAD = 2
# Creating or dropping a partition locks the whole table for a moment: wait at
# most this long for running statements, rather than queueing ingest behind them.
LOCK_TIMEOUT = "2s"

_ready_until: datetime | None = None


@dataclass(frozen=True)
class Partition:
    name: str
    start: datetime
    end: datetime


def is_partitioned() -> bool:
    """Return whether the frames table is a partitioned table (PostgreSQL after 0005)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_partitioned_table WHERE partrelid = %s::regclass", [FRAMES]
        )
        return cursor.fetchone() is not None


def week_start(moment: datetime) -> datetime:
    """Return the Monday 00:00 UTC that starts the week of `moment`."""
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def partition_name(start: datetime) -> str:
    return f"{FRAMES}_w{start:%Y%m%d}"


def partitions_list() -> list[Partition]:
    """Return the weekly partitions (not DEFAULT), oldest first."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, b[1]::timestamptz, b[2]::timestamptz FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid "
            "CROSS JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid), "
            "$$FROM \\('([^']*)'\\) TO \\('([^']*)'\\)$$) AS b "
            "WHERE i.inhparent = %s::regclass AND b IS NOT NULL ORDER BY 2",
            [FRAMES],
        )
        return [Partition(*row) for row in cursor.fetchall()]


def partition_create(cursor, start: datetime) -> str:
    """Create the week starting at `start`, moving its rows out of DEFAULT.

    The caller holds the table's ACCESS EXCLUSIVE lock (or is the migration that
    builds the table): PostgreSQL refuses a new partition while DEFAULT holds
    rows of its range, so those rows are moved into the new table before it is
    attached, and no insert may come in between.
    """
    name = partition_name(start)
    end = start + WEEK
    cursor.execute(f'CREATE TABLE "{name}" (LIKE "{FRAMES}" INCLUDING DEFAULTS)')
    cursor.execute(
        f'WITH moved AS (DELETE FROM "{DEFAULT_PARTITION}" '  # noqa: S608 (names from the model)
        "WHERE recorded_at >= %s AND recorded_at < %s RETURNING *) "
        f'INSERT INTO "{name}" SELECT * FROM moved',
        [start, end],
    )
    cursor.execute(
        f'ALTER TABLE "{FRAMES}" ATTACH PARTITION "{name}" FOR VALUES FROM (%s) TO (%s)',
        [start, end],
    )
    return name


@contextmanager
def _lock_timeout(cursor) -> Iterator[None]:
    """Wait at most LOCK_TIMEOUT for locks inside the block, then restore the setting."""
    # Rows inserted earlier in the same transaction (a caller's, or a test's)
    # queue deferred foreign-key checks, and PostgreSQL refuses to alter or drop
    # a table while any are pending: run them now. On its own transaction this
    # does nothing.
    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    cursor.execute("SELECT current_setting('lock_timeout')")
    before = cursor.fetchone()[0]
    cursor.execute("SELECT set_config('lock_timeout', %s, true)", [LOCK_TIMEOUT])
    yield
    cursor.execute("SELECT set_config('lock_timeout', %s, true)", [before])


def partition_horizon(now: datetime) -> datetime:
    """Return the latest time a frame may carry now, plus the weeks kept ahead."""
    return now + timedelta(seconds=settings.TIMESTAMP_MAX_FUTURE_SECONDS) + WEEKS_AHEAD * WEEK


def partitions_ensure(*, until: datetime, since: datetime | None = None) -> list[str]:
    """Create the missing weeks from `since`'s (default: this week) through `until`'s.

    Returns the names created. Checks without a lock first, so the common case
    (nothing missing) takes no lock; otherwise locks the table (waiting at most
    LOCK_TIMEOUT), checks again and creates. Raises DatabaseError when the lock
    is not granted in time; nothing is then created.
    """
    if not is_partitioned():
        return []
    first = week_start(since or timezone.now())
    wanted = []
    start = first
    while start <= until:
        wanted.append(start)
        start += WEEK

    def missing() -> list[datetime]:
        have = {p.start for p in partitions_list()}
        return [s for s in wanted if s not in have]

    if not missing():
        return []
    created = []
    with transaction.atomic(), connection.cursor() as cursor, _lock_timeout(cursor):
        cursor.execute(f'LOCK TABLE "{FRAMES}" IN ACCESS EXCLUSIVE MODE')
        for start in missing():
            created.append(partition_create(cursor, start))
    if created:
        logger.info("Created telemetry partitions %s.", ", ".join(created))
    return created


def partitions_ensure_ahead() -> None:
    """Keep weekly partitions ready ahead of any frame ingest may accept (once a week).

    A failure (the lock was not granted in time) is logged and tried again by
    the next ingest; meanwhile frames of a missing week go to DEFAULT.
    """
    global _ready_until
    now = timezone.now()
    limit = now + timedelta(seconds=settings.TIMESTAMP_MAX_FUTURE_SECONDS)
    if _ready_until is not None and limit + WEEK <= _ready_until:
        return
    if not is_partitioned():
        _ready_until = datetime.max.replace(tzinfo=UTC)
        return
    until = partition_horizon(now)
    try:
        partitions_ensure(until=until)
    except DatabaseError:
        logger.warning("Could not create telemetry partitions now; retrying later.", exc_info=True)
        return
    _ready_until = week_start(until) + WEEK


def partitions_drop_before(*, cutoff: datetime, dry_run: bool = False) -> tuple[int, list[str]]:
    """Drop the weekly partitions that end at or before `cutoff`; return (frames, names).

    Each is dropped in its own short transaction under LOCK_TIMEOUT, so ingest
    waits at most that long; a partition whose lock is not granted (a long read
    of that week) is logged, left for the next run, and the others are still
    dropped: the caller deletes its rows before the cutoff one by one. A week
    is counted just before its lock is taken, so ingest is not held up by the
    count; a frame stored into it in between (one older than the cutoff) goes
    uncounted.
    """
    doomed = [p for p in partitions_list() if p.end <= cutoff]
    frames = 0
    names = []
    for partition in doomed:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f'SELECT count(*) FROM "{partition.name}"')  # noqa: S608
                count = cursor.fetchone()[0]
                if not dry_run:
                    with _lock_timeout(cursor):
                        cursor.execute(f'DROP TABLE "{partition.name}"')
        except DatabaseError:
            logger.warning(
                "Telemetry partition %s is in use; it stays for the next run.",
                partition.name,
                exc_info=True,
            )
            continue
        frames += count
        names.append(partition.name)
    return frames, names
