// The rover's path in the site frame (x east, y north, metres) with its current
// position and heading (degrees clockwise from north), drawn on a canvas.
import { fmt } from "./util.js";

const MAX_PATH = 5000;

function niceStep(span) {
  const raw = span / 6;
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
  return 10 * power;
}

export class RoverMap {
  constructor(canvas, caption) {
    this.canvas = canvas;
    this.caption = caption;
    this.reset();
    new ResizeObserver(() => this.draw()).observe(canvas);
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
      return;
    }
    let [minX, minY] = this.path[0];
    let [maxX, maxY] = this.path[0];
    for (const [x, y] of this.path) {
      minX = Math.min(minX, x);
      maxX = Math.max(maxX, x);
      minY = Math.min(minY, y);
      maxY = Math.max(maxY, y);
    }
    const span = Math.max(maxX - minX, maxY - minY, 10) * 1.2;
    const cx = (minX + maxX) / 2;
    const cy = (minY + maxY) / 2;
    const scale = Math.min(width, height) / span;
    const toScreen = (x, y) => [width / 2 + (x - cx) * scale, height / 2 - (y - cy) * scale];

    // Grid with labels every "nice" step.
    const step = niceStep(span);
    ctx.strokeStyle = "#1c2834";
    ctx.fillStyle = "#5d6e80";
    ctx.font = "11px system-ui, sans-serif";
    ctx.lineWidth = 1;
    const halfW = width / 2 / scale;
    const halfH = height / 2 / scale;
    for (let gx = Math.ceil((cx - halfW) / step) * step; gx <= cx + halfW; gx += step) {
      const [sx] = toScreen(gx, 0);
      ctx.beginPath();
      ctx.moveTo(sx, 0);
      ctx.lineTo(sx, height);
      ctx.stroke();
      ctx.fillText(`${Math.round(gx)} m`, sx + 2, height - 4);
    }
    for (let gy = Math.ceil((cy - halfH) / step) * step; gy <= cy + halfH; gy += step) {
      const [, sy] = toScreen(0, gy);
      ctx.beginPath();
      ctx.moveTo(0, sy);
      ctx.lineTo(width, sy);
      ctx.stroke();
      ctx.fillText(`${Math.round(gy)} m`, 2, sy - 2);
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

    // Current position and heading arrow.
    const [x, y] = this.path[this.path.length - 1];
    const [sx, sy] = toScreen(x, y);
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
      ctx.lineTo(sx + dx * 26, sy + dy * 26);
      ctx.stroke();
      ctx.beginPath();
      ctx.moveTo(sx + dx * 32, sy + dy * 32);
      ctx.lineTo(sx + dx * 22 - dy * 6, sy + dy * 22 + dx * 6);
      ctx.lineTo(sx + dx * 22 + dy * 6, sy + dy * 22 - dx * 6);
      ctx.closePath();
      ctx.fillStyle = "#f5c542";
      ctx.fill();
    }
    this.caption.textContent = `x ${fmt(x, 1, "m")}, y ${fmt(y, 1, "m")}, heading ${fmt(this.heading, 0, "°")}`;
  }
}
