"""Odd WebSocket input that once broke the socket: paths no room has, unencodable client ids."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator

from comms.models import Message

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("path", ["/", "/ws/comms/", "/ws/comms/ops/extra", "/ws/nothing"])
async def test_a_path_that_is_no_room_is_closed_4404(room, ws_app, path):
    """Before, URLRouter raised (no route): the server answered the handshake with HTTP 500."""
    communicator = WebsocketCommunicator(ws_app, path)
    communicator.scope["user"] = room.alice
    connected, _ = await communicator.connect()
    assert connected
    output = await communicator.receive_output(2)
    assert output == {"type": "websocket.close", "code": 4404}
    await communicator.disconnect()


async def test_a_client_id_with_a_lone_surrogate_is_refused_without_echoing_it(room, join):
    """The refusal named the client_id, which has no UTF-8 form: the server could not send it
    and closed the socket (1011 under daphne, an abort under uvicorn)."""
    alice, _, _ = await join(room.alice)
    await alice.send_to(text_data='{"type": "message", "body": "ok", "client_id": "\\ud800"}')
    error = await alice.receive_from()
    error.encode("utf-8")  # what the server does before the frame goes on the wire
    assert '"code":"bad_field"' in error and "client_id" not in error.split('"detail"')[0]
    await alice.send_json_to({"type": "message", "body": "still here"})
    assert (await alice.receive_json_from())["body"] == "still here"
    assert await Message.objects.acount() == 1
    await alice.disconnect()
