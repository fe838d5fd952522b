"""The product's URLs plus the naive SSE design, for bench/telemetry.py only.

The naive design is what the product avoids: every SSE response becomes its own
member of a channel-layer group on the configured default layer (channels-redis
core, as in the Channels tutorial), so each frame is one channel-layer message
PER BROWSER. `/api/bench/naive/rovers/<slug>/telemetry` ingests exactly as the
product does (same validation and `telemetry_store`), then `group_send`s each new
frame to that group instead of publishing through the hub;
`/api/bench/naive/rovers/<slug>/telemetry/stream` is a group member per request and
writes the same bytes (`streams.sse.sse_encode`). Both go through the same
middleware and token checks (under /api/, the only paths a token authenticates:
accounts/paths.py); only the fan-out differs. The naive side does less
than the product (no alarms, no replay, no heartbeat, no bounded queue). Never
mounted in the product.
"""

from __future__ import annotations

import asyncio
import json

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.http import JsonResponse
from django.urls import path

from accounts.decorators import api_login_required, api_permission_required
from mission_control.urls import urlpatterns as product_urlpatterns
from rover.events import frame_event
from rover.models import Rover
from rover.services.telemetry import telemetry_store, telemetry_validate
from streams.sse import release_request_thread, sse_encode, sse_response, sse_retry


def naive_group(slug: str) -> str:
    return f"naive.rover.{slug}"


@api_permission_required("rover.add_telemetryframe")
async def naive_ingest(request, slug: str):
    rover = await Rover.objects.filter(slug=slug).afirst()
    frames = telemetry_validate(payload=json.loads(request.body))
    result, _ = await sync_to_async(telemetry_store)(rover=rover, frames=frames)
    layer = get_channel_layer()
    for frame in result.stored:
        await layer.group_send(
            naive_group(slug), {"type": "naive.event", "event": frame_event(frame)}
        )
    return JsonResponse(
        {"stored": len(result.stored), "duplicates": result.duplicates},
        status=201 if result.stored else 200,
    )


@api_login_required
async def naive_telemetry_stream(request, slug: str):
    layer = get_channel_layer()
    group = naive_group(slug)
    # Same as the product view: no thread or database connection held per open stream.
    await release_request_thread()

    async def events():
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        try:
            yield sse_retry(2000)
            while True:
                message = await layer.receive(channel)
                yield sse_encode(message["event"])
        finally:
            await asyncio.shield(layer.group_discard(group, channel))

    return sse_response(events())


urlpatterns = [
    path("api/bench/naive/rovers/<slug:slug>/telemetry", naive_ingest),
    path("api/bench/naive/rovers/<slug:slug>/telemetry/stream", naive_telemetry_stream),
    *product_urlpatterns,
]
