"""bench/soak.py's two client processes: SSE subscribers, and room sockets with their senders.

Each process runs one asyncio loop (uvloop when installed) and talks to the
orchestrator over a multiprocessing pipe, as bench/rooms.py's clients do:

    -> ("ready", {...})                once every client is connected
    <- ("go", seconds)                 (room process only) send messages for that long
    -> ("sent", count)
    <- ("finish", expected)            the ids every client must now hold
    -> ("report", {...})               lost, doubled, cuts, close codes, errors

The SSE subscribers are bench/telemetry.py's protocol client, made to resume: on
any end of a stream they reconnect with `Last-Event-ID` (from 0 on the first
connect, so every subscriber must hold every ingest id 1..N exactly once). They
check each id as it arrives instead of keeping it (1,000 subscribers x 6,000
frames would be 6 million tuples). The room sockets are testing/resuming_clients.py's
RoomMember (reconnect with `resume`, every close code and failed connect recorded).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter

from bench.sse_client import SSESubscriber
from testing.resuming_clients import RoomMember

DRAIN_SECONDS = 60


def _run(main, *args) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(*args))
    else:
        uvloop.run(main(*args))


async def _recv(conn):
    return await asyncio.get_running_loop().run_in_executor(None, conn.recv)


# SSE ----------------------------------------------------------------------------------


class _Stream(SSESubscriber):
    """One connection of a ResumingSubscriber: ids go to the owner, its end wakes it."""

    def __init__(self, owner: ResumingSubscriber, request: bytes) -> None:
        super().__init__(request)
        self.owner = owner
        self.closed = asyncio.get_running_loop().create_future()

    def on_id(self, event_id: int, now: float) -> None:
        self.owner.on_id(event_id)

    def connection_lost(self, exc) -> None:
        super().connection_lost(exc)
        if not self.closed.done():
            self.closed.set_result(None)


class ResumingSubscriber:
    """An SSE client that resumes by Last-Event-ID after any end, counting loss and doubles."""

    def __init__(self, port: int, path: str, token: str) -> None:
        self.port = port
        self.path = path
        self.token = token
        self.last = 0
        self.received = 0
        self.lost = 0
        self.doubled = 0
        self.connects = 0
        self.cuts: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.connected = asyncio.Event()
        self.stopping = False
        self.stream: _Stream | None = None

    def on_id(self, event_id: int) -> None:
        self.received += 1
        if event_id <= self.last:
            self.doubled += 1  # again, or out of order: either is wrong
            return
        self.lost += event_id - self.last - 1
        self.last = event_id

    def _request(self) -> bytes:
        return (
            f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
            f"Authorization: Bearer {self.token}\r\nLast-Event-ID: {self.last}\r\n\r\n"
        ).encode()

    async def run(self, limit: asyncio.Semaphore) -> None:
        loop = asyncio.get_running_loop()
        while not self.stopping:
            stream = None
            try:
                async with limit:  # each connect holds a database connection until it streams
                    _, stream = await loop.create_connection(
                        lambda: _Stream(self, self._request()), "127.0.0.1", self.port
                    )
                    self.stream = stream
                    await asyncio.wait_for(stream.ready, 60)
            except (OSError, ConnectionError) as exc:
                # A refused or failed connect, or an answer other than 200 (its status line).
                self.errors[f"SSE connect: {exc}"[:80]] += 1
                if stream is not None and stream.transport is not None:
                    stream.transport.close()
                await asyncio.sleep(0.5)
                continue
            self.connects += 1
            self.connected.set()
            await stream.closed
            if not self.stopping:
                self.cuts["overflow" if stream.overflowed else "ended"] += 1
                await asyncio.sleep(0.05)

    def stop(self) -> None:
        self.stopping = True
        if self.stream is not None and self.stream.transport is not None:
            self.stream.transport.close()


async def _sse_main(conn, port: int, path: str, token: str, count: int) -> None:
    limit = asyncio.Semaphore(20)
    subscribers = [ResumingSubscriber(port, path, token) for _ in range(count)]
    tasks = [asyncio.ensure_future(s.run(limit)) for s in subscribers]
    started = time.monotonic()
    for sub in subscribers:
        await asyncio.wait_for(sub.connected.wait(), 300)
    conn.send(("ready", {"seconds": time.monotonic() - started}))
    _, last_id = await _recv(conn)
    deadline = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < deadline and any(s.last < last_id for s in subscribers):
        await asyncio.sleep(0.2)
    for sub in subscribers:
        sub.stop()
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    cuts: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for sub in subscribers:
        cuts.update(sub.cuts)
        errors.update(sub.errors)
    conn.send(
        (
            "report",
            {
                "subscribers": count,
                "expected": last_id * count,
                "received": sum(s.received for s in subscribers),
                # Past the drain, what a subscriber still lacks is lost too.
                "lost": sum(s.lost + max(0, last_id - s.last) for s in subscribers),
                "doubled": sum(s.doubled for s in subscribers),
                "connects": sum(s.connects for s in subscribers),
                "cuts": dict(cuts),
                "errors": dict(errors),
            },
        )
    )


def sse_process(conn, port: int, path: str, token: str, count: int) -> None:
    _run(_sse_main, conn, port, path, token, count)


# Rooms --------------------------------------------------------------------------------


async def _send_messages(senders: dict[str, RoomMember], rate: float, seconds: float) -> int:
    """Send `rate` messages per second in all, round-robin over the rooms; return how many."""
    slugs = list(senders)
    total = int(rate * seconds)
    start = time.monotonic()
    for n in range(total):
        delay = start + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        slug = slugs[n % len(slugs)]
        sender = senders[slug]
        while True:  # a closed socket reconnects; the same client_id is stored once
            await asyncio.wait_for(sender.joined.wait(), 60)
            try:
                await sender.send(f"soak {n}", client_id=f"soak-{n}")
                break
            except Exception:  # closed meanwhile: its close code is recorded
                await asyncio.sleep(0.05)
    return total


async def _rooms_main(conn, ws_url: str, rooms: dict[str, list[str]], rate: float) -> None:
    members: list[tuple[str, RoomMember]] = []
    started = time.monotonic()
    for slug, tokens in rooms.items():
        batch = [(slug, RoomMember(ws_url, token, team=slug).start()) for token in tokens]
        for _, member in batch:
            await asyncio.wait_for(member.joined.wait(), 120)
        members.extend(batch)
    senders = {}
    for slug, member in members:
        senders.setdefault(slug, member)
    conn.send(("ready", {"seconds": time.monotonic() - started}))
    _, seconds = await _recv(conn)
    conn.send(("sent", await _send_messages(senders, rate, seconds)))
    _, expected = await _recv(conn)
    deadline = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < deadline and any(
        expected[slug] and expected[slug][-1] not in member.ids for slug, member in members
    ):
        await asyncio.sleep(0.2)
    lost = doubled = received = 0
    closes: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for slug, member in members:
        want = set(expected[slug])
        got = [i for i in member.ids if i in want]
        received += len(got)
        lost += len(want - set(got))
        doubled += len(got) - len(set(got))
        closes.update("1006" if code is None else str(code) for code in member.close_codes)
        errors.update(f"WebSocket connect: {error}"[:80] for error in member.errors)
    for _, member in members:
        await member.stop()
    conn.send(
        (
            "report",
            {
                "sockets": len(members),
                "expected": sum(len(expected[slug]) for slug, _ in members),
                "received": received,
                "lost": lost,
                "doubled": doubled,
                "closes": dict(closes),
                "errors": dict(errors),
            },
        )
    )


def rooms_process(conn, ws_url: str, rooms: dict[str, list[str]], rate: float) -> None:
    _run(_rooms_main, conn, ws_url, rooms, rate)
