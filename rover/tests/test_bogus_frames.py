"""One bogus frame (a huge seq, a clock gone wrong) must not silence the rover's alarms.

A hostile-input probe stored `{"seq": 2**63 - 1, ...}`, then 26 ordinary frames (seq 1..26),
the last ones at 1 % battery: no battery alarm (alarms were judged only for frames above the
highest seq), "link lost" raised while frames kept arriving (silence was measured from the
highest seq's arrival), the feed's first frame pinned to the bogus one, and the simulator
resuming at 2**63, where every post is refused. Frames are now ordered by what the server
can check: a frame is late only when a stored frame is newer by both seq and rover time
(recorded_at, which may not run more than a minute ahead of the server's clock), and silence
is measured from the latest arrival.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from rover.models import Alarm, AlarmKind, TelemetryFrame
from rover.selectors.telemetry import telemetry_history, telemetry_latest
from rover.services.alarms import alarms_check_link_lost
from rover.services.telemetry import RECORDED_AT_MAX_AHEAD_SECONDS, SEQ_MAX
from rover.tests.factories import BASE_TIME, frame

URL = "/api/rovers/curiosity/telemetry"


@pytest.fixture
def post(post_telemetry):
    """POST frames through the ingest view; return the status and the JSON answer."""

    def send(*frames):
        response = post_telemetry(*frames)
        return response.status_code, response.json()

    return send


@pytest.fixture
def ingest(post):
    def send(*frames):
        status, body = post(*frames)
        assert status in (200, 201), body
        return body

    return send


def active(rover) -> dict[str, Alarm]:
    return {a.kind: a for a in Alarm.objects.filter(rover=rover, cleared_at__isnull=True)}


def bogus(**fields):
    """The probe's frame: the highest seq there is, recorded just before the real ones."""
    return {**frame(0, **fields), "seq": SEQ_MAX}


def test_a_bogus_seq_does_not_silence_the_battery_alarm(rover, ingest):
    ingest(bogus())
    for seq in range(1, 27):  # one frame a post, as the rover sends them at 2 Hz
        ingest(frame(seq, battery_pct=1.0 if seq > 20 else 80.0))
    alarm = active(rover).get(AlarmKind.BATTERY_LOW)
    assert alarm is not None, "battery at 1 % raised nothing"
    assert alarm.seq == 21


def test_a_bogus_seq_in_the_same_batch_does_not_undo_its_alarm(rover, ingest):
    """Within a request frames are judged in rover time: the bogus frame is the oldest here."""
    ingest(frame(1), bogus(), frame(2, battery_pct=1.0))
    assert AlarmKind.BATTERY_LOW in active(rover)


def test_a_late_frame_still_changes_nothing_after_a_bogus_seq(rover, ingest):
    ingest(bogus())
    ingest(frame(10, battery_pct=80.0))
    ingest(frame(9, battery_pct=3.0))
    assert active(rover) == {}
    ingest(frame(11, battery_pct=3.0))
    ingest(frame(8, battery_pct=80.0))  # late: does not clear what frame 11 raised
    assert AlarmKind.BATTERY_LOW in active(rover)


def test_a_frame_from_a_clock_running_ahead_does_not_silence_alarms(rover, ingest):
    """Seq still orders frames whose rover time went wrong: newer by seq is not late."""
    ingest(frame(1))
    ingest(frame(2, recorded_at=(timezone.now() + timedelta(seconds=30)).isoformat()))
    ingest(frame(3, battery_pct=1.0))
    assert AlarmKind.BATTERY_LOW in active(rover)


def test_a_clock_reset_does_not_hide_the_rovers_alarms_either(rover, ingest):
    ingest(frame(1), frame(2))
    past = [BASE_TIME - timedelta(days=365) + timedelta(seconds=n) for n in range(3)]
    ingest(*(frame(3 + n, recorded_at=t.isoformat(), battery_pct=1.0) for n, t in enumerate(past)))
    assert AlarmKind.BATTERY_LOW in active(rover)


