"""A socket cut off by the fan-out is told so and closed, never silently skipped."""

from __future__ import annotations

import pytest

from streams.hub import get_hub

pytestmark = pytest.mark.django_db(transaction=True)


async def test_socket_cut_off_by_the_hub_gets_too_slow_then_1013(room, join):
    """The hub cuts a subscriber off when its queue overflows or events were lost."""
    bob, _, _ = await join(room.bob)
    get_hub().cut_off_stream("room.ops")

    error = await bob.receive_json_from(5)
    assert error["type"] == "error"
    assert error["code"] == "too_slow"
    closed = await bob.receive_output(5)
    assert closed["type"] == "websocket.close"
    assert closed["code"] == 1013
