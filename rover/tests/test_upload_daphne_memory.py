"""An image uplink under daphne (`runserver`, `make run`) costs about its size, not ten times it.

Twisted parsed every multipart POST in memory before daphne ran the application
(`mission_control.daphne_uploads`): a 200 MB uplink peaked at 2.6 GB of RSS,
and a multipart body without a boundary got a bare 400 instead of the API's
JSON error. A real daphne process, the server's peak RSS from the kernel (VmHWM).
"""

from __future__ import annotations

import os

import httpx
import pytest

from .big_images import peak_rss, reset_peak_rss, rss

pytestmark = [pytest.mark.slow]
MB = 1024 * 1024
URL = "/api/rovers/curiosity/images"
BODY_BYTES = 48 * MB
# daphne still queues the whole request body for the application (once); Twisted's
# form parsing added about ten copies of it (~500 MB here).
GROWTH_BOUND = 3 * BODY_BYTES


@pytest.fixture
def token(user_factory, token_for):
    return token_for(user_factory(perms=("rover.add_roverimage",)))


@pytest.mark.one_pass("services", why="memory of a server process")
def test_a_large_uplink_under_daphne_is_not_parsed_in_memory_twice(server_process, rover, token):
    server = server_process(server="daphne")
    auth = {"Authorization": f"Bearer {token}"}
    # Warm up imports and the first database connection.
    assert httpx.get(f"{server.url}/api/rovers", headers=auth).status_code == 200

    reset_peak_rss(server.pid)
    before = rss(server.pid)
    response = httpx.post(
        f"{server.url}{URL}",
        headers=auth,
        files={"file": ("noise.png", os.urandom(BODY_BYTES))},
        timeout=120,
    )
    growth = peak_rss(server.pid) - before
    # Django saw it: not an image, said in the API's JSON.
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "not_an_image"
    print(f"\ndaphne: {BODY_BYTES // MB} MB uplink, RSS peak +{growth / MB:.0f} MB")
    assert growth < GROWTH_BOUND, f"daphne held {growth / MB:.0f} MB for one uplink"

    # A multipart body without a boundary reaches Django too, and gets its JSON answer.
    response = httpx.post(
        f"{server.url}{URL}",
        headers={**auth, "Content-Type": "multipart/form-data"},
        content=b"x" * 100,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "malformed_multipart"
