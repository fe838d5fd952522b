"""nginx never holds a streamed response back (`proxy_buffering off` in deploy/nginx.conf).

README, Production: nginx "never buffers responses (the SSE responses also send
`X-Accel-Buffering: no`) and never spools them to disk." A buffering nginx keeps what the
upstream sends until its buffer fills or the response ends, when the response ends with the
connection (no length, not chunked). Here nginx runs deploy/nginx.conf exactly as
`scripts/serve.py` renders it, in front of a stand-in worker on the workers' socket that sends
no `X-Accel-Buffering` and a response of that kind, and the first bytes must reach the client
while the response is still open.

Not the real stack's SSE: uvicorn sends every streamed response chunked, and nginx 1.22 passes
each chunk on at once even while it buffers, so SSE through the stack stayed live with
`proxy_buffering on` and the header removed together (RELIABILITY.md, the nginx row).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts import serve
from testing.servers import free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.one_pass("first", why="nginx and its configuration do not depend on the pass"),
]

# Far below what a buffering nginx holds an open response for (until it ends), far above
# a local hop.
PROMPT = 3.0


@contextlib.contextmanager
def upstream_that_streams(path: Path, first: bytes) -> Iterator[None]:
    """Answer one request on a Unix socket: headers, `first` a little later, then hold it open."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    done = threading.Event()

    def answer() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += conn.recv(4096)
                # No length, not chunked: the response ends when the connection does.
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                    b"Connection: close\r\n\r\n"
                )
                # Later, as a live response's data comes: what arrives with the
                # headers, nginx sends on even when it buffers.
                time.sleep(0.5)
                conn.sendall(first)
                done.wait(30)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        listener.close()
        thread.join(5)


@contextlib.contextmanager
def nginx_as_served(run_dir: Path) -> Iterator[int]:
    """Run nginx on deploy/nginx.conf as serve.py renders it for `run_dir`; yield its port."""
    (run_dir / "nginx-tmp").mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = run_dir / "nginx.conf"
    conf.write_text(
        serve.render_nginx_conf(run_dir=run_dir, port=port, static_root=run_dir, media_root=run_dir)
    )
    command = [serve.find_nginx(), "-p", str(run_dir), "-c", str(conf)]
    nginx = subprocess.Popen([*command, "-e", str(run_dir / "nginx-error.log")], cwd=run_dir)
    try:
        deadline = time.monotonic() + 10
        while True:
            assert nginx.poll() is None, (run_dir / "nginx-error.log").read_text()
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            assert time.monotonic() < deadline, "nginx did not listen within 10 s"
            time.sleep(0.05)
        yield port
    finally:
        nginx.terminate()  # a fast stop: nothing here needs a graceful one
        try:
            nginx.wait(10)
        except subprocess.TimeoutExpired:
            nginx.kill()
            nginx.wait()


def test_nginx_passes_a_streamed_response_on_while_it_is_still_open(stack_services, tmp_path):
    """Without `X-Accel-Buffering` from the upstream, the configuration alone does it."""
    first = b"the first bytes of a long response"
    received = b""
    with (
        upstream_that_streams(tmp_path / "uvicorn.sock", first),
        nginx_as_served(tmp_path) as port,
        socket.create_connection(("127.0.0.1", port), timeout=PROMPT) as client,
    ):
        client.sendall(b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        started = time.monotonic()
        with contextlib.suppress(TimeoutError):
            while first not in received and time.monotonic() - started < PROMPT:
                chunk = client.recv(65536)
                if not chunk:
                    break
                received += chunk
        took = time.monotonic() - started
    assert first in received, f"after {took:.1f} s, with the response open: {received[:300]!r}"
    assert received.startswith(b"HTTP/1.1 200"), received[:200]
