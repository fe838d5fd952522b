"""The channel layers the hub uses: channels-redis tuned for one long-lived reader per process.

`hub_layer()` picks the layer the hub publishes and subscribes through, and
`redis_counter()` numbers each stream's events over Redis so lost ones are noticed.
"""

from __future__ import annotations

import redis.asyncio
from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels_redis.core import RedisChannelLayer as _RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.conf import settings


class RedisChannelLayer(_RedisChannelLayer):
    """The core channels-redis layer with a short blocking pop.

    A cancelled `receive()` only returns once Redis answers its BZPOPMIN, so the
    default 5 s timeout made every worker shutdown (and every test using Redis)
    wait up to 5 s. One extra idle round trip per second per process is cheap.
    """

    brpop_timeout = 1


def hub_layer():
    """Return the channel layer the hub publishes and subscribes through.

    With Redis the hub uses channels-redis' pub/sub layer: one PUBLISH per event
    and one SUBSCRIBE per stream per process is exactly the fan-out wanted, its
    receive is cancellable at once, and it keeps one connection per event loop.
    It is at-most-once across a Redis reconnect, which the store-then-publish
    design covers: clients replay from the database by id. Without Redis the
    shared in-memory layer serves the single process.
    """
    layer = get_channel_layer()
    if isinstance(layer, InMemoryChannelLayer):
        return layer
    config = settings.CHANNEL_LAYERS[DEFAULT_CHANNEL_LAYER].get("CONFIG", {})
    key = (tuple(map(str, config.get("hosts", ()))), config.get("prefix", "asgi"))
    if key not in _pubsub_layers:
        _pubsub_layers[key] = RedisPubSubChannelLayer(
            hosts=config.get("hosts"), prefix=config.get("prefix", "asgi")
        )
    return _pubsub_layers[key]


_pubsub_layers: dict[tuple, RedisPubSubChannelLayer] = {}


class RedisCounter:
    """Numbers each stream's events with one INCR, so subscribers can see a gap."""

    def __init__(self, url: str, prefix: str) -> None:
        self.redis = redis.asyncio.Redis.from_url(url)
        self.prefix = prefix

    async def next(self, stream: str) -> int:
        return await self.redis.incr(f"{self.prefix}hub.n.{stream}")


def redis_counter(layer) -> RedisCounter | None:
    """Return the event counter for a Redis pub/sub layer, None for the in-memory one."""
    if not isinstance(layer, RedisPubSubChannelLayer):
        return None
    config = settings.CHANNEL_LAYERS[DEFAULT_CHANNEL_LAYER].get("CONFIG", {})
    host = config.get("hosts", ["redis://127.0.0.1:6379"])[0]
    url = host if isinstance(host, str) else host.get("address")
    return RedisCounter(url, config.get("prefix", "asgi"))
