// Entry point: reads the page's JSON configuration, wires the panels to the live
// feed (SSE) and the team rooms (WebSockets), and batches redraws per animation frame.
import { AlarmsPanel } from "./alarms.js";
import { Charts } from "./charts.js";
import { LiveFeed } from "./feed.js";
import { ImagesPanel } from "./images.js";
import { RoverMap } from "./map.js";
import { RoomsPanel } from "./rooms.js";
import { StatusPanel } from "./status.js";
import { getJSON, h, setIndicator } from "./util.js";

const SEEN_LIMIT = 20000;
const config = JSON.parse(document.getElementById("dashboard-config").textContent);
const main = document.getElementById("dashboard");
const announcer = document.getElementById("announcer");
const feedIndicator = document.getElementById("conn-telemetry");

function announce(text) {
  // Clear first: the same text set twice would not be read again.
  announcer.textContent = "";
  requestAnimationFrame(() => {
    announcer.textContent = text;
  });
}

const status = new StatusPanel(document.getElementById("status-panel"), {
  staleAfter: config.staleAfterSeconds,
  onLinkChange: (stale, text) => announce(stale ? `Telemetry: ${text}` : "Telemetry link restored"),
});
const charts = new Charts(document.getElementById("charts"));
const map = new RoverMap(document.getElementById("map"), document.getElementById("map-caption"));
const images = new ImagesPanel(document.getElementById("images-panel"));
const alarms = new AlarmsPanel(document.getElementById("alarms-panel"), {
  announce,
  canAcknowledge: config.canAcknowledge,
  csrfToken: main.dataset.csrfToken,
  onAlarm: (alarm) =>
    charts.setMarker(`alarm:${alarm.id}`, "alarm", alarm.raised_at, `ALARM ${alarm.kind}: ${alarm.message}`),
});
const rooms = new RoomsPanel(document.getElementById("rooms-panel"), {
  me: config.user,
  indicator: document.getElementById("conn-rooms"),
  onMessage: (team, message) =>
    charts.setMarker(
      `message:${message.id}`,
      "message",
      message.created_at,
      `${team.name} · ${message.author ? message.author.username : message.kind}: ${message.body}`,
    ),
});

// Frames seen by this page, in arrival order: the browser tests read it through
// window.missionControl to prove every frame is shown exactly once.
const seen = [];
let feed = null;
let pending = [];
let frameRequest = null;

function render() {
  frameRequest = null;
  const frames = pending;
  pending = [];
  for (const frame of frames) {
    charts.push(frame);
    map.add(frame);
  }
  // A late frame (lower seq) is charted history, not the rover's current state.
  const newest = frames.reduce((a, b) => (b.seq > a.seq ? b : a), frames[0]);
  if (newest && (status.frame === null || newest.seq > status.frame.seq)) status.update(newest);
  charts.redraw();
  map.draw();
}

function onFrame(frame) {
  seen.push(frame.seq);
  if (seen.length > SEEN_LIMIT) seen.splice(0, seen.length - SEEN_LIMIT);
  main.dataset.lastSeq = String(frame.seq);
  pending.push(frame);
  if (frameRequest === null) frameRequest = requestAnimationFrame(render);
}

function onFeedState(state, wait) {
  const text = state === "reconnecting" ? `reconnecting in ${(wait / 1000).toFixed(1)} s` : state;
  setIndicator(feedIndicator, state, text);
  status.setFeedState(state);
}

async function selectRover(slug) {
  if (feed) feed.close();
  seen.length = 0;
  pending = [];
  status.reset();
  map.reset();
  charts.clearMarkers("alarm:");
  main.dataset.rover = slug;
  const url = new URL(location.href);
  url.searchParams.set("rover", slug);
  history.replaceState(null, "", url);
  feed = new LiveFeed(slug, {
    onFrame,
    onAlarm: (alarm) => alarms.upsert(alarm),
    onImage: (image) => images.add(image),
    onState: onFeedState,
  });
  // The map's path comes from the same history the charts back-fill from.
  const history_ = charts.load(slug);
  feed.start();
  images.load(slug);
  alarms.load(slug);
  for (const frame of await history_) map.add(frame);
  map.draw();
}

function setupRoverSelect() {
  const select = document.getElementById("rover-select");
  select.replaceChildren(
    ...config.rovers.map((rover) => h("option", { text: rover.name, attrs: { value: rover.slug } })),
  );
  select.value = config.rover || "";
  select.disabled = config.rovers.length < 2;
  select.addEventListener("change", () => selectRover(select.value));
}

function setupWindowSelect() {
  const buttons = [...document.querySelectorAll(".window-select button")];
  for (const button of buttons) {
    button.addEventListener("click", () => {
      for (const other of buttons) other.setAttribute("aria-pressed", String(other === button));
      charts.load(charts.slug, Number(button.dataset.window));
    });
  }
}

async function startRooms() {
  try {
    const body = await getJSON("/api/teams");
    rooms.start(body.teams);
  } catch (error) {
    setIndicator(document.getElementById("conn-rooms"), "reconnecting", "team list unavailable");
    console.warn("team list unavailable:", error.message);
    setTimeout(startRooms, 3000);
  }
}

window.missionControl = { framesSeen: () => [...seen], charts, rooms };

setupRoverSelect();
setupWindowSelect();
if (config.rover) selectRover(config.rover);
else {
  setIndicator(feedIndicator, "idle", "no rover");
  status.line.textContent = "No rover is registered yet (add one in the admin).";
}
startRooms();
