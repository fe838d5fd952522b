// Entry point: reads the page's JSON configuration, wires the panels to the live
// feed (SSE) and the team rooms (WebSockets), and batches redraws per animation frame.
import { AlarmsPanel } from "./alarms.js";
import { Charts } from "./charts.js";
import { LiveFeed } from "./feed.js";
import { ImagesPanel } from "./images.js";
import { RoverMap } from "./map.js";
import { RoomsPanel } from "./rooms.js";
import { StatusPanel } from "./status.js";
import { fmtFull, getJSON, h, learnServerTime, serverNow, setIndicator, setLanding, toSeconds } from "./util.js";

const SEEN_LIMIT = 20000;
const config = JSON.parse(document.getElementById("dashboard-config").textContent);
const main = document.getElementById("dashboard");
const announcer = document.getElementById("announcer");
const feedIndicator = document.getElementById("conn-telemetry");
const clock = document.getElementById("utc-clock");
const chartsLive = document.getElementById("charts-live");

// The server's time when it rendered this page had passed by the time this module
// runs: a first lower bound of the clock offset (live frames refine it).
learnServerTime(config.serverTime);

function announce(text) {
  // Clear first: the same text set twice would not be read again.
  announcer.textContent = "";
  requestAnimationFrame(() => {
    announcer.textContent = text;
  });
}

function roverConfig(slug) {
  return config.rovers.find((rover) => rover.slug === slug) || {};
}

let feedState = "connecting";
let linkState = "connecting";

/** The header's telemetry indicator shows the worst of the feed and the rover's link. */
function updateHeader() {
  let state = "live";
  let text = "live";
  if (feedState !== "live") {
    state = feedState;
    text = feedState === "reconnecting" ? `FEED DOWN, ${feedText}` : feedText;
  } else if (linkState === "lost") {
    state = "lost";
    text = "LINK LOST";
  } else if (linkState === "empty") {
    state = "idle";
    text = "no data yet";
  } else if (linkState === "connecting") {
    state = "connecting";
    text = "loading";
  }
  setIndicator(feedIndicator, state, text);
}
let feedText = "connecting";

const status = new StatusPanel(document.getElementById("status-panel"), {
  staleAfter: config.staleAfterSeconds,
  onLinkChange: (stale, text) => announce(stale ? `Telemetry: ${text}` : "Telemetry link restored"),
  onState: (state) => {
    linkState = state;
    updateHeader();
  },
});

let rooms = null;
let alarms = null;
const charts = new Charts(document.getElementById("charts"), {
  onMarkerClick: (marker) => {
    if (marker.kind === "message") rooms.reveal(marker.team, marker.id);
    else alarms.reveal(marker.id);
  },
});

/** Move the charts to a moment; "Back to live" returns to the live window. */
async function showOnTimeline(iso, key) {
  const window_ = await charts.showAt(toSeconds(iso));
  for (const button of document.querySelectorAll(".window-select button")) {
    button.setAttribute("aria-pressed", String(Number(button.dataset.window) === window_));
  }
  chartsLive.hidden = window_ !== null;
  main.dataset.timeline = key;
  document.getElementById("charts-panel").scrollIntoView({ block: "nearest" });
}

chartsLive.addEventListener("click", () => {
  chartsLive.hidden = true;
  charts.focusT = null;
  document.querySelector(".window-select button[data-window='300']").click();
});

const map = new RoverMap(
  document.getElementById("map"),
  document.getElementById("map-caption"),
  document.getElementById("map-controls"),
);
const images = new ImagesPanel(document.getElementById("images-panel"), { cameras: config.cameras });
alarms = new AlarmsPanel(document.getElementById("alarms-panel"), {
  announce,
  canAcknowledge: config.canAcknowledge,
  csrfToken: main.dataset.csrfToken,
  onAlarm: (alarm) =>
    charts.setMarker(`alarm:${alarm.id}`, "alarm", alarm.raised_at, `ALARM ${alarm.kind.replace(/_/g, " ")}: ${alarm.message}`, {
      id: alarm.id,
    }),
  onShowOnTimeline: showOnTimeline,
});
rooms = new RoomsPanel(document.getElementById("rooms-panel"), {
  me: config.user,
  indicator: document.getElementById("conn-rooms"),
  teamHelp: config.teamHelp,
  onShowOnTimeline: showOnTimeline,
  onMessage: (team, message) =>
    charts.setMarker(
      `message:${message.id}`,
      "message",
      message.created_at,
      `${team.name} · ${message.author ? message.author.username : message.kind}: ${message.body}`,
      { team: team.slug, id: message.id },
    ),
});

