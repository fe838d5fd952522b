"""Where Redis is: one server, several shards, or masters found through Sentinel.

The environment names the topology once; `hosts_from_environ` turns it into a
list of channels-redis `hosts` entries, which the channel layer and every
direct Redis client (presence, rate limits, `/readyz`, `make serve`) share:

- `REDIS_URL=redis://a:6379/0` is one server; a comma-separated list of URLs
  is several shards (channels-redis' sharding, by a hash of the name).
- `REDIS_SENTINELS=host:port,host:port` with `REDIS_SENTINEL_MASTER=mymaster`
  asks those Sentinels for the master's address and follows it through a
  failover. Several master names are several shards, each behind Sentinel.
  `REDIS_PASSWORD` and `REDIS_DB` apply to the masters, `REDIS_SENTINEL_PASSWORD`
  to the Sentinels themselves.

A key (or channel) always lives on `shard_for(name, n)`: the hash channels-redis
uses for its channels and groups, so every worker, given the same list in the
same order, puts the same key on the same server.

Only the standard library at import, and redis-py when a client is made, so
`scripts/serve.py` can use it before Django is set up.
"""

from __future__ import annotations

import binascii
import functools
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

Host = str | dict[str, Any]

_URL_SCHEMES = ("redis", "rediss", "unix")
# Sentinels answer in milliseconds; one that hangs must not stall finding the master.
SENTINEL_SOCKET_TIMEOUT = 2.0


class RedisTopologyError(ValueError):
    """The Redis variables contradict each other or are malformed; the message says which."""


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _sentinel_address(entry: str) -> tuple[str, int]:
    host, _, port = entry.rpartition(":")
    if not host or not port.isascii() or not port.isdigit():
        raise RedisTopologyError(f"REDIS_SENTINELS: {entry!r} is not host:port")
    return host.strip("[]"), int(port)


def hosts_from_environ(environ: Mapping[str, str]) -> list[Host]:
    """Return the channels-redis `hosts` the environment names; empty: no Redis."""
    urls = _split(environ.get("REDIS_URL", ""))
    sentinels = _split(environ.get("REDIS_SENTINELS", ""))
    masters = _split(environ.get("REDIS_SENTINEL_MASTER", ""))
    if urls and sentinels:
        raise RedisTopologyError(
            "Set either REDIS_URL (one server or shards) or REDIS_SENTINELS, not both."
        )
    if not sentinels:
        if masters:
            raise RedisTopologyError("REDIS_SENTINEL_MASTER needs REDIS_SENTINELS (host:port,...).")
        for url in urls:
            if urlsplit(url).scheme not in _URL_SCHEMES:
                raise RedisTopologyError(
                    f"REDIS_URL: {describe(url)!r} is not a redis://, rediss:// or unix:// URL"
                )
        return urls
    if not masters:
        raise RedisTopologyError("REDIS_SENTINELS needs REDIS_SENTINEL_MASTER (the master's name).")
    db = environ.get("REDIS_DB", "0") or "0"
    if not db.isascii() or not db.isdigit():
        raise RedisTopologyError(f"REDIS_DB must be a number, not {db!r}")
    sentinel_kwargs: dict[str, Any] = {
        "socket_connect_timeout": SENTINEL_SOCKET_TIMEOUT,
        "socket_timeout": SENTINEL_SOCKET_TIMEOUT,
    }
    if environ.get("REDIS_SENTINEL_PASSWORD"):
        sentinel_kwargs["password"] = environ["REDIS_SENTINEL_PASSWORD"]
    addresses = [_sentinel_address(entry) for entry in sentinels]
    hosts: list[Host] = []
    for master in masters:
        host: dict[str, Any] = {
            "sentinels": addresses,
            "master_name": master,
            "sentinel_kwargs": dict(sentinel_kwargs),
            "db": int(db),
        }
        if environ.get("REDIS_PASSWORD"):
            host["password"] = environ["REDIS_PASSWORD"]
        hosts.append(host)
    return hosts


def describe(host: Host) -> str:
    """Return a host for messages and logs, without its password."""
    if isinstance(host, dict):
        sentinels = ",".join(f"{h}:{p}" for h, p in host["sentinels"])
        return f"master {host['master_name']!r} via Sentinel {sentinels}"
    parts = urlsplit(host)
    if parts.password is None:
        return host
    netloc = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:***@{netloc}").geturl()


def shard_for(name: str | bytes, shards: int) -> int:
    """Return the index of the shard holding `name`: channels-redis' consistent hash.

    The same CRC32 ring as `channels_redis.utils._consistent_hash` (a test checks
    that both agree), so a key lives beside the channels of its name.
    """
    if shards == 1:
        return 0
    if isinstance(name, str):
        name = name.encode()
    return int((binascii.crc32(name) & 0xFFF) / (4096 / float(shards)))


def async_client(host: Host, *, max_connections: int, timeout: float, **connection_kwargs):
    """Return a redis.asyncio client whose pool waits up to `timeout` for a free connection.

    Behind Sentinel the pool asks the Sentinels for the master on every new
    connection, and a connection to a demoted master (READONLY) is dropped, so
    commands follow a failover.
    """
    import redis.asyncio
    from redis.asyncio.sentinel import Sentinel

    if not isinstance(host, dict):
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            host, max_connections=max_connections, timeout=timeout, **connection_kwargs
        )
        return redis.asyncio.Redis(connection_pool=pool)
    options = {k: v for k, v in host.items() if k not in ("sentinels", "master_name")}
    sentinel = Sentinel(host["sentinels"], sentinel_kwargs=options.pop("sentinel_kwargs", None))
    pool = _blocking_sentinel_pool_class()(
        host["master_name"],
        sentinel,
        max_connections=max_connections,
        timeout=timeout,
        **options,
        **connection_kwargs,
    )
    return redis.asyncio.Redis(connection_pool=pool)


@functools.cache
def _blocking_sentinel_pool_class() -> type:
    import redis.asyncio
    from redis.asyncio.sentinel import SentinelConnectionPool

    class BlockingSentinelConnectionPool(
        SentinelConnectionPool, redis.asyncio.BlockingConnectionPool
    ):
        """Sentinel's master discovery with the blocking pool's wait for a free connection."""

    return BlockingSentinelConnectionPool


def sync_client(host: Host, **connection_kwargs):
    """Return a blocking redis-py client for one host (its master, behind Sentinel)."""
    import redis
    from redis.sentinel import Sentinel

    if not isinstance(host, dict):
        return redis.Redis.from_url(host, **connection_kwargs)
    options = {k: v for k, v in host.items() if k not in ("sentinels", "master_name")}
    sentinel = Sentinel(host["sentinels"], sentinel_kwargs=options.pop("sentinel_kwargs", None))
    return sentinel.master_for(host["master_name"], **options, **connection_kwargs)
