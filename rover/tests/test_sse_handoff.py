"""An open SSE stream holds no Django request: it leaves Django once its headers are sent."""

from __future__ import annotations

import gc

import pytest
from django.core.signals import request_finished

from rover.tests.clients import SSEClient, post_frames, telemetry_seqs
from rover.tests.factories import frame
from streams.handoff import MARKER
from streams.hub import get_hub

pytestmark = pytest.mark.django_db(transaction=True)
STREAM = "/rovers/curiosity/telemetry/stream"


async def test_an_open_stream_has_finished_its_django_request(rover, ingest_token, viewer_token):
    finished: list[bool] = []

    def on_finished(sender, **kwargs) -> None:
        finished.append(True)

    request_finished.connect(on_finished)
    client = await SSEClient(STREAM, token=viewer_token).connect()
    try:
        await client.read_until(lambda events: any("retry" in e for e in events))
        # Django finished the request (request_finished, the response closed) while the
        # stream stays open and subscribed.
        assert finished == [True]
        assert get_hub().local_subscriber_count == 1
        assert client.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert client.headers["x-accel-buffering"] == "no"
        assert MARKER.decode() not in client.headers
        assert "content-length" not in client.headers
        status, _ = await post_frames("curiosity", frame(1), ingest_token)
        assert status == 201
        events = await client.read_until(lambda events: 1 in telemetry_seqs(events))
        assert telemetry_seqs(events) == [1]
    finally:
        request_finished.disconnect(on_finished)
        await client.close()
    assert get_hub().local_subscriber_count == 0


async def test_the_stream_keeps_no_django_request_alive(rover, viewer_token):
    from django.core.handlers.asgi import ASGIRequest

    client = await SSEClient(STREAM, token=viewer_token).connect()
    try:
        await client.read_until(lambda events: any("retry" in e for e in events))
        gc.collect()
        alive = [obj for obj in gc.get_objects() if isinstance(obj, ASGIRequest)]
        assert alive == []
    finally:
        await client.close()
