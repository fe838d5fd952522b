"""Interleaved A/B of the ingest id counter, in one process, on one migrated database.

    DJANGO_SETTINGS_MODULE=mission_control.settings.base DEBUG=false \\
    DATABASE_URL=sqlite:////tmp/ab.sqlite3 .venv/bin/python manage.py migrate
    DJANGO_SETTINGS_MODULE=mission_control.settings.base DEBUG=false \\
    DATABASE_URL=sqlite:////tmp/ab.sqlite3 .venv/bin/python bench/telemetry_ingest_ab.py 50 300

Alternates `telemetry_store` (the counter's UPDATE ... RETURNING is the row lock)
with the statements `main` ran before ingest ids (a SELECT ... FOR UPDATE, ids
from a Python counter instead of the rover's), request by request on two rovers,
so load on a shared machine weighs on both alike. Prints the median of each.
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django

django.setup()

from django.db import transaction  # noqa: E402
from django.db.models import Max  # noqa: E402

from rover.models import Rover, TelemetryFrame  # noqa: E402
from rover.services.telemetry import telemetry_store, telemetry_validate  # noqa: E402

BASE = datetime(2026, 11, 25, tzinfo=UTC)
_ids = iter(range(10**12, 2 * 10**12))


def frames(start: int, size: int) -> list[dict]:
    return telemetry_validate(
        payload=[
            {
                "seq": seq,
                "recorded_at": (BASE + timedelta(seconds=seq)).isoformat(),
                "battery_pct": 80.0,
                "signal_dbm": -90.0,
                "x_m": 1.0,
                "mode": "driving",
            }
            for seq in range(start, start + size)
        ]
    )


def store_as_before(*, rover: Rover, frames: list[dict]) -> None:
    """The statements of telemetry_store before ingest ids (ids from a Python counter)."""
    with transaction.atomic():
        Rover.objects.select_for_update().filter(pk=rover.pk).values_list("pk").first()
        stored = TelemetryFrame.objects.filter(rover=rover)
        stored.aggregate(top=Max("seq"))
        seqs = [f["seq"] for f in frames]
        existing = set(stored.filter(seq__in=seqs).values_list("seq", flat=True))
        new = [TelemetryFrame(rover=rover, **f) for f in frames if f["seq"] not in existing]
        for frame in new:
            frame.ingest_id = next(_ids)
        TelemetryFrame.objects.bulk_create(new)


def main() -> None:
    size, requests = int(sys.argv[1]), int(sys.argv[2])
    after = Rover.objects.get_or_create(slug=f"ab-after-{size}", defaults={"name": "A/B"})[0]
    before = Rover.objects.get_or_create(slug=f"ab-before-{size}", defaults={"name": "A/B"})[0]
    times_after, times_before = [], []
    seq = 1 + TelemetryFrame.objects.filter(rover=after).count()
    for _ in range(requests):
        batch = frames(seq, size)
        seq += size
        start = time.perf_counter()
        telemetry_store(rover=after, frames=batch)
        times_after.append(time.perf_counter() - start)
        start = time.perf_counter()
        store_as_before(rover=before, frames=batch)
        times_before.append(time.perf_counter() - start)
    print(
        f"{size} frame(s) per request, {requests} requests: "
        f"before p50 {statistics.median(times_before) * 1000:.2f} ms, "
        f"ingest ids p50 {statistics.median(times_after) * 1000:.2f} ms"
    )


if __name__ == "__main__":
    main()
