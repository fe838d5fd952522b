"""History API (JSON, downsampled, streamed CSV) and the prune command."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from rover.models import TelemetryFrame
from rover.services.telemetry import telemetry_store, telemetry_validate
from rover.tests.clients import asgi_request
from rover.tests.factories import BASE_TIME, frame

URL = "/api/rovers/curiosity/telemetry"


def store(rover, frames):
    telemetry_store(rover=rover, frames=telemetry_validate(payload=frames))


def get(client, token, query=""):
    return client.get(f"{URL}{query}", HTTP_AUTHORIZATION=f"Bearer {token}")


def test_history_returns_frames_in_seq_order_within_the_range(client, rover, viewer_token):
    store(rover, [frame(i) for i in (5, 1, 3, 2, 4)])
    body = get(client, viewer_token).json()
    assert [f["seq"] for f in body["frames"]] == [1, 2, 3, 4, 5]
    assert body["count"] == 5 and body["truncated"] is False
    assert body["frames"][0]["recorded_at"] == "2026-11-24T12:00:01Z"
    since = (BASE_TIME + timedelta(seconds=2)).isoformat()
    until = (BASE_TIME + timedelta(seconds=4)).isoformat()
    body = get(client, viewer_token, f"?since={since}&until={until}").json()
    # An unencoded '+00:00' arrives as ' 00:00' and is still understood.
    assert [f["seq"] for f in body["frames"]] == [2, 3]
    body = get(client, viewer_token, "?limit=2").json()
    assert [f["seq"] for f in body["frames"]] == [4, 5] and body["truncated"] is True
    body = get(client, viewer_token, f"?since={since.replace('+00:00', 'Z')}&limit=2").json()
    assert [f["seq"] for f in body["frames"]] == [2, 3] and body["truncated"] is True


def test_downsampling_averages_each_time_bucket(client, rover, viewer_token):
    store(rover, [frame(i, battery_pct=float(i), mode="idle") for i in range(0, 100)])
    since = BASE_TIME.isoformat().replace("+00:00", "Z")
    until = (BASE_TIME + timedelta(seconds=100)).isoformat().replace("+00:00", "Z")
    body = get(client, viewer_token, f"?since={since}&until={until}&points=4").json()
    buckets = body["frames"]
    assert [b["count"] for b in buckets] == [25, 25, 25, 25]
    assert [b["battery_pct"] for b in buckets] == [12.0, 37.0, 62.0, 87.0]
    assert [b["seq"] for b in buckets] == [24, 49, 74, 99]
    assert buckets[0]["recorded_at"] == "2026-11-24T12:00:12Z"
    assert buckets[0]["x_m"] is None and buckets[0]["mode"] == "idle"


@pytest.mark.parametrize(
    "query",
    [
        "?since=yesterday",
        "?limit=0",
        "?limit=abc",
        "?limit=10001",
        "?points=-1",
        "?format=xml",
        "?format=csv&points=10",
        "?since=2026-11-24T12:00:00Z&until=2026-11-24T11:00:00Z",
    ],
)
def test_bad_parameters_answer_400_json(client, rover, viewer_token, query):
    response = get(client, viewer_token, query)
    assert response.status_code == 400
    assert response.json()["error"] == "bad_parameter"


def test_history_needs_a_login_and_a_known_rover(client, rover, viewer_token):
    assert client.get(URL).status_code == 401
    response = client.get(
        "/api/rovers/spirit/telemetry", HTTP_AUTHORIZATION=f"Bearer {viewer_token}"
    )
    assert response.status_code == 404


@pytest.mark.django_db(transaction=True)
async def test_csv_export_streams_every_frame_page_by_page(
    settings, rover, viewer_token, monkeypatch
):
    from asgiref.sync import sync_to_async

    from rover.views import telemetry as views

    monkeypatch.setattr(views, "CSV_PAGE", 7)
    await sync_to_async(store)(rover, [frame(i, x_m=i / 2, mode="science") for i in range(1, 31)])
    status, headers, body = await asgi_request(URL, token=viewer_token, query="format=csv")
    assert status == 200
    assert headers["content-type"].startswith("text/csv")
    assert "attachment" in headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(body.decode())))
    assert rows[0][:3] == ["seq", "recorded_at", "received_at"]
    assert [int(r[0]) for r in rows[1:]] == list(range(1, 31))
    assert rows[1][1] == "2026-11-24T12:00:01Z"
    assert rows[1][3] == "0.5" and rows[1][4] == "" and rows[1][-1] == "science"
    since = "2026-11-24T12:00:10Z"
    _, _, body = await asgi_request(URL, token=viewer_token, query=f"format=csv&since={since}")
    assert [int(r[0]) for r in list(csv.reader(io.StringIO(body.decode())))[1:]] == list(
        range(10, 31)
    )


def test_prune_deletes_old_frames_in_batches(rover):
    now = timezone.now()
    old = [
        frame(i, recorded_at=(now - timedelta(days=40, seconds=i)).isoformat()) for i in range(7)
    ]
    new = [frame(100 + i, recorded_at=(now - timedelta(days=1)).isoformat()) for i in range(3)]
    store(rover, old + new)
    out = io.StringIO()
    call_command("prune_telemetry", "--older-than", "30d", "--dry-run", stdout=out)
    assert "Would delete 7 " in out.getvalue()
    assert TelemetryFrame.objects.count() == 10
    out = io.StringIO()
    call_command("prune_telemetry", "--older-than", "30d", "--batch-size", "3", stdout=out)
    assert "Deleted 7 " in out.getvalue()
    assert sorted(TelemetryFrame.objects.values_list("seq", flat=True)) == [100, 101, 102]
    call_command("prune_telemetry", "--older-than", "12h", stdout=io.StringIO())
    assert TelemetryFrame.objects.count() == 0
    with pytest.raises(CommandError):
        call_command("prune_telemetry", "--older-than", "30 weeks")
