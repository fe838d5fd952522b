"""Two workers' watchdogs racing to raise the same link-lost alarm: one stores and announces it.

README, Alarms: "with several workers they all check and the constraint lets exactly one store
and announce the alarm". `test_alarms.py` raises twice in one process, one after the other;
here two real processes (each its own PostgreSQL connection, as two uvicorn workers) both pass
the "is one active?" read before either inserts. The test makes that interleaving certain
instead of hoping for it: it holds a SHARE lock on the alarm table, which lets both checks read
but stops both inserts, and lets go only when PostgreSQL shows both inserts waiting.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.db import connection  # noqa: F401 (the skipif condition below reads it)
from django.utils import timezone

from comms.models import Message
from rover.models import Alarm, AlarmKind, TelemetryFrame
from rover.services.telemetry import telemetry_store, telemetry_validate
from rover.tests.db_sessions import database_url
from rover.tests.factories import frame

ROOT = Path(__file__).resolve().parent.parent.parent

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        "connection.vendor != 'postgresql'",
        reason="the race is between PostgreSQL connections (run with MC_TEST_SERVICES=1)",
    ),
]

CHECK = """
import json, django
django.setup()
from rover.services.alarms import alarms_check_link_lost
print("RAISED=" + json.dumps([alarm.pk for alarm in alarms_check_link_lost()]))
"""


def waiting_on_alarms(conn: psycopg.Connection) -> int:
    return conn.execute(
        "SELECT count(*) FROM pg_locks WHERE relation = %s::regclass AND NOT granted",
        [Alarm._meta.db_table],
    ).fetchone()[0]


def test_two_workers_racing_store_and_announce_one_link_lost_alarm(rover):
    telemetry_store(rover=rover, frames=telemetry_validate(payload=[frame(1)]))
    # Silent for longer than the rover's limit (10 s by default).
    TelemetryFrame.objects.filter(rover=rover).update(
        received_at=timezone.now() - timedelta(seconds=60)
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mission_control.settings.test",
        "MC_SERVER_PROCESS": "1",
        "DATABASE_URL": database_url(),
    }
    env.pop("REDIS_URL", None)
    with psycopg.connect(database_url()) as gate:
        gate.execute(f'LOCK TABLE "{Alarm._meta.db_table}" IN SHARE MODE')
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", CHECK],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        try:
            with psycopg.connect(database_url(), autocommit=True) as watch:
                deadline = time.monotonic() + 60
                while waiting_on_alarms(watch) < 2:
                    assert time.monotonic() < deadline, "the two checks never both reached insert"
                    assert all(worker.poll() is None for worker in workers), [
                        worker.communicate() for worker in workers if worker.poll() is not None
                    ]
                    time.sleep(0.05)
        finally:
            gate.commit()  # Both inserts go ahead at once.
        outputs = [worker.communicate(timeout=60) for worker in workers]
    for worker, (_, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr
    raised = [
        json.loads(line.removeprefix("RAISED="))
        for stdout, _ in outputs
        for line in stdout.splitlines()
        if line.startswith("RAISED=")
    ]
    # Each worker checked; exactly one of them raised (and so announced) the alarm.
    assert sorted(len(pks) for pks in raised) == [0, 1]
    stored = list(Alarm.objects.filter(rover=rover, kind=AlarmKind.LINK_LOST).values_list("pk"))
    assert stored == [tuple(pk for pks in raised for pk in pks)]
    bodies = list(Message.objects.filter(team=rover.alarm_team).values_list("body", flat=True))
    assert len(bodies) == 1
    assert bodies[0].startswith("ALARM Curiosity: Link lost.")
