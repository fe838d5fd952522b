"""bench/soak.py for 30 s: `make serve` under every kind of traffic at once loses nothing.

The same run as the 10-minute soak (scripts/serve.py, nginx, two uvicorn workers,
PostgreSQL, Redis), with fewer clients so it fits two shared cores: resuming SSE
subscribers, room sockets with messages flowing, 10 Hz ingest, downloads whole and
by Range, and uploads, all at once. Memory flatness is the 10-minute run's verdict
(30 s is mostly warm-up); here every error and every id is checked.
"""

from __future__ import annotations

import pytest

from bench.soak import SoakPlan, run_soak

pytestmark = [
    pytest.mark.slow,
    pytest.mark.redis,
    pytest.mark.postgres,
    # The stack always runs on PostgreSQL and Redis, whatever the pass: once is enough.
    pytest.mark.one_pass("first", why="the stack always uses PostgreSQL and Redis"),
]


def test_soak_for_30_seconds_has_no_error_and_loses_or_doubles_nothing(production_stacks):
    stack = production_stacks(workers=2, DATABASE_POOL_MAX="10")
    plan = SoakPlan(
        seconds=30,
        subscribers=200,
        sockets=100,
        rooms=4,
        hz=10,
        messages=4,
        downloaders=1,
        upload_every=3,
    )
    result = run_soak(stack, plan)

    assert dict(result.errors) == {}
    sse, rooms = result.sse, result.rooms
    assert (sse["lost"], sse["doubled"]) == (0, 0)
    assert (rooms["lost"], rooms["doubled"]) == (0, 0)
    # Every kind of traffic really flowed, and every client got all of it.
    assert result.counts["frames stored"] >= 250
    assert sse["received"] == sse["expected"] == result.counts["frames stored"] * 200
    assert result.counts["messages stored"] >= 100
    assert rooms["received"] == rooms["expected"] > 0
    assert result.counts["uploads"] >= 5
    assert result.counts["downloads (whole)"] > 0 and result.counts["downloads (Range)"] > 0
    # Both workers were sampled throughout, and neither was replaced.
    workers = [row for row in result.rss if row["process"].startswith("uvicorn worker")]
    assert len(workers) == 2
