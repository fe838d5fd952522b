// Team rooms: one WebSocket per team the user belongs to (so other tabs can count
// unread messages), history with "load older", composer, presence and typing.
//
// A socket that drops reconnects by itself with back-off and jitter, to
// /ws/comms/<team>/?after=<newest id seen> (only what came after); de-duplicated by id,
// and unsent messages keep their client_id and are resent (the server stores a
// client_id once), so nothing is lost or shown twice. Bodies are set with
// textContent only: whatever a user typed is shown as text.
import { backoffDelay, clientId, fmtTime, h, setIndicator } from "./util.js";

const REFUSED = { 4401: "not logged in", 4403: "not a member", 4404: "no such room" };
const TYPING_SHOW_MS = 4000;
const TYPING_SEND_MS = 2000;

class Room {
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
    this.outbox = new Map();
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
      for (const frame of this.outbox.values()) this.sendFrame(frame);
    };
    ws.onmessage = (event) => this.receive(JSON.parse(event.data));
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.online.clear();
      this.typing.clear();
      if (REFUSED[event.code]) {
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

  send(body) {
    const frame = { type: "message", body, client_id: clientId() };
    this.outbox.set(frame.client_id, frame);
    this.sendFrame(frame);
    this.onChange(this, "messages");
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

  add(message, { live }) {
    if (this.messages.has(message.id)) return false;
    this.messages.set(message.id, message);
    this.lastId = Math.max(this.lastId, message.id);
    if (message.client_id) this.outbox.delete(message.client_id);
    if (message.author) this.typing.delete(message.author.id);
    const mine = message.author && message.author.id === this.me.id;
    if (live && !mine) this.unread += 1;
    this.onMessage(this, message);
    return true;
  }

  receive(frame) {
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
        for (const message of frame.messages) this.add(message, { live: true });
        this.onChange(this, "messages");
        break;
      case "message":
        this.add(frame, { live: true });
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
        this.error = `${frame.detail} (${frame.code})`;
        this.onChange(this, "error");
        break;
      default:
        break;
    }
  }
}

