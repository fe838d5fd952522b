"""Redis topologies under two real workers: two shards, and a Sentinel failover.

The rover's stream and the team room are picked so that their channel-layer
groups live on different shards, so both shards carry live traffic.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from mission_control.redis_topology import shard_for
from streams.layers import group_name
from streams.tests.redis_server import RedisServer, sentinel_redis

from .missions import mission_create
from .outage_clients import EventSourceClient, RoomMember
from .test_redis_outage import WORKER_ENV, _until, frame

__all__ = ["sentinel_redis"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.redis,
    # Its own redis-servers and Sentinels whatever the pass; the pass only changes the
    # database, and the services pass has production's.
    pytest.mark.one_pass("services", why="own redis-servers and Sentinels"),
]


def _shard(stream: str) -> int:
    from django.conf import settings

    return shard_for(f"{settings.CHANNEL_LAYER_PREFIX}__group__{group_name(stream)}", 2)


def _stored() -> tuple[list[int], list[int]]:
    from django.db import connection

    from comms.models import Message
    from rover.models import TelemetryFrame

    try:
        seqs = list(TelemetryFrame.objects.order_by("seq").values_list("seq", flat=True))
        return seqs, list(Message.objects.order_by("id").values_list("id", flat=True))
    finally:
        connection.close()


@pytest.fixture
def shards():
    servers = [RedisServer().start(), RedisServer().start()]
    yield servers
    for server in servers:
        server.stop()


def test_frames_messages_and_presence_cross_workers_over_two_shards(
    server_process, shards, transactional_db, user_factory, token_for
):
    slug = next(f"rover{i}" for i in range(100) if _shard(f"rover.rover{i}") == 0)
    team_slug = next(f"team{i}" for i in range(100) if _shard(f"room.team{i}") == 1)
    mission = mission_create(user_factory, token_for, members=2, rovers=[slug], team=team_slug)
    ingest_token, tokens = mission.ingest_token, mission.member_tokens
    redis_url = ",".join(s.url for s in shards)
    workers = [server_process(server="uvicorn", redis_url=redis_url, env=WORKER_ENV) for _ in "ab"]
    feeds = [
        EventSourceClient(f"{w.url}/rovers/{slug}/telemetry/stream", ingest_token) for w in workers
    ]
    room = [RoomMember(w.port, team_slug, t) for w, t in zip(workers, tokens, strict=True)]

    async def scenario() -> None:
        clients = [asyncio.ensure_future(c.run()) for c in (*feeds, *room)]
        assert await _until(lambda: all(c.connections for c in (*feeds, *room)), 15)
        # The second member's join reaches the first one's worker through the room's shard.
        assert await _until(
            lambda: any(
                {u["username"] for u in p.get("online", [])} == {"member0", "member1"}
                or p.get("joined", {}).get("username") == "member1"
                for p in room[0].presence
            ),
            10,
        ), room[0].presence
        auth = {"Authorization": f"Bearer {ingest_token}"}
        async with httpx.AsyncClient(timeout=15) as client:
            for seq in range(1, 21):
                url = f"{workers[seq % 2].url}/api/rovers/{slug}/telemetry"
                response = await client.post(url, json=frame(seq), headers=auth)
                assert response.status_code == 201
                if seq % 4 == 0:
                    assert await room[seq // 4 % 2].say(f"m{seq}", client_id=f"c{seq}")
        seqs, message_ids = await asyncio.to_thread(_stored)
        assert await _until(
            lambda: (
                all(f.seqs == seqs for f in feeds)
                and all(sorted(m.accepted) == message_ids for m in room)
            ),
            15,
        ), ([f.seqs for f in feeds], [sorted(m.accepted) for m in room], message_ids)
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)

    asyncio.run(scenario())
    # Nothing was cut off to replay: every frame and message arrived live, once.
    assert all(f.endings == [] and len(f.connections) == 1 for f in feeds)
    assert all(set(m.accepted.values()) == {1} and len(m.connections) == 1 for m in room)
    # Both shards carried the traffic of their own names.
    import redis

    keys = [set(redis.Redis(port=s.port, decode_responses=True).keys("*")) for s in shards]
    assert any(f"hub.seq.{group_name('rover.' + slug)}" in k for k in keys[0])
    assert any(f"hub.seq.{group_name('room.' + team_slug)}" in k for k in keys[1])


def test_a_sentinel_failover_under_load_loses_and_doubles_nothing(
    server_process, sentinel_redis, transactional_db, user_factory, token_for
):
    """Two workers find the master through Sentinel; it fails over, the old one stops."""
    mission = mission_create(user_factory, token_for, members=3)
    ingest_token, tokens = mission.ingest_token, mission.member_tokens
    env = {**WORKER_ENV, **sentinel_redis.environ}
    workers = [server_process(server="uvicorn", env=env) for _ in "ab"]
    feeds = [
        EventSourceClient(f"{w.url}/rovers/curiosity/telemetry/stream", ingest_token)
        for w in workers
    ]
    room = [RoomMember(workers[i % 2].port, "ops", t) for i, t in enumerate(tokens[:2])]
    statuses: list[int] = []

    async def ingest(client: httpx.AsyncClient) -> None:
        seq = 0
        while True:
            seq += 1
            url = f"{workers[seq % 2].url}/api/rovers/curiosity/telemetry"
            auth = {"Authorization": f"Bearer {ingest_token}"}
            statuses.append((await client.post(url, json=frame(seq), headers=auth)).status_code)
            await asyncio.sleep(0.08)

    async def chat() -> None:
        n = 0
        while True:
            n += 1
            await room[0].say(f"m{n}", client_id=f"c{n}")
            await asyncio.sleep(0.15)

    async def scenario() -> RoomMember:
        clients = [asyncio.ensure_future(c.run()) for c in (*feeds, *room)]
        assert await _until(lambda: all(c.connections for c in (*feeds, *room)), 15)
        async with httpx.AsyncClient(timeout=15) as client:
            load = [asyncio.ensure_future(ingest(client)), asyncio.ensure_future(chat())]
            await asyncio.sleep(2)
            await asyncio.to_thread(sentinel_redis.failover)
            await asyncio.to_thread(sentinel_redis.master.shutdown)
            await asyncio.sleep(3)
            # A member joining now is seen on the other worker through the new master.
            late = RoomMember(workers[1].port, "ops", tokens[2])
            clients.append(asyncio.ensure_future(late.run()))
            await asyncio.sleep(2)
            for task in load:
                task.cancel()
            await asyncio.gather(*load, return_exceptions=True)
        seqs, message_ids = await asyncio.to_thread(_stored)
        assert await _until(
            lambda: (
                all(f.seqs[-1:] == seqs[-1:] for f in feeds)
                and all(set(m.accepted) >= set(message_ids) for m in room)
            ),
            20,
        ), ([f.seqs[-3:] for f in feeds], seqs[-3:], [len(m.accepted) for m in room])
        assert await _until(
            lambda: any(
                p.get("joined", {}).get("username") == "member2"
                or "member2" in {u["username"] for u in p.get("online", [])}
                for p in room[0].presence
            ),
            10,
        ), room[0].presence[-3:]
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
        return seqs, message_ids

    seqs, message_ids = asyncio.run(scenario())
    assert set(statuses) == {201}, statuses
    assert seqs == list(range(1, len(seqs) + 1))
    for feed in feeds:
        assert feed.seqs == seqs, feed.endings  # every frame once, in order
    for member in room:
        assert sorted(member.accepted) == message_ids
        assert set(member.accepted.values()) == {1}
        assert member.repeated_on_one_socket == []
    assert sentinel_redis.master_port() == sentinel_redis.replica.port
