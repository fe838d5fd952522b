"""Pre-framed live frames (comms.wire): the bytes, and a real uvicorn carrying them."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from comms.wire import event_frame, raw_writer, text_frame


def _parse(data: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        return done.value
    raise AssertionError("incomplete frame")


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 70000])
def test_text_frame_is_a_final_unmasked_text_frame_of_any_length(size):
    text = ("é" * size)[: size // 2] + "x" * (size - size // 2)
    frame = _parse(text_frame(text))
    assert frame.opcode is Opcode.TEXT and frame.fin and not frame.rsv1
    assert frame.data.decode() == text


def test_an_event_is_framed_once_for_all_its_sockets():
    event = {"event": "message", "id": 1, "data": '{"type":"message"}'}
    assert event_frame(event) is event_frame(event)


def test_only_uvicorns_sansio_send_is_written_to_directly():
    async def asgi_send(message):
        pass

    assert raw_writer(asgi_send) is None
    assert raw_writer(None) is None


@pytest.mark.slow
def test_pre_framed_messages_arrive_intact_on_uvicorn_with_and_without_deflate(
    server_process, room, token_for
):
    server = server_process(server="uvicorn", env={"CHAT_RATE_MESSAGES": "0"})
    alice_token, bob_token = token_for(room.alice), token_for(room.bob)
    # Sent back to back: the later ones reach each socket as one batch, in one write.
    bodies = ["short", ("ünïcødé " * 40).strip(), "x" * 3999, *(f"m{i}" for i in range(50))]

    async def join(token: str, compression):
        socket = await connect(
            f"ws://127.0.0.1:{server.port}/ws/comms/ops/?token={token}",
            origin="http://127.0.0.1",
            compression=compression,
        )
        for _ in range(2):  # history, presence
            await asyncio.wait_for(socket.recv(), 5)
        return socket

    async def scenario():
        deflate = await join(alice_token, "deflate")
        plain = await join(bob_token, None)
        await asyncio.wait_for(deflate.recv(), 5)  # bob joined
        for i, body in enumerate(bodies):
            await plain.send(json.dumps({"type": "message", "body": body, "client_id": f"w{i}"}))
        for socket in (deflate, plain):
            got = []
            while len(got) < len(bodies):
                frame = json.loads(await asyncio.wait_for(socket.recv(), 5))
                if frame["type"] == "message":
                    got.append(frame["body"])
            assert got == bodies
        await deflate.close()
        await plain.close()

    asyncio.run(scenario())
