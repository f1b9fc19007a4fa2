// ForecastChart: a hand-written SVG chart of one series (no library, no build step).
// Draws the observed values, the one-step forecasts made for them with their interval band,
// and the multi-step forecast ahead with its band, on a shared x axis of series steps, labelled
// with the time of each step (UTC) when the series' values carry timestamps (data.timeOf).
// Each observed point is a <circle data-step data-value> so tests (and curious users) can find it.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const MARGIN = { top: 14, right: 16, bottom: 28, left: 56 };

function svgElement(name, attributes = {}, parent = null) {
  const element = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (parent) parent.appendChild(element);
  return element;
}

// Round tick positions covering [low, high]: steps of 1, 2 or 5 times a power of ten.
function niceTicks(low, high, count) {
  if (!(high > low)) return [low];
  const raw = (high - low) / Math.max(count, 1);
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
  const ticks = [];
  for (let t = Math.ceil(low / step) * step; t <= high + step * 1e-9; t += step) ticks.push(Number(t.toFixed(10)));
  return ticks;
}

// The unix seconds a JavaScript Date can hold (8.64e15 ms either side of 1970): past them
// toISOString throws, and timestamps sent in microseconds (1.7e15) stopped the whole page.
const DATE_LIMIT_S = 8.64e12;

// Unix time t as ISO-8601 (UTC), or null when no Date can show it.
function isoTime(t) {
  return Number.isFinite(t) && Math.abs(t) <= DATE_LIMIT_S ? new Date(t * 1000).toISOString() : null;
}

// The labels of unix time, coarse to fine (UTC), from an ISO-8601 string YYYY-MM-DDTHH:MM:SS.sssZ.
const TIME_FORMATS = [
  (iso) => iso.slice(0, 7), // YYYY-MM
  (iso) => iso.slice(5, 10), // MM-DD
  (iso) => `${iso.slice(5, 10)} ${iso.slice(11, 16)}`, // MM-DD HH:MM
  (iso) => iso.slice(11, 16), // HH:MM
  (iso) => iso.slice(11, 19), // HH:MM:SS
];

// The format an axis' span needs (an index of TIME_FORMATS).
function timeFormat(span) {
  if (span <= 120) return 4;
  if (span <= 2 * 86400) return 3;
  if (span <= 120 * 86400) return 1;
  return 0;
}

// The labels of an axis' tick times: the span's format, or a finer one where two ticks would read the same (a 2-4
// day window's ticks 12.5 hours apart read "01-20, 01-20, 01-21": a new user, session 50). HH:MM or finer as before.
function timeLabels(times, span) {
  const start = timeFormat(span);
  for (let level = start; level < 2; level++) {
    const labels = times.map((t) => TIME_FORMATS[level](isoTime(t)));
    if (new Set(labels).size === labels.length) return labels;
  }
  return times.map((t) => TIME_FORMATS[Math.max(start, 2)](isoTime(t)));
}

function formatNumber(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  const size = Math.abs(value);
  if (size !== 0 && (size >= 1e5 || size < 1e-3)) return value.toExponential(2);
  return Number(value.toPrecision(4)).toString();
}

// Split points into runs without missing y (a gap breaks the line rather than bridging it).
function runs(points, key) {
  const out = [];
  let current = [];
  for (const p of points) {
    if (p[key] === null || p[key] === undefined || !Number.isFinite(p[key])) {
      if (current.length) out.push(current);
      current = [];
    } else current.push(p);
  }
  if (current.length) out.push(current);
  return out;
}

class ForecastChart {
  constructor(container) {
    this.container = container;
  }

