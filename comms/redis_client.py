"""One redis.asyncio client per event loop for presence and rate limits (None without REDIS_URL).

The client's pool is a `BlockingConnectionPool` of REDIS_MAX_CONNECTIONS: when
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

_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def get_redis():
    """Return this loop's Redis client, or None when REDIS_URL is not set."""
    if not settings.REDIS_URL:
        return None
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        import redis.asyncio  # only with REDIS_URL: the embedded default never loads it

        pool = redis.asyncio.BlockingConnectionPool.from_url(
            settings.REDIS_URL,
            max_connections=settings.REDIS_MAX_CONNECTIONS,
            timeout=settings.REDIS_POOL_TIMEOUT,
        )
        client = _clients[loop] = redis.asyncio.Redis(connection_pool=pool)
    return client


def key(*parts: str) -> str:
    """Return a Redis key in this deployment's (or test run's) namespace."""
    return ":".join((settings.CHANNEL_LAYER_PREFIX, "rooms", *parts))
