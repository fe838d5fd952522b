"""What an upload costs a real server process in memory (issue #13, point 3).

A uvicorn process serves the test database; the test uploads through HTTP and
reads the server's peak RSS from the kernel (VmHWM, reset before each step).
The bounds: a decompression bomb is refused from its header at almost no
cost, the largest accepted image costs at most 200 MB, and four of them
uploaded at once at most 400 MB (THUMBNAIL_CONCURRENCY makes them take turns).
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from django.conf import settings as django_settings

from .big_images import peak_rss, png_copy, reset_peak_rss, rss, solid_png
from .factories import jpeg_bytes

pytestmark = [pytest.mark.slow]
MB = 1024 * 1024
URL = "/api/rovers/curiosity/images"


@pytest.fixture
def token(user_factory, token_for):
    return token_for(user_factory(perms=("rover.add_roverimage",)))


def upload(server, token: str, name: str, data: bytes) -> httpx.Response:
    return httpx.post(
        f"{server.url}{URL}",
        headers={"Authorization": f"Bearer {token}"},
        files={"file": (name, data)},
        data={"camera": "mastcam"},
        timeout=120,
    )


def peak_growth_of(pid: int, action) -> tuple[object, int]:
    """Run `action`; return its result and how far the server's RSS peaked above the start."""
    reset_peak_rss(pid)
    before = rss(pid)
    result = action()
    return result, peak_rss(pid) - before


# What this measures (file handles, threads, memory, bytes) is the server's, not the
# database's: once is enough, on PostgreSQL as in production.
@pytest.mark.one_pass("services", why="memory of a server process")
def test_upload_memory_stays_bounded_on_a_real_server(
    server_process, rover, token, tmp_path_factory
):
    images = Path(tmp_path_factory.getbasetemp()) / "memory-images"
    images.mkdir(exist_ok=True)
    bomb = solid_png(images / "bomb-13000.png", 13000, 13000).read_bytes()
    side = int(django_settings.IMAGE_MAX_PIXELS**0.5)
    largest = solid_png(images / f"largest-{side}.png", side, side).read_bytes()
    server = server_process(server="uvicorn")
    pid = server.proc.pid
    # Warm up: imports, Pillow's plugins, the first database connection.
    assert upload(server, token, "warm.jpg", jpeg_bytes(64, 48)).status_code == 201

    response, bomb_growth = peak_growth_of(pid, lambda: upload(server, token, "bomb.png", bomb))
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "too_many_pixels"

    response, one_growth = peak_growth_of(
        pid, lambda: upload(server, token, "largest.png", largest)
    )
    assert response.status_code == 201, response.text
    assert (response.json()["width"], response.json()["height"]) == (side, side)

    copies = [png_copy(largest, f"copy {n}") for n in range(4)]

    def four_at_once() -> list[int]:
        with ThreadPoolExecutor(4) as pool:
            futures = [
                pool.submit(upload, server, token, f"largest-{n}.png", copies[n]) for n in range(4)
            ]
            return [future.result().status_code for future in futures]

    statuses, four_growth = peak_growth_of(pid, four_at_once)
    assert statuses == [201] * 4
    print(
        f"\nserver RSS peak growth: 13000x13000 PNG (refused) {bomb_growth / MB:.1f} MB; "
        f"{side}x{side} RGBA PNG {one_growth / MB:.1f} MB; four at once {four_growth / MB:.1f} MB"
    )
    assert bomb_growth < 30 * MB
    assert one_growth <= 200 * MB
    assert four_growth <= 400 * MB


def test_bomb_is_refused_by_the_service_without_decoding(rover, settings, tmp_path):
    """The same bound in-process: nothing stored, the 413 says why."""
    from rover.models import RoverImage
    from rover.services.images import ImageRejected, image_store

    bomb = solid_png(tmp_path / "bomb.png", 9000, 9000)
    with pytest.raises(ImageRejected) as info:
        image_store(rover=rover, fileobj=io.BytesIO(bomb.read_bytes()))
    assert (info.value.status, info.value.code) == (413, "too_many_pixels")
    assert not RoverImage.objects.exists()
