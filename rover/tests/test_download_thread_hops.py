"""An image download visits the request's thread as often as /healthz does: no hop of its own.

nginx sends an X-Accel-Redirect download's bytes once the worker has answered,
so the worker's answer is the download's first byte; on an idle worker each
hop between the event loop and the request's thread cost about as much as the
view's own work (bench/scaleout.py --only downloads). The download views are
sync and the chain runs in one visit (mission_control/asgi_handler.py): the
image's lookup, its file's stat and the answer happen in that visit.
"""

from __future__ import annotations

import asyncio

import pytest

from mission_control.tests.test_middleware_chain import THREAD_HOPS
from rover.tests.clients import http_scope
from rover.tests.factories import jpeg_bytes

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("own_media_root"),
]


@pytest.fixture
def fetch(settings, store_image, user_factory, token_for):
    """Return an async function that GETs a stored image's URL; (status, headers, body)."""
    from mission_control.asgi import application

    settings.IMAGE_ACCEL_REDIRECT = True
    image = store_image(data=jpeg_bytes(80, 60))
    token = token_for(user_factory("reader"))

    async def get(suffix: str = "download", **headers: str):
        scope = http_scope(
            f"/api/images/{image.pk}/{suffix}",
            headers={"authorization": f"Bearer {token}", **headers},
        )
        sent = []
        messages = []
        done = asyncio.Event()

        async def receive():
            if not sent:
                sent.append(True)
                return {"type": "http.request", "body": b"", "more_body": False}
            await done.wait()  # uvicorn: `http.disconnect` once the response is complete
            return {"type": "http.disconnect"}

        async def send(message):
            messages.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                done.set()

        await application(scope, receive, send)
        start = messages[0]
        body = b"".join(m.get("body", b"") for m in messages[1:])
        return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, body

    return get


async def test_an_x_accel_download_adds_no_thread_hop(fetch, thread_hops):
    status, headers, _body = await fetch()
    assert status == 200
    assert headers["x-accel-redirect"].startswith("/_accel/full/rover-images/")
    assert thread_hops[0] == THREAD_HOPS


async def test_a_304_and_a_range_add_no_thread_hop(fetch, thread_hops):
    _status, headers, _body = await fetch()
    thread_hops[0] = 0
    status, _headers, body = await fetch(**{"if-none-match": headers["etag"]})
    assert (status, body) == (304, b"")
    assert thread_hops[0] == THREAD_HOPS
    thread_hops[0] = 0
    status, headers, _body = await fetch(range="bytes=0-9")
    assert status == 200  # nginx answers 206 from its range location
    assert headers["x-accel-redirect"].startswith("/_accel/range/rover-images/")
    assert thread_hops[0] == THREAD_HOPS


async def test_a_thumbnail_adds_no_thread_hop(fetch, thread_hops):
    status, headers, _body = await fetch("thumbnail")
    assert status == 200
    assert "-thumb" in headers["etag"]
    assert thread_hops[0] == THREAD_HOPS
