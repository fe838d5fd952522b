"""One of two Redis shards stops: only the names living on it are affected.

README (Redis topologies): "a shard that stops affects only the rooms, users and
streams whose names live on it (they recover as after any Redis outage)". The
fault that would falsify it is a stopped shard that stalls or cuts off the live
traffic of the shard that still answers (one reader for both, a shared pool, a
resync sent to every stream). Two real workers over two private redis-servers:
the rover's stream lives on shard 0, the team room on shard 1, and shard 1 is
shut down while frames flow.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from .outage_clients import EventSourceClient, RoomMember
from .test_redis_outage import WORKER_ENV, _until, frame
from .test_redis_shards import _shard, _stored, shards

__all__ = ["shards"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.redis,
    # Its own redis-servers whatever the pass; the pass only changes the database, and
    # the services pass has production's.
    pytest.mark.one_pass("services", why="own redis-servers"),
]


def test_a_stopped_shard_leaves_the_other_shards_streams_live(
    server_process, shards, transactional_db, user_factory, token_for
):
    from comms.models import Membership, Team
    from rover.models import AlarmLimits, Rover

    slug = next(f"rover{i}" for i in range(100) if _shard(f"rover.rover{i}") == 0)
    team_slug = next(f"team{i}" for i in range(100) if _shard(f"room.team{i}") == 1)
    rover = Rover.objects.create(slug=slug, name="Sharded")
    AlarmLimits.objects.create(rover=rover)
    team = Team.objects.create(slug=team_slug, name="Ops")
    member = user_factory("member0")
    Membership.objects.create(team=team, user=member)
    ingest_token = token_for(user_factory("uplink", perms=("rover.add_telemetryframe",)))
    redis_url = ",".join(s.url for s in shards)
    workers = [server_process(server="uvicorn", redis_url=redis_url, env=WORKER_ENV) for _ in "ab"]
    feeds = [
        EventSourceClient(f"{w.url}/rovers/{slug}/telemetry/stream", ingest_token) for w in workers
    ]
    # A room socket on each worker: both workers' hubs follow a stream on the shard that stops.
    room = [RoomMember(w.port, team_slug, token_for(member)) for w in workers]
    auth = {"Authorization": f"Bearer {ingest_token}"}

    async def ingest(client: httpx.AsyncClient, seqs: range) -> list[int]:
        codes = []
        for seq in seqs:
            url = f"{workers[seq % 2].url}/api/rovers/{slug}/telemetry"
            codes.append((await client.post(url, json=frame(seq), headers=auth)).status_code)
        return codes

    async def scenario() -> list[int]:
        clients = [asyncio.ensure_future(c.run()) for c in (*feeds, *room)]
        assert await _until(lambda: all(c.connections for c in (*feeds, *room)), 15)
        async with httpx.AsyncClient(timeout=15) as client:
            codes = await ingest(client, range(1, 6))
            assert await _until(lambda: all(f.seqs == [1, 2, 3, 4, 5] for f in feeds), 10)
            shards[1].shutdown()
            # Frames keep coming for a while after the stop, on both workers.
            for start in range(6, 26, 5):
                codes += await ingest(client, range(start, start + 5))
                await asyncio.sleep(0.5)
        seqs, _ = await asyncio.to_thread(_stored)
        assert await _until(lambda: all(f.seqs == seqs for f in feeds), 10), (
            [f.seqs for f in feeds],
            [f.endings for f in feeds],
        )
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
        return codes

    codes = asyncio.run(scenario())
    assert set(codes) == {201}
    # Every frame arrived live, once and in order, on the one connection: the rover's
    # shard answered throughout, so nothing of its stream was cut off to replay.
    assert all(f.seqs == list(range(1, 26)) for f in feeds), [f.seqs for f in feeds]
    assert all(f.endings == [] and len(f.connections) == 1 for f in feeds), [
        f.endings for f in feeds
    ]
