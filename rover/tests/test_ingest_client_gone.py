"""An ingest whose uplink leaves mid-request still publishes what it stored (PostgreSQL).

Django cancels a view when its client disconnects, but the store runs in a
thread nothing can cancel: the frame was committed and then neither published
nor checked for alarms, so a live dashboard saw it only if a later frame's gap
made it replay, and never if it was the last (a flaky sentinel failover test
showed it). Here the uplink's POST is held on the rover's row lock, the uplink
hangs up, the lock is released: the frame must reach the live feed and raise
its alarm (`mission_control.asgi_handler`, 4.).
"""

from __future__ import annotations

import asyncio
import json
import time

import psycopg
import pytest
from django.db import connection  # noqa: F401 (the skipif condition below reads it)

from rover.models import Alarm, Rover
from rover.tests.db_sessions import database_url
from tests.missions import mission_create
from tests.outage_clients import EventSourceClient
from tests.test_redis_outage import _until, frame

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        "connection.vendor != 'postgresql'",
        reason="holds the rover's row lock from another session (run with MC_TEST_SERVICES=1)",
    ),
]


def _ingest_waits_on_the_lock(watch: psycopg.Connection) -> bool:
    return watch.execute(
        "SELECT EXISTS (SELECT FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock')"
    ).fetchone()[0]


async def _post_and_hang_up(port: int, token: str, body: bytes, watch: psycopg.Connection) -> None:
    """Send the whole POST, wait until the server's store waits on the lock, and close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /api/rovers/curiosity/telemetry HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n".encode()
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    assert await _until(lambda: _ingest_waits_on_the_lock(watch), 15), "the ingest never waited"
    writer.close()
    await writer.wait_closed()
    # Time for the server to see the disconnect (and, before the fix, cancel the view).
    await asyncio.sleep(1.0)
    assert not await reader.read(), "the server answered while the rover's row was locked"


@pytest.mark.parametrize("server", ["uvicorn", "daphne"])
def test_a_frame_stored_after_its_uplink_hung_up_is_published_and_alarmed(
    server, server_process, transactional_db, user_factory, token_for
):
    mission = mission_create(user_factory, token_for, members=0)
    worker = server_process(server=server)
    url = f"{worker.url}/rovers/curiosity/telemetry/stream"
    feed = EventSourceClient(url, mission.ingest_token)
    body = json.dumps(frame(1, battery_pct=5.0)).encode()  # below the 20 % alarm limit

    async def scenario() -> None:
        reading = asyncio.ensure_future(feed.run())
        assert await _until(lambda: feed.connections, 15)
        with (
            psycopg.connect(database_url(), autocommit=True) as watch,
            psycopg.connect(database_url()) as locker,
        ):
            locker.execute(
                f"SELECT 1 FROM {Rover._meta.db_table} WHERE slug = 'curiosity' FOR UPDATE"  # noqa: S608
            )
            await _post_and_hang_up(worker.port, mission.ingest_token, body, watch)
            locker.rollback()  # the ingest goes on, its client gone
        assert await _until(lambda: feed.seqs == [1], 10), feed.seqs
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)

    started = time.monotonic()
    asyncio.run(scenario())
    assert time.monotonic() - started < 30
    assert feed.endings == [] and len(feed.connections) == 1  # live, not by a replay
    assert Alarm.objects.filter(rover__slug="curiosity", kind="battery_low").count() == 1
