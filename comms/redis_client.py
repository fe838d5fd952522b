"""redis.asyncio clients per event loop for presence and rate limits (None without Redis).

One client per shard (see `mission_control.redis_topology`): `client(name)`
returns the one holding the key `name`, the shard channels-redis would use for a
channel of that name, so every worker reads and writes a room's presence or a
user's rate limit on the same server. Behind Sentinel each client follows the
master through a failover.

Each client's pool is a `BlockingConnectionPool` of REDIS_MAX_CONNECTIONS: when
every connection is busy, a call waits up to REDIS_POOL_TIMEOUT seconds for one
instead of raising at once. redis-py's default pool raised `MaxConnectionsError`
the moment its 100 connections were taken, so 600 sockets joining one worker at
once (what a worker restart causes) lost 461 of them, and 300 leaving at once
left 200 presence entries behind until the TTL.
"""

from __future__ import annotations

import asyncio
import weakref

from django.conf import settings

from mission_control.redis_topology import async_client, shard_for


class RedisShards:
    """This loop's clients, one per Redis host (shard), made when first used."""

    def __init__(self, hosts: list) -> None:
        self.hosts = list(hosts)
        self._clients: dict[int, object] = {}

    def client(self, name: str):
        """Return the client of the shard that holds the key `name`."""
        index = shard_for(name, len(self.hosts))
        client = self._clients.get(index)
        if client is None:
            client = self._clients[index] = async_client(
                self.hosts[index],
                max_connections=settings.REDIS_MAX_CONNECTIONS,
                timeout=settings.REDIS_POOL_TIMEOUT,
            )
        return client


_shards: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def get_redis() -> RedisShards | None:
    """Return this loop's Redis clients, or None when no Redis is configured."""
    if not settings.REDIS_HOSTS:
        return None
    loop = asyncio.get_running_loop()
    shards = _shards.get(loop)
    if shards is None or shards.hosts != settings.REDIS_HOSTS:
        shards = _shards[loop] = RedisShards(settings.REDIS_HOSTS)
    return shards


def key(*parts: str) -> str:
    """Return a Redis key in this deployment's (or test run's) namespace."""
    return ":".join((settings.CHANNEL_LAYER_PREFIX, "rooms", *parts))
