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
import gc
import json
import os
import sys
import tracemalloc
from collections import Counter

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

if os.environ.get("MC_BENCH_PROBE") == "1":
    from bench import telemetry_probe

    telemetry_probe.install()


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

    return sse_response(request, events())


_census: dict[str, Counter] = {}


async def worker_memory(request):
    """Collect garbage, then answer with the worker's object census (bench only, no auth).

    `?mark=<name>` stores the census (and a tracemalloc snapshot when tracing) under
    that name; `?diff=<name>` answers the object types (count, shallow bytes) and the
    allocation sites that grew since the mark, biggest first.
    """
    gc.collect()
    counts: Counter = Counter()
    sizes: Counter = Counter()
    for obj in gc.get_objects():
        name = type(obj).__qualname__
        counts[name] += 1
        sizes[name] += sys.getsizeof(obj)
    body: dict = {"objects": sum(counts.values())}
    mark, diff = request.GET.get("mark"), request.GET.get("diff")
    if mark:
        _census[mark] = (
            counts,
            sizes,
            tracemalloc.take_snapshot() if tracemalloc.is_tracing() else None,
        )
    if diff and diff in _census:
        old_counts, old_sizes, old_snapshot = _census[diff]
        grown = sorted(
            ((n, counts[n] - old_counts[n], sizes[n] - old_sizes[n]) for n in counts),
            key=lambda row: -row[2],
        )
        body["types"] = [row for row in grown[:40] if row[1] > 0]
        if old_snapshot is not None:
            stats = tracemalloc.take_snapshot().compare_to(old_snapshot, "traceback")
            packages: Counter = Counter()
            for stat in stats:
                frames = [frame.filename for frame in stat.traceback]
                owner = next(
                    (
                        key
                        for name in reversed(frames)
                        for key in ("streams/", "rover/", "django/", "asgiref/", "uvicorn/")
                        if key in name
                    ),
                    "other",
                )
                packages[owner] += stat.size_diff
            body["traced"] = sum(stat.size_diff for stat in stats)
            body["by_package"] = packages.most_common()
            body["sites"] = [
                [stat.size_diff, stat.count_diff, [str(f) for f in stat.traceback][-6:]]
                for stat in stats[:30]
            ]
    return JsonResponse(body)


async def probe_records(request):
    """Answer bench/telemetry_probe.py's stamps by ingest id (bench only, no auth)."""
    from bench import telemetry_probe

    return JsonResponse({str(k): v for k, v in telemetry_probe.records().items()})


urlpatterns = [
    path("api/bench/memory", worker_memory),
    path("api/bench/probe", probe_records),
    path("api/bench/naive/rovers/<slug:slug>/telemetry", naive_ingest),
    path("api/bench/naive/rovers/<slug:slug>/telemetry/stream", naive_telemetry_stream),
    *product_urlpatterns,
]