  // data: {observed: [{x, y}], made: [{x, mean, lower, upper}], ahead: [{x, mean, lower, upper}], now: x,
  //        timeOf: optional step -> unix time (null when unknown): the x labels are then times}
  draw(data) {
    const width = Math.max(this.container.clientWidth, 300);
    const height = Math.max(this.container.clientHeight, 200);
    const svg = svgElement("svg", { viewBox: `0 0 ${width} ${height}`, role: "img" });
    const all = [...data.observed, ...data.made, ...data.ahead];
    const xs = all.map((p) => p.x);
    // the y axis spans the values and forecasts but not the outliers (the model's glitches, learned from at their
    // interval's bound): one -999 among readings of 17-25 had stretched the axis to -1000 and flattened the rest
    // (a new user, session 51); an outlier past the axis is drawn at its edge, its value in its title
    const ys = [];
    for (const p of data.observed) if (!p.outlier) ys.push(p.y);
    for (const p of [...data.made, ...data.ahead]) ys.push(p.mean, p.lower, p.upper);
    const usable = (y) => y !== null && y !== undefined && Number.isFinite(y);
    const kept = ys.filter(usable);
    const finite = kept.length ? kept : data.observed.map((p) => p.y).filter(usable);
    if (!xs.length || !finite.length) {
      svgElement("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "empty" }, svg).textContent =
        "no observations yet";
      this.container.replaceChildren(svg);
      return;
    }
    let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
    if (x1 === x0) [x0, x1] = [x0 - 1, x1 + 1];
    let [y0, y1] = [Math.min(...finite), Math.max(...finite)];
    const pad = (y1 - y0) * 0.06 || Math.abs(y0) * 0.1 || 1;
    [y0, y1] = [y0 - pad, y1 + pad];
    const plotW = width - MARGIN.left - MARGIN.right;
    const plotH = height - MARGIN.top - MARGIN.bottom;
    const sx = (x) => MARGIN.left + ((x - x0) / (x1 - x0)) * plotW;
    const sy = (y) => MARGIN.top + (1 - (y - y0) / (y1 - y0)) * plotH;
    const within = (y) => Math.min(Math.max(y, y0), y1); // an outlier past the axis: at its edge

    const grid = svgElement("g", { class: "grid" }, svg);
    const axis = svgElement("g", { class: "axis" }, svg);
    for (const t of niceTicks(y0, y1, 6)) {
      svgElement("line", { x1: MARGIN.left, x2: width - MARGIN.right, y1: sy(t), y2: sy(t) }, grid);
      const label = svgElement("text", { x: MARGIN.left - 6, y: sy(t) + 4, "text-anchor": "end" }, axis);
      label.textContent = formatNumber(t);
    }
    const timeOf = data.timeOf || (() => null);
    const [t0, t1] = [timeOf(x0), timeOf(x1)];
    const timed = isoTime(t0) !== null && isoTime(t1) !== null && t1 > t0; // else the axis shows steps
    svg.setAttribute("data-x-axis", timed ? "time" : "step");
    const ticks = niceTicks(x0, x1, 8).filter((t) => Number.isInteger(t));
    const times = ticks.map((t) => (timed ? timeOf(t) : null));
    const known = times.filter(Number.isFinite);
    const labels = timeLabels(known, t1 - t0);
    const shown = times.map((time, k) => (Number.isFinite(time) ? labels[known.indexOf(time)] : String(ticks[k])));
    ticks.forEach((t, k) => {
      svgElement("line", { x1: sx(t), x2: sx(t), y1: height - MARGIN.bottom, y2: height - MARGIN.bottom + 4 }, axis);
      const label = svgElement("text", { x: sx(t), y: height - 8, "text-anchor": "middle", class: "x-label" }, axis);
      label.textContent = shown[k];
    });
    svgElement("line", { x1: MARGIN.left, x2: width - MARGIN.right, y1: height - MARGIN.bottom,
                         y2: height - MARGIN.bottom }, axis);

    const band = (points, cls) => {
      for (const run of runs(points, "lower")) {
        const upper = run.filter((p) => Number.isFinite(p.upper));
        if (upper.length !== run.length) continue;
        const top = run.map((p) => `${sx(p.x)},${sy(p.upper)}`);
        const bottom = run.slice().reverse().map((p) => `${sx(p.x)},${sy(p.lower)}`);
        svgElement("polygon", { points: [...top, ...bottom].join(" "), class: cls }, svg);
      }
    };
    const line = (points, key, cls) => {
      for (const run of runs(points, key)) {
        svgElement("polyline", { points: run.map((p) => `${sx(p.x)},${sy(within(p[key]))}`).join(" "), class: cls },
                   svg);
      }
    };
    band(data.made, "made-band");
    band(data.ahead, "ahead-band");
    line(data.made, "mean", "made-line");
    line(data.observed, "y", "observed-line");
    line(data.ahead, "mean", "ahead-line");
    if (Number.isFinite(data.now)) {
      svgElement("line", { x1: sx(data.now), x2: sx(data.now), y1: MARGIN.top, y2: height - MARGIN.bottom,
                           class: "now" }, svg);
    }
    const dots = svgElement("g", { class: "observed-dots" }, svg);
    const radius = data.observed.length > 150 ? 1.5 : 2.5;
    for (const p of data.observed) {
      if (p.y === null || !Number.isFinite(p.y)) continue;
      // a value flagged far outside its interval (an outlier: a glitch learned from at its interval's bound, or one
      // taken as it came that lay far past it) is ringed
      const past = p.y !== within(p.y); // (an outlier beyond the axis)
      // a stuck value's repeat held back as missing (not learned from, not scored) is hollow and grey
      const cls = p.outlier ? (past ? "observed-dot outlier past-axis" : "observed-dot outlier")
        : p.held ? "observed-dot held" : "observed-dot";
      const dot = svgElement("circle", { cx: sx(p.x), cy: sy(within(p.y)), r: p.outlier ? 2 * radius + 1 : radius,
                                         class: cls, "data-step": p.x, "data-value": p.y }, dots);
      const time = timeOf(p.x);
      const iso = isoTime(time);
      const when = iso === null ? "" : ` (${iso.replace(".000Z", "Z")})`;
      const beyond = past ? ", drawn at the axis' edge" : "";
      const note = p.outlier ? ` (an outlier: far outside its interval${beyond})`
        : p.held ? " (held back: a stuck value's repeat, neither learned from nor scored)" : "";
      svgElement("title", {}, dot).textContent = `step ${p.x}${when}: ${formatNumber(p.y)}${note}`;
    }
    const last = data.observed[data.observed.length - 1];
    if (last) {
      svg.setAttribute("data-last-step", String(last.x));
      svg.setAttribute("data-last-value", String(last.y));
    }
    this.container.replaceChildren(svg);
  }
}

window.ForecastChart = ForecastChart;
window.formatNumber = formatNumber;
