"""Late frames on the dashboard: shown once each, resumed by event id, never as the state."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.pages import log_in, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]


EARLIER = "2026-01-01T00:00:00Z"


def seen_frames(page) -> list[int]:
    return page.evaluate("window.missionControl.framesSeen()")


def test_late_frames_arrive_once_across_a_restart_and_the_status_keeps_the_newest(
    mission, page, console_errors
):
    """Seqs below the newest reach the page live; its reconnect resumes by the server's id.

    Before ingest ids the page resumed from the last frame's seq (3 here) and the
    server replayed by seq, so a late frame never arrived and a reconnect repeated.
    """
    console_errors(page)
    mission.ingest([mission.frame(seq=seq) for seq in (10, 11, 12)])
    log_in(page, mission.url, "alice")
    expect(page.locator("[data-field=seq]")).to_have_text("#12")
    # Late: recorded before the frames already shown (older by seq and by rover time).
    mission.ingest([mission.frame(seq=5, recorded_at=EARLIER), mission.frame(seq=13)])
    mission.ingest([mission.frame(seq=4, recorded_at=EARLIER)])
    mission.ingest([mission.frame(seq=3, battery_pct=3.0, recorded_at=EARLIER)])
    wait_until(page, "window.missionControl.framesSeen().length >= 5")
    assert seen_frames(page) == [12, 5, 13, 4, 3]
    # The late frame is not the rover's state: the panel keeps seq 13's values.
    expect(page.locator("[data-field=seq]")).to_have_text("#13")

    mission.server.restart()
    expect(page.locator("#conn-telemetry")).to_have_attribute("data-state", "live", timeout=20_000)
    mission.ingest([mission.frame(seq=1, recorded_at=EARLIER), mission.frame(seq=14)])
    expect(page.locator("[data-field=seq]")).to_have_text("#14", timeout=20_000)
    wait_until(page, "window.missionControl.framesSeen().length >= 7")
    page.wait_for_timeout(300)  # room for a repeat to show up, were there one
    assert seen_frames(page) == [12, 5, 13, 4, 3, 1, 14]
    page.context.close()
    network = ("net::ERR_", "WebSocket connection to", "Failed to load resource")
    assert [e for e in console_errors.errors if not any(n in e for n in network)] == []


def test_one_bogus_seq_does_not_pin_the_status(mission, page):
    """A frame with seq 2**63-1 outranks nothing recorded after it, as on the server.

    Before, the panel kept the highest seq it had seen: one bogus frame pinned it for good.
    """
    mission.ingest([mission.frame(seq=seq) for seq in (1, 2)])
    log_in(page, mission.url, "alice")
    expect(page.locator("[data-field=seq]")).to_have_text("#2")
    bogus = mission.frame(seq=2**63 - 1, recorded_at=EARLIER, battery_pct=50.0)
    mission.ingest([bogus])
    wait_until(page, "window.missionControl.framesSeen().length >= 2")  # the first: #2
    # Not late (no frame shown is newer by both), so it is shown; the next frame is newer
    # by rover time, so it is not late either, and takes its place.
    mission.ingest([mission.frame(seq=3)])
    expect(page.locator("[data-field=seq]")).to_have_text("#3")
