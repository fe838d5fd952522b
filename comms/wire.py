"""Live room frames written pre-framed, once per process, straight to uvicorn's transport.

A server's text frame is unmasked, so the bytes of one message's frame are the same
for every socket: `text_frame` builds them once per event (cached on the shared event
dict) and each delivery is one `transport.write`. Under ASGI, each socket would frame
the text again (websockets' `Frame`, checks, a join); in the room burst that was the
largest cost after the send syscall itself (profile in the README).

Only for uvicorn's `websockets-sansio` protocol (the production default), found under
the ASGI `send` callable, and only while the connection is open, its handshake done,
no close sent and its transport writable; anything else (daphne, a paused transport,
a closing socket) returns False and the caller sends through ASGI as usual, which
also waits for the transport to drain. An uncompressed frame is valid with
permessage-deflate (RFC 7692 7.2.3: the compressor's window sees only compressed
messages).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from websockets.protocol import State

FRAME_KEY = "_text_frame"


def text_frame(text: str) -> bytes:
    """Return the unmasked, final WebSocket text frame carrying `text`."""
    payload = text.encode()
    length = len(payload)
    if length < 126:
        head = bytes((0x81, length))
    elif length < 65536:
        head = bytes((0x81, 126)) + length.to_bytes(2, "big")
    else:
        head = bytes((0x81, 127)) + length.to_bytes(8, "big")
    return head + payload


def event_frame(event: dict[str, Any]) -> bytes:
    """Return the frame of an event's `data`, built once per process for all its sockets."""
    frame = event.get(FRAME_KEY)
    if frame is None:
        frame = event[FRAME_KEY] = text_frame(event["data"])
    return frame


def raw_writer(send: Any) -> Callable[[bytes], bool] | None:
    """Return a function writing a pre-built frame to the socket behind `send`, or None.

    None unless `send` is uvicorn's websockets-sansio protocol's own `send`. The
    function returns False (nothing written) when the frame must go through ASGI.
    """
    protocol = getattr(send, "__self__", None)
    if type(protocol).__name__ != "WebSocketsSansIOProtocol":
        return None
    if not all(hasattr(protocol, name) for name in ("transport", "conn", "writable")):
        return None

    def write(frame: bytes) -> bool:
        if (
            protocol.close_sent
            or protocol.disconnected
            or not protocol.handshake_complete
            or not protocol.writable.is_set()
            or protocol.conn.state is not State.OPEN
        ):
            return False
        protocol.transport.write(frame)
        return True

    return write


def received_backlog(send: Any) -> Callable[[], int]:
    """Return a function counting the frames the server has read but the app not received.

    uvicorn's websockets-sansio protocol (found as `raw_writer` finds it) queues each
    frame it parses for the app's `receive`; anything else counts 0.
    """
    protocol = getattr(send, "__self__", None)
    queue = getattr(protocol, "queue", None)
    if type(protocol).__name__ != "WebSocketsSansIOProtocol" or queue is None:
        return lambda: 0
    return queue.qsize
