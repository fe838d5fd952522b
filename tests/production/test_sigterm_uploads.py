"""On SIGTERM an upload in progress gets up to 10 s to finish; one that stalls is cut.

README, Production, Stopping: a worker "gives other requests (an upload in progress) up to
10 s" (`--timeout-graceful-shutdown 10`, `GRACEFUL_SECONDS` in scripts/serve.py). Two uploads
are in flight through nginx when `make serve` gets SIGTERM: one sends the rest of its body 2 s
later and must be stored (201); the other never finishes and must be cut, and the stack still
stops (status 0). Raw sockets, so the test decides when each byte of a body leaves.
"""

from __future__ import annotations

import socket
import time
import uuid

import pytest

from rover.tests.factories import jpeg_bytes

PATH = "/api/rovers/curiosity/images"


@pytest.fixture
def stack(production_stacks):
    return production_stacks(workers=2)


def multipart(data: bytes, name: str) -> tuple[str, bytes]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return f"multipart/form-data; boundary={boundary}", body


def start_upload(stack, data: bytes, name: str) -> tuple[socket.socket, bytes]:
    """Send the headers and the first half of the body; return the socket and the rest."""
    content_type, body = multipart(data, name)
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {stack.tokens['rover']}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", stack.port), timeout=40)
    half = len(body) // 2
    sock.sendall(head + body[:half])
    return sock, body[half:]


def answer(sock: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except OSError:
        pass
    sock.close()
    return b"".join(chunks)


def test_on_sigterm_an_upload_in_progress_finishes_and_a_stalled_one_is_cut(stack):
    finishing, rest = start_upload(stack, jpeg_bytes(400, 300, seed=7), "finishing.jpg")
    stalled, _ = start_upload(stack, jpeg_bytes(400, 300, seed=8), "stalled.jpg")
    # Both requests have reached a worker (nginx passes bodies on unbuffered).
    time.sleep(1)
    stack.terminate()
    time.sleep(2)
    finishing.sendall(rest)
    finished = answer(finishing)
    assert finished.startswith(b"HTTP/1.1 201"), finished[:300]
    # The stalled upload is cut once the grace is over; it was never stored.
    cut = answer(stalled)
    assert not cut.startswith(b"HTTP/1.1 201"), cut[:300]
    assert stack.proc.wait(40) == 0, stack.log()
