"""A slow reader costs a download constant server memory, under uvicorn and daphne (runserver).

daphne writes response bodies without back-pressure (daphne#170): before
`streams.backpressure` one client that stopped reading made it read and buffer
the whole file. A real server process, a client that reads a little and then
stalls, and the server's peak RSS from the kernel (VmHWM).
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from pathlib import Path

import httpx
import pytest
from django.utils import timezone

from rover.models import RoverImage
from rover.tests.big_images import peak_rss, reset_peak_rss, rss

pytestmark = pytest.mark.usefixtures("own_media_root")

MB = 1024 * 1024
FILE_BYTES = 48 * MB
STALL_SECONDS = 2.0
# A few chunks of IMAGE_STREAM_CHUNK_BYTES (1 MiB) plus the socket buffers; without
# back-pressure the whole file (48 MB) is read into the server's memory.
GROWTH_BOUND = 16 * MB


@pytest.fixture
def big_file_image(rover, settings) -> RoverImage:
    """A row whose file is 48 MB of random bytes (the download path never decodes it)."""
    data = os.urandom(FILE_BYTES)
    name = "rover-images/slow-reader.bin"
    path = Path(settings.MEDIA_ROOT) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return RoverImage.objects.create(
        rover=rover,
        captured_at=timezone.now(),
        file=name,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        content_type="application/octet-stream",
        width=1,
        height=1,
    )


def open_download(port: int, path: str, token: str) -> tuple[socket.socket, bytes]:
    """Send a GET with a small receive buffer; return the socket and the response head."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        "Connection: close\r\n\r\n".encode()
    )
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return sock, body


def read_all(sock: socket.socket, body: bytes) -> bytes:
    chunks = [body]
    while chunk := sock.recv(MB):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("kind", ["uvicorn", "daphne"])
# What this measures (file handles, threads, memory, bytes) is the server's, not the
# database's: once is enough, on PostgreSQL as in production.
@pytest.mark.one_pass("services", why="memory of a server process")
def test_a_stalled_reader_costs_the_server_constant_memory(
    server_process, big_file_image, token_for, user_factory, kind
):
    server = server_process(server=kind)
    token = token_for(user_factory())
    path = f"/api/images/{big_file_image.pk}/download"
    # Warm up imports, the database connection and the file-reading threads.
    sock, body = open_download(server.port, path, token)
    assert hashlib.sha256(read_all(sock, body)).hexdigest() == big_file_image.sha256
    sock.close()
    time.sleep(0.3)

    reset_peak_rss(server.pid)
    before = rss(server.pid)
    sock, body = open_download(server.port, path, token)
    # A reader that takes a little and then stops (a phone in a tunnel).
    while len(body) < MB:
        body += sock.recv(65536)
    time.sleep(STALL_SECONDS)
    growth = peak_rss(server.pid) - before
    # Then it reads on: the whole file arrives, byte-identical.
    data = read_all(sock, body)
    sock.close()
    assert len(data) == FILE_BYTES
    assert hashlib.sha256(data).hexdigest() == big_file_image.sha256
    print(f"\n{kind}: stalled reader of a {FILE_BYTES // MB} MB file, RSS +{growth / MB:.1f} MB")
    assert growth < GROWTH_BOUND, f"{kind} buffered {growth / MB:.0f} MB for one stalled reader"
    # Several downloads on one kept-alive connection: each hands the socket back cleanly.
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as client:
        for _ in range(3):
            response = client.get(path, headers={"Range": "bytes=0-2097151"})
            assert response.status_code == 206 and len(response.content) == 2 * MB
    assert "Traceback" not in server.log() and "not unregistered" not in server.log()
