// The Status panel: the newest frame's values, its time (UTC, and the rover's sol
// where it has a landing date) and its age on the server's clock. When no frame
// arrived for the rover's `stale_after_seconds`, or the feed is down, the panel
// says so and greys the values: they are the last known, not current. A rover
// that never sent anything is not an emergency: the panel says so calmly.
import { fmt, fmtFull, fmtTime, serverNow } from "./util.js";

const FIELDS = {
  mode: (f) => (f.mode ? f.mode.replace(/_/g, " ") : "–"),
  battery_pct: (f) => fmt(f.battery_pct, 1, "%"),
  battery_v: (f) => fmt(f.battery_v, 2, "V"),
  signal_dbm: (f) => fmt(f.signal_dbm, 1, "dBm"),
  temp_internal_c: (f) => fmt(f.temp_internal_c, 1, "°C"),
  temp_ambient_c: (f) => fmt(f.temp_ambient_c, 1, "°C"),
  speed_mps: (f) => fmt(f.speed_mps, 2, "m/s"),
  seq: (f) => `#${f.seq}`,
};

function ageText(seconds) {
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${Math.round(seconds / 86400)} days`;
}

export class StatusPanel {
  constructor(root, { staleAfter, onLinkChange, onState = () => {} }) {
    this.root = root;
    this.onLinkChange = onLinkChange;
    this.onState = onState;
    this.stale = null;
    this.staleAfter = staleAfter;
    this.line = root.querySelector("#link-state");
    this.frameTime = root.querySelector("#frame-time");
    this.fields = Object.fromEntries(
      Object.keys(FIELDS).map((name) => [name, root.querySelector(`[data-field="${name}"]`)]),
    );
    this.feedState = "connecting";
    this.historyChecked = false;
    this.reset();
    setInterval(() => this.tick(), 250);
  }

  setStaleAfter(seconds) {
    this.staleAfter = seconds;
    this.tick();
  }

  reset() {
    this.frame = null;
    this.receivedAt = null;
    this.stale = null;
    this.historyChecked = false;
    for (const el of Object.values(this.fields)) el.textContent = "–";
    this.frameTime.textContent = "";
    this.tick();
  }

  /** The history answered: with no frame at all, the rover has simply not sent any yet. */
  historyLoaded() {
    this.historyChecked = true;
    this.tick();
  }

  update(frame) {
    this.frame = frame;
    this.receivedAt = Date.parse(frame.received_at);
    for (const [name, render] of Object.entries(FIELDS)) this.fields[name].textContent = render(frame);
    this.root.dataset.mode = frame.mode || "";
    this.frameTime.textContent = `Frame recorded ${fmtTime(frame.recorded_at)}`;
    this.frameTime.title = `recorded ${fmtFull(frame.recorded_at)}, received ${fmtFull(frame.received_at)}`;
    this.tick();
  }

  setFeedState(state) {
    this.feedState = state;
    this.tick();
  }

  /** One of "connecting", "empty", "live", "lost", "down", and the sentence shown. */
  state() {
    if (this.frame === null) {
      if (this.feedState !== "live") return ["connecting", "Connecting to the telemetry feed…"];
      if (!this.historyChecked) return ["connecting", "Loading telemetry…"];
      return ["empty", "No telemetry from this rover yet. Values appear with its first frame."];
    }
    // Age on the server's clock: received_at is the server's, and so is serverNow().
    const age = Math.max(0, (serverNow() - this.receivedAt) / 1000);
    if (this.feedState !== "live") return ["down", `FEED DOWN · last frame ${ageText(age)} ago (reconnecting)`];
    if (age > this.staleAfter) return ["lost", `LINK LOST · no frame for ${ageText(age)} (limit ${this.staleAfter} s)`];
    return ["live", `Live · last frame ${ageText(age)} ago`];
  }

  tick() {
    const [state, text] = this.state();
    const stale = state === "lost" || state === "down" || state === "connecting";
    this.root.dataset.link = state;
    this.root.dataset.stale = String(stale);
    // Announce changes of state only (the age ticks every 250 ms, silently).
    if (this.frame !== null && stale !== this.stale && this.stale !== null) this.onLinkChange(stale, text);
    this.stale = this.frame === null ? null : stale;
    if (this.line.textContent !== text) this.line.textContent = text;
    if (state !== this.lastState) {
      this.lastState = state;
      this.onState(state);
    }
  }
}
