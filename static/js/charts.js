// Battery, signal and temperature charts (uPlot) over a chosen window, with the
// alarms and team messages drawn as markers on the shared time axis.
import uPlot from "../vendor/uplot/uPlot.esm.js";
import { getJSON, h, toSeconds } from "./util.js";

const BACKFILL_POINTS = 600;
// Live frames closer together than window / MAX_LIVE_POINTS replace the last point
// instead of adding one: 0.1 s at 5 min (every frame at 10 Hz), 30 s over a sol.
const MAX_LIVE_POINTS = 3000;
const MARKER_HIT_PX = 6;
const AXIS = { stroke: "#8a9aab", grid: { stroke: "#1c2834", width: 1 }, ticks: { stroke: "#1c2834" } };
const COLORS = { alarm: "#ff5d5d", message: "#4fb3ff" };

const CHARTS = [
  {
    id: "chart-battery",
    series: [{ key: "battery_pct", label: "Battery", unit: "%", stroke: "#3ddc84" }],
  },
  {
    id: "chart-signal",
    series: [{ key: "signal_dbm", label: "Signal", unit: "dBm", stroke: "#f5c542" }],
  },
  {
    id: "chart-temps",
    series: [
      { key: "temp_internal_c", label: "Internal", unit: "°C", stroke: "#ff9f5a" },
      { key: "temp_ambient_c", label: "Ambient", unit: "°C", stroke: "#b48cff" },
    ],
  },
];
const KEYS = CHARTS.flatMap((chart) => chart.series.map((s) => s.key));

function markersPlugin(owner) {
  let tip = null;
  return {
    hooks: {
      init: [
        (u) => {
          tip = h("div", { className: "marker-tip", attrs: { role: "tooltip" } });
          tip.hidden = true;
          u.over.append(tip);
        },
      ],
      draw: [
        (u) => {
          const { ctx } = u;
          const { left, top, width, height } = u.bbox;
          const dpr = uPlot.pxRatio;
          ctx.save();
          for (const marker of owner.markers.values()) {
            const x = Math.round(u.valToPos(marker.t, "x", true));
            if (x < left || x > left + width) continue;
            ctx.strokeStyle = COLORS[marker.kind];
            ctx.fillStyle = COLORS[marker.kind];
            ctx.lineWidth = (marker.kind === "alarm" ? 2 : 1) * dpr;
            ctx.setLineDash(marker.kind === "alarm" ? [] : [4 * dpr, 3 * dpr]);
            ctx.beginPath();
            ctx.moveTo(x, top);
            ctx.lineTo(x, top + height);
            ctx.stroke();
            ctx.beginPath();
            ctx.moveTo(x - 4 * dpr, top);
            ctx.lineTo(x + 4 * dpr, top);
            ctx.lineTo(x, top + 6 * dpr);
            ctx.fill();
          }
          ctx.restore();
        },
      ],
      setCursor: [
        (u) => {
          const x = u.cursor.left;
          if (x === undefined || x === null || x < 0) {
            tip.hidden = true;
            return;
          }
          const near = [...owner.markers.values()].filter(
            (marker) => Math.abs(u.valToPos(marker.t, "x") - x) <= MARKER_HIT_PX,
          );
          if (!near.length) {
            tip.hidden = true;
            return;
          }
          tip.replaceChildren(
            ...near.slice(-4).map((marker) => h("p", { className: `tip-${marker.kind}`, text: marker.label })),
          );
          tip.hidden = false;
          const room = u.over.clientWidth - 260;
          tip.style.left = `${Math.max(0, Math.min(x + 8, room))}px`;
          tip.style.top = "4px";
        },
      ],
    },
  };
}

