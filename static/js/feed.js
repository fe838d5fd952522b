// The rover's live feed over Server-Sent Events, resilient and gap-free.
//
// On any error the EventSource is closed and recreated after a back-off with
// jitter, passing ?last_event_id=<last event id seen>: the server replays every
// stored frame after it, then continues live. Event ids are the server's ingest
// order, not the rover's seq (a late frame has a lower seq but a higher id), so
// frames are de-duplicated by id and the operator sees each exactly once.
//
// Alarms and images carry no id: a resume (?last_event_id=) sends, before the
// frames, every alarm that changed and every image stored since shortly before
// that frame; the panels keep both by id, so a repeat shows nothing twice. A
// reconnect with no id yet (the rover never sent a frame) is a first connect,
// which resends nothing: the page then reloads both lists instead (onResync).
import { backoffDelay } from "./util.js";

export class LiveFeed {
  constructor(slug, { onFrame, onAlarm, onImage, onState, onResync }) {
    this.slug = slug;
    this.handlers = { onFrame, onAlarm, onImage, onState, onResync };
    this.opened = false;
    this.lastId = null;
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
    return this.lastId === null ? base : `${base}?last_event_id=${this.lastId}`;
  }

  connect() {
    if (this.closed) return;
    const source = new EventSource(this.url());
    this.source = source;
    this.setState(this.attempt === 0 ? "connecting" : "reconnecting");
    source.onopen = () => {
      this.attempt = 0;
      this.setState("live");
      if (this.opened && this.lastId === null) this.handlers.onResync();
      this.opened = true;
    };
    source.addEventListener("telemetry", (event) => {
      const id = Number(event.lastEventId);
      if (this.lastId !== null && id <= this.lastId) return; // already shown
      this.lastId = id;
      this.handlers.onFrame(JSON.parse(event.data));
    });
    source.addEventListener("alarm", (event) => this.handlers.onAlarm(JSON.parse(event.data)));
    source.addEventListener("image", (event) => this.handlers.onImage(JSON.parse(event.data)));
    // The server cut us off because we fell behind: resume at once from the last id.
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
