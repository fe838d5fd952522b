// Battery, signal and temperature charts (uPlot) over a chosen window, with the
// alarms and team messages drawn as markers on the shared time axis (UTC).
//
// Readable at every size: each axis has a title with its unit and at least three
// ticks (splits are computed here, not left to uPlot's spacing), the legend shows
// the latest values when the cursor is not on the chart, and an empty chart says so.
// History buckets also draw their min–max band (chart-bands.js), so a spike shows.
import uPlot from "../vendor/uplot/uPlot.esm.js";
import { bandsFollowMeans, envelopeColumns, envelopeOptions, envelopeText, plotColumns, writeFrame } from "./chart-bands.js";
import { markersPlugin } from "./chart-markers.js";
import { fmtTime, getJSON, h, serverNow, toSeconds, utcDay } from "./util.js";

const BACKFILL_POINTS = 600;
// Live frames closer together than window / MAX_LIVE_POINTS replace the last point
// instead of adding one: 0.1 s at 5 min (every frame at 10 Hz), 30 s over a sol.
const MAX_LIVE_POINTS = 3000;
const HEIGHT = 170;
const MIN_TICKS = 3;
const AXIS = {
  stroke: "#8a9aab",
  grid: { stroke: "#1c2834", width: 1 },
  ticks: { stroke: "#1c2834" },
  font: "11px system-ui, sans-serif",
  labelFont: "600 11px system-ui, sans-serif",
  labelSize: 16,
  labelGap: 0,
};
// Nice steps: seconds for time, plain numbers for values (times a power of ten).
const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
const NUMBER_STEPS = [1, 2, 2.5, 5];

const CHARTS = [
  {
    id: "chart-battery",
    title: "Battery (%)",
    empty: [0, 100],
    series: [{ key: "battery_pct", label: "Battery", unit: "%", stroke: "#3ddc84" }],
  },
  {
    id: "chart-signal",
    title: "Signal (dBm)",
    empty: [-120, -60],
    series: [{ key: "signal_dbm", label: "Signal", unit: "dBm", stroke: "#f5c542" }],
  },
  {
    id: "chart-temps",
    title: "Temperature (°C)",
    empty: [-60, 40],
    series: [
      { key: "temp_internal_c", label: "Internal", unit: "°C", stroke: "#ff9f5a" },
      { key: "temp_ambient_c", label: "Ambient", unit: "°C", stroke: "#b48cff" },
    ],
  },
];
const KEYS = CHARTS.flatMap((chart) => chart.series.map((s) => s.key));
const COLUMNS = envelopeColumns(KEYS);

/** Evenly spaced "nice" ticks in [min, max]: at least MIN_TICKS, at most `most`. */
export function niceSplits(min, max, most, steps) {
  const span = max - min;
  if (!(span > 0)) return [min];
  const candidates = [];
  if (steps === TIME_STEPS) candidates.push(...TIME_STEPS);
  else {
    const base = 10 ** Math.floor(Math.log10(span / Math.max(most, MIN_TICKS)) - 1);
    for (let power = base; power <= span * 10; power *= 10) for (const m of steps) candidates.push(m * power);
  }
  // The smallest step that fits, but never so large that fewer than MIN_TICKS remain.
  let pick = null;
  for (const step of candidates) {
    const count = Math.floor(max / step) - Math.ceil(min / step) + 1;
    if (count < MIN_TICKS) break;
    pick = step;
    if (count <= Math.max(most, MIN_TICKS)) break;
  }
  if (pick === null) pick = span / (MIN_TICKS - 1); // tiny spans: three plain ticks
  const out = [];
  for (let v = Math.ceil(min / pick - 1e-9) * pick; v <= max + 1e-9; v += pick) out.push(Number(v.toPrecision(12)));
  return out;
}

export class Charts {
  constructor(root, { onMarkerClick = () => {} } = {}) {
    this.root = root;
    this.onMarkerClick = onMarkerClick;
    this.windowSeconds = 300;
    this.pinned = null; // {since, until} in seconds when showing a past moment
    this.focusT = null;
    this.everHadData = false;
    this.markers = new Map();
    this.loadRequest = 0;
    this.plots = [];
    this.clear();
    const sync = uPlot.sync("mission-control");
    for (const chart of CHARTS) {
      const el = root.querySelector(`#${chart.id}`);
      const empty = h("p", { className: "chart-empty", text: "No data yet" });
      el.append(empty);
      const plot = new uPlot(this.options(chart, el, sync), this.plotData(chart), el);
      this.plots.push({ chart, plot, el, empty });
    }
    new ResizeObserver(() => this.resize()).observe(root);
    // Slide the window with the clock even when no frame arrives (a silent rover
    // shows as a line that stops short of "now").
    setInterval(() => this.scheduleRedraw(), 1000);
  }

