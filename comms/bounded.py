"""Bounded waits on Redis for a room socket, the call going on in the background past them.

A room socket handles one frame at a time, and its connect and disconnect
handlers hold it the same way. A Redis that hangs (connections open, nothing
answered: frozen, partitioned) held each presence call, typing or presence
announcement and pending publish until redis-py gave up on it (its socket
timeout, 5 s), one after another: a chat message sent right after a typing
frame waited 5 s more, a join 15 s, a disconnect 10 s per message published
before it. `wait_at_most` waits for such a call a bounded time and leaves it
running: never cancelled, since a publish shares its shard's connection with
every other publish of the worker, and a presence write that lands late still
counts (the heartbeat keeps it fresh).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Calls left running past their wait, referenced until they end (the loop keeps only weak ones).
_running: set[asyncio.Future] = set()


async def wait_at_most(seconds: float, work: Awaitable[T], *, what: str) -> asyncio.Future[T]:
    """Start `work`, wait for it `seconds` at most, and return its task, done or not.

    A task still running goes on in the background; a failure it ends with is
    logged then (a warning: nothing of it is stored, or what it announces is).
    Cancelling the caller does not cancel the task.
    """
    task = asyncio.ensure_future(work)
    # Referenced from the start: a caller cancelled during the wait leaves it running too.
    _running.add(task)
    task.add_done_callback(_running.discard)
    await asyncio.wait({task}, timeout=seconds)
    if not task.done():
        task.add_done_callback(lambda done: _ended_late(done, what))
    return task


def _ended_late(task: asyncio.Future, what: str) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("%s failed after its wait: %r", what, task.exception())
