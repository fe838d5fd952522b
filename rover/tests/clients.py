"""Clients of the real ASGI application: one request, an SSE stream, AsyncClient with a token."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from asgiref.testing import ApplicationCommunicator
from django.test import AsyncClient


def http_scope(
    path: str, *, method: str = "GET", query: str = "", headers: dict[str, str] | None = None
) -> dict[str, Any]:
    raw_headers = [(b"host", b"localhost")]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": raw_headers,
        "client": ("127.0.0.1", 40000),
        "server": ("localhost", 80),
    }


async def asgi_request(
    path: str,
    *,
    method: str = "GET",
    body: bytes = b"",
    token: str | None = None,
    query: str = "",
    timeout: float = 10,
    content_type: str = "application/json",
) -> tuple[int, dict[str, str], bytes]:
    """Make one complete request to the real ASGI application; return status, headers, body."""
    from mission_control.asgi import application

    headers = {"content-type": content_type, "content-length": str(len(body))}
    if token:
        headers["authorization"] = f"Bearer {token}"
    comm = ApplicationCommunicator(
        application, http_scope(path, method=method, query=query, headers=headers)
    )
    await comm.send_input({"type": "http.request", "body": body, "more_body": False})
    start = await comm.receive_output(timeout)
    chunks = []
    while True:
        message = await comm.receive_output(timeout)
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    await comm.wait(timeout)
    response_headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    return start["status"], response_headers, b"".join(chunks)


async def post_frames(slug: str, payload: Any, token: str) -> tuple[int, dict]:
    """POST frames to the ingest API of rover `slug`; return the status and the JSON answer."""
    status, _headers, body = await asgi_request(
        f"/api/rovers/{slug}/telemetry",
        method="POST",
        body=json.dumps(payload).encode(),
        token=token,
    )
    return status, json.loads(body)


def parse_sse(text: str) -> list[dict[str, Any]]:
    """Parse complete SSE blocks into dicts (id, event, data, retry, comment)."""
    events = []
    for block in text.split("\n\n"):
        if not block:
            continue
        event: dict[str, Any] = {}
        for line in block.split("\n"):
            if line.startswith(":"):
                event["comment"] = line[1:].strip()
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                event["data"] = value if "data" not in event else event["data"] + "\n" + value
            else:
                event[name] = value
        events.append(event)
    return events


class SSEClient:
    """An SSE request against the real ASGI application, read as the bytes arrive."""

    def __init__(self, path: str, *, token: str | None = None, headers: dict | None = None):
        from mission_control.asgi import application

        all_headers = dict(headers or {})
        if token:
            all_headers["authorization"] = f"Bearer {token}"
        path, _, query = path.partition("?")
        self.comm = ApplicationCommunicator(
            application, http_scope(path, query=query, headers=all_headers)
        )
        self.buffer = ""
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.ended = False

    async def connect(self, timeout: float = 10) -> SSEClient:
        await self.comm.send_input({"type": "http.request", "body": b"", "more_body": False})
        start = await self.comm.receive_output(timeout)
        self.status = start["status"]
        self.headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
        return self

    async def read_until(self, predicate, timeout: float = 10) -> list[dict[str, Any]]:
        """Read until the parsed events satisfy `predicate(events)` or the response ends."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            complete = self.buffer[: self.buffer.rfind("\n\n") + 2] if "\n\n" in self.buffer else ""
            events = parse_sse(complete)
            if predicate(events) or self.ended:
                return events
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"SSE condition not met; got {events!r}")
            message = await self.comm.receive_output(remaining)
            self.buffer += message.get("body", b"").decode()
            if not message.get("more_body", False):
                self.ended = True

    async def close(self, timeout: float = 5) -> None:
        """Disconnect like a browser that left; wait until the application finished."""
        if not self.buffer and not self.ended:
            # Leave after the first chunk, as a browser that got its headers does: that
            # chunk is written once Django's request has ended. Left earlier, Django's
            # own disconnect listener takes the only http.disconnect, the stream never
            # sees one, and wait() below gives up on it only after `timeout`.
            message = await self.comm.receive_output(timeout)
            self.buffer += message.get("body", b"").decode()
            self.ended = not message.get("more_body", False)
        await self.comm.send_input({"type": "http.disconnect"})
        await self.comm.wait(timeout)


def telemetry_seqs(events: list[dict[str, Any]]) -> list[int]:
    """Return the seq of each telemetry event, in the order they arrived."""
    return [int(e["id"]) for e in events if e.get("event") == "telemetry"]


class TokenClient(AsyncClient):
    """An AsyncClient sending `Authorization: Bearer <token>` on every request.

    (AsyncClient(headers=...) turns client-wide headers into `http-...` names.)
    """

    def __init__(self, token: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.auth_headers = {"Authorization": f"Bearer {token}"}

    def generic(self, method, path, *args, headers=None, **kwargs):
        headers = {**self.auth_headers, **(headers or {})}
        return super().generic(method, path, *args, headers=headers, **kwargs)
