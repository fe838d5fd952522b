"""The ingest id migration: old SSE ids (seqs) keep naming the same position."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async

from rover.models import Rover, TelemetryFrame
from rover.tests.clients import SSEClient, post_frames
from rover.tests.factories import frame

from .ingest_id_migration import migrate_from_seq_ids

pytestmark = pytest.mark.django_db(transaction=True)
HUGE = 2**62 + 10


def ids_by_seq(slug: str) -> dict[int, int]:
    return dict(TelemetryFrame.objects.filter(rover__slug=slug).values_list("seq", "ingest_id"))


def test_existing_frames_take_their_seq_and_counters_start_at_the_highest():
    migrate_from_seq_ids(
        {
            "curiosity": [5, 2, 9, 3, 1],  # stored out of order, with gaps
            "spirit": [],
            "oddity": [7, HUGE, 3],
        }
    )
    assert ids_by_seq("curiosity") == {1: 1, 2: 2, 3: 3, 5: 5, 9: 9}
    counters = dict(Rover.objects.values_list("slug", "last_ingest_id"))
    assert counters["curiosity"] == 9 and counters["spirit"] == 0
    # No room after 2**62: that rover is numbered 1..n in seq order instead.
    assert ids_by_seq("oddity") == {3: 1, 7: 2, HUGE: 3}
    assert counters["oddity"] == 3


async def test_a_client_holding_a_seq_from_before_the_upgrade_resumes_exactly(
    ingest_token, viewer_token
):
    """Last-Event-ID 3 (a seq, sent as the id before the upgrade): 5, 9, then new frames."""
    await sync_to_async(migrate_from_seq_ids)({"curiosity": [1, 2, 3, 5, 9]})
    await post_frames("curiosity", [frame(4), frame(10)], ingest_token)
    client = await SSEClient(
        "/rovers/curiosity/telemetry/stream", token=viewer_token, headers={"Last-Event-ID": "3"}
    ).connect()
    try:
        events = await client.read_until(lambda evs: any(e.get("id") == "11" for e in evs))
        await post_frames("curiosity", [frame(11)], ingest_token)
        events = await client.read_until(lambda evs: any(e.get("id") == "12" for e in evs))
    finally:
        await client.close()
    telemetry = [e for e in events if e.get("event") == "telemetry"]
    assert [(int(e["id"]), json.loads(e["data"])["seq"]) for e in telemetry] == [
        (5, 5),
        (9, 9),
        (10, 4),
        (11, 10),
        (12, 11),
    ]
