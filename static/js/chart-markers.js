// Timeline markers on the charts: alarms (solid red) and team messages (dashed blue).
// Markers closer than CLUSTER_PX on screen are drawn as one line with a count, so
// an hour or a sol of chatter stays readable; hovering lists them, clicking opens
// the newest of them (the message in its room, the alarm in the alarm list).
import uPlot from "../vendor/uplot/uPlot.esm.js";
import { fmtTime, h } from "./util.js";

const CLUSTER_PX = 12;
const COLORS = { alarm: "#ff5d5d", message: "#4fb3ff", focus: "#ffffff" };
const TIP_ITEMS = 6;

/** Group the visible markers by screen position: [{x, markers (oldest first), kind}]. */
export function clusterMarkers(u, markers) {
  const { left, width } = u.bbox;
  const visible = [];
  for (const marker of markers) {
    const x = u.valToPos(marker.t, "x", true);
    if (x >= left && x <= left + width) visible.push({ x, marker });
  }
  visible.sort((a, b) => a.x - b.x);
  const clusters = [];
  const gap = CLUSTER_PX * uPlot.pxRatio;
  for (const { x, marker } of visible) {
    const last = clusters[clusters.length - 1];
    if (last && x - last.x0 <= gap) {
      last.markers.push(marker);
      last.x = (last.x0 + x) / 2;
    } else clusters.push({ x0: x, x, markers: [marker] });
  }
  for (const cluster of clusters) {
    cluster.kind = cluster.markers.some((m) => m.kind === "alarm") ? "alarm" : "message";
  }
  return clusters;
}

function drawCluster(ctx, cluster, top, height, dpr) {
  const x = Math.round(cluster.x);
  const color = COLORS[cluster.kind];
  ctx.strokeStyle = color;
  ctx.fillStyle = color;
  ctx.lineWidth = (cluster.kind === "alarm" ? 2 : 1) * dpr;
  ctx.setLineDash(cluster.kind === "alarm" ? [] : [4 * dpr, 3 * dpr]);
  ctx.beginPath();
  ctx.moveTo(x, top);
  ctx.lineTo(x, top + height);
  ctx.stroke();
  ctx.setLineDash([]);
  const count = cluster.markers.length;
  if (count === 1) {
    ctx.beginPath();
    ctx.moveTo(x - 4 * dpr, top);
    ctx.lineTo(x + 4 * dpr, top);
    ctx.lineTo(x, top + 6 * dpr);
    ctx.fill();
    return;
  }
  // A badge with the count at the top of the line.
  const text = count > 99 ? "99+" : String(count);
  ctx.font = `${Math.round(10 * dpr)}px system-ui, sans-serif`;
  const w = Math.max(14 * dpr, ctx.measureText(text).width + 6 * dpr);
  const hgt = 13 * dpr;
  ctx.beginPath();
  ctx.roundRect(x - w / 2, top, w, hgt, 6 * dpr);
  ctx.fill();
  ctx.fillStyle = "#05080c";
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  ctx.fillText(text, x, top + hgt / 2 + 0.5 * dpr);
}

export function markersPlugin(owner) {
  let tip = null;
  const nearest = (u, cssX) => {
    const dpr = uPlot.pxRatio;
    let best = null;
    for (const cluster of clusterMarkers(u, owner.markers.values())) {
      const distance = Math.abs(cluster.x / dpr - u.bbox.left / dpr - cssX);
      if (distance <= CLUSTER_PX / 2 + 2 && (!best || distance < best.distance)) best = { cluster, distance };
    }
    return best && best.cluster;
  };
  return {
    hooks: {
      init: [
        (u) => {
          tip = h("div", { className: "marker-tip", attrs: { role: "tooltip" } });
          tip.hidden = true;
          u.over.append(tip);
          // A press and release in one place is a click (uPlot's own mouse handling
          // swallows the "click" event on its overlay).
          let downAt = null;
          u.over.addEventListener("mousedown", (event) => {
            downAt = event.button === 0 ? [event.clientX, event.clientY] : null;
          });
          u.over.addEventListener("mouseup", (event) => {
            if (!downAt || Math.hypot(event.clientX - downAt[0], event.clientY - downAt[1]) > 4) return;
            downAt = null;
            const cluster = u.cursor.left >= 0 ? nearest(u, u.cursor.left) : null;
            if (cluster) owner.onMarkerClick(cluster.markers[cluster.markers.length - 1]);
          });
        },
      ],
      draw: [
        (u) => {
          const { ctx } = u;
          const { top, height, left, width } = u.bbox;
          const dpr = uPlot.pxRatio;
          ctx.save();
          const clusters = clusterMarkers(u, owner.markers.values());
          for (const cluster of clusters) drawCluster(ctx, cluster, top, height, dpr);
          if (owner.focusT !== null) {
            const x = Math.round(u.valToPos(owner.focusT, "x", true));
            if (x >= left && x <= left + width) {
              ctx.strokeStyle = COLORS.focus;
              ctx.lineWidth = 2 * dpr;
              ctx.setLineDash([2 * dpr, 2 * dpr]);
              ctx.beginPath();
              ctx.moveTo(x, top);
              ctx.lineTo(x, top + height);
              ctx.stroke();
            }
          }
          ctx.restore();
          u.over.dataset.clusters = String(clusters.filter((c) => c.markers.length > 1).length);
          u.over.dataset.markers = String(clusters.length);
        },
      ],
      setCursor: [
        (u) => {
          const x = u.cursor.left;
          const cluster = x === undefined || x === null || x < 0 ? null : nearest(u, x);
          u.over.style.cursor = cluster ? "pointer" : "";
          if (!cluster) {
            tip.hidden = true;
            return;
          }
          const items = cluster.markers.slice(-TIP_ITEMS).reverse();
          tip.replaceChildren(
            ...items.map((marker) =>
              h("p", { className: `tip-${marker.kind}`, text: `${fmtTime(marker.t * 1000)} · ${marker.label}` }),
            ),
          );
          if (cluster.markers.length > TIP_ITEMS) {
            tip.append(h("p", { className: "tip-more", text: `and ${cluster.markers.length - TIP_ITEMS} more (narrow the window to see them apart)` }));
          }
          tip.append(h("p", { className: "tip-more", text: "Click to open the newest" }));
          tip.hidden = false;
          const room = u.over.clientWidth - 260;
          tip.style.left = `${Math.max(0, Math.min(x + 8, room))}px`;
          tip.style.top = "4px";
        },
      ],
    },
  };
}
