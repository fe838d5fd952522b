"""Team rooms in a real browser: failed sends, times, links, separators, new messages."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from tests.browser.pages import log_in

from .conftest import make_mission

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_refused_messages_fail_with_retry_and_discard_and_only_unanswered_ones_resend(
    server_process, user_factory, token_for, page, console_errors
):
    from comms.models import Message

    mission = make_mission(
        server_process,
        user_factory,
        token_for,
        env={"CHAT_RATE_MESSAGES": "10", "CHAT_RATE_SECONDS": "3"},
    )
    console_errors(page)
    log_in(page, mission.url, "alice")
    expect(page.locator("#conn-rooms")).to_have_attribute("data-state", "live")

    # 14 messages at once: the server stores 10 and refuses 4 (rate limit).
    page.evaluate(
        "() => { for (let i = 1; i <= 14; i++) window.missionControl.rooms.active.send(`m${i}`); }"
    )
    stored = page.locator("#message-list .msg-chat")
    failed = page.locator("#message-list .msg-failed")
    expect(stored).to_have_count(10)
    expect(failed).to_have_count(4)
    expect(page.locator("#message-list .msg-pending")).to_have_count(0)
    expect(failed.locator(".body")).to_have_text(["m11", "m12", "m13", "m14"])
    expect(failed.first.locator(".failure")).to_have_text(
        "Not sent: too many messages in a short time. Wait a few seconds, then retry."
    )
    assert "rate_limited" not in page.locator("#rooms-panel").inner_text()

    failed.filter(has_text="m12").get_by_role("button", name="Discard").click()
    expect(failed.locator(".body")).to_have_text(["m11", "m13", "m14"])

    # The socket drops (after the rate window): failed messages are not resent, a
    # queued one is, once.
    page.wait_for_timeout(3100)
    page.evaluate(
        """() => {
            const room = window.missionControl.rooms.active;
            room.ws.close();
            document.querySelector("#composer-input").value = "typed while down";
            document.querySelector("#composer button[type=submit]").click();
        }"""
    )
    expect(page.locator("#composer-status")).to_have_text(
        "Queued: it is sent when the room reconnects."
    )
    expect(stored.last.locator(".body")).to_have_text("typed while down", timeout=10_000)
    expect(page.locator("#composer-status")).to_have_text("")
    expect(failed).to_have_count(3)
    assert Message.objects.count() == 11

    # Retry stores the message once, with the same client_id.
    failed.filter(has_text="m11").get_by_role("button", name="Retry").click()
    expect(stored).to_have_count(12)
    expect(stored.last.locator(".body")).to_have_text("m11")
    expect(failed.locator(".body")).to_have_text(["m13", "m14"])
    assert Message.objects.count() == 12
    assert sorted(Message.objects.values_list("body", flat=True)) == sorted(
        [f"m{n}" for n in range(1, 12)] + ["typed while down"]
    )
    assert console_errors.errors == []


def test_times_are_utc_24h_with_dates_sols_separators_links_and_a_new_messages_line(
    mission, browser, console_errors
):
    from comms.models import Message, Team
    from rover.models import Alarm, Rover

    now = datetime.now(UTC)
    yesterday = now - timedelta(days=1)
    Rover.objects.filter(slug="curiosity").update(
        landing_date=now - timedelta(seconds=88775.244 * 10 + 3600)
    )
    engineering = Team.objects.get(slug="engineering")
    old = Message.objects.create(team=engineering, body="Yesterday's plan", kind="system")
    link = Message.objects.create(
        team=engineering,
        body="Plan at https://example.org/plan?sol=10. Not a tag: <b>bold</b> javascript:alert(1)",
        kind="system",
    )
    Message.objects.filter(pk=old.pk).update(created_at=yesterday)
    alarm = Alarm.objects.create(
        rover=Rover.objects.get(slug="curiosity"), kind="battery_low", message="Battery at 9%."
    )
    Alarm.objects.filter(pk=alarm.pk).update(raised_at=yesterday)
    mission.upload_image(size=(64, 48), camera="hazcam_front", captured_at=yesterday.isoformat())
    mission.ingest([mission.frame()])

    # A browser in New York with a 12-hour locale still shows UTC, 24-hour.
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, timezone_id="America/New_York", locale="en-US"
    )
    alice = console_errors(context.new_page())
    log_in(alice, mission.url, "alice")
    day = yesterday.strftime("%Y-%m-%d")
    separators = alice.locator("#message-list .day-separator")
    expect(separators).to_have_text([f"Yesterday ({day})", f"Today ({now:%Y-%m-%d})"])
    times = alice.locator("#message-list .msg .meta time")
    expect(times.first).to_have_text(f"{yesterday:%Y-%m-%d %H:%M:%S} UTC · Sol 9")
    expect(times.nth(1)).to_have_text(re.compile(r"^\d\d:\d\d:\d\d UTC · Sol 10$"))
    assert times.first.get_attribute("title") == f"{yesterday:%Y-%m-%d %H:%M:%S} UTC · Sol 9"
    expect(alice.locator("#alarm-list .alarm-time time").first).to_have_text(
        f"{yesterday:%Y-%m-%d %H:%M:%S} UTC · Sol 9"
    )
    expect(alice.locator("#image-caption")).to_contain_text(
        f"Front hazard camera · {yesterday:%Y-%m-%d %H:%M:%S} UTC"
    )
    expect(alice.locator("#frame-time")).to_contain_text(re.compile(r"\d\d:\d\d:\d\d UTC · Sol 10"))
    expect(alice.locator("#utc-clock")).to_contain_text(f"{now:%Y-%m-%d} ")
    assert " AM" not in alice.locator("body").inner_text()
    assert " PM" not in alice.locator("body").inner_text()

    # URLs become links built from text; nothing else becomes markup.
    body = alice.locator(f"#message-list .msg[data-id='{link.pk}'] .body")
    anchor = body.locator("a")
    expect(anchor).to_have_count(1)
    assert anchor.get_attribute("href") == "https://example.org/plan?sol=10"
    assert anchor.get_attribute("rel") == "noopener noreferrer"
    expect(body).to_have_text(link.body)
    assert body.evaluate("el => el.querySelectorAll('b').length") == 0

    # What arrives in another room while alice is away is marked by a "new messages" line.
    bob = console_errors(browser.new_context().new_page())
    log_in(bob, mission.url, "bob")
    bob.click("#tab-science")
    for text in ("first while away", "second while away"):
        bob.fill("#composer-input", text)
        bob.press("#composer-input", "Enter")
    expect(alice.locator("#tab-science .unread")).to_have_text("2")
    alice.click("#tab-science")
    line = alice.locator("#message-list .new-line")
    expect(line).to_have_text("New messages")
    assert line.evaluate("el => el.nextElementSibling.querySelector('.body').textContent") == (
        "first while away"
    )
    alice.fill("#composer-input", "read them")
    alice.press("#composer-input", "Enter")
    expect(line).to_have_count(0)
    bob.context.close()
    assert console_errors.errors == []
