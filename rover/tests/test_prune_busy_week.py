"""prune_telemetry while a week is being read: that week waits, the others are dropped.

README (Live telemetry, retention): on PostgreSQL "the weeks that end by the cutoff
are dropped whole (each its own short transaction under a 2 s lock timeout; a week
not granted stays for the next run)". The fault: another session reads one old
week in an open transaction (a report, an export), so DROP TABLE cannot have its
lock. The nightly prune must not fail on it: the other weeks go, and the busy one
goes on the next run.
"""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection  # noqa: F401 (the skipif condition below reads it)
from django.utils import timezone

from rover.services.partitions import partitions_ensure, partitions_list
from rover.services.rollups import floor_time
from rover.services.telemetry import telemetry_store, telemetry_validate
from rover.tests.db_sessions import other_session
from rover.tests.factories import RoverFactory, frame

pytestmark = [
    pytest.mark.skipif(
        "connection.vendor != 'postgresql'",
        reason="partitions are PostgreSQL's (run with MC_TEST_SERVICES=1)",
    ),
    pytest.mark.django_db(transaction=True),
]


def test_a_week_being_read_stays_for_the_next_run_and_the_others_are_dropped():
    rover = RoverFactory(slug="curiosity")
    now = timezone.now()
    partitions_ensure(since=now - timedelta(days=60), until=now)
    for seq, days in enumerate((59, 52, 45, 38, 20), start=1):
        when = (now - timedelta(days=days)).isoformat()
        telemetry_store(
            rover=rover, frames=telemetry_validate(payload=[frame(seq, recorded_at=when)])
        )
    cutoff = floor_time(now - timedelta(days=30), 3600)  # as prune_telemetry rounds it
    doomed = sorted(p.name for p in partitions_list() if p.end <= cutoff)
    assert len(doomed) >= 4
    busy = doomed[1]

    reader = other_session()
    try:
        # A read in an open transaction: ACCESS SHARE on that week until it ends.
        reader.execute(f'SELECT count(*) FROM "{busy}"').fetchone()  # noqa: S608
        out = io.StringIO()
        call_command("prune_telemetry", "--older-than", "30d", stdout=out)
        names = {p.name for p in partitions_list()}
        assert busy in names, out.getvalue()
        assert not (set(doomed) - {busy}) & names, out.getvalue()
        # Every frame before the cutoff is gone all the same (the busy week's by rows).
        assert sorted(rover.frames.values_list("seq", flat=True)) == [5]
    finally:
        reader.rollback()
        reader.close()

    call_command("prune_telemetry", "--older-than", "30d", stdout=io.StringIO())
    assert busy not in {p.name for p in partitions_list()}
