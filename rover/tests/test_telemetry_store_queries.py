"""Ingest's store: how many statements one ingest costs (README, "where the time goes").

Every statement inside the rover's row lock is a round trip the hub's dispatch
waits for; these tests pin the count so a new one is a deliberate choice.
"""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

from rover.models import TelemetryFrame
from rover.services.partitions import partitions_ensure_ahead
from rover.services.telemetry import telemetry_store, telemetry_validate
from rover.tests.factories import frame

FRAMES = TelemetryFrame._meta.db_table


def _store(rover, payload):
    partitions_ensure_ahead()  # weekly upkeep, not part of an ingest's usual cost
    frames = telemetry_validate(payload=payload)
    with CaptureQueriesContext(connection) as queries:
        result, previous_max = telemetry_store(rover=rover, frames=frames)
    statements = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"].upper()]
    return result, previous_max, statements


def _frame_reads(statements: list[str]) -> list[str]:
    return [sql for sql in statements if sql.lstrip().upper().startswith("SELECT")]


def test_a_new_frame_costs_four_statements_and_one_read(rover):
    result, previous_max, statements = _store(rover, [frame(1), frame(2)])
    assert [f.seq for f in result.stored] == [1, 2]
    assert previous_max is None
    # counter UPDATE, one read (highest seq and existing seqs), INSERT, rollups upsert
    assert len(_frame_reads(statements)) == 1, statements
    assert len(statements) == 4, statements


def test_one_read_still_answers_the_highest_seq_and_the_duplicates(rover):
    _store(rover, [frame(5), frame(9)])
    result, previous_max, statements = _store(rover, [frame(5), frame(7), frame(7)])
    assert previous_max == 9
    assert [f.seq for f in result.stored] == [7]
    assert result.duplicates == [5, 7]
    assert len(_frame_reads(statements)) == 1, statements


def test_the_ingest_permission_check_is_one_query(client, rover, ingest_token):
    with CaptureQueriesContext(connection) as queries:
        response = client.post(
            "/api/rovers/curiosity/telemetry",
            data=[frame(1)],
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {ingest_token}",
        )
    assert response.status_code == 201
    permission_reads = [q["sql"] for q in queries.captured_queries if "auth_permission" in q["sql"]]
    assert len(permission_reads) == 1, permission_reads
