"""Images (paging, live following, progressive full-size view) and the map."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from tests.browser.pages import log_in, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CAMERAS = {"navcam": "Navigation camera", "hazcam_front": "Front hazard camera"}


def test_gallery_pages_back_follows_live_and_opens_full_size_progressively(
    mission, page, console_errors
):
    console_errors(page)
    start = datetime.now(UTC) - timedelta(hours=1)
    cameras = itertools.cycle(CAMERAS)
    for n in range(14):
        mission.upload_image(
            size=(32, 24),
            camera=next(cameras),
            captured_at=(start + timedelta(minutes=n)).isoformat(),
        )
    big = mission.upload_image(camera="hazcam_front")  # ~4 MB of noise, the newest
    log_in(page, mission.url, "alice")
    thumbs = page.locator("#image-gallery .thumb")
    expect(thumbs).to_have_count(12)
    older = page.locator("#image-older")
    expect(older).to_have_text("Older images (12 of 15 shown)")
    older.click()
    expect(thumbs).to_have_count(15)
    expect(older).to_be_hidden()
    expect(page.locator("#image-caption")).to_contain_text("Newest: Front hazard camera ·")
    labels = thumbs.evaluate_all("els => els.map((el) => el.getAttribute('aria-label'))")
    assert sum("Navigation camera ·" in label for label in labels) == 7
    assert not any("navcam" in label or "hazcam" in label for label in labels)
    expect(page.locator("#image-live")).to_be_hidden()

    # A slow link: the opened image shows as it arrives, then whole.
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": 2_500_000, "uploadThroughput": -1},
    )
    page.locator(f"button[data-image-id='{big['id']}']").click()
    panel = page.locator("#images-panel")
    expect(panel).to_have_attribute("data-partial", "true", timeout=10_000)
    assert panel.get_attribute("data-download") == "running"
    expect(panel).to_have_attribute("data-download", "complete", timeout=20_000)
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    save = page.locator("#image-save")
    expect(save).to_be_visible()
    assert save.get_attribute("href") == big["url"]
    assert save.get_attribute("download")
    page.click("#image-full")
    expect(page.locator("#image-newest")).to_have_attribute("data-full", "true")
    assert page.locator("#image-main").evaluate("img => img.clientWidth") == big["width"]

    # Opened, the viewer stays on it when a new image arrives; "Back to live" follows again.
    live = page.locator("#image-live")
    expect(live).to_be_visible()
    newest = mission.upload_image(size=(32, 24), camera="navcam")
    expect(thumbs).to_have_count(16)
    size = f"{big['width']}\u00d7{big['height']} px"  # still the opened image
    expect(page.locator("#image-caption")).to_contain_text(size)
    live.click()
    expect(live).to_be_hidden()
    expect(page.locator("#image-caption")).to_contain_text("Newest: Navigation camera")
    assert page.locator("#image-main").get_attribute("src") == newest["thumbnail_url"]
    assert console_errors.errors == []


LABELS = """() => {
    const map = window.missionControl.map;
    const canvas = map.canvas;
    return {boxes: map.labelBoxes, marker: map.markerAt, plot: map.plotBox,
            width: canvas.clientWidth, height: canvas.clientHeight, mode: canvas.dataset.mode};
}"""


def overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def check_map(page) -> dict:
    state = page.evaluate(LABELS)
    boxes = state["boxes"]
    assert len(boxes) >= 4, state
    for box in boxes:
        assert box[0] >= 0 and box[1] >= 0, box
        assert box[2] <= state["width"] and box[3] <= state["height"], box
    assert not any(overlaps(a, b) for a, b in itertools.combinations(boxes, 2)), boxes
    x, y = state["marker"]
    left, top, right, bottom = state["plot"]
    assert left + 30 <= x <= right - 30 and top + 30 <= y <= bottom - 30, state
    return state


def test_map_labels_never_overlap_the_marker_is_never_clipped_it_follows_and_fits(
    mission, page, console_errors
):
    console_errors(page)
    frames = []
    start = datetime.now(UTC) - timedelta(seconds=120)
    for n in range(60):  # a long drive east, then north, a frame every 2 s
        x, y = (n * 8.0, 0.0) if n < 40 else (312.0, (n - 39) * 8.0)
        frames.append(
            mission.frame(
                x_m=x,
                y_m=y,
                heading_deg=90.0 if n < 40 else 0.0,
                recorded_at=(start + timedelta(seconds=2 * n)).isoformat(),
            )
        )
    mission.ingest(frames)
    log_in(page, mission.url, "alice")
    expect(page.locator("#map-caption")).to_contain_text("x 312.0 m, y 160.0 m")
    for width, height in ((1440, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.locator("#map").scroll_into_view_if_needed()
        wait_until(page, "window.missionControl.map.labelBoxes.length >= 4")
        state = check_map(page)
        # Following: the rover stays in the middle of the plot.
        left, top, right, bottom = state["plot"]
        assert abs(state["marker"][0] - (left + right) / 2) < 1
        assert abs(state["marker"][1] - (top + bottom) / 2) < 1

        page.get_by_role("button", name="Fit track").click()
        expect(page.locator("#map")).to_have_attribute("data-mode", "fit")
        fitted = check_map(page)
        assert fitted["marker"] != state["marker"]
        page.get_by_role("button", name="Follow rover").click()
        expect(page.locator("#map")).to_have_attribute("data-mode", "follow")
    assert console_errors.errors == []
