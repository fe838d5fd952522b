// Small helpers shared by the dashboard modules. No innerHTML anywhere: text is set
// with textContent, so whatever a user typed is displayed as text.

/** Exponential back-off with "equal jitter": half fixed, half random. */
export function backoffDelay(attempt, { base = 500, cap = 8000 } = {}) {
  const exp = Math.min(cap, base * 2 ** attempt);
  return exp / 2 + (Math.random() * exp) / 2;
}

/** Create an element: h("li", { className: "x", text: "y", attrs: { "data-id": 1 } }, child...). */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  if (props.className) el.className = props.className;
  if (props.text !== undefined) el.textContent = String(props.text);
  for (const [name, value] of Object.entries(props.attrs || {})) {
    if (value !== undefined && value !== null && value !== false) el.setAttribute(name, String(value));
  }
  for (const child of children) if (child) el.append(child);
  return el;
}

export function toSeconds(iso) {
  return Date.parse(iso) / 1000;
}

export function fmt(value, digits, unit) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return `${Number(value).toFixed(digits)}${unit ? ` ${unit}` : ""}`;
}

// --- time: every timestamp is UTC, 24-hour, with its date when it is not today ---

const MARS_SOL_MS = 88775244; // one Mars solar day
let landingMs = null;
let clockOffsetMs = 0;
let offsetKnown = false;

/** Set the current rover's landing moment (ISO or null): timestamps then show its sol. */
export function setLanding(iso) {
  landingMs = iso ? Date.parse(iso) : null;
}

/** The sol (days on Mars since landing, landing day = sol 0) at `ms`, or null. */
export function solAt(ms) {
  if (landingMs === null || Number.isNaN(landingMs) || ms < landingMs) return null;
  return Math.floor((ms - landingMs) / MARS_SOL_MS);
}

/**
 * Learn the server's clock: `serverMs` is a server time known to have passed by
 * the local time `localMs` (a lower bound of the offset). The largest bound wins:
 * it is the sample with the shortest transit, so the browser's own clock never
 * decides whether a frame is fresh.
 */
export function learnServerTime(serverMs, localMs = Date.now()) {
  if (!Number.isFinite(serverMs)) return;
  const sample = serverMs - localMs;
  if (!offsetKnown || sample > clockOffsetMs) clockOffsetMs = sample;
  offsetKnown = true;
}

/** Now, on the server's clock (as far as it is known). */
export function serverNow() {
  return Date.now() + clockOffsetMs;
}

export function clockOffset() {
  return clockOffsetMs;
}

function pad(n, width = 2) {
  return String(n).padStart(width, "0");
}

function utcDate(date) {
  return `${date.getUTCFullYear()}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())}`;
}

/** "YYYY-MM-DD" of a moment, in UTC. */
export function utcDay(iso) {
  return utcDate(new Date(typeof iso === "number" ? iso : Date.parse(iso)));
}

/** "HH:MM:SS UTC", or "YYYY-MM-DD HH:MM:SS UTC" when not today (UTC); " · Sol N" where known. */
export function fmtTime(iso, { seconds = true, sol = true, utc = true } = {}) {
  if (iso === null || iso === undefined || iso === "") return "";
  const ms = typeof iso === "number" ? iso : Date.parse(iso);
  if (Number.isNaN(ms)) return "";
  const date = new Date(ms);
  let text = `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}`;
  if (seconds) text += `:${pad(date.getUTCSeconds())}`;
  if (utcDate(date) !== utcDate(new Date(serverNow()))) text = `${utcDate(date)} ${text}`;
  if (utc) text += " UTC";
  const n = sol ? solAt(ms) : null;
  return n === null ? text : `${text} · Sol ${n}`;
}

/** A day heading for chat separators: "Today", "Yesterday" or "YYYY-MM-DD" (UTC). */
export function fmtDay(iso) {
  const day = utcDay(iso);
  const today = utcDay(serverNow());
  if (day === today) return `Today (${day})`;
  if (day === utcDay(serverNow() - 86400000)) return `Yesterday (${day})`;
  return day;
}

/** A full, unambiguous stamp for tooltips: "YYYY-MM-DD HH:MM:SS UTC". */
export function fmtFull(iso) {
  const ms = typeof iso === "number" ? iso : Date.parse(iso);
  if (Number.isNaN(ms)) return "";
  const date = new Date(ms);
  const time = `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}`;
  const n = solAt(ms);
  return `${utcDate(date)} ${time} UTC${n === null ? "" : ` · Sol ${n}`}`;
}

const URL_PATTERN = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]/g;

/**
 * Text with its http(s) URLs as links, as DOM nodes (never HTML): every piece is
 * a text node or an <a> whose text and href are set as strings.
 */
export function linkify(text) {
  const nodes = [];
  let last = 0;
  for (const match of text.matchAll(URL_PATTERN)) {
    if (match.index > last) nodes.push(document.createTextNode(text.slice(last, match.index)));
    let href = null;
    try {
      const url = new URL(match[0]);
      if (url.protocol === "http:" || url.protocol === "https:") href = url.href;
    } catch {
      href = null;
    }
    if (href) {
      nodes.push(h("a", { text: match[0], attrs: { href, target: "_blank", rel: "noopener noreferrer" } }));
    } else {
      nodes.push(document.createTextNode(match[0]));
    }
    last = match.index + match[0].length;
  }
  if (last < text.length) nodes.push(document.createTextNode(text.slice(last)));
  return nodes;
}

export function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

export async function getJSON(url, { signal } = {}) {
  const response = await fetch(url, {
    credentials: "same-origin",
    headers: { Accept: "application/json" },
    signal,
  });
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
  return response.json();
}

export function clientId() {
  if (globalThis.crypto && typeof crypto.randomUUID === "function" && isSecureContext) {
    return crypto.randomUUID();
  }
  const random = new Uint32Array(4);
  crypto.getRandomValues(random);
  return Array.from(random, (n) => n.toString(16).padStart(8, "0")).join("-");
}

/** Set a connection indicator: <li data-state> with a .conn-text child. */
export function setIndicator(el, state, text) {
  el.dataset.state = state;
  el.querySelector(".conn-text").textContent = text;
}
