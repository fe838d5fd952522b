"""Clients that behave like the dashboard: they reconnect and resume by id, and record all.

Used by tests/production and bench/reload.py against the production stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Self

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus


class _ResumingClient:
    """A client whose reconnect loop (`_run`) runs as a task between start() and stop()."""

    _task: asyncio.Task | None = None

    def start(self) -> Self:
        self._task = asyncio.ensure_future(self._run())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        raise NotImplementedError


class SSEFollower(_ResumingClient):
    """Follow a rover's telemetry stream; on any end, reconnect with Last-Event-ID.

    Every telemetry frame's seq is recorded (duplicates included, so a test can
    see them), and its event id (the ingest id) is what a reconnect resumes from;
    `finals` records the closing events (restart, overflow) received.
    """

    def __init__(self, client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> None:
        self.client = client
        self.path = path
        self.headers = headers
        self.seqs: list[int] = []
        self.last_id: str | None = None
        self.images: list[dict] = []
        self.finals: list[str] = []
        self.connects = 0
        self.connected = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            headers = dict(self.headers)
            if self.last_id is not None:
                headers["Last-Event-ID"] = self.last_id
            with contextlib.suppress(httpx.HTTPError):
                async with self.client.stream("GET", self.path, headers=headers) as response:
                    if response.status_code == 200:
                        self.connects += 1
                        await self._read(response)
            await asyncio.sleep(0.05)

    async def _read(self, response: httpx.Response) -> None:
        event: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line.startswith("retry:"):
                self.connected.set()
            if line == "":
                self._record(event)
                event = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                event[name] = value

    def _record(self, event: dict[str, str]) -> None:
        kind = event.get("event")
        if kind == "telemetry":
            self.seqs.append(json.loads(event["data"])["seq"])
            self.last_id = event["id"]
        elif kind == "image":
            self.images.append(json.loads(event["data"]))
        elif kind in ("restart", "overflow"):
            self.finals.append(kind)

    async def until_seq(self, seq: int, within: float = 20) -> None:
        async with asyncio.timeout(within):
            # Polled: the reader task appends; an Event per awaited seq is not worth it here.
            while not self.seqs or self.seqs[-1] < seq:  # noqa: ASYNC110
                await asyncio.sleep(0.02)


class RoomMember(_ResumingClient):
    """A team-room socket that, when closed, reconnects and sends `resume` from its last id.

    `ids` is every message id received, in order, with the join history of a
    reconnect counted only above the last id already held (those below are the
    history the member already has; the dashboard merges them the same way).
    """

    def __init__(self, ws_url: str, token: str, team: str = "ops") -> None:
        self.url = f"{ws_url}/ws/comms/{team}/?token={token}"
        self.ids: list[int] = []
        self.presence: list[dict] = []
        self.close_codes: list[int | None] = []
        # Connects that failed: refused handshakes ("HTTP 502"), timeouts, resets.
        self.errors: list[str] = []
        self.joined = asyncio.Event()
        self.socket = None
        self._task: asyncio.Task | None = None

    async def stop(self) -> None:
        await super().stop()
        if self.socket is not None:
            await self.socket.close()

    async def send(self, body: str, client_id: str) -> None:
        await self.socket.send(
            json.dumps({"type": "message", "body": body, "client_id": client_id})
        )

    async def _run(self) -> None:
        while True:
            try:
                async with connect(self.url, origin="http://127.0.0.1", open_timeout=10) as socket:
                    self.socket = socket
                    last = self.ids[-1] if self.ids else None
                    history = json.loads(await socket.recv())
                    assert history["type"] == "history", history
                    if last is None:
                        self.ids.extend(m["id"] for m in history["messages"])
                    else:
                        self.ids.extend(m["id"] for m in history["messages"] if m["id"] > last)
                        await socket.send(json.dumps({"type": "resume", "after": last}))
                    self.joined.set()
                    async for raw in socket:
                        self._record(json.loads(raw))
                    self.close_codes.append(socket.close_code)
            except ConnectionClosed as closed:
                self.close_codes.append(closed.rcvd.code if closed.rcvd else None)
            except InvalidStatus as refused:
                self.errors.append(f"HTTP {refused.response.status_code}")
            except (OSError, InvalidHandshake) as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}"[:120])
            self.joined.clear()
            await asyncio.sleep(0.05)

    def _record(self, frame: dict) -> None:
        if frame["type"] == "message":
            self.ids.append(frame["id"])
        elif frame["type"] == "resume":
            self.ids.extend(m["id"] for m in frame["messages"])
        elif frame["type"] == "presence":
            self.presence.append(frame)

    async def until_id(self, message_id: int, within: float = 20) -> None:
        async with asyncio.timeout(within):
            while message_id not in self.ids:  # noqa: ASYNC110 - polled, as until_seq
                await asyncio.sleep(0.02)
