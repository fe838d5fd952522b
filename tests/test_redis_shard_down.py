"""One of two Redis shards stops and comes back: only the names living on it are affected.

README (Redis topologies): "a shard that stops affects only the rooms, users and
streams whose names live on it (they recover as after any Redis outage)", and its
return cuts off only those. The faults that would falsify it are a stopped shard
that stalls or cuts off the live traffic of the shard that still answers (one
reader for both, a shared pool, a resync sent to every stream), and a returning
shard whose reconnect makes every worker resync every stream on every shard (a
thundering herd of reconnects for one blip). Two real workers over two private
redis-servers: one rover's stream lives on shard 0, another rover's stream and the
team room on shard 1, and shard 1 is shut down and started again while frames flow.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from streams.layers import group_name
from streams.tests.redis_server import cut_off_reason

from .outage_clients import EventSourceClient, RoomMember
from .test_redis_outage import WORKER_ENV, _until, frame
from .test_redis_shards import _shard, shards

__all__ = ["shards"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.redis,
    # Its own redis-servers whatever the pass; the pass only changes the database, and
    # the services pass has production's.
    pytest.mark.one_pass("services", why="own redis-servers"),
]


def _stored_ids(slug: str) -> list[int]:
    """The SSE ids (ingest ids) stored for one rover, in order."""
    from django.db import connection

    from rover.models import TelemetryFrame

    try:
        frames = TelemetryFrame.objects.filter(rover__slug=slug).order_by("ingest_id")
        return list(frames.values_list("ingest_id", flat=True))
    finally:
        connection.close()


def test_a_stopped_shard_affects_only_its_own_streams_while_down_and_when_back(
    server_process, shards, transactional_db, user_factory, token_for
):
    from comms.models import Membership, Team
    from rover.models import AlarmLimits, Rover

    live = next(f"rover{i}" for i in range(100) if _shard(f"rover.rover{i}") == 0)
    back = next(f"rover{i}" for i in range(100) if _shard(f"rover.rover{i}") == 1)
    team_slug = next(f"team{i}" for i in range(100) if _shard(f"room.team{i}") == 1)
    for slug in (live, back):
        AlarmLimits.objects.create(rover=Rover.objects.create(slug=slug, name=slug))
    team = Team.objects.create(slug=team_slug, name="Ops")
    member = user_factory("member0")
    Membership.objects.create(team=team, user=member)
    ingest_token = token_for(user_factory("uplink", perms=("rover.add_telemetryframe",)))
    redis_url = ",".join(s.url for s in shards)
    workers = [server_process(server="uvicorn", redis_url=redis_url, env=WORKER_ENV) for _ in "ab"]
    feeds = {
        slug: [
            EventSourceClient(f"{w.url}/rovers/{slug}/telemetry/stream", ingest_token)
            for w in workers
        ]
        for slug in (live, back)
    }
    all_feeds = [*feeds[live], *feeds[back]]
    # A room socket on each worker: both workers' hubs follow a stream on the shard that stops.
    room = [RoomMember(w.port, team_slug, token_for(member)) for w in workers]
    auth = {"Authorization": f"Bearer {ingest_token}"}

    async def ingest(client: httpx.AsyncClient, seqs: range) -> list[int]:
        codes = []
        for seq in seqs:
            for slug in (live, back):
                url = f"{workers[seq % 2].url}/api/rovers/{slug}/telemetry"
                response = await client.post(url, json=frame(seq), headers=auth)
                codes.append(response.status_code)
        return codes

    def state() -> list:
        return [(f.seqs, f.endings) for f in all_feeds] + [m.errors for m in room]

    async def scenario() -> list[int]:
        clients = [asyncio.ensure_future(c.run()) for c in (*all_feeds, *room)]
        assert await _until(lambda: all(c.connections for c in (*all_feeds, *room)), 15)
        async with httpx.AsyncClient(timeout=15) as client:
            codes = await ingest(client, range(1, 6))
            assert await _until(lambda: all(f.seqs == [1, 2, 3, 4, 5] for f in all_feeds), 10)
            shards[1].shutdown()
            # Frames keep coming for a while after the stop, on both workers.
            for start in range(6, 26, 5):
                codes += await ingest(client, range(start, start + 5))
                await asyncio.sleep(0.5)
            # The stopped shard comes back: its streams' subscribers (the room's sockets,
            # the second rover's feeds) are cut off to resync...
            shards[1].start()
            assert await _until(
                lambda: (
                    all("resync" in m.errors for m in room)
                    and all("resync" in f.endings for f in feeds[back])
                ),
                20,
            ), state()
            # ...and the first rover's stream, which never lost its shard, must not be.
            codes += await ingest(client, range(26, 31))
        stored = {slug: await asyncio.to_thread(_stored_ids, slug) for slug in (live, back)}
        assert await _until(
            lambda: all(f.seqs == stored[slug] for slug in feeds for f in feeds[slug]), 15
        ), (stored, state())
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
        return codes

    codes = asyncio.run(scenario())
    assert set(codes) == {201}
    # Every frame arrived once and in order on every feed. The first rover's shard
    # answered throughout, so its stream was never cut off to replay: one connection,
    # no ending, on both workers, even after the other shard came back.
    for f in all_feeds:
        assert f.seqs == list(range(1, 31)), state()
    assert all(f.endings == [] and len(f.connections) == 1 for f in feeds[live]), state()


async def test_a_shard_that_returns_first_is_not_held_up_by_one_still_away(shards, settings):
    """Both shards down, subscriptions open on each; shard 0 returns first.

    The hub joins and probes the streams that failed to join in the background. One
    failure must hold up only its own shard's streams: the stream on shard 0 is
    joined and resynced while shard 1 is still away (seen to fail when the first
    failure ended the round, with the shard-1 stream subscribed first).
    """
    from channels.layers import channel_layers

    from streams.hub import get_hub

    urls = [s.url for s in shards]
    settings.REDIS_HOSTS = urls
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "streams.layers.RedisChannelLayer",
            "CONFIG": {"hosts": urls, "prefix": settings.CHANNEL_LAYER_PREFIX},
        }
    }
    channel_layers.backends.clear()
    away = next(f"rover.r{i}" for i in range(100) if _shard(f"rover.r{i}") == 1)
    back = next(f"rover.r{i}" for i in range(100) if _shard(f"rover.r{i}") == 0)
    hub = get_hub()
    assert [hub.layer.shard_of(group_name(s)) for s in (away, back)] == [1, 0]
    for server in shards:
        server.shutdown()
    async with hub.subscribe(away) as sub_away, hub.subscribe(back) as sub_back:
        await asyncio.sleep(0.5)
        assert not sub_away.overflowed and not sub_back.overflowed
        await asyncio.to_thread(shards[0].start)
        assert await cut_off_reason(sub_back, 10) == "resync"
        assert not sub_away.overflowed  # its shard is still away: nothing to replay yet
        await asyncio.to_thread(shards[1].start)
        assert await cut_off_reason(sub_away, 10) == "resync"
    async with hub.subscribe(back) as sub:
        await hub.publish(back, {"id": 1})
        assert await asyncio.wait_for(sub.get(), 5) == {"id": 1}
