"""The SSE subscribers of bench/telemetry.py, in one or several client processes.

Each process runs asyncio Protocols (no task per connection, one regex over
each complete chunk) on uvloop, and records `(id, receipt time)` for every
`id:` line. Receipt times are `time.perf_counter()`, CLOCK_MONOTONIC on Linux,
so they compare with the ingester's clock in the parent process. Several
processes let the subscribers be read in parallel, as 1,000 browsers would
be, instead of one after another on one client loop.

The pool's subscribers (`DeferredSubscriber`) only stamp and keep each chunk
while frames arrive and parse them once the run is over: with 1,000 streams
read one after another by one loop, the parsing of every stream read before
a given one delayed that one's receipt stamp (the subscribers of a browser
each parse in their own process).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import re
import resource
import time
from dataclasses import dataclass, field

import psutil

ID_LINE = re.compile(rb"(?m)^id: (\d+)\r?$")


class SSESubscriber(asyncio.Protocol):
    """A minimal SSE client: records (seq, receipt time) for each `id:` line."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.ready = asyncio.get_running_loop().create_future()
        self.headers_done = False
        self.received: list[tuple[int, float]] = []
        self.overflowed = False
        self.lost = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc) -> None:
        self.lost = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"connection lost: {exc}"))

    def data_received(self, data: bytes) -> None:
        self.parse(data, time.perf_counter())

    def parse(self, data: bytes, now: float) -> None:
        """Read a chunk received at `now` (complete events only, the rest is kept)."""
        buffer = self.buffer + data
        if not self.headers_done:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            status = buffer[: buffer.find(b"\r\n")]
            if b" 200 " not in status:
                self.ready.set_exception(ConnectionError(status.decode()))
                return
            self.headers_done = True
            buffer = buffer[end + 4 :]
        cut = buffer.rfind(b"\n\n")
        if cut < 0:
            self.buffer = buffer
            return
        complete, self.buffer = buffer[: cut + 2], buffer[cut + 2 :]
        if not self.ready.done() and b"retry: " in complete:
            self.ready.set_result(None)
        for match in ID_LINE.finditer(complete):
            self.on_id(int(match.group(1)), now)
        if b"event: overflow" in complete:
            self.overflowed = True

    def on_id(self, event_id: int, now: float) -> None:
        """Record an event id and its receipt time (bench/soak.py counts instead of keeping)."""
        self.received.append((event_id, now))


class DeferredSubscriber(SSESubscriber):
    """Once subscribed, stamps and keeps each chunk; `parse_kept` reads them later.

    Parsing the same bytes afterwards gives each id the receipt time of the chunk
    that completed its event, exactly as parsing on receipt does; only the work
    leaves the receiving loop, where it delayed the streams read after this one.
    """

    # The last time any deferred subscriber of this process received a chunk.
    last_chunk_at = 0.0

    def __init__(self, request: bytes) -> None:
        super().__init__(request)
        self.kept: list[tuple[float, bytes]] = []

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if self.ready.done():
            self.kept.append((now, data))
            DeferredSubscriber.last_chunk_at = now
        else:
            self.parse(data, now)

    def parse_kept(self) -> None:
        kept, self.kept = self.kept, []
        for now, data in kept:
            self.parse(data, now)


async def connect_all(
    port: int, path: str, token: str, count: int, kind: type[SSESubscriber] = SSESubscriber
) -> list[SSESubscriber]:
    """Open `count` streams and return once each has read `retry:` (it is subscribed)."""
    loop = asyncio.get_running_loop()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    ).encode()
    # Few at a time: each connect holds a database connection until it streams.
    limit = asyncio.Semaphore(20)
    subscribers: list[SSESubscriber] = []

    async def one() -> None:
        async with limit:
            _, protocol = await loop.create_connection(lambda: kind(request), "127.0.0.1", port)
            subscribers.append(protocol)
            await asyncio.wait_for(protocol.ready, 60)

    await asyncio.gather(*(one() for _ in range(count)))
    return subscribers


def close_all(subscribers: list[SSESubscriber]) -> None:
    for sub in subscribers:
        if sub.transport is not None:
            sub.transport.close()


@dataclass
class Results:
    """What the subscribers of all client processes recorded."""

    received: list[list[tuple[int, float]]] = field(default_factory=list)
    overflowed: int = 0
    alive: int = 0


def _client_main(conn, port: int, path: str, token: str, count: int) -> None:
    """One client process: connect, then answer the parent's commands until 'close'."""
    import uvloop

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        subscribers = await connect_all(port, path, token, count, DeferredSubscriber)
        conn.send("ready")

        def parse_all() -> None:
            for subscriber in subscribers:
                subscriber.parse_kept()

        while True:
            command, *args = await loop.run_in_executor(None, conn.recv)
            if command == "wait":
                last, timeout = args
                deadline = time.perf_counter() + timeout
                while time.perf_counter() < deadline:
                    # Parsed only once nothing arrived for a while, so it delays no receipt
                    # stamp (if it ever did, that would raise latencies, not lower them).
                    if time.perf_counter() - DeferredSubscriber.last_chunk_at > 0.05:
                        parse_all()
                        if all(s.received and s.received[-1][0] >= last for s in subscribers):
                            break
                    await asyncio.sleep(0.05)
                conn.send("done")
            elif command == "results":
                parse_all()
                conn.send(
                    (
                        [s.received for s in subscribers],
                        sum(s.overflowed for s in subscribers),
                        sum(not s.lost for s in subscribers),
                    )
                )
            elif command == "close":
                close_all(subscribers)
                await asyncio.sleep(0.2)
                conn.send("closed")
                return

    uvloop.run(serve())


class ClientPool:
    """`count` SSE subscribers spread over `processes` client processes."""

    def __init__(self, *, port: int, path: str, token: str, count: int, processes: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.conns = []
        self.procs = []
        shares = [count // processes + (i < count % processes) for i in range(processes)]
        for share in shares:
            parent, child = context.Pipe()
            proc = context.Process(
                target=_client_main, args=(child, port, path, token, share), daemon=True
            )
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)

    async def _ask(self, *command) -> list:
        loop = asyncio.get_running_loop()
        for conn in self.conns:
            conn.send(command)
        return [await loop.run_in_executor(None, conn.recv) for conn in self.conns]

    async def ready(self) -> None:
        loop = asyncio.get_running_loop()
        for conn in self.conns:
            answer = await loop.run_in_executor(None, conn.recv)
            if answer != "ready":
                raise RuntimeError(f"client process answered {answer!r}")

    def cpu_seconds(self) -> float:
        """Return the CPU time the client processes used so far."""
        total = 0.0
        for proc in self.procs:
            times = psutil.Process(proc.pid).cpu_times()
            total += times.user + times.system
        return total

    async def wait_for(self, last: int, timeout: float) -> None:
        """Wait until every subscriber has received id `last` (or `timeout` s passed)."""
        await self._ask("wait", last, timeout)

    async def results(self) -> Results:
        results = Results()
        for received, overflowed, alive in await self._ask("results"):
            results.received.extend(received)
            results.overflowed += overflowed
            results.alive += alive
        return results

    async def close(self) -> None:
        await self._ask("close")
        for proc in self.procs:
            proc.join(10)
