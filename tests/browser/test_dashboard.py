"""The dashboard in a real browser against a real server."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from tests.browser.pages import ARTIFACTS, log_in, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def seen_frames(page) -> list[int]:
    return page.evaluate("window.missionControl.framesSeen()")


def test_dashboard_is_live_charts_gain_points_and_an_image_downloads_with_progress(
    mission, page, browser, console_errors
):
    console_errors(page)
    mission.ingest([mission.frame() for _ in range(20)])
    response = page.goto(f"{mission.url}/accounts/login/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    log_in(page, mission.url, "alice")

    expect(page.locator("#conn-telemetry")).to_have_attribute("data-state", "live")
    expect(page.locator("[data-field=seq]")).to_have_text("#20")
    points = int(page.locator("#charts").get_attribute("data-points"))
    assert points >= 1
    battery = page.locator("[data-field=battery_pct]").text_content()

    mission.ingest([mission.frame(battery_pct=55.5) for _ in range(5)])
    expect(page.locator("[data-field=seq]")).to_have_text("#25")
    expect(page.locator("[data-field=battery_pct]")).to_have_text("55.5 %")
    assert battery != "55.5 %"
    wait_until(page, f"Number(document.querySelector('#charts').dataset.points) > {points}")
    expect(page.locator("#status-panel")).to_have_attribute("data-stale", "false")
    expect(page.locator("#map-caption")).to_contain_text("heading")
    assert seen_frames(page) == list(range(20, 26))

    # A new image appears without a reload; opening it streams it with real progress.
    image = mission.upload_image()
    thumb = page.locator(f"button[data-image-id='{image['id']}']")
    expect(thumb).to_be_visible()
    thumb.click()
    expect(page.locator("#images-panel")).to_have_attribute("data-download", "complete")
    progress = page.locator("#image-progress")
    assert progress.evaluate("p => p.value") == image["size"]
    assert progress.evaluate("p => p.max") == image["size"]
    assert (
        page.locator("#image-main").evaluate(
            "img => img.src.startsWith('blob:') && img.complete && img.naturalWidth"
        )
        == image["width"]
    )

    # A battery alarm stands out, is announced, and alice acknowledges it for everyone:
    # bob (no permission to acknowledge) watches from another browser context.
    bob = console_errors(browser.new_context().new_page())
    log_in(bob, mission.url, "bob")
    expect(bob.locator("#conn-telemetry")).to_have_attribute("data-state", "live")
    mission.ingest([mission.frame(battery_pct=9.5)])
    alarm = page.locator("#alarm-list .alarm-active")
    expect(alarm).to_contain_text("battery")
    expect(page.locator("#alarms-panel")).to_have_attribute("data-active", "true")
    expect(page.locator("#header-alarms")).to_have_text("1 active alarm")
    expect(page.locator("#announcer")).to_contain_text("Alarm on curiosity")
    expect(page.locator("#message-list .msg-alarm")).to_have_count(1)
    alarm.get_by_role("button", name="Acknowledge").click()
    expect(page.locator("#alarm-list .alarm-acknowledged")).to_contain_text("Acknowledged by alice")
    expect(bob.locator("#alarm-list .alarm-acknowledged")).to_contain_text("Acknowledged by alice")
    expect(bob.get_by_role("button", name="Acknowledge")).to_have_count(0)
    bob.context.close()

    # Team messages are markers on the charts' time axis; hovering one shows who said what.
    page.fill("#composer-input", "Pausing the drive for a panorama")
    page.press("#composer-input", "Enter")
    expect(page.locator("#message-list .msg-chat")).to_have_count(1)
    mission.ingest([mission.frame()])
    expect(page.locator("[data-field=seq]")).to_have_text("#27")
    page.locator("#chart-battery").scroll_into_view_if_needed()
    point = page.evaluate(
        """() => {
            const charts = window.missionControl.charts;
            const marker = [...charts.markers.values()].find((m) => m.kind === "message"
                && m.label.includes("panorama"));
            const plot = charts.plots[0].plot;
            const box = plot.over.getBoundingClientRect();
            return [box.left + plot.valToPos(marker.t, "x"), box.top + box.height / 2];
        }"""
    )
    page.mouse.move(*point)
    expect(page.locator("#chart-battery .marker-tip")).to_contain_text(
        "Engineering · alice: Pausing the drive for a panorama"
    )

    # A stale link is shown as such: no frame for longer than the stale limit.
    expect(page.locator("#status-panel")).to_have_attribute("data-stale", "true", timeout=15_000)
    expect(page.locator("#link-state")).to_contain_text("LINK LOST")
    expect(page.locator("#link-state")).to_contain_text("(limit 10 s)")  # the rover's own limit
    expect(page.locator("#conn-telemetry")).to_have_attribute("data-state", "lost")
    # Wider windows back-fill from the history API again.
    page.get_by_role("button", name="1 h").click()
    expect(page.get_by_role("button", name="1 h")).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_role("button", name="5 min")).to_have_attribute("aria-pressed", "false")
    wait_until(
        page,
        """(() => {
            const charts = window.missionControl.charts;
            const x = charts.plots[0].plot.scales.x;
            return Math.round(x.max - x.min) === 3600 && Number(charts.root.dataset.points) >= 1;
        })()""",
    )

    # Phone width: one column, nothing wider than the screen.
    page.set_viewport_size({"width": 390, "height": 844})
    wait_until(page, "document.documentElement.scrollWidth <= window.innerWidth")
    assert console_errors.errors == []


def test_two_operators_chat_see_presence_typing_and_script_as_text(
    mission, browser, console_errors
):
    from comms.models import Message, Team

    science = Team.objects.get(slug="science")
    Message.objects.bulk_create(
        Message(team=science, body=f"Science log {n}", kind="system") for n in range(1, 56)
    )
    pages = {}
    for name in ("alice", "bob"):
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        pages[name] = console_errors(context.new_page())
        log_in(pages[name], mission.url, name)
    alice, bob = pages["alice"], pages["bob"]
    for page, other in ((alice, "bob"), (bob, "alice")):
        expect(page.locator("#conn-rooms")).to_have_attribute("data-state", "live")
        expect(page.locator(f"#presence-list li[data-user='{other}']")).to_be_visible()

    alice.fill("#composer-input", "Battery looks fine from here")
    expect(bob.locator("#typing")).to_contain_text("alice is typing")
    alice.press("#composer-input", "Enter")
    expect(bob.locator("#message-list .msg .body").last).to_have_text(
        "Battery looks fine from here"
    )

    # New messages are appended: the live log keeps its existing items (no re-reading).
    expect(alice.locator("#message-list .msg-pending")).to_have_count(0)
    first = alice.locator("#message-list .msg[data-id]").first.element_handle()
    hostile = "<script>window.pwned = 1</script><b>bold?</b>"
    bob.fill("#composer-input", hostile)
    bob.click("#composer button[type=submit]")
    last = alice.locator("#message-list .msg .body").last
    expect(last).to_have_text(hostile)
    assert last.evaluate("el => el.children.length") == 0
    assert alice.evaluate("window.pwned") is None
    assert first.evaluate("el => el.isConnected")

    # A message in another room counts as unread on that tab, and clears when opened.
    bob.click("#tab-science")
    bob.fill("#composer-input", "science here")
    bob.press("#composer-input", "Enter")
    unread = alice.locator("#tab-science .unread")
    expect(unread).to_have_text("1")
    alice.focus("#tab-engineering")
    alice.keyboard.press("ArrowRight")
    expect(alice.locator("#tab-science")).to_have_attribute("aria-selected", "true")
    expect(alice.locator("#tab-science")).to_be_focused()
    expect(unread).to_be_hidden()
    expect(alice.locator("#message-list .msg .body").last).to_have_text("science here")

    # History pages back: the join brought the newest 50 stored; "Load older" brings the rest.
    science_log = alice.locator("#message-list .msg-system")
    expect(science_log).to_have_count(50)
    expect(science_log.first).to_have_text(re.compile("Science log 6$"))
    alice.click("#load-older")
    expect(science_log).to_have_count(55)
    expect(science_log.first).to_have_text(re.compile("Science log 1$"))
    expect(alice.locator("#load-older")).to_be_hidden()

    # Several rovers: the selector switches every panel to the chosen one.
    from rover.models import Rover

    Rover.objects.create(slug="perseverance", name="Perseverance")
    mission.rover_slug = "perseverance"
    mission.ingest([mission.frame(seq=7, mode="science")])
    bob.reload()
    bob.select_option("#rover-select", "perseverance")
    expect(bob.locator("[data-field=seq]")).to_have_text("#7")
    expect(bob.locator("[data-field=mode]")).to_have_text("science")
    assert bob.url.endswith("?rover=perseverance")
    assert seen_frames(bob) == [7]

    # Bob leaves: alice sees him go.
    bob.context.close()
    expect(alice.locator("#presence-list li[data-user='bob']")).to_have_count(0)
    assert console_errors.errors == []


@pytest.mark.parametrize("mission", ["daphne", "uvicorn"], indirect=True)
def test_server_restart_mid_session_loses_and_repeats_nothing(mission, browser, console_errors):
    """Frames and messages sent around a restart each show exactly once after reconnect."""
    from comms.models import Message, Team

    pages = {}
    for name in ("alice", "bob"):
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        pages[name] = console_errors(context.new_page())
    alice, bob = pages["alice"], pages["bob"]
    # Five minutes of history for the charts to back-fill from (and for the screenshot).
    start = datetime.now(UTC) - timedelta(seconds=290)
    mission.ingest_history(140, start=start, every_s=2)
    mission.upload_image(camera="navcam")
    for name, page in pages.items():
        log_in(page, mission.url, name)
        expect(page.locator("[data-field=seq]")).to_have_text("#140")
    mission.ingest([mission.frame() for _ in range(10)])
    bob.fill("#composer-input", "Before the restart")
    bob.press("#composer-input", "Enter")
    expect(alice.locator("#message-list .msg")).to_have_count(1)
    expect(alice.locator("[data-field=seq]")).to_have_text("#150")

    mission.server.stop()
    expect(alice.locator("#conn-telemetry")).to_have_attribute("data-state", "reconnecting")
    expect(alice.locator("#conn-rooms")).to_have_attribute("data-state", "reconnecting")
    expect(alice.locator("#status-panel")).to_have_attribute("data-stale", "true")
    # Stored while the server was down (as a system message would be; no one hears it live).
    Message.objects.create(
        team=Team.objects.get(slug="engineering"), body="During the outage", kind="system"
    )
    # Typed while the socket is down: queued, then sent once on reconnect.
    bob.fill("#composer-input", "Typed during the outage")
    bob.press("#composer-input", "Enter")
    mission.server.start()
    # Right after the restart, before the pages are back: replayed on resume.
    mission.ingest([mission.frame() for _ in range(10)])

    for page in (alice, bob):
        # The feed is back ("lost" only if the rover itself fell silent meanwhile).
        expect(page.locator("#conn-telemetry")).to_have_attribute(
            "data-state", re.compile("^(live|lost)$"), timeout=20_000
        )
        expect(page.locator("[data-field=seq]")).to_have_text("#160", timeout=20_000)
        expect(page.locator("#conn-rooms")).to_have_attribute("data-state", "live", timeout=20_000)
    mission.ingest([mission.frame() for _ in range(10)])
    bob.fill("#composer-input", "After the restart")
    bob.press("#composer-input", "Enter")

    bodies = [
        "Before the restart",
        "During the outage",
        "Typed during the outage",
        "After the restart",
    ]
    for page in (alice, bob):
        expect(page.locator("[data-field=seq]")).to_have_text("#170")
        expect(page.locator("#conn-rooms")).to_have_attribute("data-state", "live")
        # The outage may be long enough for "link lost" alarm messages: not counted here.
        expect(page.locator("#message-list .msg:not(.msg-alarm) .body")).to_have_text(bodies)
        ids = page.locator("#message-list .msg").evaluate_all("els => els.map(e => e.dataset.id)")
        assert len(ids) == len(set(ids)) >= 4
        # The first connect starts at the newest stored frame (#140); then every frame once.
        assert seen_frames(page) == list(range(140, 171))

    ARTIFACTS.mkdir(exist_ok=True)
    alice.locator("#chart-battery").hover()
    alice.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    for page in (alice, bob):
        page.context.close()  # the server's shutdown need not wait for open streams
    # The outage itself makes Chromium log the refused connections; nothing else may.
    network = ("net::ERR_", "WebSocket connection to", "Failed to load resource")
    assert [e for e in console_errors.errors if not any(n in e for n in network)] == []
