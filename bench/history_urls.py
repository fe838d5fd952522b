"""The product's URLs plus the history downsampling it had before rollups, for bench/history.py.

`/api/bench/naive/rovers/<slug>/telemetry?since=&until=&points=` answers what the
product answered before rollups: every frame of the window streamed from the
database into Python (in recorded_at order, 5,000 rows a fetch) and averaged
per bucket, no min or max. Same middleware and login check as the product.
Never mounted in the product.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.http import JsonResponse
from django.urls import path

from accounts.decorators import api_login_required
from mission_control.urls import urlpatterns as product_urlpatterns
from rover.events import FRAME_FIELDS
from rover.models import Rover
from rover.selectors.telemetry import telemetry_frames
from rover.services.telemetry import NUMBER_FIELDS
from streams.encoding import utc_iso

AVERAGED_FIELDS = tuple(name for name in FRAME_FIELDS if name in NUMBER_FIELDS)


@dataclass
class _Bucket:
    count: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    time_sum: float = 0.0
    last: dict[str, Any] = field(default_factory=dict)


def telemetry_downsample(
    *, rover: Rover, since: datetime, until: datetime, points: int
) -> list[dict[str, Any]]:
    """Return at most `points` buckets of equal rover-time width over [since, until).

    Each bucket averages the numeric fields of its frames (fields absent from
    every frame stay null), carries the seq, received_at and mode of its
    newest frame, the mean recorded_at, and `count`. Frames are streamed from
    the database in recorded_at order, so memory grows with `points`, not with
    the number of frames in the range.
    """
    span = (until - since).total_seconds()
    if span <= 0 or points <= 0:
        return []
    width = span / points
    start = since.timestamp()
    buckets: dict[int, _Bucket] = {}
    rows = (
        telemetry_frames(rover=rover, since=since, until=until)
        .order_by("recorded_at", "seq")
        .values_list(*FRAME_FIELDS)
        .iterator(chunk_size=5000)
    )
    for row in rows:
        values = dict(zip(FRAME_FIELDS, row, strict=True))
        recorded = values["recorded_at"].timestamp()
        index = min(points - 1, int((recorded - start) / width))
        bucket = buckets.setdefault(index, _Bucket())
        bucket.count += 1
        bucket.time_sum += recorded
        for name in AVERAGED_FIELDS:
            value = values[name]
            if value is not None:
                bucket.sums[name] = bucket.sums.get(name, 0.0) + value
                bucket.counts[name] = bucket.counts.get(name, 0) + 1
        bucket.last = values
    result = []
    for index in sorted(buckets):
        bucket = buckets[index]
        item: dict[str, Any] = {
            "seq": bucket.last["seq"],
            "recorded_at": utc_iso(
                datetime.fromtimestamp(bucket.time_sum / bucket.count, since.tzinfo)
            ),
            "received_at": utc_iso(bucket.last["received_at"]),
        }
        for name in AVERAGED_FIELDS:
            n = bucket.counts.get(name)
            item[name] = round(bucket.sums[name] / n, 6) if n else None
        item["mode"] = bucket.last["mode"]
        item["count"] = bucket.count
        result.append({name: item[name] for name in (*FRAME_FIELDS, "count")})
    return result


@api_login_required
async def naive_history(request, slug: str):
    rover = await Rover.objects.filter(slug=slug).afirst()
    since = datetime.fromisoformat(request.GET["since"])
    until = datetime.fromisoformat(request.GET["until"])
    points = int(request.GET["points"])
    frames = await sync_to_async(telemetry_downsample)(
        rover=rover, since=since, until=until, points=points
    )
    return JsonResponse({"rover": slug, "points": points, "frames": frames, "count": len(frames)})


urlpatterns = [
    path("api/bench/naive/rovers/<slug:slug>/telemetry", naive_history),
    *product_urlpatterns,
]
