"""A finished image download leaves nothing in reference cycles (mission_control/asgi_handler.py).

With the cyclic garbage collector off, objects in a cycle stay alive; anything
that survives the downloads here would, in a worker, wait for a full
collection, which `mission_control.asgi` makes rare (the worker's RSS crept up
with downloads). The requests go through the real ASGI application with a
fake server (uvicorn's order of messages: `http.disconnect` once the response
is complete or the client has gone) and, once, through uvicorn itself in this
process on uvloop + httptools, as the workers run.
"""

from __future__ import annotations

import asyncio
import gc
import types
from collections import Counter
from collections.abc import Iterator

import pytest
from django.core.handlers.asgi import ASGIRequest

from rover.tests.clients import http_scope
from rover.tests.factories import jpeg_bytes

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("own_media_root"),
]
DOWNLOADS = 5
CHUNK = 1024
# Django's SQL compiler defines a recursive closure per select_related query
# (SQLCompiler.get_select's get_select_from_parent): a function, its cell and the
# closure tuple, holding nothing else. Not ours to change; left out of the count.
DJANGO_COMPILER_CLOSURE = "SQLCompiler.get_select.<locals>.get_select_from_parent"


class FakeServer:
    """One request as uvicorn presents it to the application; the client may leave early."""

    def __init__(self, *, leave_after_chunks: int | None = None) -> None:
        self.leave_after_chunks = leave_after_chunks
        self.request_sent = False
        self.gone = asyncio.Event()
        self.status: int | None = None
        self.headers: dict[bytes, bytes] = {}
        self.body = bytearray()
        self.chunks_received = 0
        self.chunks_after_leaving = 0

    async def receive(self) -> dict:
        if not self.request_sent:
            self.request_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        await asyncio.sleep(0)  # a real send yields to the loop
        if self.gone.is_set():
            self.chunks_after_leaving += message["type"] == "http.response.body"
            return  # uvicorn drops what is sent after the client left
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = dict(message["headers"])
            return
        self.body += message.get("body", b"")
        self.chunks_received += 1
        leaving = self.leave_after_chunks and self.chunks_received >= self.leave_after_chunks
        if leaving or not message.get("more_body", False):
            self.gone.set()


async def download(path: str, token: str, headers: dict[str, str], server: FakeServer) -> None:
    from mission_control.asgi import application

    scope = http_scope(path, headers={"authorization": f"Bearer {token}", **headers})
    await application(scope, server.receive, server.send)


@pytest.fixture
def image(rover, store_image, settings):
    settings.IMAGE_STREAM_CHUNK_BYTES = CHUNK  # a stream of many chunks
    return store_image(data=jpeg_bytes(300, 200))


@pytest.fixture
def gc_off() -> Iterator[None]:
    """Collect what earlier tests left, then keep the collector off for the test."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.set_debug(0)
        gc.enable()


def leftovers() -> tuple[int, Counter]:
    """Return the requests still alive, then the types of what only a collection frees."""
    live_requests = sum(isinstance(obj, ASGIRequest) for obj in gc.get_objects())
    gc.set_debug(gc.DEBUG_SAVEALL)
    gc.collect()
    gc.set_debug(0)
    allowed: set[int] = set()
    for obj in gc.garbage:
        if isinstance(obj, types.FunctionType) and obj.__qualname__ == DJANGO_COMPILER_CLOSURE:
            allowed |= {id(obj), id(obj.__closure__), *map(id, obj.__closure__ or ())}
    # The request thread's DatabaseWrapper is left to the collector (cycle 3 in
    # mission_control/asgi_handler.py): allow it and what only it reaches.
    garbage = {id(obj): obj for obj in gc.garbage}
    todo = [obj for obj in gc.garbage if type(obj).__name__ == "DatabaseWrapper"]
    while todo:
        obj = todo.pop()
        if id(obj) in allowed:
            continue
        allowed.add(id(obj))
        todo.extend(r for r in gc.get_referents(obj) if id(r) in garbage and id(r) not in allowed)
    left = Counter(type(obj).__qualname__ for obj in gc.garbage if id(obj) not in allowed)
    gc.garbage.clear()
    return live_requests, left


CASES = {
    # name: (request headers, the client leaves after this many chunks, status)
    "whole": ({}, None, 200),
    "abandoned midway": ({}, 2, 200),
    "not modified": ({"if-none-match": "{etag}"}, None, 304),
    "range": ({"range": "bytes=100-4195"}, None, 206),
}


@pytest.mark.parametrize("case", CASES)
async def test_downloads_leave_no_reference_cycle(case, image, viewer_token, gc_off):
    headers, leave_after, status = CASES[case]
    headers = {k: v.format(etag=f'"{image.sha256}"') for k, v in headers.items()}
    path = f"/api/images/{image.pk}/download"
    servers = [FakeServer(leave_after_chunks=leave_after) for _ in range(DOWNLOADS)]
    for server in servers:
        await download(path, viewer_token, headers, server)
        assert server.status == status
    if status == 206:
        assert len(servers[0].body) == 4096
    if leave_after:
        # The client left: Django cancelled the stream (it does not read the file to the end).
        assert servers[0].chunks_received == leave_after
        assert servers[0].chunks_after_leaving < (image.size // CHUNK) // 2
    assert leftovers() == (0, Counter())


async def test_accel_redirect_answers_leave_no_reference_cycle(
    image, viewer_token, settings, gc_off
):
    """What the workers answer behind nginx (X-Accel-Redirect: an empty HttpResponse)."""
    settings.IMAGE_ACCEL_REDIRECT = True
    for _ in range(DOWNLOADS):
        server = FakeServer()
        await download(f"/api/images/{image.pk}/download", viewer_token, {}, server)
        assert server.status == 200
        assert server.headers[b"X-Accel-Redirect"].startswith(b"/_accel/full/")
    assert leftovers() == (0, Counter())


# --- through uvicorn, in this process, on uvloop + httptools as the workers run ------------------


async def http_get(port: int, path: str, token: str, *, leave_after_bytes: int | None) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n"
        "Connection: close\r\n\r\n".encode()
    )
    received = 0
    while data := await reader.read(65536):
        received += len(data)
        if leave_after_bytes and received >= leave_after_bytes:
            break
    writer.close()
    await writer.wait_closed()
    return received


async def uvicorn_downloads(
    path: str, token: str, leave_after_bytes: int | None
) -> tuple[int, Counter]:
    import uvicorn

    from mission_control.asgi import application

    config = uvicorn.Config(
        application,
        host="127.0.0.1",
        port=0,
        loop="none",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    serving = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        await http_get(port, path, token, leave_after_bytes=leave_after_bytes)  # warm up
        gc.collect()
        gc.disable()
        for _ in range(DOWNLOADS):
            received = await http_get(port, path, token, leave_after_bytes=leave_after_bytes)
            assert received > 4096
        await asyncio.sleep(0.2)  # let the server finish with the connections
        return leftovers()
    finally:
        server.should_exit = True
        await serving


@pytest.mark.parametrize("leave_after_bytes", [None, 8192], ids=["whole", "abandoned midway"])
def test_downloads_through_uvicorn_leave_no_reference_cycle(
    leave_after_bytes, image, viewer_token, gc_off
):
    import uvloop

    path = f"/api/images/{image.pk}/download"
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        left = runner.run(uvicorn_downloads(path, viewer_token, leave_after_bytes))
    assert left == (0, Counter())
