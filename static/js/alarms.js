// Alarms: active ones stand out; an operator acknowledges one (POST with the CSRF
// token); who and when arrive for everyone with the alarm's live event. New and
// cleared alarms are announced through the page's ARIA live region.
import { fmtFull, fmtTime, getJSON, h } from "./util.js";

const SHOW_CLEARED = 10;

/**
 * An alarm's state only advances: raised, then acknowledged and/or cleared, never
 * back. A stale copy (a resume repeats what changed shortly before the client's
 * last frame; two workers may publish two changes out of order) never undoes one.
 */
function advanced(before, alarm) {
  if (!before) return alarm;
  const cleared = alarm.cleared_at || before.cleared_at;
  const acknowledged = alarm.acknowledged_by ? alarm : before;
  return {
    ...before,
    ...alarm,
    cleared_at: cleared,
    active: !cleared,
    acknowledged_by: acknowledged.acknowledged_by,
    acknowledged_at: acknowledged.acknowledged_at,
  };
}

export class AlarmsPanel {
  constructor(root, { announce, canAcknowledge, csrfToken, onAlarm, onShowOnTimeline }) {
    this.root = root;
    this.list = root.querySelector("#alarm-list");
    this.empty = root.querySelector("#alarm-empty");
    this.count = root.querySelector("#alarm-count");
    this.announce = announce;
    this.canAcknowledge = canAcknowledge;
    this.csrfToken = csrfToken;
    this.onAlarm = onAlarm;
    this.onShowOnTimeline = onShowOnTimeline;
    this.highlightId = null;
    this.alarms = new Map();
    this.errors = new Map();
  }

  async load(slug) {
    this.slug = slug;
    this.alarms.clear();
    this.render();
    try {
      const body = await getJSON(`/api/rovers/${encodeURIComponent(slug)}/alarms`);
      if (slug !== this.slug) return;
      for (const alarm of body.alarms) this.upsert(alarm, { live: false });
    } catch (error) {
      console.warn("alarm list unavailable:", error.message);
    }
    this.render();
  }

  /** Fetch the list again and merge it: what changed meanwhile is shown and announced once. */
  async refresh(slug) {
    try {
      const body = await getJSON(`/api/rovers/${encodeURIComponent(slug)}/alarms`);
      if (slug === this.slug) for (const alarm of body.alarms) this.upsert(alarm);
    } catch (error) {
      console.warn("alarm list unavailable:", error.message);
    }
  }

  /** Add or advance an alarm (kept by id: one received twice shows and is announced once). */
  upsert(received, { live = true } = {}) {
    if (received.rover && received.rover !== this.slug) return;
    const before = this.alarms.get(received.id);
    const alarm = advanced(before, received);
    if (before && before.active === alarm.active && before.acknowledged_by === alarm.acknowledged_by) return;
    this.alarms.set(alarm.id, alarm);
    this.onAlarm(alarm);
    if (live) {
      if (!before && alarm.active) this.announce(`Alarm on ${alarm.rover}: ${alarm.message}`);
      // Raised and cleared while this page's feed was down: it comes with the resume.
      else if (!before) this.announce(`Alarm raised and cleared on ${alarm.rover}: ${alarm.message}`);
      else if (before.active && !alarm.active) this.announce(`Alarm cleared on ${alarm.rover}: ${alarm.message}`);
      else if (before && !before.acknowledged_by && alarm.acknowledged_by)
        this.announce(`Alarm acknowledged by ${alarm.acknowledged_by}: ${alarm.message}`);
      this.render();
    }
  }

  /** Scroll to an alarm and highlight it (a timeline marker's click). */
  reveal(id) {
    this.highlightId = id;
    this.render();
    const item = this.list.querySelector(`[data-alarm-id="${Number(id)}"]`);
    if (!item) return false;
    item.scrollIntoView({ block: "nearest" });
    item.focus({ preventScroll: true });
    return true;
  }

  async acknowledge(alarm, button) {
    button.disabled = true;
    this.errors.delete(alarm.id);
    try {
      const response = await fetch(`/api/alarms/${alarm.id}/acknowledge`, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRFToken": this.csrfToken, Accept: "application/json" },
      });
      const body = await response.json();
      if (!response.ok) throw new Error(body.detail || `the server answered ${response.status}`);
      this.upsert(body);
    } catch (error) {
      this.errors.set(alarm.id, `Could not acknowledge: ${error.message}`);
      this.render();
    }
  }

  render() {
    const all = [...this.alarms.values()].sort((a, b) => Date.parse(b.raised_at) - Date.parse(a.raised_at));
    const active = all.filter((alarm) => alarm.active);
    const cleared = all.filter((alarm) => !alarm.active).slice(0, SHOW_CLEARED);
    // The header shows active alarms too: the worst state is visible from anywhere.
    const header = document.getElementById("header-alarms");
    header.hidden = active.length === 0;
    header.textContent = `${active.length} active alarm${active.length === 1 ? "" : "s"}`;
    this.count.textContent = String(active.length);
    this.count.dataset.count = String(active.length);
    this.root.dataset.active = String(active.length > 0);
    this.empty.hidden = all.length > 0;
    this.list.replaceChildren(...[...active, ...cleared].map((alarm) => this.item(alarm)));
  }

  item(alarm) {
    const state = alarm.active ? (alarm.acknowledged_by ? "acknowledged" : "active") : "cleared";
    const li = h("li", {
      className: `alarm alarm-${state}`,
      attrs: { "data-alarm-id": alarm.id, tabindex: "-1", "data-highlight": alarm.id === this.highlightId ? "true" : null },
    });
    const timeline = h("button", {
      className: "link-btn",
      text: "show on timeline",
      attrs: { type: "button", "aria-label": `Show on timeline: the ${alarm.kind.replace(/_/g, " ")} alarm` },
    });
    timeline.addEventListener("click", () => this.onShowOnTimeline(alarm.raised_at, `alarm:${alarm.id}`));
    li.append(
      h("span", { className: "alarm-kind", text: alarm.kind.replace(/_/g, " ") }),
      h("span", { className: "alarm-message", text: alarm.message }),
      h(
        "span",
        { className: "alarm-time" },
        document.createTextNode("raised "),
        h("time", { text: fmtTime(alarm.raised_at), attrs: { datetime: alarm.raised_at, title: fmtFull(alarm.raised_at) } }),
        ...(alarm.cleared_at
          ? [
              document.createTextNode(" · cleared "),
              h("time", { text: fmtTime(alarm.cleared_at), attrs: { datetime: alarm.cleared_at, title: fmtFull(alarm.cleared_at) } }),
            ]
          : []),
        document.createTextNode(" "),
        timeline,
      ),
    );
    if (alarm.acknowledged_by) {
      li.append(
        h("span", {
          className: "alarm-ack",
          text: `Acknowledged by ${alarm.acknowledged_by} at ${fmtTime(alarm.acknowledged_at)}`,
        }),
      );
    } else if (alarm.active && this.canAcknowledge) {
      const button = h("button", { className: "btn btn-alarm", text: "Acknowledge", attrs: { type: "button" } });
      button.addEventListener("click", () => this.acknowledge(alarm, button));
      li.append(button);
    }
    const error = this.errors.get(alarm.id);
    if (error) li.append(h("span", { className: "error", text: error, attrs: { role: "alert" } }));
    return li;
  }
}
