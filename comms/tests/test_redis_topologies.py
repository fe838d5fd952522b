"""Presence, rate limits and the hub over two Redis shards and behind Sentinel (real servers)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from comms.presence import PresenceTracker
from comms.ratelimit import chat_rate_allow
from comms.redis_client import key
from mission_control.redis_topology import hosts_from_environ, shard_for
from streams.hub import get_hub, subscribe
from streams.layers import group_name
from streams.subscriptions import SubscriberOverflow
from streams.tests.redis_server import RedisServer, sentinel_redis

__all__ = ["sentinel_redis"]

pytestmark = [
    pytest.mark.redis,
    # Its own redis-servers and Sentinels whatever the pass (the pass changes only the
    # database, which these tests barely touch): once is enough.
    pytest.mark.one_pass("services", why="own redis-servers and Sentinels"),
]


def _use_hosts(settings, hosts: list) -> None:
    from channels.layers import channel_layers

    settings.REDIS_HOSTS = hosts
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "streams.layers.RedisChannelLayer",
            "CONFIG": {"hosts": hosts, "prefix": settings.CHANNEL_LAYER_PREFIX},
        }
    }
    channel_layers.backends.clear()


@pytest.fixture
def two_shards(settings):
    servers = [RedisServer().start(), RedisServer().start()]
    _use_hosts(settings, [s.url for s in servers])
    yield servers
    for server in servers:
        server.stop()


def _keys(server: RedisServer) -> set[str]:
    import redis

    client = redis.Redis(port=server.port, decode_responses=True)
    try:
        return set(client.keys("*"))
    finally:
        client.close()


async def test_presence_and_rate_limit_keys_live_on_the_shard_of_their_name(two_shards):
    tracker = PresenceTracker()
    rooms = [f"room{i}" for i in range(12)]
    for i, slug in enumerate(rooms):
        await tracker.join(slug, f"socket{i}", i, f"user{i}")
    for user_id in range(12):
        assert await chat_rate_allow(user_id=user_id)
    for i, slug in enumerate(rooms):
        assert await tracker.online(slug) == [{"id": i, "username": f"user{i}"}]
    tracker._heartbeat.cancel()
    expected = [set(), set()]
    for name in [key("presence", s) for s in rooms] + [key("rate", str(u)) for u in range(12)]:
        expected[shard_for(name, 2)].add(name)
    assert all(expected), "the names should spread over both shards"
    assert [_keys(server) for server in two_shards] == expected


async def test_the_hub_delivers_every_stream_whichever_shard_carries_it(two_shards, settings):
    def channel(stream: str) -> str:
        return f"{settings.CHANNEL_LAYER_PREFIX}__group__{group_name(stream)}"

    streams = [f"rover.{name}" for name in ("curiosity", "perseverance", "spirit", "zhurong")]
    while len({shard_for(channel(s), 2) for s in streams}) < 2:
        streams.append(f"rover.{uuid.uuid4().hex[:8]}")
    channels = [channel(s) for s in streams]
    async with contextlib_subscribe(streams) as subs:
        for n, stream in enumerate(streams):
            await get_hub().publish(stream, {"event": "x", "n": n})
        got = [await asyncio.wait_for(sub.get(), 5) for sub in subs]
    assert [event["n"] for event in got] == list(range(len(streams)))
    # Each stream's counter sits with its channel, on the shard that publishes it.
    for stream, channel in zip(streams, channels, strict=True):
        counter = f"{settings.CHANNEL_LAYER_PREFIX}hub.seq.{group_name(stream)}"
        assert counter in _keys(two_shards[shard_for(channel, 2)])


def contextlib_subscribe(streams: list[str]):
    import contextlib

    @contextlib.asynccontextmanager
    async def many():
        async with contextlib.AsyncExitStack() as stack:
            yield [await stack.enter_async_context(subscribe(s)) for s in streams]

    return many()


async def _publish_until_it_works(stream: str, event: dict) -> None:
    for _ in range(50):
        try:
            await get_hub().publish(stream, event)
            return
        except Exception:
            await asyncio.sleep(0.2)
    raise AssertionError("publishing never worked again")


async def test_behind_sentinel_presence_rate_limits_and_the_hub_follow_a_failover(
    sentinel_redis, settings
):
    _use_hosts(settings, hosts_from_environ(sentinel_redis.environ))
    stream = "rover.sentinel"
    counter = f"{settings.CHANNEL_LAYER_PREFIX}hub.seq.{group_name(stream)}"
    tracker = PresenceTracker()
    assert await tracker.join("ops", "c1", 1, "alice") == [{"id": 1, "username": "alice"}]
    async with subscribe(stream) as sub:
        for n in (1, 2, 3):
            await get_hub().publish(stream, {"event": "x", "n": n})
            assert (await asyncio.wait_for(sub.get(), 5))["n"] == n
        await asyncio.to_thread(sentinel_redis.failover)
        new_master = sentinel_redis.client(sentinel_redis.replica)
        # As if the last two increments never reached the replica before it was
        # promoted: the new master hands out 2 and 3 again, for new events.
        new_master.hset(counter, "n", 1)
        await _publish_until_it_works(stream, {"event": "x", "n": 4})
        # The failover closed the hub's pub/sub connection to the demoted master: it
        # reconnected through the Sentinel, probed, and cut the subscriber off to
        # replay by id, instead of dropping the reused numbers as duplicates.
        with pytest.raises(SubscriberOverflow):
            await asyncio.wait_for(sub.get(), 10)
        assert sub.reason == "resync"
    # The old master gone too: everything goes through the one the Sentinel names.
    await asyncio.to_thread(sentinel_redis.master.shutdown)
    async with subscribe(stream) as sub:
        await _publish_until_it_works(stream, {"event": "x", "n": 5})
        assert (await asyncio.wait_for(sub.get(), 10))["n"] == 5
    assert await tracker.join("ops", "c2", 2, "bob") == [
        {"id": 1, "username": "alice"},
        {"id": 2, "username": "bob"},
    ]
    tracker._heartbeat.cancel()
    assert await chat_rate_allow(user_id=1)
    assert new_master.exists(key("presence", "ops"), key("rate", "1")) == 2
