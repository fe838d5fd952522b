"""Weekly partitions of the frames table on PostgreSQL: the migration, ingest, retention.

SQLite keeps the plain table (the first test); the rest need PostgreSQL
(MC_TEST_SERVICES=1) and skip without it.
"""

from __future__ import annotations

import io
import re
import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from rover.models import TelemetryFrame
from rover.services import partitions
from rover.services.partitions import (
    DEFAULT_PARTITION,
    WEEK,
    is_partitioned,
    partition_name,
    partitions_ensure,
    partitions_list,
    week_start,
)
from rover.services.rollups import floor_time
from rover.services.telemetry import telemetry_store, telemetry_validate
from rover.tests.factories import BASE_TIME, RoverFactory, frame

postgres_only = pytest.mark.skipif(
    "connection.vendor != 'postgresql'",
    reason="partitions are PostgreSQL's (run with MC_TEST_SERVICES=1)",
)


def store(rover, frames):
    return telemetry_store(rover=rover, frames=telemetry_validate(payload=frames))[0]


def located() -> dict[int, str]:
    """Return each frame's seq and the partition holding it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT seq, tableoid::regclass::text FROM rover_telemetryframe")
        return dict(cursor.fetchall())


def test_sqlite_keeps_a_plain_table(db):
    if connection.vendor == "postgresql":
        assert is_partitioned()
    else:
        assert not is_partitioned()
        assert partitions_ensure(until=timezone.now() + 4 * WEEK) == []


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_migration_partitions_a_table_with_rows_and_reverses():
    executor = MigrationExecutor(connection)
    leaf = next(key for key in executor.loader.graph.leaf_nodes() if key[0] == "rover")
    before = ("rover", "0004_telemetryrollup")
    executor.migrate([before])
    assert not is_partitioned()
    apps = executor.loader.project_state(before).apps
    Rover, Frame = apps.get_model("rover", "Rover"), apps.get_model("rover", "TelemetryFrame")
    rovers = [Rover.objects.create(slug=s, name=s) for s in ("spirit", "opportunity")]
    times = [BASE_TIME - timedelta(days=d) for d in (0, 1, 9, 30)] + [BASE_TIME.replace(year=1975)]
    Frame.objects.bulk_create(
        Frame(
            rover=rover,
            seq=i,
            ingest_id=i,
            recorded_at=when,
            battery_pct=50.0 + i,
            signal_dbm=-80.0,
        )
        for rover in rovers
        for i, when in enumerate(times)
    )
    rows = sorted(Frame.objects.values_list("id", "rover_id", "seq", "recorded_at", "battery_pct"))
    try:
        executor = MigrationExecutor(connection)
        executor.migrate([leaf])
        assert is_partitioned()
        migrated = TelemetryFrame.objects.values_list(
            "id", "rover_id", "seq", "recorded_at", "battery_pct"
        )
        assert sorted(migrated) == rows
        # Every row sits in its own week; the weeks ahead are ready; DEFAULT is empty.
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, tableoid::regclass::text FROM rover_telemetryframe")
            where = dict(cursor.fetchall())
        assert {where[r[0]] for r in rows} == {partition_name(week_start(t)) for t in times}
        assert week_start(timezone.now() + 2 * WEEK) in {p.start for p in partitions_list()}
        # New ids continue after the copied ones, and the model reads by pk as before.
        new = TelemetryFrame.objects.create(
            rover_id=rovers[0].pk, seq=99, ingest_id=99, recorded_at=BASE_TIME, battery_pct=1.0,
            signal_dbm=-1.0,
        )  # fmt: skip
        assert new.pk > max(r[0] for r in rows)
        assert TelemetryFrame.objects.get(pk=new.pk).seq == 99
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = 'rover_telemetryframe'::regclass AND contype IN ('p', 'u')"
            )
            assert dict(cursor.fetchall()) == {
                "rover_telemetryframe_pkey": "PRIMARY KEY (id, recorded_at)",
                "telemetry_unique_seq": "UNIQUE (rover_id, seq, recorded_at)",
                "telemetry_unique_ingest_id": "UNIQUE (rover_id, ingest_id, recorded_at)",
            }
            cursor.execute(
                "SELECT indexdef FROM pg_indexes WHERE tablename = 'rover_telemetryframe' "
                "AND indexdef LIKE '%USING brin%'"
            )
            assert [row[0].split(" USING ")[1] for row in cursor] == ["brin (recorded_at)"]
        # Back to the plain table with its rows and its global (rover, seq) constraint.
        executor = MigrationExecutor(connection)
        executor.migrate([before])
        assert not is_partitioned()
        back = Frame.objects.values_list("id", "rover_id", "seq", "recorded_at", "battery_pct")
        assert sorted(back) == [*rows, (new.pk, rovers[0].pk, 99, BASE_TIME, 1.0)]
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conname = 'telemetry_unique_seq'"
            )
            assert cursor.fetchone()[0] == "UNIQUE (rover_id, seq)"
            cursor.execute("SELECT 1 FROM pg_indexes WHERE indexdef LIKE '%USING brin%'")
            assert cursor.fetchone() is None
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate([leaf])
    assert is_partitioned()


@postgres_only
def test_a_frame_of_a_week_without_partition_goes_to_default_until_its_week_is_made(rover):
    now = timezone.now()
    old = now - timedelta(days=400)
    store(rover, [frame(1, recorded_at=old.isoformat()), frame(2, recorded_at=now.isoformat())])
    this_week = partition_name(week_start(now))
    assert located() == {1: DEFAULT_PARTITION, 2: this_week}
    assert partitions_ensure(since=old, until=old) == [partition_name(week_start(old))]
    assert located() == {1: partition_name(week_start(old)), 2: this_week}
    assert partitions_ensure(since=old, until=old) == []


@postgres_only
def test_ingest_creates_the_weeks_ahead_of_the_clock(rover, monkeypatch):
    later = timezone.now() + 5 * WEEK
    assert week_start(later) not in {p.start for p in partitions_list()}
    monkeypatch.setattr(partitions, "_ready_until", None)
    monkeypatch.setattr(partitions.timezone, "now", lambda: later)
    store(rover, [frame(1)])
    starts = {p.start for p in partitions_list()}
    assert {week_start(later + n * WEEK) for n in range(3)} <= starts
    # The next ingest this week only compares times: no query, nothing created.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(partitions, "partitions_ensure", lambda **kw: pytest.fail("checked again"))
        store(rover, [frame(2)])


@postgres_only
def test_prune_drops_whole_weeks_and_deletes_rows_only_in_the_boundary_week(rover):
    other = RoverFactory(slug="spirit")
    now = timezone.now()
    partitions_ensure(since=now - timedelta(days=60), until=now)
    ages = {1: 59, 2: 45, 3: 38, 4: 31, 5: 29, 6: 20, 7: 400}  # days; 400: DEFAULT
    for seq, days in ages.items():
        when = (now - timedelta(days=days)).isoformat()
        store(rover, [frame(seq, recorded_at=when)])
        store(other, [frame(seq, recorded_at=when)])
    cutoff = floor_time(now - timedelta(days=30), 3600)  # as prune_telemetry rounds it
    doomed = [p.name for p in partitions_list() if p.end <= cutoff]
    boundary = partition_name(week_start(cutoff))
    assert len(doomed) >= 4 and boundary not in doomed
    # One rover only: its rows are deleted, the other rover's weeks stay.
    out = io.StringIO()
    call_command("prune_telemetry", "--older-than", "30d", "--rover", "spirit", stdout=out)
    assert "Deleted 5 telemetry frame(s)" in out.getvalue()
    assert sorted(other.frames.values_list("seq", flat=True)) == [5, 6]
    assert {p.name for p in partitions_list()} >= set(doomed)
    out = io.StringIO()
    call_command("prune_telemetry", "--older-than", "30d", "--dry-run", stdout=out)
    assert "Would delete 5 telemetry frame(s)" in out.getvalue()
    kept = {p.name for p in partitions_list()}
    assert set(doomed) <= kept
    out = io.StringIO()
    call_command("prune_telemetry", "--older-than", "30d", stdout=out)
    assert "Deleted 5 telemetry frame(s)" in out.getvalue()
    in_whole_weeks = [
        seq
        for seq, days in ages.items()
        if days != 400 and week_start(now - timedelta(days=days)) + WEEK <= cutoff
    ]
    note = re.search(r"\((\d+) by dropping (\d+) weekly partition", out.getvalue())
    assert note and (int(note[1]), int(note[2])) == (len(in_whole_weeks), len(doomed))
    names = {p.name for p in partitions_list()}
    assert not names & set(doomed) and boundary in names
    assert sorted(rover.frames.values_list("seq", flat=True)) == [5, 6]
    assert set(located().values()) <= names | {DEFAULT_PARTITION}


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_workers_ingesting_the_same_seqs_at_once_store_each_seq_once():
    """Each seq is sent by every worker at once, each time with another recorded_at in
    another week, so no unique constraint could refuse the copies: ingest's check under
    the rover's row lock must."""
    rover = RoverFactory(slug="curiosity")
    workers, rounds = 4, 25
    partitions_ensure(since=BASE_TIME - workers * WEEK, until=BASE_TIME)
    barrier = threading.Barrier(workers)
    results: list[list] = [[] for _ in range(workers)]
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            for seq in range(1, rounds + 1):
                when = BASE_TIME - index * WEEK + timedelta(seconds=seq)
                barrier.wait(timeout=30)
                results[index].append(store(rover, [frame(seq, recorded_at=when.isoformat())]))
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    seqs = list(TelemetryFrame.objects.filter(rover=rover).values_list("seq", flat=True))
    assert sorted(seqs) == list(range(1, rounds + 1))
    stored = [f.seq for r in results for result in r for f in result.stored]
    duplicates = [s for r in results for result in r for s in result.duplicates]
    assert sorted(stored) == list(range(1, rounds + 1))
    assert len(duplicates) == rounds * (workers - 1)
    ids = sorted(rover.frames.values_list("ingest_id", flat=True))
    assert ids == list(range(1, rounds + 1))


@postgres_only
def test_the_command_creates_weeks_from_a_date_for_a_bulk_load_and_lists_them(rover):
    since = timezone.now() - 3 * WEEK
    store(rover, [frame(1, recorded_at=since.isoformat())])
    assert located() == {1: DEFAULT_PARTITION}
    out = io.StringIO()
    call_command("telemetry_partitions", "--since", f"{since:%Y-%m-%d}", stdout=out)
    assert "Created 3 partition(s)." in out.getvalue()
    assert (
        f"{partition_name(week_start(since))}: {week_start(since):%Y-%m-%d} to " in out.getvalue()
    )
    assert located() == {1: partition_name(week_start(since))}
    assert f"{DEFAULT_PARTITION}: 0 frame(s)" in out.getvalue()
