// The rover's path in the site frame (x east, y north, metres) with its current
// position and heading (degrees clockwise from north), drawn on a canvas.
//
// Two views: "Follow rover" (default) keeps the rover in the middle at a fixed
// scale; "Fit track" shows the whole path. Axis labels live in their own margins
// (left and bottom), never over each other or the plot, and the rover's marker and
// heading arrow are always inside the plot.
import { fmt } from "./util.js";

const MAX_PATH = 5000;
const FOLLOW_SPAN_M = 60; // what "Follow rover" shows across the smaller side
const MARGIN = { left: 46, bottom: 20, top: 8, right: 8 };
const MARKER_PAD = 36; // px: the heading arrow's length plus a little
const LABEL_GAP = 8;

function niceStep(metresPerPixel, minPixels) {
  const raw = metresPerPixel * minPixels;
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
  return 10 * power;
}

function label(value, step) {
  const digits = step < 1 ? Math.min(3, Math.ceil(-Math.log10(step))) : 0;
  return `${value.toFixed(digits)} m`;
}

export class RoverMap {
  constructor(canvas, caption, controls) {
    this.canvas = canvas;
    this.caption = caption;
    this.mode = "follow";
    this.buttons = controls ? [...controls.querySelectorAll("button[data-map-mode]")] : [];
    for (const button of this.buttons) button.addEventListener("click", () => this.setMode(button.dataset.mapMode));
    this.reset();
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  setMode(mode) {
    this.mode = mode;
    for (const button of this.buttons) button.setAttribute("aria-pressed", String(button.dataset.mapMode === mode));
    this.canvas.dataset.mode = mode;
    this.draw();
  }

  reset() {
    this.path = [];
    this.heading = null;
    this.draw();
  }

  add(frame) {
    if (frame.x_m === null || frame.x_m === undefined || frame.y_m === null || frame.y_m === undefined) return;
    const last = this.path[this.path.length - 1];
    if (!last || last[0] !== frame.x_m || last[1] !== frame.y_m) this.path.push([frame.x_m, frame.y_m]);
    if (this.path.length > MAX_PATH) this.path.splice(0, this.path.length - MAX_PATH);
    this.heading = frame.heading_deg ?? this.heading;
  }

  /** The view: centre (metres) and scale (pixels per metre) for the plot box. */
  view(plot) {
    const [x, y] = this.path[this.path.length - 1];
    const usableW = Math.max(10, plot.w - 2 * MARKER_PAD);
    const usableH = Math.max(10, plot.h - 2 * MARKER_PAD);
    if (this.mode === "follow") {
      return { cx: x, cy: y, scale: Math.min(usableW, usableH) / FOLLOW_SPAN_M };
    }
    let [minX, minY] = this.path[0];
    let [maxX, maxY] = this.path[0];
    for (const [px, py] of this.path) {
      minX = Math.min(minX, px);
      maxX = Math.max(maxX, px);
      minY = Math.min(minY, py);
      maxY = Math.max(maxY, py);
    }
    const spanX = Math.max(maxX - minX, 10);
    const spanY = Math.max(maxY - minY, 10);
    return { cx: (minX + maxX) / 2, cy: (minY + maxY) / 2, scale: Math.min(usableW / spanX, usableH / spanY) };
  }

  draw() {
    const { canvas } = this;
    const dpr = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (!width || !height) return;
    if (canvas.width !== Math.round(width * dpr)) canvas.width = Math.round(width * dpr);
    if (canvas.height !== Math.round(height * dpr)) canvas.height = Math.round(height * dpr);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#0d141c";
    ctx.fillRect(0, 0, width, height);
    if (!this.path.length) {
      this.caption.textContent = "No position yet";
      canvas.dataset.labels = "0";
      return;
    }
    const plot = { x: MARGIN.left, y: MARGIN.top, w: width - MARGIN.left - MARGIN.right, h: height - MARGIN.top - MARGIN.bottom };
    const { cx, cy, scale } = this.view(plot);
    const midX = plot.x + plot.w / 2;
    const midY = plot.y + plot.h / 2;
    const toScreen = (x, y) => [midX + (x - cx) * scale, midY - (y - cy) * scale];
    const toSite = (sx, sy) => [cx + (sx - midX) / scale, cy - (sy - midY) / scale];

    ctx.font = "11px system-ui, sans-serif";
    ctx.lineWidth = 1;
    const [west, north] = toSite(plot.x, plot.y);
    const [east, south] = toSite(plot.x + plot.w, plot.y + plot.h);
    // Grid lines at least 60 px apart horizontally and 28 px vertically, labels in the margins.
    const stepX = niceStep(1 / scale, 64);
    const stepY = niceStep(1 / scale, 28);
    const labels = [];
    ctx.save();
    ctx.beginPath();
    ctx.rect(plot.x, plot.y, plot.w, plot.h);
    ctx.clip();
    ctx.strokeStyle = "#1c2834";
    for (let gx = Math.ceil(west / stepX) * stepX; gx <= east; gx += stepX) {
      const [sx] = toScreen(gx, 0);
      ctx.beginPath();
      ctx.moveTo(sx, plot.y);
      ctx.lineTo(sx, plot.y + plot.h);
      ctx.stroke();
      labels.push({ axis: "x", text: label(gx, stepX), at: sx });
    }
    for (let gy = Math.ceil(south / stepY) * stepY; gy <= north; gy += stepY) {
      const [, sy] = toScreen(0, gy);
      ctx.beginPath();
      ctx.moveTo(plot.x, sy);
      ctx.lineTo(plot.x + plot.w, sy);
      ctx.stroke();
      labels.push({ axis: "y", text: label(gy, stepY), at: sy });
    }

    // Path.
    ctx.strokeStyle = "#4fb3ff";
    ctx.lineWidth = 2;
    ctx.beginPath();
    this.path.forEach(([x, y], i) => {
      const [sx, sy] = toScreen(x, y);
      if (i === 0) ctx.moveTo(sx, sy);
      else ctx.lineTo(sx, sy);
    });
    ctx.stroke();
    ctx.restore();

    // Axis labels in the margins; one that would touch its neighbour is skipped.
    ctx.fillStyle = "#8a9aab";
    let lastRight = -Infinity;
    let shown = 0;
    // Where each label went (CSS px: left, top, right, bottom); the browser tests check them.
    this.labelBoxes = [];
    ctx.textBaseline = "alphabetic";
    for (const item of labels.filter((l) => l.axis === "x")) {
      const w = ctx.measureText(item.text).width;
      const left = Math.min(Math.max(item.at - w / 2, plot.x), width - w - 1);
      if (left < lastRight + LABEL_GAP) continue;
      ctx.fillText(item.text, left, height - 5);
      this.labelBoxes.push([left, height - 16, left + w, height - 3]);
      lastRight = left + w;
      shown++;
    }
    let lastTop = Infinity;
    ctx.textBaseline = "middle";
    for (const item of labels.filter((l) => l.axis === "y")) {
      const y = Math.min(Math.max(item.at, plot.y + 6), plot.y + plot.h - 6);
      if (y > lastTop - 14) continue;
      const w = ctx.measureText(item.text).width;
      if (w > MARGIN.left - 4) continue;
      ctx.fillText(item.text, MARGIN.left - 4 - w, y);
      this.labelBoxes.push([MARGIN.left - 4 - w, y - 6, MARGIN.left - 4, y + 6]);
      lastTop = y;
      shown++;
    }
    canvas.dataset.labels = String(shown);

    // Current position and heading arrow, kept inside the plot.
    const [x, y] = this.path[this.path.length - 1];
    let [sx, sy] = toScreen(x, y);
    sx = Math.min(Math.max(sx, plot.x + MARKER_PAD), plot.x + plot.w - MARKER_PAD);
    sy = Math.min(Math.max(sy, plot.y + MARKER_PAD), plot.y + plot.h - MARKER_PAD);
    this.markerAt = [sx, sy];
    this.plotBox = [plot.x, plot.y, plot.x + plot.w, plot.y + plot.h];
    ctx.fillStyle = "#f5c542";
    ctx.beginPath();
    ctx.arc(sx, sy, 6, 0, Math.PI * 2);
    ctx.fill();
    if (this.heading !== null) {
      const rad = (this.heading * Math.PI) / 180;
      const dx = Math.sin(rad);
      const dy = -Math.cos(rad);
      ctx.strokeStyle = "#f5c542";
      ctx.lineWidth = 3;
      ctx.beginPath();
      ctx.moveTo(sx, sy);
      ctx.lineTo(sx + dx * 22, sy + dy * 22);
      ctx.stroke();
      ctx.beginPath();
      ctx.moveTo(sx + dx * 30, sy + dy * 30);
      ctx.lineTo(sx + dx * 20 - dy * 6, sy + dy * 20 + dx * 6);
      ctx.lineTo(sx + dx * 20 + dy * 6, sy + dy * 20 - dx * 6);
      ctx.closePath();
      ctx.fillStyle = "#f5c542";
      ctx.fill();
    }
    this.caption.textContent = `x ${fmt(x, 1, "m")}, y ${fmt(y, 1, "m")}, heading ${fmt(this.heading, 0, "°")}`;
  }
}
