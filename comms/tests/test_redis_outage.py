"""Team rooms while Redis is away: the rate limit and presence fail open, then recover."""

from __future__ import annotations

import json

import pytest

from comms.presence import PresenceTracker
from comms.ratelimit import chat_rate_allow
from streams.hub import subscribe
from streams.tests.redis_server import private_redis

__all__ = ["private_redis"]

pytestmark = pytest.mark.redis


@pytest.fixture
def rooms_on_private_redis(settings, private_redis):
    from channels.layers import channel_layers

    settings.REDIS_HOSTS = [private_redis.url]
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "streams.layers.RedisChannelLayer",
            "CONFIG": {"hosts": [private_redis.url], "prefix": settings.CHANNEL_LAYER_PREFIX},
        }
    }
    channel_layers.backends.clear()
    return private_redis


async def test_the_rate_limit_falls_back_to_the_worker_while_redis_is_down(
    rooms_on_private_redis, settings
):
    settings.CHAT_RATE_MESSAGES = 2
    settings.CHAT_RATE_SECONDS = 60
    rooms_on_private_redis.shutdown()
    assert [await chat_rate_allow(user_id=7) for _ in range(3)] == [True, True, False]


async def test_presence_fails_open_and_the_heartbeat_restores_an_emptied_redis(
    rooms_on_private_redis,
):
    tracker = PresenceTracker()
    names = lambda online: [user["username"] for user in online]  # noqa: E731
    assert names(await tracker.join("ops", "c1", 1, "alice")) == ["alice"]
    rooms_on_private_redis.shutdown()
    # Redis down: the socket still joins; the list is this worker's own sockets.
    assert names(await tracker.join("ops", "c2", 2, "bob")) == ["alice", "bob"]
    assert tracker.degraded
    rooms_on_private_redis.start()  # back, empty
    async with subscribe("room.ops") as sub:
        await tracker.beat_once()
        event = await sub.get()
    assert json.loads(event["data"])["online"] == [
        {"id": 1, "username": "alice"},
        {"id": 2, "username": "bob"},
    ]
    assert not tracker.degraded
    assert names(await tracker.online("ops")) == ["alice", "bob"]  # from Redis again
    tracker._heartbeat.cancel()
