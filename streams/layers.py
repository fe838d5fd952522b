"""channels-redis tuned for the hub's one long-lived reader per process."""

from __future__ import annotations

from channels_redis.core import RedisChannelLayer as _RedisChannelLayer


class RedisChannelLayer(_RedisChannelLayer):
    """The core channels-redis layer with a short blocking pop.

    A cancelled `receive()` only returns once Redis answers its BZPOPMIN, so the
    default 5 s timeout made every worker shutdown (and every test using Redis)
    wait up to 5 s. One extra idle round trip per second per process is cheap.
    """

    brpop_timeout = 1
