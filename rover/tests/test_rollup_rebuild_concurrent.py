"""`rebuild_telemetry_rollups` lets ingest continue while it runs (PostgreSQL).

README, History: the rebuild works "in 6-hour slices, each a short transaction with the rover's
row locked, so ingest may continue". Here the command runs as its own process over 50 days of
frames (200 slices) and an ingest, in this process, runs in the middle of it: the ingest must
get the rover's row between two slices and store its frame while the rebuild has slices left,
which the rebuild shows by waiting on that row lock (in `pg_stat_activity`) until the ingest
commits. A rebuild holding the rover for its whole run would make the ingest wait for its end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.db import (
    connection,  # noqa: F401 (the skipif condition below reads it)
    transaction,
)
from django.utils import timezone

from rover.models import TelemetryFrame, TelemetryRollup
from rover.services.rollups import ROLLUP_RESOLUTIONS, floor_time
from rover.services.telemetry import telemetry_store, telemetry_validate
from rover.tests.db_sessions import database_url
from rover.tests.factories import frame

ROOT = Path(__file__).resolve().parent.parent.parent
APP_NAME = f"mc-rollup-rebuild-{os.getpid()}"
SLICES = 200

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        "connection.vendor != 'postgresql'",
        reason="row locks between processes are PostgreSQL's (run with MC_TEST_SERVICES=1)",
    ),
]


def rebuild_waits_on_a_lock(watch: psycopg.Connection) -> bool:
    # Any of the rebuild's connections (its settings keep a small pool).
    return watch.execute(
        "SELECT EXISTS (SELECT FROM pg_stat_activity"
        " WHERE application_name = %s AND wait_event_type = 'Lock')",
        [APP_NAME],
    ).fetchone()[0]


def test_ingest_stores_its_frame_between_two_slices_of_a_running_rebuild(rover):
    coarsest = max(ROLLUP_RESOLUTIONS)
    first = floor_time(timezone.now() - timedelta(days=60), coarsest)
    frames = [
        frame(i + 1, recorded_at=(first + i * timedelta(hours=6)).isoformat())
        for i in range(SLICES)
    ]
    telemetry_store(rover=rover, frames=telemetry_validate(payload=frames))
    TelemetryRollup.objects.filter(rover=rover).delete()  # The rebuild's work, made visible.
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mission_control.settings.test",
        "MC_SERVER_PROCESS": "1",
        "DATABASE_URL": database_url(),
        "PGAPPNAME": APP_NAME,
    }
    env.pop("REDIS_URL", None)
    rebuild = subprocess.Popen(
        [sys.executable, "manage.py", "rebuild_telemetry_rollups", "--rover", rover.slug],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        # The rebuild is under way: its first slices are committed (or, broken, it has ended).
        while not TelemetryRollup.objects.filter(rover=rover).exists() and rebuild.poll() is None:
            assert time.monotonic() < deadline, "the rebuild committed nothing"
            time.sleep(0.01)
        with psycopg.connect(database_url(), autocommit=True) as watch, transaction.atomic():
            result, _ = telemetry_store(
                rover=rover, frames=telemetry_validate(payload=[frame(SLICES + 1)])
            )
            assert [f.seq for f in result.stored] == [SLICES + 1]
            # Still holding the rover's row: the rebuild, slices left, waits for it.
            while not rebuild_waits_on_a_lock(watch):
                assert rebuild.poll() is None, "the rebuild ran to its end before the ingest"
                assert time.monotonic() < deadline, "the rebuild never waited for the ingest"
                time.sleep(0.01)
        stdout, stderr = rebuild.communicate(timeout=120)
    finally:
        if rebuild.poll() is None:
            rebuild.kill()
            rebuild.communicate()
    assert rebuild.returncode == 0, stderr
    # The rebuild reads the frames of the span it measured at its start: the new frame is later.
    assert f"rollups rebuilt from {SLICES} frame(s)" in stdout
    assert TelemetryFrame.objects.filter(rover=rover).count() == SLICES + 1