export class RoomsPanel {
  constructor(root, { me, indicator, onMessage }) {
    this.root = root;
    this.me = me;
    this.indicator = indicator;
    this.onMessageMarker = onMessage;
    this.tabs = root.querySelector("#room-tabs");
    this.panel = root.querySelector("#room-panel");
    this.list = root.querySelector("#message-list");
    this.older = root.querySelector("#load-older");
    this.typingLine = root.querySelector("#typing");
    this.presence = root.querySelector("#presence-list");
    this.form = root.querySelector("#composer");
    this.input = root.querySelector("#composer-input");
    this.status = root.querySelector("#composer-status");
    this.rooms = [];
    this.active = null;
    this.frame = null;
    this.older.addEventListener("click", () => this.active && this.active.loadOlder());
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      const body = this.input.value.trim();
      if (!body || !this.active) return;
      this.active.send(body);
      this.input.value = "";
      this.status.textContent = this.active.state === "live" ? "" : "Queued: it is sent when the room reconnects.";
    });
    this.input.addEventListener("input", () => this.active && this.active.sendTyping());
    this.tabs.addEventListener("keydown", (event) => this.onTabKey(event));
  }

  start(teams) {
    this.rooms = teams.map(
      (team) =>
        new Room(team, {
          me: this.me,
          onChange: (room, what) => this.changed(room, what),
          onMessage: (room, message) => this.onMessageMarker(room.team, message),
        }),
    );
    this.tabs.replaceChildren(
      ...this.rooms.map((room, index) => {
        const tab = h(
          "button",
          {
            className: "tab",
            attrs: { type: "button", role: "tab", id: `tab-${room.team.slug}`, "aria-controls": "room-panel", "data-team": room.team.slug },
          },
          h("span", { className: "dot", attrs: { "aria-hidden": "true" } }),
          h("span", { className: "tab-name", text: room.team.name }),
          h("span", { className: "unread", attrs: { "aria-label": "unread messages" } }),
        );
        tab.addEventListener("click", () => this.select(index));
        room.tab = tab;
        return tab;
      }),
    );
    if (!this.rooms.length) {
      this.panel.hidden = true;
      this.tabs.append(h("p", { className: "empty", text: "You are not in any team yet." }));
      this.updateIndicator();
      return;
    }
    for (const room of this.rooms) room.connect();
    this.select(0);
  }

  select(index, { focus = false } = {}) {
    this.active = this.rooms[index];
    this.active.unread = 0;
    for (const room of this.rooms) {
      const selected = room === this.active;
      room.tab.setAttribute("aria-selected", String(selected));
      room.tab.tabIndex = selected ? 0 : -1;
    }
    if (focus) this.active.tab.focus();
    this.panel.setAttribute("aria-labelledby", this.active.tab.id);
    this.panel.dataset.team = this.active.team.slug;
    this.status.textContent = "";
    this.renderAll(true);
  }

  onTabKey(event) {
    const index = this.rooms.indexOf(this.active);
    const last = this.rooms.length - 1;
    const moves = { ArrowRight: index === last ? 0 : index + 1, ArrowLeft: index === 0 ? last : index - 1, Home: 0, End: last };
    if (!(event.key in moves)) return;
    event.preventDefault();
    this.select(moves[event.key], { focus: true });
  }

  changed(room, what) {
    if (room === this.active && what === "messages") room.unread = 0;
    if (room === this.active && what === "error") this.status.textContent = room.error;
    this.pending = this.pending || new Set();
    this.pending.add(what);
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = null;
      this.pending = null;
      this.renderAll(false);
    });
  }

  renderAll(switched) {
    for (const room of this.rooms) {
      room.tab.dataset.state = room.state;
      room.tab.querySelector(".dot").title = room.state;
      const unread = room.tab.querySelector(".unread");
      unread.textContent = room.unread ? String(room.unread) : "";
      unread.hidden = !room.unread;
    }
    this.updateIndicator();
    const room = this.active;
    if (!room) return;
    this.renderMessages(room, switched);
    this.older.hidden = !room.hasMore;
    this.presence.replaceChildren(
      ...[...room.online.values()]
        .sort((a, b) => a.username.localeCompare(b.username))
        .map((user) => h("li", { text: user.username, attrs: { "data-user": user.username } })),
    );
    const now = Date.now();
    const typing = [...room.typing.values()].filter((t) => t.until > now).map((t) => t.username);
    this.typingLine.textContent = typing.length ? `${typing.join(", ")} ${typing.length > 1 ? "are" : "is"} typing…` : "";
  }

  renderMessages(room, switched) {
    const atBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
    const ordered = [...room.messages.values()].sort((a, b) => a.id - b.id);
    const ids = ordered.map((message) => message.id);
    const rendered = this.renderedIds || [];
    const appendOnly =
      !switched && this.renderedRoom === room && rendered.every((id, index) => ids[index] === id);
    // Appending only the new items keeps the role=log region from re-reading the room.
    for (const el of this.list.querySelectorAll(".msg-pending")) el.remove();
    const fresh = (appendOnly ? ordered.slice(rendered.length) : ordered).map((m) => this.messageItem(m));
    const pending = [...room.outbox.values()].map((frame) =>
      h(
        "li",
        { className: "msg msg-pending", attrs: { "data-client-id": frame.client_id } },
        h("span", { className: "meta", text: `${this.me.username} · sending…` }),
        h("span", { className: "body", text: frame.body }),
      ),
    );
    if (appendOnly) this.list.append(...fresh, ...pending);
    else this.list.replaceChildren(...fresh, ...pending);
    this.renderedRoom = room;
    this.renderedIds = ids;
    if (switched || atBottom) this.list.scrollTop = this.list.scrollHeight;
  }

  messageItem(message) {
    const author = message.author ? message.author.username : message.kind;
    return h(
      "li",
      { className: `msg msg-${message.kind}`, attrs: { "data-id": message.id } },
      h("span", { className: "meta", text: `${fmtTime(message.created_at)} · ${author}` }),
      h("span", { className: "body", text: message.body }),
    );
  }

  updateIndicator() {
    const total = this.rooms.length;
    const live = this.rooms.filter((room) => room.state === "live").length;
    let state = "live";
    if (total === 0) state = "idle";
    else if (live < total) state = this.rooms.some((room) => room.state === "reconnecting") ? "reconnecting" : "connecting";
    setIndicator(this.indicator, state, total === 0 ? "no rooms" : `${live}/${total} live`);
  }
}
