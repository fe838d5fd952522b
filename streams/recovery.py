"""How a hub recovers from Redis outages without losing or doubling anything.

A mixin of `streams.hub.Hub`, kept apart because it is the rare path: it reads
and changes the hub's state (`_subscribers`, `_joined`, `_gaps`, `_settle`, ...).

- The pub/sub layer's reconnect hook (`redis_back`) and a join that failed while
  Redis was away (`_join_missing`) put a probe on each affected stream: with
  several shards, the hook names the shard that came back and only the streams
  whose group lives on it are probed; the other shards' streams never stopped
  and are left alone. When the
  hub receives its own probe, the subscription works again: only then are the
  stream's subscribers cut off (reason "resync"), so their replay from the
  database holds everything stored during the outage and live delivery resumes
  behind it. Nobody is cut off while Redis is away.
- A publish that failed (`_resync_later`) sends a resync message once Redis
  answers, and every worker cuts that stream's subscribers off.
- Numbers missing past the grace period cut a stream's subscribers off too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from django.conf import settings

from .layers import group_name

logger = logging.getLogger(__name__)

# Sent by a hub to its own group after (re)joining: its arrival proves the
# subscription works, so cutting subscribers off after it cannot lose anything.
PROBE_MESSAGE_TYPE = "hub.probe"
# Sent by a publisher once Redis works again after a publish failed: every
# process cuts that stream's subscribers off so they replay what was stored.
RESYNC_MESSAGE_TYPE = "hub.resync"
PROBE_RESEND_SECONDS = 1.0
RESYNC_RETRY_SECONDS = 0.5


class OutageRecovery:
    """The hub's recovery from Redis outages: probes, resyncs, late joins, lost numbers."""

    def _dispatch_control(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        stream = message.get("stream")
        if kind == PROBE_MESSAGE_TYPE:
            pending = self._probes.get(stream)
            if pending is not None and pending[0] == message.get("token"):
                del self._probes[stream]
                logger.info("stream %s resubscribed; subscribers resume by id", stream)
                self.cut_off_stream(stream, reason="resync")
        elif kind == RESYNC_MESSAGE_TYPE and stream in self._subscribers:
            logger.info("a publish on %s had failed; subscribers resume by id", stream)
            self.cut_off_stream(stream, reason="resync")

    def _shard_of(self, stream: str) -> int:
        """Return the index of the Redis shard the stream's group lives on (0 in memory)."""
        return self.layer.shard_of(group_name(stream)) if self._numbered else 0

    def redis_lost(self, shard: int | None = None) -> None:
        """Note that a shard's pub/sub connection dropped (from the layer's hook).

        `shard` is its index in the hosts; None stands for every shard. Subscribers
        are not cut off now: what is stored during the outage is only replayable
        once Redis is back, and a client cut off now would come back, find nothing
        live, and wait anyway. They are cut off after recovery.
        """
        self._pubsub_down.add(shard)
        logger.warning("Redis pub/sub lost: live delivery paused, resync after recovery")

    def redis_back(self, shard: int | None = None) -> None:
        """Probe the shard's joined streams, then cut their subscribers off (reconnect hook).

        Only the streams whose group lives on `shard` (every stream when None): a
        shard's connection is its own, so while it was away the other shards kept
        delivering, and cutting their subscribers off would make every client of
        every worker reconnect for one shard's blip. Only schedules: the hook runs
        inside the layer's connection handling.
        """
        if shard is None:
            self._pubsub_down.clear()
        else:
            self._pubsub_down.discard(shard)
        streams = [s for s in self._joined if shard is None or self._shard_of(s) == shard]
        if not streams:
            return
        for stream in streams:
            self._probes[stream] = (uuid.uuid4().hex, None)
        self._ensure_watchdog()
        self._wake.set()

    def _resync_later(self, stream: str) -> None:
        self._unpublished.add(stream)
        if self._resyncer is None or self._resyncer.done():
            self._resyncer = asyncio.get_running_loop().create_task(self._send_resyncs())

    async def _send_resyncs(self) -> None:
        """Tell every process to cut off a stream whose publish failed, once Redis answers.

        The event was stored before its publish failed, so a subscriber that
        replays after this message finds it; the reconnect hook alone would miss
        a publish that failed on this process's connection while the others' worked.
        """
        while self._unpublished:
            await asyncio.sleep(RESYNC_RETRY_SECONDS)
            away: set[int] = set()  # shards that failed this round: their streams wait
            for stream in tuple(self._unpublished):
                shard = self._shard_of(stream)
                if shard in away:
                    continue
                try:
                    await self.layer.group_send(
                        group_name(stream), {"type": RESYNC_MESSAGE_TYPE, "stream": stream}
                    )
                except Exception:
                    away.add(shard)
                    continue
                self._unpublished.discard(stream)

    async def _watch(self) -> None:
        """Join streams that could not be joined, send probes, and notice lost events."""
        loop = asyncio.get_running_loop()
        interval = max(0.05, settings.STREAM_GAP_GRACE_SECONDS / 4)
        while self._subscribers:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._wake.wait()
            self._wake.clear()
            now = loop.time()
            await self._join_missing()
            await self._send_probes(now)
            for stream, tracker in tuple(self._gaps.items()):
                if tracker.lost(now):
                    logger.warning("events lost on stream %s; subscribers resume by id", stream)
                    self.cut_off_stream(stream, reason="resync")

    async def _join_missing(self) -> None:
        # A shard still away is skipped until next round; the others' streams go on.
        away: set[int] = set()
        for stream in tuple(self._subscribers):
            if stream in self._joined:
                continue
            shard = self._shard_of(stream)
            if shard in away:
                continue
            if self._settling(stream):
                continue  # a join or leave of it is under way: never wait behind it here
            try:
                await self._settle(stream)
            except Exception:
                away.add(shard)  # still away; next round
                continue
            if stream in self._joined:
                logger.warning("joined stream %s after Redis came back", stream)
                self._probes[stream] = (uuid.uuid4().hex, None)

    async def _send_probes(self, now: float) -> None:
        away: set[int] = set()  # as in _join_missing
        for stream, (token, sent) in tuple(self._probes.items()):
            if sent is not None and now - sent < PROBE_RESEND_SECONDS:
                continue
            shard = self._shard_of(stream)
            if shard in away:
                continue
            probe = {"type": PROBE_MESSAGE_TYPE, "stream": stream, "token": token}
            try:
                await self.layer.group_send(group_name(stream), probe)
            except Exception:
                away.add(shard)  # still away; next round
                continue
            if self._probes.get(stream, (None,))[0] == token:
                self._probes[stream] = (token, now)
