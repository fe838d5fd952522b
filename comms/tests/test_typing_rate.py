"""`typing` reaches the others at most once a second per socket (README, the socket protocol)."""

from __future__ import annotations

import asyncio
import time

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


async def typings_received(communicator) -> int:
    count = 0
    while not await communicator.receive_nothing(0.3):
        frame = await communicator.receive_json_from()
        count += frame["type"] == "typing"
    return count


async def test_typing_is_sent_at_most_once_a_second_per_socket(room, join):
    alice, _, _ = await join(room.alice)
    alice_tab2, _, _ = await join(room.alice)
    bob, _, _ = await join(room.bob)
    for _ in range(2):
        await typings_received(alice)
    await typings_received(alice_tab2)

    started = time.monotonic()
    for _ in range(20):
        await alice.send_json_to({"type": "typing"})
        await asyncio.sleep(0.01)
    elapsed = time.monotonic() - started
    # One at once, then at most one per further whole second the burst lasted.
    assert 1 <= await typings_received(bob) <= 1 + int(elapsed)

    # The limit is per socket: the other tab's typing is not held back by the first.
    await alice_tab2.send_json_to({"type": "typing"})
    assert await typings_received(bob) == 1

    # And per second, not once for good: after a second the first tab is heard again.
    await asyncio.sleep(1.05)
    await alice.send_json_to({"type": "typing"})
    assert await typings_received(bob) == 1
    for communicator in (alice, alice_tab2, bob):
        await communicator.disconnect()
