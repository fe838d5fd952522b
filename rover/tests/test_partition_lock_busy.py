"""Ingest while the weeks ahead cannot be made: a long read holds the frames table.

README (Live telemetry, weekly partitions): ingest creates the next weeks "under a
2 s lock timeout (not granted: it logs, a later ingest retries, and frames wait in
DEFAULT meanwhile)". The fault: another session reads the frames table in an open
transaction (an analyst's long query, a `pg_dump`), whose lock conflicts with the
ACCESS EXCLUSIVE lock that creating a partition needs. The ingest must still store
its frames, and the weeks must be made by a later ingest once the read is over.
"""

from __future__ import annotations

import logging

import pytest
from django.db import connection  # noqa: F401 (the skipif condition below reads it)
from django.utils import timezone

from rover.models import TelemetryFrame
from rover.services import partitions
from rover.services.partitions import WEEK, partitions_list, week_start
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


def test_a_long_read_delays_the_weeks_ahead_but_never_the_frames(monkeypatch, caplog):
    rover = RoverFactory(slug="curiosity")
    later = timezone.now() + 5 * WEEK
    wanted = {week_start(later + n * WEEK) for n in range(3)}
    assert not wanted & {p.start for p in partitions_list()}
    monkeypatch.setattr(partitions, "_ready_until", None)
    monkeypatch.setattr(partitions.timezone, "now", lambda: later)

    reader = other_session()
    try:
        # A read in an open transaction: ACCESS SHARE on the table until it ends.
        reader.execute("SELECT count(*) FROM rover_telemetryframe").fetchone()
        with caplog.at_level(logging.WARNING, logger=partitions.__name__):
            stored = telemetry_store(rover=rover, frames=telemetry_validate(payload=[frame(1)]))
        assert [f.seq for f in stored[0].stored] == [1]
        assert "Could not create telemetry partitions now" in caplog.text
        assert not wanted & {p.start for p in partitions_list()}
    finally:
        reader.rollback()
        reader.close()

    # The read is over: the next ingest makes the weeks.
    telemetry_store(rover=rover, frames=telemetry_validate(payload=[frame(2)]))
    assert wanted <= {p.start for p in partitions_list()}
    assert sorted(TelemetryFrame.objects.values_list("seq", flat=True)) == [1, 2]
