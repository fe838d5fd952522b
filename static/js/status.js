// The Status panel: the newest frame's values, and the age of that frame. When no
// frame arrived for `staleAfter` seconds, or the feed is down, the panel says
// "link lost" and greys the values: they are the last known, not current.
import { fmt } from "./util.js";

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

export class StatusPanel {
  constructor(root, { staleAfter, onLinkChange }) {
    this.root = root;
    this.onLinkChange = onLinkChange;
    this.stale = null;
    this.staleAfter = staleAfter;
    this.line = root.querySelector("#link-state");
    this.fields = Object.fromEntries(
      Object.keys(FIELDS).map((name) => [name, root.querySelector(`[data-field="${name}"]`)]),
    );
    this.feedState = "connecting";
    this.reset();
    setInterval(() => this.tick(), 250);
  }

  reset() {
    this.frame = null;
    this.receivedAt = null;
    for (const el of Object.values(this.fields)) el.textContent = "–";
    this.tick();
  }

  update(frame) {
    this.frame = frame;
    this.receivedAt = Date.parse(frame.received_at);
    for (const [name, render] of Object.entries(FIELDS)) this.fields[name].textContent = render(frame);
    this.root.dataset.mode = frame.mode || "";
    this.tick();
  }

  setFeedState(state) {
    this.feedState = state;
    this.tick();
  }

  tick() {
    let text;
    let stale = true;
    if (this.frame === null) {
      text = this.feedState === "live" ? "No telemetry yet" : "Connecting to the telemetry feed…";
    } else {
      const age = Math.max(0, (Date.now() - this.receivedAt) / 1000);
      const ageText = age < 60 ? `${age.toFixed(1)} s` : `${Math.round(age / 60)} min`;
      stale = age > this.staleAfter || this.feedState !== "live";
      if (this.feedState !== "live") text = `FEED DOWN · last frame ${ageText} ago (reconnecting)`;
      else if (stale) text = `LINK LOST · no frame for ${ageText}`;
      else text = `Live · last frame ${ageText} ago`;
    }
    this.root.dataset.stale = String(stale);
    // Announce changes of state only (the age ticks every 250 ms, silently).
    if (this.frame !== null && stale !== this.stale && this.stale !== null) this.onLinkChange(stale, text);
    this.stale = this.frame === null ? null : stale;
    if (this.line.textContent !== text) this.line.textContent = text;
  }
}
