"""Live delivery of a batch (comms.delivery): in-order messages leave in one write, in order."""

from __future__ import annotations

import asyncio
from typing import Any

from comms.delivery import RoomDeliveryMixin
from comms.wire import text_frame
from streams.subscriptions import Subscription


class _Socket(RoomDeliveryMixin):
    """The delivery half alone: what it writes raw and what it sends through ASGI, in order."""

    def __init__(self, *, writable: bool = True) -> None:
        self.floor = 0
        self.sent_low = 1
        self._held: dict[int, dict[str, Any]] = {}
        self._held_since = 0.0
        self._sent_below: set[int] = set()
        self._replay_lock = asyncio.Lock()
        self.closing = False
        self.presence_id = "me"
        self.sub = Subscription("room.ops", 1000)
        self.out: list[tuple[str, Any]] = []
        self.writable = writable

    def _write_raw(self, data: bytes) -> bool:
        if not self.writable:
            return False
        self.out.append(("write", data))
        return True

    async def _send_live(self, message: dict[str, Any]) -> None:
        self.out.append(("asgi", message["text"]))

    async def send(self, text_data: str) -> None:
        self.out.append(("asgi", text_data))


def _message(i: int) -> dict[str, Any]:
    return {"event": "message", "id": i, "prev": i - 1, "data": f'{{"id":{i}}}'}


def _presence() -> dict[str, Any]:
    return {"event": "presence", "id": None, "origin": "other", "data": '{"type":"presence"}'}


async def _deliver(socket: _Socket, events: list[dict[str, Any]]) -> None:
    socket.sub.offer_many(events)
    task = asyncio.get_running_loop().create_task(socket._forward())
    while socket.sub.qsize():
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.01)
    task.cancel()


async def test_a_queued_batch_of_messages_leaves_in_one_write_in_id_order():
    socket = _Socket()
    await _deliver(socket, [_message(i) for i in range(1, 6)])
    assert socket.out == [("write", b"".join(text_frame(f'{{"id":{i}}}') for i in range(1, 6)))]
    assert socket.floor == 5


async def test_another_event_in_the_batch_keeps_its_place_between_the_writes():
    socket = _Socket()
    await _deliver(socket, [_message(1), _message(2), _presence(), _message(3)])
    assert socket.out == [
        ("write", text_frame('{"id":1}') + text_frame('{"id":2}')),
        ("asgi", '{"type":"presence"}'),
        ("write", text_frame('{"id":3}')),
    ]


async def test_a_message_ahead_of_its_predecessor_waits_inside_a_batch():
    """Message 3 is queued before 2 (another worker's publish overtook it): 2, then 3."""
    socket = _Socket()
    await _deliver(socket, [_message(1), _message(3), _message(2)])
    frames = [data for kind, data in socket.out if kind == "write"]
    assert b"".join(frames) == b"".join(text_frame(f'{{"id":{i}}}') for i in (1, 2, 3))
    assert socket.floor == 3 and not socket._held


async def test_a_paused_transport_gets_each_message_through_asgi_in_order():
    socket = _Socket(writable=False)
    await _deliver(socket, [_message(i) for i in range(1, 4)])
    assert socket.out == [("asgi", f'{{"id":{i}}}') for i in range(1, 4)]
