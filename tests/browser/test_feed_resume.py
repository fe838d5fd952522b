"""A dashboard whose feed drops and resumes catches up on alarms and images, once each."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.pages import log_in, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_alarm_changes_and_images_of_a_network_blip_show_once_after_resume(
    mission, page, console_errors
):
    """While the browser is offline: an alarm is acknowledged and cleared, another is
    raised, an image captured long ago arrives. Back online, without a reload, the page
    shows each of them once, as it would have live.
    """
    from django.contrib.auth import get_user_model

    from rover.models import Alarm
    from rover.services.alarms import alarm_acknowledge

    console_errors(page)
    mission.ingest([mission.frame() for _ in range(5)])
    log_in(page, mission.url, "alice")
    expect(page.locator("#conn-telemetry")).to_have_attribute("data-state", "live")
    mission.ingest([mission.frame(battery_pct=9.5)])
    expect(page.locator("#alarm-list .alarm-active")).to_contain_text("battery")
    expect(page.locator("#announcer")).to_contain_text("Alarm on curiosity")
    # Kept to be delivered again later, stale, as a second worker may deliver it.
    page.evaluate("window.staleAlarm = [...window.missionControl.alarms.alarms.values()][0]")

    # Offline, then the stream drops as on a network error: reconnects fail until online.
    page.context.set_offline(True)
    page.evaluate("window.missionControl.feed().retry()")
    expect(page.locator("#conn-telemetry")).to_have_attribute("data-state", "reconnecting")
    battery = Alarm.objects.get(kind="battery_low")
    alarm_acknowledge(alarm=battery, user=get_user_model().objects.get(username="bob"))
    mission.ingest([mission.frame(battery_pct=9.0, mode="safe_mode")])
    image = mission.upload_image(size=(64, 48), captured_at="2026-01-02T03:04:05Z")
    mission.ingest([mission.frame(battery_pct=90.0, mode="safe_mode")])
    page.context.set_offline(False)

    expect(page.locator("[data-field=seq]")).to_have_text("#8", timeout=10_000)
    items = page.locator("#alarm-list .alarm")
    expect(items).to_have_count(2)
    expect(page.locator(f"[data-alarm-id='{battery.pk}']")).to_have_class("alarm alarm-cleared")
    expect(page.locator(f"[data-alarm-id='{battery.pk}']")).to_contain_text("Acknowledged by bob")
    expect(page.locator("#alarm-list .alarm-active")).to_contain_text("safe mode")
    expect(page.locator("#header-alarms")).to_have_text("1 active alarm")
    expect(page.locator(f"#image-gallery button[data-image-id='{image['id']}']")).to_have_count(1)
    expect(page.locator("#image-gallery button")).to_have_count(1)
    wait_until(page, "window.missionControl.framesSeen().length >= 4")
    page.wait_for_timeout(300)  # room for a repeat to show up, were there one
    assert page.evaluate("window.missionControl.framesSeen()") == [5, 6, 7, 8]
    expect(page.locator("#image-gallery button")).to_have_count(1)
    expect(items).to_have_count(2)
    expect(page.locator("#announcer")).to_contain_text("Alarm cleared on curiosity")

    # A stale copy of an alarm (raised, not acknowledged) undoes nothing and says nothing.
    page.evaluate("window.missionControl.alarms.upsert(window.staleAlarm)")
    page.wait_for_timeout(100)
    expect(page.locator(f"[data-alarm-id='{battery.pk}']")).to_have_class("alarm alarm-cleared")
    expect(page.locator("#header-alarms")).to_have_text("1 active alarm")
    expect(page.locator("#announcer")).to_contain_text("Alarm cleared on curiosity")
    page.context.close()
    network = ("net::ERR_", "WebSocket connection to", "Failed to load resource")
    assert [e for e in console_errors.errors if not any(n in e for n in network)] == []


def test_an_image_stored_while_the_feed_of_a_rover_without_frames_was_down_shows_once(
    mission, page, console_errors
):
    """No frame yet, so no id to resume from: the reconnect reloads the lists instead."""
    console_errors(page)
    log_in(page, mission.url, "alice")
    expect(page.locator("#conn-telemetry")).to_have_attribute("data-state", "idle")
    page.context.set_offline(True)
    page.evaluate("window.missionControl.feed().retry()")
    expect(page.locator("#conn-telemetry")).to_have_attribute("data-state", "reconnecting")
    image = mission.upload_image(size=(64, 48))
    page.context.set_offline(False)

    expect(page.locator("#conn-telemetry")).to_have_attribute("data-state", "idle", timeout=10_000)
    expect(page.locator(f"#image-gallery button[data-image-id='{image['id']}']")).to_have_count(1)
    page.wait_for_timeout(300)
    expect(page.locator("#image-gallery button")).to_have_count(1)
    page.context.close()
    network = ("net::ERR_", "WebSocket connection to", "Failed to load resource")
    assert [e for e in console_errors.errors if not any(n in e for n in network)] == []
