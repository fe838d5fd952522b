"""One redis.asyncio client per event loop for presence and rate limits (None without REDIS_URL)."""

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
        import redis.asyncio

        client = _clients[loop] = redis.asyncio.from_url(settings.REDIS_URL)
    return client


def key(*parts: str) -> str:
    """Return a Redis key in this deployment's (or test run's) namespace."""
    return ":".join((settings.CHANNEL_LAYER_PREFIX, "rooms", *parts))
