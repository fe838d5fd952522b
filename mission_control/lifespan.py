"""ASGI lifespan: end live streams as soon as the worker is told to stop.

uvicorn handles SIGTERM itself: it stops accepting, closes WebSockets with 1012
("service restart") and then waits up to --timeout-graceful-shutdown for open
HTTP responses. SSE responses never end on their own, so without help each one
would hold the worker until that timeout and then be cut mid-stream. At start-up
this chains a handler in front of the server's own: on SIGTERM or SIGINT every
SSE stream of the process ends with `event: restart`, and the server's handler
runs as before. (The lifespan shutdown event comes only after the connections
are closed, too late for this.)
"""

from __future__ import annotations

import asyncio
import signal
import threading
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _chain_stop_handlers(loop: asyncio.AbstractEventLoop) -> None:
    # Imported here: streams.sse loads Django models, and asgi.py wraps the
    # application before the apps are loaded.
    from streams.sse import drain_live_streams

    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread
    for signum in STOP_SIGNALS:
        previous = signal.getsignal(signum)

        def on_stop(received: int, frame: Any, previous: Any = previous) -> None:
            loop.call_soon_threadsafe(drain_live_streams)
            if callable(previous):
                previous(received, frame)
            elif previous == signal.SIG_DFL:
                # No server handler: the signal's default action (terminate), as if
                # this handler were not here.
                signal.signal(received, signal.SIG_DFL)
                signal.raise_signal(received)

        signal.signal(signum, on_stop)


async def lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer the ASGI lifespan protocol; install the stop handlers at start-up."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            _chain_stop_handlers(asyncio.get_running_loop())
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
