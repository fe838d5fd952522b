"""An SSE reconnect storm holds a bounded number of PostgreSQL connections, not one per stream.

~200 dashboards reconnecting at once (a worker restart) against a real uvicorn
process over PostgreSQL, each authenticating with a token and replaying by
Last-Event-ID; PostgreSQL's own pg_stat_activity counts the server's
connections throughout.
"""

from __future__ import annotations

import asyncio
import threading
import time

import psycopg
import pytest
from django.db import connection

from rover.services.telemetry import telemetry_store, telemetry_validate
from rover.tests.factories import frame

pytestmark = pytest.mark.django_db(transaction=True)

STREAMS = 200
FRAMES = 5
POOL = 5
APPLICATION_NAME = "mc-sse-storm"


class ConnectionSampler(threading.Thread):
    """Count the server's connections (by application_name) in pg_stat_activity, every 10 ms."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.peak = 0
        self.last = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stopping.is_set():
                (count,) = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                    (APPLICATION_NAME,),
                ).fetchone()
                self.last = count
                self.peak = max(self.peak, count)
                time.sleep(0.01)


async def sse_replay(port: int, token: str, after: int, want: int):
    """Open the feed with Last-Event-ID; return (status, the text up to `id: <want>`, writer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            "GET /rovers/curiosity/telemetry/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\nLast-Event-ID: {after}\r\n\r\n"
        ).encode()
    )
    text = ""
    async with asyncio.timeout(60):
        while f"id: {want}\n" not in text:
            chunk = await reader.read(65536)
            if not chunk:
                break
            text += chunk.decode()
    status = int(text.split(" ", 2)[1]) if text.startswith("HTTP/1.1 ") else 0
    return status, text, writer


def test_reconnect_storm_holds_at_most_the_pool_of_connections(
    server_process, rover, viewer_token, postgres_url
):
    """200 streams at once on a pool of 5: every one authenticates and replays, 5 connections."""
    if connection.vendor != "postgresql":
        pytest.skip("counts PostgreSQL connections (the MC_TEST_SERVICES=1 pass)")
    frames = telemetry_validate(payload=[frame(n) for n in range(1, FRAMES + 1)])
    telemetry_store(rover=rover, frames=frames)
    database = connection.settings_dict
    server = server_process(
        server="uvicorn",
        env={
            "DATABASE_URL": f"postgres://{database['USER'] or 'postgres'}@{database['HOST']}:"
            f"{database['PORT']}/{database['NAME']}?application_name={APPLICATION_NAME}",
            "DATABASE_POOL_MIN": "1",
            "DATABASE_POOL_MAX": str(POOL),
        },
    )
    sampler = ConnectionSampler(postgres_url)
    sampler.start()

    async def storm():
        results = await asyncio.gather(
            *(sse_replay(server.port, viewer_token, 0, FRAMES) for _ in range(STREAMS))
        )
        await asyncio.sleep(0.3)
        held = sampler.last
        for _, _, writer in results:
            writer.close()
        return results, held

    try:
        results, held = asyncio.run(storm())
    finally:
        sampler.stopping.set()
        sampler.join()
    print(f"\nstorm of {STREAMS}: peak {sampler.peak} connections, {held} while all were open")
    assert [status for status, _, _ in results] == [200] * STREAMS
    # Each authenticated with its token and replayed every stored frame by Last-Event-ID.
    assert all(f"id: {FRAMES}\n" in text for _, text, _ in results)
    assert 0 < sampler.peak <= POOL
    assert held <= POOL
