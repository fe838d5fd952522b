// Team rooms panel: a tab per team (so other tabs can count unread messages), the
// active room's messages with day separators, a "new messages" line, the sender's
// pending and failed messages, composer, presence and typing. Bodies are text
// nodes (URLs become <a> elements built from strings): nothing a user typed is
// ever parsed as HTML.
import { Room } from "./room.js";
import { fmtDay, fmtFull, fmtTime, h, linkify, setIndicator, utcDay } from "./util.js";

const QUEUED = "Queued: it is sent when the room reconnects.";

export class RoomsPanel {
  constructor(root, { me, indicator, onMessage, onShowOnTimeline, teamHelp }) {
    this.root = root;
    this.me = me;
    this.indicator = indicator;
    this.onMessageMarker = onMessage;
    this.onShowOnTimeline = onShowOnTimeline;
    this.teamHelp = teamHelp || {};
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
    this.highlightId = null;
    this.older.addEventListener("click", () => this.active && this.active.loadOlder());
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      const body = this.input.value.trim();
      if (!body || !this.active) return;
      const sent = this.active.send(body);
      this.highlightId = null;
      this.input.value = "";
      this.status.textContent = sent ? "" : QUEUED;
    });
    this.input.addEventListener("input", () => this.active && this.active.sendTyping());
    this.tabs.addEventListener("keydown", (event) => this.onTabKey(event));
    // Clicks on messages' own controls (retry, discard, show on timeline), delegated.
    this.list.addEventListener("click", (event) => this.onListClick(event));
  }

  start(teams) {
    this.rooms = teams.map((team) => {
      const room = new Room(team, {
        me: this.me,
        onChange: (changed, what) => this.changed(changed, what),
        onMessage: (changed, message) => this.onMessageMarker(changed.team, message),
      });
      room.isAway = (candidate) => this.isAway(candidate);
      return room;
    });
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
      this.tabs.append(this.noTeamHelp());
      this.updateIndicator();
      return;
    }
    for (const room of this.rooms) room.connect();
    document.addEventListener("visibilitychange", () => this.changed(this.active, "messages"));
    this.select(0);
  }

  noTeamHelp() {
    const help = h(
      "div",
      { className: "empty-state", attrs: { id: "no-team" } },
      h("p", { text: "You are not in any team yet, so there is no room to talk in." }),
    );
    if (this.teamHelp.adminUrl) {
      help.append(
        h(
          "p",
          { text: "You can add yourself: " },
          h("a", { text: "open Teams in the admin", attrs: { href: this.teamHelp.adminUrl } }),
          document.createTextNode(", choose a team and add yourself as a member."),
        ),
      );
    } else {
      help.append(
        h("p", {
          text: "Ask a mission administrator to add you to a team (admin → Teams → Members). Its room appears here as soon as they do.",
        }),
      );
    }
    return help;
  }

  /** True when a new message in `room` would arrive unseen: another tab, a hidden page, or scrolled up. */
  isAway(room) {
    if (room !== this.active || document.hidden) return true;
    return this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight > 40;
  }

  select(index, { focus = false } = {}) {
    const previous = this.active;
    this.highlightId = null;
    if (previous && previous !== this.rooms[index]) previous.firstUnreadId = null; // seen
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

  /** Open `messageId` in its room, scrolled into view and highlighted (a timeline marker's click). */
  reveal(teamSlug, messageId) {
    const index = this.rooms.findIndex((room) => room.team.slug === teamSlug);
    if (index < 0) return false;
    if (this.rooms[index] !== this.active) this.select(index);
    this.highlightId = messageId;
    this.renderAll(true);
    const item = this.list.querySelector(`.msg[data-id="${Number(messageId)}"]`);
    if (!item) return false;
    item.scrollIntoView({ block: "center" });
    item.focus({ preventScroll: true });
    return true;
  }

  onTabKey(event) {
    const index = this.rooms.indexOf(this.active);
    const last = this.rooms.length - 1;
    const moves = { ArrowRight: index === last ? 0 : index + 1, ArrowLeft: index === 0 ? last : index - 1, Home: 0, End: last };
    if (!(event.key in moves)) return;
    event.preventDefault();
    this.select(moves[event.key], { focus: true });
  }

  onListClick(event) {
    const button = event.target.closest("button[data-action]");
    if (!button || !this.active) return;
    const item = button.closest("li");
    const { action } = button.dataset;
    if (action === "retry") this.active.retry(item.dataset.clientId);
    else if (action === "discard") this.active.discard(item.dataset.clientId);
    else if (action === "timeline") {
      const message = this.active.messages.get(Number(item.dataset.id));
      if (message) this.onShowOnTimeline(message.created_at, `message:${message.id}`);
    }
  }

  changed(room, what) {
    if (!room) return;
    if (room === this.active && what === "messages") {
      if (!document.hidden) room.unread = 0;
      // The "Queued" notice lasts while something is still waiting to be sent.
      if (this.status.textContent === QUEUED && !room.outbox.size) this.status.textContent = "";
    }
    if (room === this.active && what === "error") this.status.textContent = room.error;
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = null;
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
    for (const el of this.list.querySelectorAll(".msg-pending, .msg-failed, .new-line")) el.remove();
    const start = appendOnly ? rendered.length : 0;
    const fresh = [];
    let day = start > 0 ? utcDay(ordered[start - 1].created_at) : null;
    for (const message of ordered.slice(start)) {
      const messageDay = utcDay(message.created_at);
      if (messageDay !== day) fresh.push(h("li", { className: "day-separator", text: fmtDay(message.created_at), attrs: { "data-day": messageDay } }));
      day = messageDay;
      fresh.push(this.messageItem(message));
    }
    const own = [
      ...[...room.outbox.values()].map((frame) => this.ownItem(frame, null)),
      ...[...room.failed.values()].map(({ frame, reason }) => this.ownItem(frame, reason)),
    ];
    if (appendOnly) this.list.append(...fresh, ...own);
    else this.list.replaceChildren(...fresh, ...own);
    if (room.firstUnreadId !== null) {
      const first = this.list.querySelector(`.msg[data-id="${room.firstUnreadId}"]`);
      if (first) first.before(h("li", { className: "new-line", text: "New messages", attrs: { role: "separator" } }));
    }
    for (const el of this.list.querySelectorAll(".msg[data-highlight]")) el.removeAttribute("data-highlight");
    if (this.highlightId !== null) {
      const target = this.list.querySelector(`.msg[data-id="${Number(this.highlightId)}"]`);
      if (target) target.dataset.highlight = "true";
    }
    this.renderedRoom = room;
    this.renderedIds = ids;
    if ((switched || atBottom) && this.highlightId === null) this.list.scrollTop = this.list.scrollHeight;
  }

  messageItem(message) {
    const author = message.author ? message.author.username : message.kind;
    return h(
      "li",
      { className: `msg msg-${message.kind}`, attrs: { "data-id": message.id, tabindex: "-1" } },
      h(
        "span",
        { className: "meta" },
        h("time", { text: fmtTime(message.created_at), attrs: { datetime: message.created_at, title: fmtFull(message.created_at) } }),
        document.createTextNode(` · ${author}`),
        h("button", {
          className: "link-btn",
          text: "show on timeline",
          attrs: { type: "button", "data-action": "timeline", "aria-label": `Show on timeline: the message from ${author}` },
        }),
      ),
      h("span", { className: "body" }, ...linkify(message.body)),
    );
  }

  ownItem(frame, reason) {
    const failed = reason !== null;
    const li = h(
      "li",
      { className: `msg ${failed ? "msg-failed" : "msg-pending"}`, attrs: { "data-client-id": frame.client_id } },
      h("span", { className: "meta", text: `${this.me.username} · ${failed ? "not sent" : "sending…"}` }),
      h("span", { className: "body", text: frame.body }),
    );
    if (failed) {
      li.append(
        h("span", { className: "failure", text: reason, attrs: { role: "alert" } }),
        h(
          "span",
          { className: "actions" },
          h("button", { className: "btn", text: "Retry", attrs: { type: "button", "data-action": "retry" } }),
          h("button", { className: "btn", text: "Discard", attrs: { type: "button", "data-action": "discard" } }),
        ),
      );
    }
    return li;
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
