"""The socket's writer task (TeamRoomConsumer._write_outbox): which messages it stores together.

The store is replaced in-process by a recorder: what is checked is how the queued
messages are cut into batches, not the database (comms/tests/test_bulk.py).
"""

from __future__ import annotations

import asyncio
import types

import pytest

from comms import consumers
from comms.consumers import OUTBOX_BATCH, TeamRoomConsumer


@pytest.fixture
def socket(monkeypatch, settings):
    """A consumer's posting half, its store recording each batch of bodies."""
    settings.CHAT_RATE_MESSAGES = 0
    consumer = TeamRoomConsumer()
    consumer.team = types.SimpleNamespace(slug="ops")
    consumer.user = types.SimpleNamespace(pk=1)
    consumer.batches = []

    async def store(*, team, author, items, publisher):
        consumer.batches.append([body for body, _ in items])
        await asyncio.sleep(0.001)  # the store's thread hop: later frames queue meanwhile
        return [(types.SimpleNamespace(id=0), True) for _ in items]

    monkeypatch.setattr(consumers, "messages_post_async", store)
    return consumer


async def _written(consumer: TeamRoomConsumer) -> None:
    while consumer._writer is None or not consumer._writer.done():
        await asyncio.sleep(0.001)


async def test_a_lone_message_is_taken_in_the_writer_s_first_turn(socket):
    """Nothing read and unhandled: the writer does not wait a turn for more."""
    await socket._post("hello", "c0")
    await asyncio.sleep(0)  # the writer task's first turn
    assert socket.batches == [["hello"]]
    await _written(socket)


async def test_frames_already_read_join_the_first_batch(socket):
    """The server has read 9 more frames when the first is handled: one batch of 10."""
    backlog = list(range(1, 10))
    socket._backlog = lambda: len(backlog)

    async def consumer_loop():
        # As await_many_dispatch does: one queued frame handled after another,
        # a few loop turns apart.
        while backlog:
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            n = backlog.pop(0)
            await socket._post(f"m{n}", f"c{n}")

    await socket._post("m0", "c0")
    await consumer_loop()
    await _written(socket)
    assert socket.batches == [[f"m{n}" for n in range(10)]]


async def test_a_burst_is_stored_in_order_in_batches_of_at_most_outbox_batch(socket):
    """150 queued at once: the first batch is stored (and published) before the rest."""
    count = 150
    for n in range(count):
        await socket._post(f"m{n}", f"c{n}")
    await _written(socket)
    sizes = [len(batch) for batch in socket.batches]
    assert max(sizes) <= OUTBOX_BATCH < count
    assert [body for batch in socket.batches for body in batch] == [f"m{n}" for n in range(count)]
