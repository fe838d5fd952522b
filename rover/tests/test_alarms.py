"""Alarms: raised and cleared with hysteresis, announced in the team room, link lost, the API."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from comms.models import Message
from rover.models import Alarm, AlarmKind, AlarmLimits, Rover, TelemetryFrame
from rover.services.alarms import alarm_raise, alarms_check_link_lost
from rover.tests.clients import post_frames
from rover.tests.factories import frame
from testing.servers import free_port

URL = "/api/rovers/curiosity/telemetry"


@pytest.fixture
def ingest(post_telemetry):
    """Post frames through the API (they must be taken); return the JSON answer."""

    def send(*frames):
        response = post_telemetry(*frames)
        assert response.status_code in (200, 201), response.content
        return response.json()

    return send


def active_kinds(rover) -> set[str]:
    return set(
        Alarm.objects.filter(rover=rover, cleared_at__isnull=True).values_list("kind", flat=True)
    )


def room_bodies(rover) -> list[str]:
    return list(Message.objects.filter(team=rover.alarm_team).values_list("body", flat=True))


def test_battery_low_is_raised_once_and_cleared_with_hysteresis(rover, ingest):
    ingest(frame(1, battery_pct=25.0))
    assert active_kinds(rover) == set()
    ingest(frame(2, battery_pct=18.5), frame(3, battery_pct=17.0))
    alarm = Alarm.objects.get(rover=rover, kind=AlarmKind.BATTERY_LOW)
    assert (alarm.seq, alarm.value, alarm.cleared_at) == (2, 18.5, None)
    # Back above the limit but inside the 5-point margin: still active.
    ingest(frame(4, battery_pct=22.0))
    assert active_kinds(rover) == {AlarmKind.BATTERY_LOW}
    ingest(frame(5, battery_pct=26.0))
    alarm.refresh_from_db()
    assert alarm.cleared_at is not None
    bodies = room_bodies(rover)
    assert len(bodies) == 2
    assert bodies[0].startswith("ALARM Curiosity: Battery low.")
    assert bodies[1].startswith("CLEARED Curiosity: Battery low.")
    assert set(Message.objects.values_list("kind", flat=True)) == {"alarm"}


def test_temperature_and_safe_mode_alarms(rover, ingest):
    ingest(frame(1, temp_internal_c=55.0, mode="safe_mode"))
    assert active_kinds(rover) == {AlarmKind.TEMP_HIGH, AlarmKind.SAFE_MODE}
    ingest(frame(2, temp_internal_c=49.0, mode="idle"))
    assert active_kinds(rover) == {AlarmKind.TEMP_HIGH}
    ingest(frame(3, temp_internal_c=-45.0))
    assert active_kinds(rover) == {AlarmKind.TEMP_LOW}
    ingest(frame(4, temp_internal_c=-37.0))
    assert active_kinds(rover) == set()
    assert Alarm.objects.filter(rover=rover).count() == 3


def test_limits_come_from_the_rovers_alarm_limits(rover, ingest):
    AlarmLimits.objects.filter(rover=rover).update(battery_low_pct=50)
    ingest(frame(1, battery_pct=45.0))
    assert active_kinds(rover) == {AlarmKind.BATTERY_LOW}


def test_a_late_frame_does_not_change_alarms(rover, ingest):
    ingest(frame(10, battery_pct=80.0))
    ingest(frame(9, battery_pct=3.0))
    assert active_kinds(rover) == set()


def test_one_active_alarm_per_kind_even_when_raised_twice(rover):
    first = alarm_raise(rover=rover, kind=AlarmKind.SAFE_MODE, message="one")
    second = alarm_raise(rover=rover, kind=AlarmKind.SAFE_MODE, message="two")
    assert first is not None and second is None
    assert Alarm.objects.filter(rover=rover).count() == 1
    assert len(room_bodies(rover)) == 1


def test_link_lost_uses_the_rovers_own_staleness_limit(rover, ingest):
    Rover.objects.filter(pk=rover.pk).update(stale_after_seconds=60)
    ingest(frame(1))
    last = TelemetryFrame.objects.get(rover=rover, seq=1).received_at
    assert alarms_check_link_lost(now=last + timedelta(seconds=59)) == []
    raised = alarms_check_link_lost(now=last + timedelta(seconds=61))
    assert [a.kind for a in raised] == [AlarmKind.LINK_LOST]
    assert "(limit 60 s)" in raised[0].message


def test_link_lost_after_silence_and_cleared_by_the_next_frame(
    rover, ingest, django_capture_on_commit_callbacks
):
    ingest(frame(1))
    last = TelemetryFrame.objects.get(rover=rover, seq=1).received_at
    assert alarms_check_link_lost(now=last + timedelta(seconds=5)) == []
    with django_capture_on_commit_callbacks(execute=True):
        raised = alarms_check_link_lost(now=last + timedelta(seconds=11))
    assert [a.kind for a in raised] == [AlarmKind.LINK_LOST]
    assert raised[0].seq == 1
    # Another check (or another worker's watchdog) does not raise it twice.
    assert alarms_check_link_lost(now=last + timedelta(seconds=30)) == []
    ingest(frame(2))
    assert active_kinds(rover) == set()
    bodies = room_bodies(rover)
    assert bodies[0].startswith("ALARM Curiosity: Link lost.")
    assert bodies[1].startswith("CLEARED Curiosity: Link lost.")


@pytest.mark.django_db(transaction=True)
async def test_the_watchdog_raises_link_lost_on_its_own(settings, rover, ingest_token):
    from rover.services import alarms

    await sync_to_async(Rover.objects.filter(pk=rover.pk).update)(stale_after_seconds=1)
    settings.ALARM_WATCHDOG_SECONDS = 0.2
    assert (await post_frames("curiosity", [frame(1)], ingest_token))[0] == 201
    task = alarms._watchdogs[asyncio.get_running_loop()]
    try:
        for _ in range(50):
            await asyncio.sleep(0.1)
            if await Alarm.objects.filter(kind=AlarmKind.LINK_LOST).aexists():
                break
        alarm = await Alarm.objects.aget(kind=AlarmKind.LINK_LOST)
        assert alarm.seq == 1 and alarm.cleared_at is None
    finally:
        task.cancel()


def test_alarm_list_and_acknowledge_api(
    client,
    rover,
    ingest,
    user_factory,
    token_for,
    viewer_token,
    django_capture_on_commit_callbacks,
):
    ingest(frame(1, battery_pct=5.0, mode="safe_mode"), frame(2, battery_pct=6.0, mode="idle"))
    auth = {"HTTP_AUTHORIZATION": f"Bearer {viewer_token}"}
    listing = client.get("/api/rovers/curiosity/alarms", **auth).json()
    assert {a["kind"] for a in listing["alarms"]} == {"battery_low", "safe_mode"}
    active = client.get("/api/rovers/curiosity/alarms?active=1", **auth).json()["alarms"]
    assert [a["kind"] for a in active] == ["battery_low"]
    alarm_id = active[0]["id"]
    assert set(active[0]) == {
        "id",
        "rover",
        "kind",
        "message",
        "value",
        "seq",
        "raised_at",
        "cleared_at",
        "acknowledged_by",
        "acknowledged_at",
        "active",
    }
    url = f"/api/alarms/{alarm_id}/acknowledge"
    assert client.post(url, **auth).status_code == 403
    engineer = user_factory("engineer", perms=("rover.change_alarm",))
    ack_auth = {"HTTP_AUTHORIZATION": f"Bearer {token_for(engineer)}"}
    with django_capture_on_commit_callbacks(execute=True):
        body = client.post(url, **ack_auth).json()
    assert body["acknowledged_by"] == "engineer" and body["acknowledged_at"]
    assert body["active"] is True
    # Idempotent: a second acknowledgement changes nothing and posts nothing.
    again = client.post(url, **ack_auth).json()
    assert again["acknowledged_at"] == body["acknowledged_at"]
    system = Message.objects.filter(kind="system").values_list("body", flat=True)
    assert list(system) == ["engineer acknowledged Curiosity: Battery low."]
    assert client.post("/api/alarms/999999/acknowledge", **ack_auth).status_code == 404
    # Other methods answer the API's JSON 405, not an empty body.
    wrong = client.get(url, **ack_auth)
    assert (wrong.status_code, wrong["Allow"]) == (405, "POST")
    assert wrong.json()["error"] == "method_not_allowed"
    wrong = client.post("/api/rovers/curiosity/alarms", **auth)
    assert (wrong.status_code, wrong["Allow"]) == (405, "GET, HEAD")
    assert client.get("/api/rovers/curiosity/alarms?active=maybe", **auth).status_code == 400
    assert client.get("/api/rovers/curiosity/alarms").status_code == 401


def test_raised_at_is_recent(rover, ingest):
    ingest(frame(1, battery_pct=1.0))
    alarm = Alarm.objects.get(rover=rover)
    assert timezone.now() - alarm.raised_at < timedelta(minutes=1)


def test_admin_lists_frames_read_only_and_alarms_with_filters(client, rover, ingest):
    from django.contrib.auth import get_user_model

    ingest(frame(1, battery_pct=4.0))
    admin_user = get_user_model().objects.create_superuser("root", "root@example.org", "pw")
    client.force_login(admin_user)
    frames = client.get("/admin/rover/telemetryframe/?mode__exact=driving")
    assert frames.status_code == 200 and b"Curiosity" in frames.content
    frame_id = TelemetryFrame.objects.get().pk
    assert client.get("/admin/rover/telemetryframe/add/").status_code == 403
    change = client.get(f"/admin/rover/telemetryframe/{frame_id}/change/")
    assert change.status_code == 200 and b'name="_save"' not in change.content
    alarms = client.get("/admin/rover/alarm/?kind__exact=battery_low&cleared_at__isnull=True")
    assert alarms.status_code == 200 and b"Battery at 4.0%" in alarms.content
    limits = client.get(f"/admin/rover/rover/{rover.pk}/change/")
    assert b"battery_low_pct" in limits.content


@pytest.fixture
def redis_unreachable(settings):
    """Point the channel layer at a port where no Redis listens: every publish fails for real."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "streams.layers.RedisChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{free_port()}"], "prefix": "mc-down"},
        }
    }


def publish_failures(caplog, stream: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if f"on {stream} failed" in r.getMessage() and r.exc_info]


def test_a_failed_alarm_publish_is_logged_not_raised(
    rover, redis_unreachable, caplog, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        alarm = alarm_raise(rover=rover, kind=AlarmKind.SAFE_MODE, message="fault")
    assert alarm is not None and Alarm.objects.filter(pk=alarm.pk).exists()
    assert publish_failures(caplog, "rover.curiosity")
    # The room's message is stored although its publish failed too.
    assert publish_failures(caplog, "room.engineering")
    assert room_bodies(rover) == ["ALARM Curiosity: Safe mode. fault"]


def test_an_ingest_whose_publishes_fail_still_answers_with_what_it_stored(
    rover, redis_unreachable, caplog, ingest
):
    body = ingest(frame(1, battery_pct=2.0), frame(2, battery_pct=2.5))
    assert body["stored"] == 2
    assert TelemetryFrame.objects.filter(rover=rover).count() == 2
    assert active_kinds(rover) == {AlarmKind.BATTERY_LOW}
    # The frames' publish and the alarm's, each logged with its exception.
    assert len(publish_failures(caplog, "rover.curiosity")) == 2