  options(chart, el, sync) {
    const latest = (key) => {
      const values = this.data[key];
      for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null) return values[i];
      return null;
    };
    const { series, bands } = envelopeOptions(chart.series, (s) => ({
      label: s.label,
      stroke: s.stroke,
      width: 1.5,
      spanGaps: false,
      // With the cursor off the chart (idx null) the legend shows the newest value;
      // on a history bucket, also the lowest and highest value it holds.
      value: (u, v, sidx, idx) => {
        if (idx === null || idx === undefined) return envelopeText(latest(s.key), null, null, s.unit);
        return envelopeText(v, this.data[`${s.key}_min`][idx], this.data[`${s.key}_max`][idx], s.unit);
      },
    }));
    return {
      width: Math.max(200, el.clientWidth),
      height: HEIGHT,
      cursor: { sync: { key: sync.key }, drag: { x: false, y: false } },
      legend: { show: true, live: true },
      scales: {
        x: { time: true, range: () => this.xRange() },
        y: {
          range: (u, min, max) => {
            if (min === null || max === null || !Number.isFinite(min)) return chart.empty;
            const pad = Math.max((max - min) * 0.1, 1);
            return [min - pad, max + pad];
          },
        },
      },
      axes: [
        {
          ...AXIS,
          label: "Time (UTC)",
          size: 30,
          splits: (u, i, min, max) => niceSplits(min, max, Math.floor(u.bbox.width / uPlot.pxRatio / this.tickSpace()), TIME_STEPS),
          values: (u, splits) => this.timeTicks(splits),
        },
        {
          ...AXIS,
          label: chart.title,
          size: 44,
          splits: (u, i, min, max) => niceSplits(min, max, Math.floor(u.bbox.height / uPlot.pxRatio / 24), NUMBER_STEPS),
          values: (u, splits) => splits.map((v) => String(Number(v.toFixed(2)))),
        },
      ],
      series: [
        {
          // Off the chart, the legend names the newest point's time ("latest").
          value: (u, v, sidx, idx) => {
            if (idx !== null && idx !== undefined && v !== null && v !== undefined) return fmtTime(v * 1000);
            const times = this.data.t;
            return times.length ? `${fmtTime(times[times.length - 1] * 1000)} (latest)` : "–";
          },
        },
        ...series,
      ],
      bands,
      hooks: { setSeries: [bandsFollowMeans(chart.series.length)] },
      plugins: [markersPlugin(this)],
    };
  }

  tickSpace() {
    const span = this.xRange();
    return span[1] - span[0] > 3600 ? 90 : 70;
  }

  timeTicks(splits) {
    const step = splits.length > 1 ? splits[1] - splits[0] : 60;
    const today = utcDay(serverNow());
    return splits.map((v) => {
      const date = new Date(v * 1000);
      const time = date.toISOString().slice(11, step < 60 ? 19 : 16);
      const day = utcDay(v * 1000);
      return day === today ? time : `${day.slice(5)} ${time}`;
    });
  }

  scheduleRedraw() {
    if (this.redrawFrame) return;
    this.redrawFrame = requestAnimationFrame(() => {
      this.redrawFrame = null;
      this.redraw();
    });
  }

  clear() {
    this.data = { t: [] };
    for (const { key, min, max } of COLUMNS) for (const column of [key, min, max]) this.data[column] = [];
    this.loading = false;
    this.queue = [];
  }

  xRange() {
    if (this.pinned) return [this.pinned.since, this.pinned.until];
    const now = serverNow() / 1000;
    return [now - this.windowSeconds, now];
  }

  plotData(chart) {
    return plotColumns(this.data, chart.series);
  }

  resize() {
    for (const { plot, el } of this.plots) {
      const width = Math.max(200, el.clientWidth);
      if (Math.abs(plot.width - width) > 1) plot.setSize({ width, height: HEIGHT });
    }
  }

  /** Back-fill `windowSeconds` up to now (live), or a pinned past range {since, until}. */
  async load(slug, windowSeconds = this.windowSeconds, pinned = null) {
    if (slug !== this.slug) this.everHadData = false;
    this.slug = slug;
    this.windowSeconds = windowSeconds;
    this.pinned = pinned;
    this.root.dataset.pinned = String(Boolean(pinned));
    this.clear();
    this.loading = true;
    const request = ++this.loadRequest;
    const [since, until] = this.xRange();
    let url = `/api/rovers/${encodeURIComponent(slug)}/telemetry?since=${encodeURIComponent(new Date(since * 1000).toISOString())}&points=${BACKFILL_POINTS}`;
    if (pinned) url += `&until=${encodeURIComponent(new Date(until * 1000).toISOString())}`;
    let frames = [];
    try {
      frames = (await getJSON(url)).frames;
    } catch (error) {
      console.warn("telemetry history unavailable:", error.message);
    }
    if (slug !== this.slug || pinned !== this.pinned) return [];
    // A newer load of the same rover (another window) owns the charts now: this answer
    // must neither end its loading (live frames would go in before its history, which
    // would then count as older than what is drawn) nor add its buckets. The caller
    // still gets them (the map's path).
    if (request !== this.loadRequest) return frames;
    this.loading = false;
    for (const frame of frames) this.append(frame, true);
    const queued = this.queue;
    this.queue = [];
    if (!this.pinned) for (const frame of queued) this.append(frame);
    this.redraw();
    return frames;
  }

  /** Move the charts to a moment (seconds): the smallest live window holding it, else pinned there. */
  showAt(t) {
    this.focusT = t;
    const age = serverNow() / 1000 - t;
    const windows = [300, 3600, 88775];
    const fits = windows.find((w) => age >= 0 && age <= w * 0.95);
    if (fits) return this.load(this.slug, fits).then(() => fits);
    const half = 150;
    return this.load(this.slug, this.windowSeconds, { since: t - half, until: t + half }).then(() => null);
  }

  /** Add one frame (the caller redraws once per animation frame). */
  push(frame) {
    this.everHadData = true;
    if (this.pinned) return; // a past range does not move
    if (this.loading) {
      this.queue.push(frame);
      return;
    }
    this.append(frame);
  }

  append(frame, exact = false) {
    const t = toSeconds(frame.recorded_at);
    const times = this.data.t;
    const last = times.length ? times[times.length - 1] : -Infinity;
    if (t < last) return; // older than what is drawn (history already covers it)
    this.everHadData = true;
    const replace = !exact && times.length && t - last < this.windowSeconds / MAX_LIVE_POINTS;
    if (replace) times[times.length - 1] = t;
    else times.push(t);
    writeFrame(this.data, COLUMNS, frame, replace);
  }

  trim() {
    if (this.pinned) return;
    const oldest = serverNow() / 1000 - this.windowSeconds;
    let drop = 0;
    while (drop < this.data.t.length - 1 && this.data.t[drop + 1] < oldest) drop++;
    if (drop > 0) for (const key of Object.keys(this.data)) this.data[key].splice(0, drop);
  }

  redraw() {
    this.trim();
    const [since] = this.xRange();
    const inWindow = this.data.t.some((t) => t >= since);
    let emptyText = "";
    if (!this.loading && !inWindow) emptyText = this.everHadData ? "No data in this window" : "No data yet";
    for (const { chart, plot, empty } of this.plots) {
      plot.setData(this.plotData(chart));
      empty.textContent = emptyText;
      empty.hidden = !emptyText;
    }
    this.root.dataset.points = String(this.data.t.length);
    this.root.dataset.empty = String(Boolean(emptyText));
  }

  /** A marker on every chart: kind "alarm" or "message"; `ref` says what a click opens. */
  setMarker(key, kind, iso, label, ref = {}) {
    this.markers.set(key, { key, kind, t: toSeconds(iso), label, ...ref });
    this.scheduleRedraw();
  }

  clearMarkers(prefix) {
    for (const key of [...this.markers.keys()]) if (key.startsWith(prefix)) this.markers.delete(key);
    this.scheduleRedraw();
  }
}
