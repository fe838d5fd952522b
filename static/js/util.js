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

export function fmtTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
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
