"""Body chunks written straight to uvicorn's transport, so an idle stream's task need not wake.

With 1,000 open streams, waking each stream's task to pass one event through
its generator, the handoff loop and uvicorn's `send` cost ~31 µs per stream
(bench/telemetry.py, README). The hub can instead write an event batch's bytes,
chunked once for all streams, to each idle stream's socket in its dispatch
(`streams.sse`): one `transport.write` per stream, what `send` itself ends in.

Only for uvicorn's httptools protocol (the production default), found under the
ASGI `send` callable as `comms.wire` finds the WebSocket one, and only while the
response is a chunked body still open, the client connected and the transport
writable. Anything else (daphne, h11, a HEAD request, a paused transport, a
closing socket) returns False and the caller goes through ASGI `send`, which
also waits for the transport to drain: back-pressure is kept.

`handoff` publishes the writer of the stream it writes in `body_writer`, a
context variable the stream's generator (run by that task) reads.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

BodyWriter = Callable[[bytes], bool]

# The writer of the stream the current task writes (set by streams.handoff), or None.
body_writer: ContextVar[BodyWriter | None] = ContextVar("body_writer", default=None)


def chunk(body: bytes) -> bytes:
    """Return `body` as one HTTP/1.1 chunk, as uvicorn's `send` frames a body message."""
    return b"%x\r\n%b\r\n" % (len(body), body)


def raw_body_writer(send: Any) -> BodyWriter | None:
    """Return a function writing a pre-built chunk to the response behind `send`, or None.

    None unless `send` is uvicorn's httptools `RequestResponseCycle.send`. The
    function returns False (nothing written) when the chunk must go through ASGI.
    """
    cycle = getattr(send, "__self__", None)
    kind = type(cycle)
    if kind.__name__ != "RequestResponseCycle" or not kind.__module__.endswith("httptools_impl"):
        return None
    if not all(hasattr(cycle, name) for name in ("transport", "flow", "chunked_encoding")):
        return None
    transport, flow = cycle.transport, cycle.flow

    def write(data: bytes) -> bool:
        if (
            cycle.chunked_encoding is not True
            or cycle.response_complete
            or cycle.disconnected
            or flow.write_paused
            or transport.is_closing()
        ):
            return False
        transport.write(data)
        return True

    return write
