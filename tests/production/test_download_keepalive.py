"""Image downloads reach the workers over kept connections, and a reload fails none of them.

deploy/nginx.conf keeps connections to the workers open for GET/HEAD of image
downloads (no connect and accept before each X-Accel answer). A worker being
replaced by `make reload` closes its kept connections, possibly just as nginx
sends a request on one: nginx must then send it again on a new connection, so
the client never sees a 502.
"""

from __future__ import annotations

import io
import threading
import time

import httpx
import psutil
import pytest
from PIL import Image

pytestmark = [
    pytest.mark.slow,
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.one_pass("first", why="the stack always uses PostgreSQL and Redis"),
]


@pytest.fixture(scope="module")
def stack(production_stacks):
    return production_stacks(workers=2)


@pytest.fixture(scope="module")
def image_url(stack) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 80, 20)).save(buffer, "PNG")
    upload = httpx.post(
        f"{stack.url}/api/rovers/curiosity/images",
        files={"file": ("kept.png", buffer.getvalue(), "image/png")},
        headers=stack.auth("rover"),
        timeout=20,
    )
    assert upload.status_code == 201, upload.text
    return upload.json()["url"]


def _worker_sockets(stack) -> int:
    """Return the Unix-socket connections the workers hold open (nginx's, to them)."""
    return sum(len(psutil.Process(pid).net_connections(kind="unix")) for pid in stack.worker_pids())


def test_downloads_leave_their_connections_to_the_workers_open(stack, image_url):
    before = _worker_sockets(stack)
    with httpx.Client(base_url=stack.url, headers=stack.auth("alice"), timeout=10) as client:
        for _ in range(10):
            assert client.get(image_url).status_code == 200
    # A connection per download would be closed by now; a kept one waits for the next.
    assert _worker_sockets(stack) > before


def test_a_reload_fails_no_download_on_a_kept_connection(stack, image_url):
    stop = threading.Event()
    statuses: list[int] = []
    errors: list[str] = []

    def download_forever() -> None:
        with httpx.Client(base_url=stack.url, headers=stack.auth("alice"), timeout=20) as client:
            while not stop.is_set():
                try:
                    statuses.append(client.get(image_url).status_code)
                except httpx.HTTPError as exc:
                    errors.append(repr(exc))

    threads = [threading.Thread(target=download_forever) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        reload = stack.reload()
        assert reload.returncode == 0, reload.stderr
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert errors == []
    assert len(statuses) > 100
    assert set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
