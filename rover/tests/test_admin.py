"""Running a mission from the admin: rovers, frames, alarms, users' teams, the icon."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.staticfiles import finders

from comms.models import Membership, Message, Team
from rover.models import Alarm, Rover, TelemetryFrame

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_superuser("flight", "f@example.org", "pw-123456")
    client.force_login(user)
    return client


@pytest.fixture
def curiosity() -> Rover:
    team = Team.objects.create(slug="eng", name="Engineering")
    return Rover.objects.create(slug="curiosity", name="Curiosity", alarm_team=team)


def frame(rover: Rover, seq: int, **values) -> TelemetryFrame:
    fields = {"battery_pct": 80.0, "signal_dbm": -90.0, "temp_internal_c": 12.5}
    fields.update(values)
    at = datetime(2026, 11, 24, 13, 4, 5, tzinfo=UTC)
    return TelemetryFrame.objects.create(
        rover=rover, seq=seq, ingest_id=seq, recorded_at=at, **fields
    )


def alarm(rover: Rover, kind: str, **fields) -> Alarm:
    return Alarm.objects.create(rover=rover, kind=kind, message=f"{kind} test", **fields)


def test_rover_list_shows_last_frame_time_with_seconds_and_active_alarms(staff, curiosity):
    quiet = Rover.objects.create(slug="quiet", name="Quiet")
    frame(curiosity, 1)
    newest = frame(curiosity, 2)
    TelemetryFrame.objects.filter(pk=newest.pk).update(
        received_at=datetime(2026, 11, 25, 9, 8, 7, tzinfo=UTC)
    )
    alarm(curiosity, "battery_low")
    alarm(curiosity, "safe_mode")
    alarm(curiosity, "temp_high", cleared_at=datetime.now(UTC))
    page = staff.get("/admin/rover/rover/").content.decode()
    assert "Last frame (UTC)" in page and "Active alarms" in page
    row = re.search(r"<tr>.*?Curiosity.*?</tr>", page, re.S).group(0)
    assert "2026-11-25 09:08:07 UTC" in row
    assert f'rover__id__exact={curiosity.pk}&amp;state=active">2</a>' in row
    quiet_row = re.search(r"<tr>.*?Quiet.*?</tr>", page, re.S).group(0)
    assert "no frame yet" in quiet_row
    assert quiet.pk


def test_rover_list_last_frame_is_the_last_received_not_the_highest_seq(staff, curiosity):
    bogus = frame(curiosity, 2**63 - 1)
    TelemetryFrame.objects.filter(pk=bogus.pk).update(
        ingest_id=1, received_at=datetime(2026, 11, 20, 1, 2, 3, tzinfo=UTC)
    )
    later = frame(curiosity, 5)
    TelemetryFrame.objects.filter(pk=later.pk).update(
        ingest_id=2, received_at=datetime(2026, 11, 25, 9, 8, 7, tzinfo=UTC)
    )
    page = staff.get("/admin/rover/rover/").content.decode()
    row = re.search(r"<tr>.*?Curiosity.*?</tr>", page, re.S).group(0)
    assert "2026-11-25 09:08:07 UTC" in row


def test_rover_page_edits_the_staleness_limit_and_landing_date(staff, curiosity):
    page = staff.get(f"/admin/rover/rover/{curiosity.pk}/change/").content.decode()
    assert "Stale after (s)" in page and "Landing (UTC)" in page
    assert "Battery low below (%)" in page and "Internal temperature max (°C)" in page
    data = {
        "name": "Curiosity",
        "slug": "curiosity",
        "description": "",
        "alarm_team": curiosity.alarm_team_id,
        "landing_date_0": "2012-08-06",
        "landing_date_1": "05:17:57",
        "stale_after_seconds": "0",
        "alarm_limits-TOTAL_FORMS": "0",
        "alarm_limits-INITIAL_FORMS": "0",
        "alarm_limits-MIN_NUM_FORMS": "0",
        "alarm_limits-MAX_NUM_FORMS": "1",
    }
    refused = staff.post(f"/admin/rover/rover/{curiosity.pk}/change/", data)
    assert refused.status_code == 200  # 0 s is no limit at all: the form says so
    assert "Ensure this value is greater than or equal to 1" in refused.content.decode()
    saved = staff.post(
        f"/admin/rover/rover/{curiosity.pk}/change/", {**data, "stale_after_seconds": "30"}
    )
    assert saved.status_code == 302
    curiosity.refresh_from_db()
    assert curiosity.stale_after_seconds == 30
    assert curiosity.landing_date == datetime(2012, 8, 6, 5, 17, 57, tzinfo=UTC)


def test_dashboard_config_carries_each_rovers_limit_and_landing_date(staff, curiosity):
    Rover.objects.filter(pk=curiosity.pk).update(
        stale_after_seconds=25, landing_date=datetime(2012, 8, 6, 5, 17, 57, tzinfo=UTC)
    )
    body = staff.get("/").content.decode()
    config = json.loads(re.search(r'id="dashboard-config"[^>]*>(.*?)</script>', body).group(1))
    assert config["rovers"] == [
        {
            "slug": "curiosity",
            "name": "Curiosity",
            "stale_after_seconds": 25,
            "landing_date": "2012-08-06T05:17:57+00:00",
        }
    ]
    assert config["cameras"]["hazcam_front"] == "Front hazard camera"
    assert config["teamHelp"]["adminUrl"] == "/admin/comms/team/"
    assert abs(config["serverTime"] / 1000 - datetime.now(UTC).timestamp()) < 5


def test_frames_list_labels_fields_with_units_and_times_with_seconds(staff, curiosity):
    frame(curiosity, 1)
    page = staff.get("/admin/rover/telemetryframe/").content.decode()
    for label in ("Battery (%)", "Signal (dBm)", "Internal temperature (°C)", "Speed (m/s)"):
        assert label in page
    assert "Recorded (UTC)" in page and "2026-11-24 13:04:05 UTC" in page


def test_alarm_filter_reads_active_acknowledged_cleared_and_filters(staff, curiosity, user_factory):
    someone = user_factory("someone")
    active = alarm(curiosity, "battery_low")
    acked = alarm(
        curiosity, "safe_mode", acknowledged_by=someone, acknowledged_at=datetime.now(UTC)
    )
    cleared = alarm(curiosity, "temp_high", cleared_at=datetime.now(UTC))
    page = staff.get("/admin/rover/alarm/").content.decode()
    assert "By state" in page
    for label in ("Active", "Acknowledged", "Cleared"):
        assert f">{label}</a>" in page
    assert "cleared at" not in page.lower().replace("cleared (utc)", "")

    def listed(state):
        body = staff.get(f"/admin/rover/alarm/?state={state}").content.decode()
        return {
            pk for pk in (active.pk, acked.pk, cleared.pk) if f"/rover/alarm/{pk}/change/" in body
        }

    assert listed("active") == {active.pk}
    assert listed("acknowledged") == {acked.pk}
    assert listed("cleared") == {cleared.pk}


def test_bulk_acknowledge_records_who_and_announces_through_the_service(staff, curiosity):
    first = alarm(curiosity, "battery_low")
    second = alarm(curiosity, "safe_mode", raised_at=datetime.now(UTC) - timedelta(minutes=1))
    response = staff.post(
        "/admin/rover/alarm/",
        {"action": "acknowledge", "_selected_action": [first.pk, second.pk]},
        follow=True,
    )
    assert "Acknowledged 2 alarm(s) as flight." in response.content.decode()
    for item in Alarm.objects.filter(pk__in=[first.pk, second.pk]):
        assert item.acknowledged_by.username == "flight"
        assert item.acknowledged_at is not None
    notes = list(Message.objects.filter(team=curiosity.alarm_team).values_list("body", flat=True))
    assert sorted(notes) == [
        "flight acknowledged Curiosity: Battery low.",
        "flight acknowledged Curiosity: Safe mode.",
    ]
    again = staff.post(
        "/admin/rover/alarm/",
        {"action": "acknowledge", "_selected_action": [first.pk]},
        follow=True,
    )
    assert (
        "0 alarm(s)" in again.content.decode()
        and "1 already acknowledged" in again.content.decode()
    )
    assert Message.objects.count() == 2


def test_bulk_acknowledge_needs_the_change_permission(client, curiosity, user_factory):
    viewer = user_factory("viewer", perms=("rover.view_alarm",), is_staff=True)
    client.force_login(viewer)
    item = alarm(curiosity, "battery_low")
    page = client.get("/admin/rover/alarm/").content.decode()
    assert 'value="acknowledge"' not in page
    client.post("/admin/rover/alarm/", {"action": "acknowledge", "_selected_action": [item.pk]})
    item.refresh_from_db()
    assert item.acknowledged_at is None


def test_user_page_shows_the_users_teams_inline(staff, curiosity, user_factory):
    member = user_factory("member")
    Membership.objects.create(user=member, team=curiosity.alarm_team)
    science = Team.objects.create(slug="sci", name="Science")
    page = staff.get(f"/admin/auth/user/{member.pk}/change/").content.decode()
    assert "Teams" in page and "Engineering" in page
    form = {
        "username": "member",
        "date_joined_0": "2026-11-25",
        "date_joined_1": "10:00:00",
        "is_active": "on",
        "memberships-TOTAL_FORMS": "2",
        "memberships-INITIAL_FORMS": "1",
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
        "memberships-0-id": Membership.objects.get(user=member).pk,
        "memberships-0-user": member.pk,
        "memberships-0-team": curiosity.alarm_team_id,
        "memberships-0-role": "member",
        "memberships-1-user": member.pk,
        "memberships-1-team": science.pk,
        "memberships-1-role": "member",
    }
    saved = staff.post(f"/admin/auth/user/{member.pk}/change/", form)
    assert saved.status_code == 302, saved.content.decode()[:3000]
    assert sorted(member.teams.values_list("slug", flat=True)) == ["eng", "sci"]


def test_no_favicon_404_the_admin_links_the_icon_and_favicon_ico_redirects(staff, client):
    page = staff.get("/admin/").content.decode()
    assert '<link rel="icon" href="/static/favicon.svg"' in page
    response = client.get("/favicon.ico")
    assert response.status_code == 302 and response["Location"] == "/static/favicon.svg"
    assert finders.find("favicon.svg")
