"""The channel layers the hub uses: channels-redis tuned for one long-lived reader per process.

`hub_layer()` picks the layer the hub publishes and subscribes through. Over
Redis that layer numbers each stream's messages (epoch, n) as it publishes them,
so lost ones are noticed, and its reconnect hook tells the loop's listener (the
hub) when the pub/sub connection drops and comes back.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import os
import re
import uuid
import weakref
from collections.abc import Callable
from typing import Any

from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels_redis.core import RedisChannelLayer as _RedisChannelLayer
from channels_redis.pubsub import (
    RedisPubSubChannelLayer,
    RedisPubSubLoopLayer,
    RedisSingleShardConnection,
)
from channels_redis.utils import _wrap_close, decode_hosts
from django.conf import settings

from mission_control.redis_topology import describe

logger = logging.getLogger(__name__)


class RedisChannelLayer(_RedisChannelLayer):
    """The core channels-redis layer with a short blocking pop.

    A cancelled `receive()` only returns once Redis answers its BZPOPMIN, so the
    default 5 s timeout made every worker shutdown (and every test using Redis)
    wait up to 5 s. One extra idle round trip per second per process is cheap.
    """

    brpop_timeout = 1


async def _call_hook(hook: Callable[[int], Any] | None, shard: int) -> None:
    if hook is None:
        return
    try:
        result = hook(shard)
        if inspect.isawaitable(result):
            await result
    except Exception:
        logger.exception("pub/sub connection hook failed")


# Number a message and publish it in one atomic step. One key per stream holds
# the counter and the epoch it counts in: a Redis that comes back empty has
# neither, so its first number is 1 again under a new epoch, and receivers see
# that the counter restarted instead of taking its numbers for duplicates (one
# key: an eviction cannot take one without the other). Numbers leave in order,
# so publishers never interleave. The frame is `#<epoch>:<n>:<payload>`.
# A Sentinel failover may lose increments the old master never replicated, so
# the new master can hand out numbers already seen; it also closes every pub/sub
# connection to the demoted master (CLIENT KILL), so each hub reconnects, probes
# and cuts its subscribers off to replay by id (streams.recovery), which covers it.
_PUBLISH_NUMBERED = """
redis.call('HSETNX', KEYS[1], 'e', ARGV[3])
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
local e = redis.call('HGET', KEYS[1], 'e')
redis.call('PUBLISH', ARGV[1], '#' .. e .. ':' .. string.format('%d', n) .. ':' .. ARGV[2])
return n
"""
_NUMBERED = b"#"


def _describe(host: dict[str, Any]) -> str:
    """Return a decoded channels-redis host for logs, without its password."""
    return describe(host.get("address", host))


class _ReportingShardConnection(RedisSingleShardConnection):
    """A shard's pub/sub connection that reports losing and regaining Redis.

    redis-py re-subscribes a pub/sub connection by itself when it reconnects, so
    channels-redis never learns of the outage, and everything published meanwhile
    is gone (channels-redis#256). The layer's `on_disconnect` / `on_reconnect`
    hooks exist for that, but 4.3 stores them without calling them: this calls
    `on_disconnect(index)` when the receive loop first fails, and `on_reconnect(index)`
    each time the connection is made again (after redis-py has re-sent the SUBSCRIBE).
    `index` is this shard's place in the layer's hosts: with several shards only the
    groups living on it were cut, and only those need a resync.
    """

    def __init__(self, host, channel_layer, index: int) -> None:
        super().__init__(host, channel_layer)
        self.index = index
        self._watched = None
        self._down = False
        self._publish_numbered = None

    async def publish_numbered(self, channel: str, payload: bytes, key: str, epoch: str) -> int:
        """Number the payload with the counter at `key` and PUBLISH it, in one round trip."""
        async with self._lock:
            self._ensure_redis()
            if self._publish_numbered is None:
                # redis-py's Script loads itself again after a Redis restart (NOSCRIPT).
                self._publish_numbered = self._redis.register_script(_PUBLISH_NUMBERED)
            return await self._publish_numbered(keys=[key], args=[channel, payload, epoch])

    def _watch_connection(self) -> None:
        connection = self._pubsub.connection if self._pubsub is not None else None
        if connection is not None and connection is not self._watched:
            # Kept as a weak method by redis-py; called on every later (re)connect.
            connection.register_connect_callback(self._reconnected)
            self._watched = connection

    async def _reconnected(self, connection) -> None:
        self._down = False
        logger.warning("Redis pub/sub connection to %s is back", _describe(self.host))
        await _call_hook(self.channel_layer.on_reconnect, self.index)

    async def subscribe(self, channel) -> None:
        await super().subscribe(channel)
        self._watch_connection()

    async def flush(self) -> None:
        await super().flush()
        self._watched = None
        self._publish_numbered = None

    async def _do_receiving(self) -> None:
        while True:
            try:
                if self._pubsub and self._pubsub.subscribed:
                    self._watch_connection()
                    message = await self._pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=0.1
                    )
                    self._receive_message(message)
                else:
                    await asyncio.sleep(0.1)
            except (asyncio.CancelledError, GeneratorExit):
                raise
            except Exception as exc:
                if isinstance(exc, TimeoutError) and asyncio.current_task().cancelling():
                    raise  # our own cancellation, turned into a timeout on the way
                if not self._down:
                    self._down = True
                    logger.warning(
                        "Redis pub/sub connection to %s lost: %r", _describe(self.host), exc
                    )
                    await _call_hook(self.channel_layer.on_disconnect, self.index)
                # redis-py reconnects on the next read; retry once a second meanwhile.
                await asyncio.sleep(1)


class _ReportingLoopLayer(RedisPubSubLoopLayer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        hosts = kwargs.get("hosts", args[0] if args else None)
        self._shards = [
            _ReportingShardConnection(host, self, index)
            for index, host in enumerate(decode_hosts(hosts))
        ]

    async def new_channel(self, prefix: str = "specific.") -> str:
        """Return a new subscribed channel; on failure leave no half-made channel behind."""
        channel = f"{self.prefix}{prefix}{uuid.uuid4().hex}"
        try:
            await self._subscribe_to_channel(channel)
        except BaseException:
            self.channels.pop(channel, None)
            raise
        return channel


class ReportingPubSubChannelLayer(RedisPubSubChannelLayer):
    """channels-redis' pub/sub layer whose `on_disconnect` / `on_reconnect` hooks fire.

    The hooks are plain callables or coroutine functions taking the index of the
    shard (in `hosts`) whose connection dropped or came back, called on the event
    loop that owns it; `shard_of(group)` says which shard a group lives on. It also
    numbers group messages per group (`group_send_numbered`): received, such a
    message carries `e` (the counter's epoch) and `n` (its number).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # A fresh epoch candidate per message; only used when the counter is missing.
        self._epoch_prefix = os.urandom(6).hex()
        self._epochs = itertools.count()

    async def group_send_numbered(self, group: str, message: dict[str, Any]) -> int:
        """Send a message to a group numbered by the group's counter; return its number."""
        layer = self._get_layer()
        channel = layer._get_group_channel_name(group)
        return await layer._get_shard(channel).publish_numbered(
            channel,
            self.serialize(message),
            f"{layer.prefix}hub.seq.{group}",
            f"{self._epoch_prefix}.{next(self._epochs)}",
        )

    def shard_of(self, group: str) -> int:
        """Return the index of the shard a group's channel lives on (this loop's layer).

        channels-redis' own choice (`_get_shard`: its consistent hash of the group's
        channel name), so it cannot drift from where the SUBSCRIBE went.
        """
        layer = self._get_layer()
        return layer._get_shard(layer._get_group_channel_name(group)).index

    def deserialize(self, message: bytes) -> dict[str, Any]:
        if message[:1] != _NUMBERED:
            return super().deserialize(message)
        epoch, number, payload = message[1:].split(b":", 2)
        result = super().deserialize(payload)
        result["e"] = epoch.decode()
        result["n"] = int(number)
        return result

    def _get_layer(self) -> _ReportingLoopLayer:
        loop = asyncio.get_running_loop()
        try:
            return self._layers[loop]
        except KeyError:
            layer = _ReportingLoopLayer(*self._args, **self._kwargs, channel_layer=self)
            self._layers[loop] = layer
            _wrap_close(self, loop)
            return layer


# Each event loop's listener (its hub), told when its pub/sub connection drops or returns.
_listeners: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()


def listen(listener: Any) -> None:
    """Tell `listener.redis_lost(shard)` / `redis_back(shard)` of this loop's pub/sub outages."""
    _listeners[asyncio.get_running_loop()] = listener


def _on_redis_lost(shard: int) -> None:
    listener = _listeners.get(asyncio.get_running_loop())
    if listener is not None:
        listener.redis_lost(shard)


def _on_redis_back(shard: int) -> None:
    listener = _listeners.get(asyncio.get_running_loop())
    if listener is not None:
        listener.redis_back(shard)


_GROUP_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]")


def group_name(stream: str) -> str:
    """Return the channel-layer group for a stream name like 'telemetry.curiosity'."""
    return "hub." + _GROUP_UNSAFE.sub("_", stream)[:90]


def hub_layer():
    """Return the channel layer the hub publishes and subscribes through.

    With Redis the hub uses channels-redis' pub/sub layer: one PUBLISH per event
    and one SUBSCRIBE per stream per process is exactly the fan-out wanted, its
    receive is cancellable at once, and it keeps one connection per event loop.
    It is at-most-once across a Redis reconnect, which the store-then-publish
    design covers: its reconnect hook tells this loop's hub, which makes its
    subscribers replay from the database by id. Without Redis the shared
    in-memory layer serves the single process.
    """
    layer = get_channel_layer()
    if isinstance(layer, InMemoryChannelLayer):
        return layer
    config = settings.CHANNEL_LAYERS[DEFAULT_CHANNEL_LAYER].get("CONFIG", {})
    key = (tuple(map(str, config.get("hosts", ()))), config.get("prefix", "asgi"))
    if key not in _pubsub_layers:
        _pubsub_layers[key] = ReportingPubSubChannelLayer(
            hosts=config.get("hosts"),
            prefix=config.get("prefix", "asgi"),
            on_disconnect=_on_redis_lost,
            on_reconnect=_on_redis_back,
        )
    return _pubsub_layers[key]


_pubsub_layers: dict[tuple, ReportingPubSubChannelLayer] = {}
