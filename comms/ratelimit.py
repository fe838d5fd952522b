"""Per-user chat rate limit: CHAT_RATE_MESSAGES per CHAT_RATE_SECONDS, sliding window.

With Redis the window lives there (on the shard of the user's key), so the
limit holds per user across all their sockets on every worker; without it, per
user within the process. While
Redis does not answer, the limit falls back to the process's own window (per
user per worker): chat keeps working through an outage, still rate-limited.
That includes a Redis that hangs (connections open, nothing answered): a check
waits `RATE_CHECK_WAIT_SECONDS` at most, since the socket handles no other frame
meanwhile, and that shard is left alone for `RATE_CHECK_SKIP_SECONDS` after, so
a burst of messages does not wait once each.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import uuid
import weakref

from django.conf import settings
from redis import exceptions as redis_errors

from .redis_client import get_redis, key

# Atomic: drop old entries, count, admit only under the limit.
_SLIDING_WINDOW = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000) + 1000)
  return 1
end
return 0
"""

logger = logging.getLogger(__name__)

RATE_CHECK_WAIT_SECONDS = 2.0
RATE_CHECK_SKIP_SECONDS = 5.0

_local: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# Shard clients (one per loop and shard) that did not answer a check in time: until when
# checks on them fall back to the worker's window without asking.
_skipped: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


async def chat_rate_allow(*, user_id: int) -> bool:
    """Count one message for the user; return False when over the limit."""
    limit = settings.CHAT_RATE_MESSAGES
    window = settings.CHAT_RATE_SECONDS
    if limit <= 0:
        return True
    shards = get_redis()
    if shards is not None:
        name = key("rate", str(user_id))
        client = shards.client(name)
        if _skipped.get(client, 0.0) <= time.monotonic():
            try:
                async with asyncio.timeout(RATE_CHECK_WAIT_SECONDS):
                    admitted = await client.eval(
                        _SLIDING_WINDOW,
                        1,
                        name,
                        time.time(),
                        window,
                        limit,
                        uuid.uuid4().hex,
                    )
            except TimeoutError:
                _skipped[client] = time.monotonic() + RATE_CHECK_SKIP_SECONDS
                logger.warning(
                    "rate limit falls back to this worker for %g s (no answer from Redis in %g s)",
                    RATE_CHECK_SKIP_SECONDS,
                    RATE_CHECK_WAIT_SECONDS,
                )
            except redis_errors.RedisError as exc:
                logger.warning("rate limit falls back to this worker (Redis: %r)", exc)
            else:
                return bool(admitted)
    return _local_allow(user_id=user_id, limit=limit, window=window)


def _local_allow(*, user_id: int, limit: int, window: float) -> bool:
    loop = asyncio.get_running_loop()
    users = _local.setdefault(loop, {})
    now = time.monotonic()
    stamps = users.setdefault(user_id, collections.deque())
    while stamps and stamps[0] <= now - window:
        stamps.popleft()
    if len(stamps) >= limit:
        return False
    stamps.append(now)
    return True