export class Charts {
  constructor(root) {
    this.root = root;
    this.windowSeconds = 300;
    this.markers = new Map();
    this.plots = [];
    this.clear();
    const sync = uPlot.sync("mission-control");
    for (const chart of CHARTS) {
      const el = root.querySelector(`#${chart.id}`);
      const opts = {
        width: Math.max(200, el.clientWidth),
        height: 140,
        cursor: { sync: { key: sync.key }, drag: { x: false, y: false } },
        legend: { show: true, live: true },
        scales: { x: { time: true, range: () => this.xRange() } },
        axes: [
          { ...AXIS, space: 70, values: (u, splits) => splits.map((v) => this.timeLabel(v, this.windowSeconds <= 600)) },
          { ...AXIS, size: 56 },
        ],
        series: [
          { value: (u, v) => (v === null || v === undefined ? "–" : this.timeLabel(v, true)) },
          ...chart.series.map((s) => ({
            label: s.label,
            stroke: s.stroke,
            width: 1.5,
            spanGaps: false,
            value: (u, v) => (v === null || v === undefined ? "–" : `${v.toFixed(1)} ${s.unit}`),
          })),
        ],
        plugins: [markersPlugin(this)],
      };
      const plot = new uPlot(opts, this.plotData(chart), el);
      this.plots.push({ chart, plot, el });
    }
    new ResizeObserver(() => this.resize()).observe(root);
    // Slide the window with the clock even when no frame arrives (a silent rover
    // shows as a line that stops short of "now").
    setInterval(() => this.scheduleRedraw(), 1000);
  }

  scheduleRedraw() {
    if (this.redrawFrame) return;
    this.redrawFrame = requestAnimationFrame(() => {
      this.redrawFrame = null;
      this.redraw();
    });
  }

  timeLabel(seconds, withSeconds) {
    const options = { hour: "2-digit", minute: "2-digit", hour12: false };
    if (withSeconds) options.second = "2-digit";
    return new Date(seconds * 1000).toLocaleTimeString([], options);
  }

  clear() {
    this.data = { t: [], ...Object.fromEntries(KEYS.map((key) => [key, []])) };
    this.loading = false;
    this.queue = [];
  }

  xRange() {
    const now = Date.now() / 1000;
    return [now - this.windowSeconds, now];
  }

  plotData(chart) {
    return [this.data.t, ...chart.series.map((s) => this.data[s.key])];
  }

  resize() {
    for (const { plot, el } of this.plots) {
      const width = Math.max(200, el.clientWidth);
      if (Math.abs(plot.width - width) > 1) plot.setSize({ width, height: 140 });
    }
  }

  async load(slug, windowSeconds = this.windowSeconds) {
    this.slug = slug;
    this.windowSeconds = windowSeconds;
    this.clear();
    this.loading = true;
    const since = new Date(Date.now() - windowSeconds * 1000).toISOString();
    const url = `/api/rovers/${encodeURIComponent(slug)}/telemetry?since=${encodeURIComponent(since)}&points=${BACKFILL_POINTS}`;
    let frames = [];
    try {
      frames = (await getJSON(url)).frames;
    } catch (error) {
      console.warn("telemetry history unavailable:", error.message);
    }
    if (slug !== this.slug) return [];
    this.loading = false;
    for (const frame of frames) this.append(frame, true);
    const queued = this.queue;
    this.queue = [];
    for (const frame of queued) this.append(frame);
    this.redraw();
    return frames;
  }

  /** Add one frame (the caller redraws once per animation frame). */
  push(frame) {
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
    const replace = !exact && times.length && t - last < this.windowSeconds / MAX_LIVE_POINTS;
    if (replace) times[times.length - 1] = t;
    else times.push(t);
    for (const key of KEYS) {
      const value = frame[key] ?? null;
      if (replace) this.data[key][this.data[key].length - 1] = value;
      else this.data[key].push(value);
    }
  }

  trim() {
    const oldest = Date.now() / 1000 - this.windowSeconds;
    let drop = 0;
    while (drop < this.data.t.length - 1 && this.data.t[drop + 1] < oldest) drop++;
    if (drop > 0) for (const key of Object.keys(this.data)) this.data[key].splice(0, drop);
  }

  redraw() {
    this.trim();
    for (const { chart, plot } of this.plots) plot.setData(this.plotData(chart));
    this.root.dataset.points = String(this.data.t.length);
  }

  /** A marker on every chart: kind "alarm" or "message". */
  setMarker(key, kind, iso, label) {
    this.markers.set(key, { kind, t: toSeconds(iso), label });
    this.scheduleRedraw();
  }

  clearMarkers(prefix) {
    for (const key of [...this.markers.keys()]) if (key.startsWith(prefix)) this.markers.delete(key);
    this.scheduleRedraw();
  }
}