// Frames seen by this page, in arrival order: the browser tests read it through
// window.missionControl to prove every frame is shown exactly once.
const seen = [];
let feed = null;
let pending = [];
let frameRequest = null;
// Live frames that arrive while the history loads: the map draws them after it.
let mapBacklog = null;

function render() {
  frameRequest = null;
  const frames = pending;
  pending = [];
  for (const frame of frames) {
    charts.push(frame);
    if (mapBacklog) mapBacklog.push(frame);
    else map.add(frame);
  }
  // A late frame is charted history, not the rover's current state. Late as the server
  // judges it (README "Which frame is newer"): older by both seq and rover time than the
  // frame shown, so one bogus seq (or clock) cannot pin the panel.
  const newest = frames.reduce((a, b) => (isLate(b, a) ? a : b), frames[0]);
  if (newest && (status.frame === null || !isLate(newest, status.frame))) status.update(newest);
  charts.redraw();
  map.draw();
}

function isLate(frame, than) {
  return frame.seq < than.seq && Date.parse(frame.recorded_at) < Date.parse(than.recorded_at);
}

function onFrame(frame) {
  // The server stamped received_at before sending: a lower bound of its clock now.
  learnServerTime(Date.parse(frame.received_at));
  seen.push(frame.seq);
  if (seen.length > SEEN_LIMIT) seen.splice(0, seen.length - SEEN_LIMIT);
  main.dataset.lastSeq = String(frame.seq);
  pending.push(frame);
  if (frameRequest === null) frameRequest = requestAnimationFrame(render);
}

function onFeedState(state, wait) {
  feedState = state;
  feedText = state === "reconnecting" ? `reconnecting in ${(wait / 1000).toFixed(1)} s` : state;
  updateHeader();
  status.setFeedState(state);
}

async function selectRover(slug) {
  if (feed) feed.close();
  seen.length = 0;
  pending = [];
  const rover = roverConfig(slug);
  setLanding(rover.landing_date || null);
  status.reset();
  status.setStaleAfter(rover.stale_after_seconds || config.staleAfterSeconds);
  map.reset();
  mapBacklog = [];
  charts.clearMarkers("alarm:");
  charts.focusT = null;
  chartsLive.hidden = true;
  main.dataset.rover = slug;
  const url = new URL(location.href);
  url.searchParams.set("rover", slug);
  history.replaceState(null, "", url);
  feed = new LiveFeed(slug, {
    onFrame,
    onAlarm: (alarm) => alarms.upsert(alarm),
    onImage: (image) => images.add(image),
    onState: onFeedState,
    onResync: () => {
      alarms.refresh(slug);
      images.refresh(slug);
    },
  });
  // The map's path comes from the same history the charts back-fill from.
  const history_ = charts.load(slug);
  feed.start();
  images.load(slug);
  alarms.load(slug);
  const frames = await history_;
  if (slug !== main.dataset.rover) return;
  const backlog = mapBacklog || [];
  mapBacklog = null;
  // History first (its buckets up to the first live frame), then what arrived live.
  for (const frame of frames) if (!backlog.length || frame.seq < backlog[0].seq) map.add(frame);
  for (const frame of backlog) map.add(frame);
  map.draw();
  status.historyLoaded();
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
      chartsLive.hidden = true;
      charts.load(charts.slug, Number(button.dataset.window));
    });
  }
}

function tickClock() {
  clock.textContent = fmtFull(serverNow());
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

setupRoverSelect();
setupWindowSelect();
// Published once the controls are wired: the browser tests wait for it before clicking.
window.missionControl = { framesSeen: () => [...seen], feed: () => feed, alarms, charts, rooms, map, serverNow };
tickClock();
setInterval(tickClock, 1000);
if (config.rover) selectRover(config.rover);
else {
  setIndicator(feedIndicator, "idle", "no rover");
  status.line.textContent = "No rover is registered yet (add one in the admin).";
}
startRooms();
