"""Clients that behave like the dashboard's: an EventSource and a resuming room socket."""

from __future__ import annotations

import asyncio
import collections
import json
import time

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake


class EventSourceClient:
    """Follow an SSE URL like EventSource: resume with Last-Event-ID, wait `retry:` between."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.last = 0  # Last-Event-ID 0: replay every stored frame (seqs start at 1)
        self.retry = 3.0
        self.seqs: list[int] = []
        self.connections: list[float] = []
        self.endings: list[str] = []

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=httpx.Timeout(30, connect=5)) as client:
            while True:
                headers = {"Authorization": f"Bearer {self.token}", "Last-Event-ID": str(self.last)}
                try:
                    async with client.stream("GET", self.url, headers=headers) as response:
                        self.connections.append(time.monotonic())
                        await self._read(response)
                except httpx.HTTPError as exc:
                    self.endings.append(repr(exc))
                await asyncio.sleep(self.retry)

    async def _read(self, response: httpx.Response) -> None:
        event: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line.startswith("retry: "):
                self.retry = int(line[7:]) / 1000
            elif line == "":
                if event.get("event") == "telemetry":
                    self.last = int(event["id"])
                    self.seqs.append(self.last)
                elif event.get("event") == "overflow":
                    self.endings.append(json.loads(event["data"])["reason"])
                event = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                event[name] = value


class RoomMember:
    """A member's socket that reconnects and sends `resume` with the last id it accepted."""

    def __init__(self, port: int, slug: str, token: str) -> None:
        self.url = f"ws://127.0.0.1:{port}/ws/comms/{slug}/?token={token}"
        self.last = 0
        self.accepted: collections.Counter[int] = collections.Counter()
        self.connections: list[float] = []
        self.errors: list[str] = []  # the server's `error` frames, by code
        self.connect_failures: list[str] = []
        self.repeated_on_one_socket: list[int] = []
        self.presence: list[dict] = []
        self.socket = None

    async def run(self) -> None:
        while True:
            try:
                async with connect(self.url, origin="http://127.0.0.1") as socket:
                    self.socket = socket
                    self.connections.append(time.monotonic())
                    await self._follow(socket)
            except ConnectionClosed:
                pass
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                # A failed connect (refused, reset, no HTTP answer, timed out): retried,
                # and recorded so a test's message shows it. InvalidMessage (the server
                # closed before answering) used to end this loop silently.
                self.connect_failures.append(repr(exc)[:120])
            self.socket = None
            await asyncio.sleep(0.3)

    async def _follow(self, socket) -> None:
        on_this_socket: set[int] = set()
        last_at_connect = self.last
        async for raw in socket:
            frame = json.loads(raw)
            kind = frame["type"]
            if kind == "history" and "before" not in frame:
                # The join snapshot: what is newer than our last id is new to us (the
                # server's `resume` then leaves out what this snapshot already sent).
                fresh = [m["id"] for m in frame["messages"] if m["id"] > last_at_connect]
                self._accept(fresh, on_this_socket)
                if last_at_connect:
                    await socket.send(json.dumps({"type": "resume", "after": last_at_connect}))
            elif kind == "resume":
                self._accept([m["id"] for m in frame["messages"]], on_this_socket)
            elif kind == "message":
                self._accept([frame["id"]], on_this_socket)
            elif kind == "error":
                self.errors.append(frame["code"])
            elif kind == "presence":
                self.presence.append(frame)

    def _accept(self, ids: list[int], on_this_socket: set[int]) -> None:
        for message_id in ids:
            if message_id in on_this_socket:
                self.repeated_on_one_socket.append(message_id)
            on_this_socket.add(message_id)
            self.accepted[message_id] += 1
            self.last = max(self.last, message_id)

    async def say(self, body: str, client_id: str) -> bool:
        """Send a message if connected; return whether it went out."""
        if self.socket is None:
            return False
        try:
            await self.socket.send(
                json.dumps({"type": "message", "body": body, "client_id": client_id})
            )
        except ConnectionClosed:
            return False
        return True