def test_link_lost_is_judged_from_the_latest_arrival(rover, ingest):
    ingest(bogus())
    # The bogus frame arrived a minute ago; ordinary frames have arrived since.
    TelemetryFrame.objects.filter(seq=SEQ_MAX).update(
        received_at=timezone.now() - timedelta(minutes=1)
    )
    ingest(frame(1), frame(2))
    last_arrival = TelemetryFrame.objects.get(seq=2).received_at
    assert alarms_check_link_lost(now=last_arrival + timedelta(seconds=5)) == []
    raised = alarms_check_link_lost(now=last_arrival + timedelta(seconds=11))
    assert [(a.kind, a.seq) for a in raised] == [(AlarmKind.LINK_LOST, 2)]
    assert "last frame 2" in raised[0].message


def test_the_feeds_first_frame_is_the_newest_by_rover_time(rover, ingest):
    ingest(bogus())
    ingest(frame(1), frame(2))
    ingest(frame(3))
    latest, position = telemetry_latest(rover=rover)
    assert (latest.seq, position) == (3, 4)


def test_the_newest_page_is_the_newest_by_rover_time(rover, ingest):
    """What `simulate_rover` resumes after (`?limit=1`) and a chart opening on "now" shows."""
    ingest(bogus())
    ingest(*(frame(seq) for seq in range(1, 27)))
    page, truncated = telemetry_history(rover=rover, since=None, until=None, limit=1)
    assert [f.seq for f in page] == [26] and truncated
    page, _ = telemetry_history(rover=rover, since=None, until=None, limit=3)
    assert [f.seq for f in page] == [24, 25, 26]


def test_recorded_at_far_ahead_of_the_server_clock_is_refused(rover, post):
    ahead = datetime.now(UTC) + timedelta(seconds=RECORDED_AT_MAX_AHEAD_SECONDS + 60)
    status, body = post(frame(1), frame(2, recorded_at=ahead.isoformat()))
    assert status == 400, body
    assert body["error"] == "invalid_frames"
    (refused,) = body["frames"]
    assert (refused["index"], refused["seq"]) == (1, 2)
    assert "ahead of the server's clock" in refused["errors"]["recorded_at"]
    assert not TelemetryFrame.objects.exists()


@pytest.mark.slow
def test_the_simulator_resumes_after_the_newest_frame_not_the_bogus_seq(
    server_process, rover, tmp_path
):
    from rover.services.telemetry import telemetry_store, telemetry_validate
    from rover.tests.test_telemetry_simulator import run_simulator

    now = datetime.now(UTC)
    stamps = [now - timedelta(seconds=60 - n) for n in range(27)]
    payload = [{**frame(seq), "recorded_at": stamps[seq].isoformat()} for seq in range(1, 27)]
    telemetry_store(rover=rover, frames=telemetry_validate(payload=[bogus(), *payload]))
    server = server_process()
    run = run_simulator(server, tmp_path, "--rate", "20", "--duration", "1", "--image-every", "0")
    assert run.returncode == 0, run.stderr
    assert "from seq 27 " in run.stdout, run.stdout
    assert "frames refused" not in run.stderr, run.stderr
    assert TelemetryFrame.objects.filter(seq__gte=27, seq__lt=SEQ_MAX).count() >= 10


@pytest.mark.slow
def test_the_simulator_says_why_it_cannot_continue_after_the_highest_seq(
    server_process, rover, tmp_path
):
    """The newest frame is the bogus one: no seq is left after it; say so, post nothing."""
    from rover.services.telemetry import telemetry_store, telemetry_validate
    from rover.tests.test_telemetry_simulator import run_simulator

    recent = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    telemetry_store(
        rover=rover, frames=telemetry_validate(payload=[{**bogus(), "recorded_at": recent}])
    )
    run = run_simulator(server_process(), tmp_path, "--duration", "1", "--image-every", "0")
    assert run.returncode != 0
    assert "no seq is left" in run.stderr, run.stderr
    assert TelemetryFrame.objects.count() == 1


def test_a_late_frame_clears_link_lost_but_nothing_else(rover, ingest):
    """Link lost is about arrivals (the watchdog times the last one): any frame received ends it."""
    ingest(frame(10, battery_pct=80.0))
    last = TelemetryFrame.objects.get(seq=10).received_at
    assert [a.kind for a in alarms_check_link_lost(now=last + timedelta(seconds=30))] == [
        AlarmKind.LINK_LOST
    ]
    ingest(frame(9, battery_pct=3.0))  # late: below frame 10 in seq and rover time
    assert active(rover) == {}
