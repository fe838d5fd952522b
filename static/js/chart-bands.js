// Min–max envelopes on the charts. A history bucket of the 1 h or 1 sol window
// averages hundreds of frames, so its mean hides the single spike an operator looks
// for; the history API also sends each field's `<field>_min` and `<field>_max`, and
// the chart fills the band between them in the series' colour, under the mean line.
// A live frame is exact: its band collapses to its value. A live frame that replaces
// the last point (see MAX_LIVE_POINTS in charts.js) widens the band to cover both.

// The band's fill and its edges: the series' colour at these alphas (hex, about
// 0.22 and 0.5). The edges are stroked because a spike one bucket wide is a
// sliver of fill at the 1 sol window; its edge line still reaches the peak.
const BAND_ALPHA_HEX = "38";
const EDGE_ALPHA_HEX = "80";
// Band edges carry this class: their legend rows and cursor points are hidden (CSS).
export const EDGE_CLASS = "chart-band-edge";

/** The data columns of each field: its mean and the two edges of its envelope. */
export function envelopeColumns(keys) {
  return keys.map((key) => ({ key, min: `${key}_min`, max: `${key}_max` }));
}

const lower = (a, b) => (a === null ? b : b === null ? a : Math.min(a, b));
const higher = (a, b) => (a === null ? b : b === null ? a : Math.max(a, b));

/**
 * Write one frame or history bucket into `data` (arrays per column): appended, or
 * replacing the last point. A frame without extremes is exact (min = max = value);
 * a replacement keeps the lowest and highest of both (nulls are no values).
 */
export function writeFrame(data, columns, frame, replace) {
  for (const { key, min, max } of columns) {
    const value = frame[key] ?? null;
    const low = frame[min] ?? value;
    const high = frame[max] ?? value;
    const means = data[key];
    if (replace) {
      const last = means.length - 1;
      means[last] = value;
      data[min][last] = lower(data[min][last], low);
      data[max][last] = higher(data[max][last], high);
    } else {
      means.push(value);
      data[min].push(low);
      data[max].push(high);
    }
  }
}

/**
 * uPlot series and bands for a chart's fields: every field's max and min edge first
 * (uPlot draws series in order, so each mean line lands on top of every band), then
 * the means. `meanOptions(s)` gives a field's own line. Data order: see plotColumns.
 */
export function envelopeOptions(fields, meanOptions) {
  const edges = [];
  const bands = [];
  fields.forEach((s, i) => {
    const edge = (label) => ({
      label: `${s.label} ${label}`,
      class: EDGE_CLASS,
      stroke: `${s.stroke}${EDGE_ALPHA_HEX}`,
      width: 1,
      spanGaps: false,
      points: { show: false },
    });
    edges.push(edge("max"), edge("min"));
    // Series indexes count from 1 (0 is time); dir -1 fills from max down to min.
    bands.push({ series: [1 + 2 * i, 2 + 2 * i], fill: `${s.stroke}${BAND_ALPHA_HEX}`, dir: -1 });
  });
  return { series: [...edges, ...fields.map(meanOptions)], bands };
}

/** The data arrays of a chart in envelopeOptions' series order (time first). */
export function plotColumns(data, fields) {
  return [
    data.t,
    ...fields.flatMap((s) => [data[`${s.key}_max`], data[`${s.key}_min`]]),
    ...fields.map((s) => data[s.key]),
  ];
}

/** Legend text of a point: the mean, and its range when the bucket held different values. */
export function envelopeText(mean, low, high, unit) {
  if (mean === null || mean === undefined) return "–";
  const text = `${mean.toFixed(1)} ${unit}`;
  if (low === null || low === undefined || high === null || high === undefined) return text;
  const [from, to] = [low.toFixed(1), high.toFixed(1)];
  return from === to ? text : `${text} (${from} to ${to})`;
}

/** A uPlot setSeries hook: showing or hiding a field's mean (legend click) does the same to its band. */
export function bandsFollowMeans(fieldCount) {
  return (u, index, opts) => {
    if (opts.show === undefined || opts.show === null) return;
    const means = (i) => i > 2 * fieldCount && i <= 3 * fieldCount;
    const indexes = index === null ? Array.from({ length: fieldCount }, (_, f) => 2 * fieldCount + 1 + f) : [index];
    for (const i of indexes.filter(means)) {
      const field = i - 2 * fieldCount - 1;
      for (const edge of [1 + 2 * field, 2 + 2 * field]) {
        if (u.series[edge].show !== u.series[i].show) u.setSeries(edge, { show: u.series[i].show });
      }
    }
  };
}
