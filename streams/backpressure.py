"""Back-pressure for HTTP response bodies under daphne (`runserver`), which has none of its own.

daphne hands each `http.response.body` message straight to Twisted's
`Request.write` and returns at once (daphne#170), so a streaming response is
read as fast as the disk allows and queued in the transport's buffer: one slow
reader of a 1 GB image held ~1 GB of RSS. uvicorn instead makes `send` wait
while the socket is full. This ASGI middleware gives daphne the same: it
registers a Twisted push producer on the request, which the transport pauses
when its write buffer is full and resumes once it has drained, and after each
body chunk `send` waits until the producer may produce again. The generator
behind the response (e.g. `streams.files.file_chunks`) then reads the next
chunk only when the client has taken the previous one, so memory per download
stays about one chunk.

daphne passes no transport in the ASGI scope; its `send` is
`functools.partial(Server.handle_reply, protocol)`, from which the protocol (a
Twisted `Request`) is taken. Under any other server (uvicorn) the middleware
passes everything through untouched.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

Message = dict[str, Any]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[dict, Callable, Send], Awaitable[None]]


def daphne_request(send: Send) -> Any | None:
    """Return the daphne `WebRequest` behind an ASGI `send`, or None under another server."""
    if not isinstance(send, functools.partial) or not send.args:
        return None
    try:  # daphne is only there under runserver; other servers never need it
        from daphne.http_protocol import WebRequest
        from daphne.server import Server
    except ImportError:
        return None
    owner = getattr(send.func, "__self__", None)
    request = send.args[0]
    if isinstance(owner, Server) and isinstance(request, WebRequest):
        return request
    return None


class TransportGate:
    """A Twisted push producer that lets the response continue only while the socket drains.

    Twisted calls `pauseProducing` when the transport's buffer passes its limit
    (64 KiB), `resumeProducing` when it has been written out, and
    `stopProducing` when the connection is lost (then nothing waits any more;
    Django cancels the response on the disconnect).
    """

    def __init__(self, request: Any) -> None:
        self.request = request
        self.ready = asyncio.Event()
        self.registered = False
        self.started = False

    def register(self) -> None:
        """Start watching the transport (once, at the first body chunk of more to come)."""
        if self.started:
            return
        self.started = True
        channel = getattr(self.request, "channel", None)
        if channel is None or self.request.producer is not None:
            self.ready.set()
            return
        self.request.registerProducer(self, True)
        self.registered = True
        # Already full before this response wrote anything (pipelined requests).
        if not getattr(channel, "_waitingForTransport", False):
            self.ready.set()

    def unregister(self) -> None:
        if self.registered:
            self.registered = False
            if getattr(self.request, "channel", None) is not None:
                self.request.unregisterProducer()
        self.ready.set()

    async def drained(self) -> None:
        if not self.ready.is_set():
            await self.ready.wait()

    # IPushProducer (Twisted's camelCase names), called on the event loop's thread.
    def pauseProducing(self) -> None:
        self.ready.clear()

    def resumeProducing(self) -> None:
        self.ready.set()

    def stopProducing(self) -> None:
        self.registered = False
        self.ready.set()


def daphne_backpressure(app: ASGIApp) -> ASGIApp:
    """Wrap an ASGI application so its HTTP bodies wait for daphne's socket to drain."""

    async def application(scope: dict, receive: Callable, send: Send) -> None:
        request = daphne_request(send) if scope["type"] == "http" else None
        if request is None:
            await app(scope, receive, send)
            return
        gate = TransportGate(request)

        async def gated_send(message: Message) -> None:
            if message["type"] != "http.response.body":
                await send(message)
            elif message.get("more_body", False):
                gate.register()
                await send(message)
                await gate.drained()
            else:
                # Unregistered before the last chunk: finishing a request that still has
                # a producer makes Twisted log an error.
                gate.unregister()
                await send(message)

        try:
            await app(scope, receive, gated_send)
        finally:
            gate.unregister()

    return application
