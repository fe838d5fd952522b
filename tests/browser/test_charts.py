"""Charts, timeline markers and empty states in a real browser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from tests.browser.pages import log_in, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

AXES = """() => window.missionControl.charts.plots.map(({plot}) => ({
    titles: plot.axes.map((a) => a.label),
    ticks: plot.axes.map((a) => (a._splits || []).length),
}))"""


def marker_point(page, text: str) -> list[float]:
    """Scroll the battery chart into view; return the page point of the marker labelled `text`."""
    page.locator("#chart-battery").scroll_into_view_if_needed()
    return page.evaluate(
        """(text) => {
            const charts = window.missionControl.charts;
            const marker = [...charts.markers.values()].find((m) => m.label.includes(text));
            const plot = charts.plots[0].plot;
            const box = plot.over.getBoundingClientRect();
            return [box.left + plot.valToPos(marker.t, "x"), box.top + box.height / 2];
        }""",
        text,
    )


def hover_marker(page, text: str) -> list[float]:
    """Move the mouse onto a marker until its tooltip shows (the layout may still settle)."""
    for _ in range(30):
        x, y = marker_point(page, text)
        page.mouse.move(x + 3, y)
        page.mouse.move(x, y)
        tip = page.locator("#chart-battery .marker-tip")
        if tip.is_visible() and text in tip.inner_text():
            return [x, y]
        page.wait_for_timeout(100)
    raise AssertionError(f"no tooltip for {text!r}")


def test_charts_have_titled_axes_ticks_latest_legend_and_markers_that_cluster_and_open(
    mission, page, console_errors
):
    console_errors(page)
    start = datetime.now(UTC) - timedelta(seconds=250)
    mission.ingest_history(120, start=start, every_s=2)
    mission.ingest([mission.frame(battery_pct=55.5)])
    log_in(page, mission.url, "alice")
    expect(page.locator("[data-field=seq]")).to_have_text("#121")

    # Axis titles with units; at least three ticks on every axis, wide and narrow.
    for width, height in ((1440, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(300)
        axes = page.evaluate(AXES)
        assert [a["titles"] for a in axes] == [
            ["Time (UTC)", "Battery (%)"],
            ["Time (UTC)", "Signal (dBm)"],
            ["Time (UTC)", "Temperature (°C)"],
        ]
        assert all(min(a["ticks"]) >= 3 for a in axes), (width, axes)
    page.set_viewport_size({"width": 1440, "height": 900})

    # The legend shows the newest value while the cursor is elsewhere.
    page.mouse.move(5, 5)
    legend = page.locator("#chart-battery .u-legend .u-series:not(.chart-band-edge)").nth(1)
    expect(legend.locator(".u-value")).to_have_text("55.5 %")

    # Five messages within seconds draw one marker with a count at 1 h.
    for n in range(1, 6):
        page.fill("#composer-input", f"note {n}")
        page.press("#composer-input", "Enter")
    expect(page.locator("#message-list .msg-chat")).to_have_count(5)
    page.get_by_role("button", name="1 h").click()
    over = page.locator("#chart-battery .u-over")
    expect(over).to_have_attribute("data-clusters", "1")
    hover_marker(page, "note 5")
    tip = page.locator("#chart-battery .marker-tip")
    expect(tip.locator(".tip-message")).to_have_count(5)
    expect(tip.locator(".tip-message").first).to_contain_text("UTC · Engineering · alice: note 5")

    # Clicking the marker opens the newest message in its room, highlighted.
    page.click("#tab-science")
    page.mouse.click(*hover_marker(page, "note 5"))
    expect(page.locator("#tab-engineering")).to_have_attribute("aria-selected", "true")
    highlighted = page.locator("#message-list .msg[data-highlight='true']")
    expect(highlighted.locator(".body")).to_have_text("note 5")
    expect(highlighted).to_be_focused()

    # "show on timeline" moves the charts to a message's moment and marks it.
    page.get_by_role("button", name="5 min").click()
    first = page.locator("#message-list .msg-chat").first
    first.get_by_role("button", name="show on timeline").click()
    moment = page.evaluate("() => window.missionControl.charts.focusT")
    created = first.locator("time").get_attribute("datetime")
    assert abs(moment - datetime.fromisoformat(created).timestamp()) < 0.01
    wait_until(
        page,
        """(() => { const x = window.missionControl.charts.plots[0].plot.scales.x;
            const t = window.missionControl.charts.focusT; return x.min <= t && t <= x.max; })()""",
    )
    assert console_errors.errors == []


def test_an_alarm_of_yesterday_shows_on_a_pinned_timeline_and_back_to_live(
    mission, page, console_errors
):
    from rover.models import Alarm, Rover

    console_errors(page)
    yesterday = datetime.now(UTC) - timedelta(days=1, hours=2)
    alarm = Alarm.objects.create(
        rover=Rover.objects.get(slug="curiosity"), kind="battery_low", message="Battery at 9%."
    )
    Alarm.objects.filter(pk=alarm.pk).update(raised_at=yesterday)
    old = mission.frame()
    old["recorded_at"] = yesterday.isoformat()
    mission.ingest([old])
    log_in(page, mission.url, "alice")
    item = page.locator(f"#alarm-list [data-alarm-id='{alarm.pk}']")
    item.get_by_role("button", name="show on timeline").click()
    expect(page.locator("#charts")).to_have_attribute("data-pinned", "true")
    expect(page.locator("#charts")).to_have_attribute("data-points", "1")
    live = page.locator("#charts-live")
    expect(live).to_be_visible()

    # The alarm's marker on the pinned timeline opens it in the alarm list.
    page.mouse.click(*hover_marker(page, "Battery at 9%"))
    expect(item).to_have_attribute("data-highlight", "true")

    live.click()
    expect(page.locator("#charts")).to_have_attribute("data-pinned", "false")
    expect(live).to_be_hidden()
    expect(page.get_by_role("button", name="5 min")).to_have_attribute("aria-pressed", "true")
    assert console_errors.errors == []


def test_an_empty_rover_and_a_user_in_no_team_are_told_calmly_what_to_do(
    mission, page, user_factory, console_errors
):
    from rover.models import Rover

    Rover.objects.create(slug="fresh", name="Fresh", stale_after_seconds=4)
    user_factory("newcomer")
    console_errors(page)
    # The browser's clock runs 2 minutes fast: frame ages use the server's clock.
    page.clock.set_system_time(datetime.now(UTC) + timedelta(minutes=2))
    page.goto(f"{mission.url}/?rover=fresh")
    log_in(page, f"{mission.url}", "newcomer")
    page.goto(f"{mission.url}/?rover=fresh")

    status = page.locator("#status-panel")
    expect(status).to_have_attribute("data-link", "empty")
    expect(page.locator("#link-state")).to_have_text(
        "No telemetry from this rover yet. Values appear with its first frame."
    )
    assert status.get_attribute("data-stale") == "false"
    colour = page.locator("#link-state").evaluate("el => getComputedStyle(el).color")
    assert colour != "rgb(255, 93, 93)"  # not the alarm red
    expect(page.locator("#conn-telemetry")).to_have_attribute("data-state", "idle")
    expect(page.locator("#conn-telemetry")).to_contain_text("no data yet")
    expect(page.locator("#chart-battery .chart-empty")).to_have_text("No data yet")
    expect(page.locator("#image-caption")).to_contain_text("No image yet")
    expect(page.locator("#no-team")).to_contain_text("You are not in any team yet")
    expect(page.locator("#no-team")).to_contain_text("Ask a mission administrator")

    mission.rover_slug = "fresh"
    mission.ingest([mission.frame(seq=1)])
    expect(page.locator("[data-field=seq]")).to_have_text("#1")
    expect(status).to_have_attribute("data-link", "live")
    expect(page.locator("#link-state")).to_contain_text("Live · last frame")
    expect(page.locator("#chart-battery .chart-empty")).to_be_hidden()
    offset = page.evaluate("() => window.missionControl.serverNow() - Date.now()")
    assert -125_000 < offset < -115_000
    # And the rover's own limit (4 s) turns it to LINK LOST, in the header too.
    expect(page.locator("#link-state")).to_contain_text("(limit 4 s)", timeout=8_000)
    expect(page.locator("#conn-telemetry")).to_have_attribute("data-state", "lost")
    assert console_errors.errors == []


def test_a_window_chosen_while_the_first_history_loads_keeps_its_history_before_live_frames(
    mission, page, console_errors
):
    console_errors(page)
    start = datetime.now(UTC) - timedelta(minutes=30)
    mission.ingest_history(60, start=start, every_s=10)
    held = []

    def hold(route):
        held.append(route)

    page.route(lambda url: "/telemetry?" in url and "points=" in url, hold)
    log_in(page, mission.url, "alice")
    wait_until(page, "window.missionControl !== undefined")

    def wait_held(count):
        for _ in range(200):
            if len(held) == count:
                return
            page.wait_for_timeout(50)
        raise AssertionError(f"{len(held)} history requests, not {count}")

    wait_held(1)
    page.get_by_role("button", name="1 h").click()
    wait_held(2)
    five_minutes, hour = held
    # The 5 min answer lands first (late), a live frame next, the hour's history last.
    five_minutes.continue_()
    page.wait_for_timeout(300)
    mission.ingest([mission.frame()])
    expect(page.locator("[data-field=seq]")).to_have_text("#61")
    hour.continue_()
    wait_until(page, "Number(window.missionControl.charts.root.dataset.points) === 61")
    assert console_errors.errors == []
