"""Min-max bands on the charts: a single spike frame shows in the 1 h and 1 sol windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from tests.browser.pages import ARTIFACTS, log_in, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NO_VALUE = "\u2013"  # the legend's en dash for a missing value
NORMAL_C = 12.0
SPIKE_C = 120.0  # ten times the normal internal temperature
# Series of the temperature chart: time, then max and min edges per field, then the means.
TEMPS = "window.missionControl.charts.plots[2].plot"
INTERNAL_MAX, INTERNAL_MIN, INTERNAL_MEAN = 1, 2, 5


def chart_bands_module(page, expression: str):
    """Evaluate `expression` with `bands` bound to static/js/chart-bands.js as the page loads it."""
    return page.evaluate(
        f"""async () => {{
            const dashboard = document.querySelector('script[type=module]').src;
            const bands = await import(new URL("chart-bands.js", dashboard).href);
            return {expression};
        }}"""
    )


def test_envelope_columns_collapse_for_exact_frames_and_widen_on_replace(mission, page):
    log_in(page, mission.url, "alice")
    result = chart_bands_module(
        page,
        """(() => {
            const columns = bands.envelopeColumns(["temp_c"]);
            const data = { temp_c: [], temp_c_min: [], temp_c_max: [] };
            // A history bucket carries its extremes; a live frame only its value.
            bands.writeFrame(data, columns, { temp_c: 13, temp_c_min: 11, temp_c_max: 120 }, false);
            bands.writeFrame(data, columns, { temp_c: 12 }, false);
            const afterLive = JSON.parse(JSON.stringify(data));
            // A live frame replacing the last point: the band covers both values.
            bands.writeFrame(data, columns, { temp_c: 30 }, true);
            bands.writeFrame(data, columns, { temp_c: 5 }, true);
            const afterReplace = JSON.parse(JSON.stringify(data));
            // A field missing from the replacing frame keeps the extremes it had.
            bands.writeFrame(data, columns, { temp_c: null }, true);
            return {
                afterLive, afterReplace, afterNull: data,
                texts: [
                    bands.envelopeText(13, 11, 120, "°C"),
                    bands.envelopeText(12, 12, 12, "°C"),
                    bands.envelopeText(12, null, null, "°C"),
                    bands.envelopeText(null, 1, 2, "°C"),
                ],
            };
        })()""",
    )
    assert result["afterLive"] == {
        "temp_c": [13, 12],
        "temp_c_min": [11, 12],
        "temp_c_max": [120, 12],
    }
    assert result["afterReplace"] == {
        "temp_c": [13, 5],
        "temp_c_min": [11, 5],
        "temp_c_max": [120, 30],
    }
    assert result["afterNull"] == {
        "temp_c": [13, None],
        "temp_c_min": [11, 5],
        "temp_c_max": [120, 30],
    }
    assert result["texts"] == ["13.0 °C (11.0 to 120.0)", "12.0 °C", "12.0 °C", NO_VALUE]


def test_a_single_spike_frame_is_drawn_in_the_sol_window_and_live_frames_collapse_the_band(
    mission, page, console_errors
):
    console_errors(page)
    # Half an hour at 1 Hz, ten hours ago, with one frame at ten times the normal
    # temperature: a 1 sol bucket (~148 s) averages it with ~147 normal frames.
    spike_at = datetime.now(UTC) - timedelta(hours=10)
    frames = []
    for offset in range(-900, 900):
        frame = mission.frame(
            battery_pct=80.0, temp_internal_c=SPIKE_C if offset == 0 else NORMAL_C
        )
        frame["recorded_at"] = (spike_at + timedelta(seconds=offset)).isoformat()
        frames.append(frame)
    for start in range(0, len(frames), 900):
        mission.ingest(frames[start : start + 900])
    log_in(page, mission.url, "alice")
    page.get_by_role("button", name="1 sol").click()
    expect(page.get_by_role("button", name="1 sol")).to_have_attribute("aria-pressed", "true")
    wait_until(
        page,
        f"""(() => {{ const x = {TEMPS}.scales.x;
            return Math.round(x.max - x.min) === 88775 && {TEMPS}.data[0].length > 5; }})()""",
        timeout=20,  # a sol of history on a busy machine
    )

    # The spike is on the chart (the y-scale reaches it), drawn by the internal band.
    y_max = page.evaluate(f"{TEMPS}.scales.y.max")
    assert y_max >= SPIKE_C, f"the y-scale ends at {y_max}: the spike is averaged away"
    drawn = page.evaluate(
        f"""(() => {{
            const plot = {TEMPS};
            const highs = plot.data[{INTERNAL_MAX}];
            const i = highs.indexOf(Math.max(...highs));
            return {{
                t: plot.data[0][i], high: highs[i],
                low: plot.data[{INTERNAL_MIN}][i], mean: plot.data[{INTERNAL_MEAN}][i],
                bands: plot.bands.map((b) => b.series),
            }};
        }})()"""
    )
    assert drawn["high"] == SPIKE_C, drawn
    assert drawn["low"] == NORMAL_C, drawn
    assert abs(drawn["t"] - spike_at.timestamp()) < 88775 / 600, drawn
    assert drawn["mean"] < NORMAL_C * 1.2, drawn  # the mean alone hides it
    assert drawn["bands"] == [[1, 2], [3, 4]]

    # With the cursor on the spike's bucket, the legend gives its range beside the mean
    # (set through uPlot: buckets lie under 2 px apart at this width).
    page.locator("#chart-temps").scroll_into_view_if_needed()
    hovered = page.evaluate(
        f"""(() => {{ const plot = {TEMPS};
            plot.setCursor({{ left: plot.valToPos({drawn["t"]}, "x"), top: 10 }});
            return plot.data[0][plot.cursor.idx]; }})()"""
    )
    assert hovered == drawn["t"]
    internal = page.locator("#chart-temps .u-legend .u-series:not(.chart-band-edge)").nth(1)
    expect(internal.locator(".u-value")).to_have_text(
        f"{drawn['mean']:.1f} °C ({NORMAL_C:.1f} to {SPIKE_C:.1f})"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#chart-temps").screenshot(path=str(ARTIFACTS / "chart-band-spike.png"))
    page.mouse.move(5, 5)

    # Live frames are exact; one that replaces the last point widens its band to both.
    mission.ingest([mission.frame(battery_pct=80.0, temp_internal_c=5.0)])
    mission.ingest([mission.frame(battery_pct=80.0, temp_internal_c=50.0)])
    last = wait_until(
        page,
        """(() => { const d = window.missionControl.charts.data;
            const n = d.t.length - 1;
            const last = [d.temp_internal_c[n], d.temp_internal_c_min[n], d.temp_internal_c_max[n]];
            return last[0] === 50 ? last : null; })()""",
    )
    assert last == [50, 5, 50]
    assert console_errors.errors == []
