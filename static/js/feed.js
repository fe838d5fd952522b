// The rover's live feed over Server-Sent Events, resilient and gap-free.
//
// On any error the EventSource is closed and recreated after a back-off with
// jitter, passing ?last_event_id=<last seq seen>: the server replays every stored
// frame after it, then continues live. Frames are de-duplicated by seq, so the
// operator sees every frame exactly once across reconnects.
import { backoffDelay } from "./util.js";

export class LiveFeed {
  constructor(slug, { onFrame, onAlarm, onImage, onState }) {
    this.slug = slug;
    this.handlers = { onFrame, onAlarm, onImage, onState };
    this.lastSeq = null;
    this.attempt = 0;
    this.source = null;
    this.timer = null;
    this.closed = false;
  }

  start() {
    this.connect();
  }

  url() {
    const base = `/rovers/${encodeURIComponent(this.slug)}/telemetry/stream`;
    return this.lastSeq === null ? base : `${base}?last_event_id=${this.lastSeq}`;
  }

  connect() {
    if (this.closed) return;
    const source = new EventSource(this.url());
    this.source = source;
    this.setState(this.attempt === 0 ? "connecting" : "reconnecting");
    source.onopen = () => {
      this.attempt = 0;
      this.setState("live");
    };
    source.addEventListener("telemetry", (event) => {
      const frame = JSON.parse(event.data);
      if (this.lastSeq !== null && frame.seq <= this.lastSeq) return; // already shown
      this.lastSeq = frame.seq;
      this.handlers.onFrame(frame);
    });
    source.addEventListener("alarm", (event) => this.handlers.onAlarm(JSON.parse(event.data)));
    source.addEventListener("image", (event) => this.handlers.onImage(JSON.parse(event.data)));
    // The server cut us off because we fell behind: resume at once from the last seq.
    source.addEventListener("overflow", () => this.retry(0));
    source.onerror = () => this.retry();
  }

  retry(delay) {
    if (this.closed) return;
    if (this.source) this.source.close();
    this.source = null;
    clearTimeout(this.timer);
    const wait = delay ?? backoffDelay(this.attempt++);
    this.setState("reconnecting", wait);
    this.timer = setTimeout(() => this.connect(), wait);
  }

  setState(state, wait) {
    this.state = state;
    this.handlers.onState(state, wait);
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.source) this.source.close();
    this.source = null;
  }
}
