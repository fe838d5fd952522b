// One team room over one WebSocket: history, live messages, presence, typing, and
// the sender's own messages until the server answers them.
//
// A socket that drops reconnects by itself with back-off and jitter, to
// /ws/comms/<team>/?after=<newest id seen> (only what came after); de-duplicated by id.
// A message the server never answered stays in the outbox and is resent, in order,
// with the same client_id on reconnect (the server stores a client_id once). A
// message the server refused (its error names the client_id) moves to `failed`:
// it is never resent by itself, only by the operator's "Retry".
import { backoffDelay, clientId } from "./util.js";

const REFUSED = { 4401: "you are not logged in", 4403: "you are not a member of this room", 4404: "this room does not exist" };
const TYPING_SHOW_MS = 4000;
const TYPING_SEND_MS = 2000;

/** What an operator reads when the server refuses a message (never the internal code). */
const NOT_SENT = {
  rate_limited: "Not sent: too many messages in a short time. Wait a few seconds, then retry.",
  body_too_long: "Not sent: the message is longer than 4,000 characters. Shorten it and send it again.",
  empty_body: "Not sent: the message is empty.",
  not_member: "Not sent: you are no longer a member of this room.",
};
const NOT_SENT_OTHER = "Not sent: the server could not accept this message. Retry, or discard it.";

/** What an operator reads for a room-level error (the server's own sentence, no code). */
function roomError(frame) {
  if (frame.code === "too_slow") return "The room fell behind; it is catching up.";
  return frame.detail ? `The room reported a problem: ${frame.detail}` : "The room reported a problem.";
}

export class Room {
  constructor(team, { me, onChange, onMessage }) {
    this.team = team;
    this.me = me;
    this.onChange = onChange;
    this.onMessage = onMessage;
    this.messages = new Map();
    this.lastId = 0;
    this.hasMore = false;
    this.loaded = false;
    this.online = new Map();
    this.typing = new Map();
    this.unread = 0;
    // The first message that arrived unseen: the "new messages" line goes above it.
    this.firstUnreadId = null;
    this.outbox = new Map(); // client_id -> frame, sent or queued, not yet answered
    this.failed = new Map(); // client_id -> {frame, reason}, refused by the server
    this.state = "connecting";
    this.attempt = 0;
    this.ws = null;
    this.error = "";
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    // A reconnect asks only for what came after the newest message seen (no join history).
    const after = this.loaded ? `?after=${this.lastId}` : "";
    const ws = new WebSocket(`${scheme}://${location.host}/ws/comms/${encodeURIComponent(this.team.slug)}/${after}`);
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.setState("live");
      // Only what the server never answered, in the order it was typed.
      for (const frame of this.outbox.values()) this.sendFrame(frame);
    };
    ws.onmessage = (event) => this.receive(JSON.parse(event.data));
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.online.clear();
      this.typing.clear();
      if (REFUSED[event.code]) {
        for (const frame of this.outbox.values()) this.fail(frame.client_id, "not_member", false);
        this.setState("refused", REFUSED[event.code]);
        return;
      }
      const wait = backoffDelay(this.attempt++);
      this.setState("reconnecting");
      this.timer = setTimeout(() => this.connect(), wait);
    };
  }

  setState(state, detail = "") {
    this.state = state;
    this.stateDetail = detail;
    this.onChange(this, "state");
  }

  sendFrame(frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  /** Send (or queue, while the socket is down) a message; return whether it went out now. */
  send(body) {
    const frame = { type: "message", body, client_id: clientId() };
    this.outbox.set(frame.client_id, frame);
    this.firstUnreadId = null; // replying means the new messages were read
    const sent = this.sendFrame(frame);
    this.onChange(this, "messages");
    return sent;
  }

  /** Send a refused message again, same client_id (stored at most once). */
  retry(id) {
    const failed = this.failed.get(id);
    if (!failed) return;
    this.failed.delete(id);
    this.outbox.set(id, failed.frame);
    this.sendFrame(failed.frame);
    this.onChange(this, "messages");
  }

  discard(id) {
    if (this.failed.delete(id)) this.onChange(this, "messages");
  }

  fail(id, code, notify = true) {
    const frame = this.outbox.get(id);
    if (!frame) return false;
    this.outbox.delete(id);
    this.failed.set(id, { frame, reason: NOT_SENT[code] || NOT_SENT_OTHER });
    if (notify) this.onChange(this, "messages");
    return true;
  }

  sendTyping() {
    const now = Date.now();
    if (now - (this.typingSentAt || 0) < TYPING_SEND_MS) return;
    if (this.sendFrame({ type: "typing" })) this.typingSentAt = now;
  }

  loadOlder() {
    const oldest = Math.min(...this.messages.keys());
    if (Number.isFinite(oldest)) this.sendFrame({ type: "history", before: oldest });
  }

  add(message, { live, away = false }) {
    if (this.messages.has(message.id)) return false;
    this.messages.set(message.id, message);
    this.lastId = Math.max(this.lastId, message.id);
    if (message.client_id) {
      this.outbox.delete(message.client_id);
      this.failed.delete(message.client_id);
    }
    if (message.author) this.typing.delete(message.author.id);
    const mine = message.author && message.author.id === this.me.id;
    if (live && !mine) {
      this.unread += 1;
      if (away && this.firstUnreadId === null) this.firstUnreadId = message.id;
    }
    this.onMessage(this, message);
    return true;
  }

  receive(frame) {
    const away = this.isAway ? this.isAway(this) : false;
    switch (frame.type) {
      case "history": {
        for (const message of frame.messages) this.add(message, { live: false });
        const page = frame.before !== undefined && frame.before !== null;
        // The join snapshot sets "has more" only on the first join; later pages move it.
        if (page || !this.loaded) this.hasMore = frame.has_more;
        this.loaded = true;
        this.onChange(this, "messages");
        break;
      }
      case "resume":
        for (const message of frame.messages) this.add(message, { live: true, away });
        this.onChange(this, "messages");
        break;
      case "message":
        this.add(frame, { live: true, away });
        this.onChange(this, "messages");
        break;
      case "presence":
        if (frame.online) this.online = new Map(frame.online.map((user) => [user.id, user]));
        if (frame.joined) this.online.set(frame.joined.id, frame.joined);
        if (frame.left) this.online.delete(frame.left.id);
        this.onChange(this, "presence");
        break;
      case "typing":
        if (frame.user && frame.user.id !== this.me.id) {
          this.typing.set(frame.user.id, { username: frame.user.username, until: Date.now() + TYPING_SHOW_MS });
          this.onChange(this, "typing");
          setTimeout(() => this.onChange(this, "typing"), TYPING_SHOW_MS + 50);
        }
        break;
      case "error":
        if (frame.client_id && this.fail(frame.client_id, frame.code)) break;
        this.error = roomError(frame);
        this.onChange(this, "error");
        break;
      default:
        break;
    }
  }
}
