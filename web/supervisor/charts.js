// The Reports view's charts, drawn as inline SVG by the page itself (no library, nothing
// from a CDN): bars per interval for counts and durations, a line for a rate. A chart is
// one image to assistive technology (role="img"), named by a sentence that says its
// numbers; each bar and point also carries its figure as a tooltip (`<title>`). Colours
// come from the stylesheet (a series' class sets `color`; shapes use `currentColor`).

const SVG = "http://www.w3.org/2000/svg";
/** The drawing's own units; the SVG scales to its box's width. */
const W = 600;
const H = 220;
/** Margins: the value axis's labels on the left, the intervals' below, a bar's figure above. */
const M = { left: 48, right: 8, top: 20, bottom: 30 };
const PW = W - M.left - M.right;
const PH = H - M.top - M.bottom;
/** The most interval labels under the axis (every n-th interval is labelled). */
const MAX_X_LABELS = 6;
/** The widest a bar is drawn, however few the intervals. */
const MAX_BAR = 48;

/** An SVG element with attributes and children (nodes or text). */
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c !== null && c !== undefined) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Steps of 1, 2 and 5 times a power of ten, from 1 up. */
function* countSteps() {
  for (let p = 1; ; p *= 10) {
    yield p;
    yield 2 * p;
    yield 5 * p;
  }
}

/** Steps a person reads on a clock face: seconds, minutes, hours. */
const DURATION_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400].map((s) => s * 1000);

/** A scale from 0 past `max` in at most four `steps`. */
function scaleOf(max, steps, format) {
  if (!Number.isFinite(max) || max < 0) max = 0;
  let step = 1;
  for (const st of steps) {
    step = st;
    if (Math.ceil(max / st) <= 4) break;
  }
  const top = Math.max(step, Math.ceil(max / step) * step);
  const ticks = [];
  for (let t = 0; t <= top; t += step) ticks.push(t);
  return { max: top, ticks, format };
}

/** Counts (0, 1, 2, ...), past `max`. */
export function countScale(max) {
  return scaleOf(max, countSteps(), String);
}

/** Durations in ms, past `max`, in steps of whole seconds, minutes or hours. */
export function durationScale(max, format) {
  const steps = DURATION_STEPS.concat([...Array(30)].map((_, i) => 86_400_000 * 2 ** (i + 1)));
  return scaleOf(max, steps, format);
}

/** Percent, 0 to 100. */
export function percentScale(format) {
  return { max: 100, ticks: [0, 25, 50, 75, 100], format };
}

/**
 * A chart as an `<svg role="img">`.
 * - `kind`: `"bars"` (one bar per series in each interval, side by side) or `"line"`;
 * - `labels`: one text per interval (under the axis, thinned out to fit);
 * - `series`: `[{ name, cls, values }]`, a number or null (nothing to show) per interval;
 * - `scale`: from `countScale`, `durationScale` or `percentScale`;
 * - `summary`: the sentence that names the image;
 * - `empty`: the words drawn when no series has a value.
 */
export function chart({ kind, labels, series, scale, summary, empty }) {
  const n = Math.max(labels.length, 1);
  const slot = PW / n;
  const y = (v) => M.top + PH - (Math.min(v, scale.max) / scale.max) * PH;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": summary, class: "chart" });

  for (const t of scale.ticks) {
    svg.append(
      s("line", { class: "grid", x1: M.left, x2: W - M.right, y1: y(t), y2: y(t) }),
      s("text", { class: "tick", x: M.left - 6, y: y(t) + 4, "text-anchor": "end" }, scale.format(t)),
    );
  }
  svg.append(s("line", { class: "axis", x1: M.left, x2: W - M.right, y1: M.top + PH, y2: M.top + PH }));
  const every = Math.ceil(n / MAX_X_LABELS);
  labels.forEach((label, i) => {
    if (i % every !== 0) return;
    const x = M.left + (i + 0.5) * slot;
    svg.append(s("line", { class: "axis", x1: x, x2: x, y1: M.top + PH, y2: M.top + PH + 4 }));
    svg.append(s("text", { class: "tick", x, y: H - M.bottom + 17, "text-anchor": "middle" }, label));
  });

  const any = series.some((one) => one.values.some((v) => v !== null && v !== undefined && v > 0));
  if (!any) {
    // On a patch of background, clear of the grid lines.
    const width = empty.length * 7 + 16;
    svg.append(
      s("rect", { class: "empty-back", x: M.left + (PW - width) / 2, y: M.top + PH / 2 - 16, width, height: 24 }),
      s("text", { class: "empty", x: M.left + PW / 2, y: M.top + PH / 2, "text-anchor": "middle" }, empty),
    );
    return svg;
  }
  if (kind === "bars") bars(svg, { labels, series, scale, slot, y });
  else line(svg, { labels, series, scale, slot, y });
  return svg;
}

function bars(svg, { labels, series, scale, slot, y }) {
  // A group of bars fills most of its interval (very narrow intervals give it all), up to
  // bars of MAX_BAR.
  const bw = Math.min((slot >= 4 ? slot * 0.8 : slot) / series.length, MAX_BAR);
  const group = bw * series.length;
  series.forEach((one, j) => {
    const g = s("g", { class: one.cls });
    one.values.forEach((v, i) => {
      if (v === null || v === undefined || v <= 0) return;
      const x = M.left + i * slot + (slot - group) / 2 + j * bw;
      // A value above zero is never drawn as nothing.
      const top = Math.min(y(v), M.top + PH - 1);
      g.append(
        s(
          "rect",
          { x, y: top, width: Math.max(bw - (bw > 3 ? 1 : 0), 0.5), height: M.top + PH - top, fill: "currentColor" },
          s("title", {}, `${labels[i]}: ${one.name} ${scale.format(v)}`),
        ),
      );
      if (bw >= 16) {
        g.append(s("text", { class: "value", x: x + bw / 2, y: top - 3, "text-anchor": "middle" }, scale.format(v)));
      }
    });
    svg.append(g);
  });
}

function line(svg, { labels, series, scale, slot, y }) {
  for (const one of series) {
    const g = s("g", { class: one.cls });
    // One path, lifted over intervals without a value.
    let d = "";
    let drawing = false;
    one.values.forEach((v, i) => {
      if (v === null || v === undefined) {
        drawing = false;
        return;
      }
      const x = M.left + (i + 0.5) * slot;
      d += `${drawing ? "L" : "M"}${x.toFixed(1)},${y(v).toFixed(1)}`;
      drawing = true;
    });
    if (d) g.append(s("path", { d, fill: "none", stroke: "currentColor", "stroke-width": 2 }));
    one.values.forEach((v, i) => {
      if (v === null || v === undefined) return;
      const x = M.left + (i + 0.5) * slot;
      g.append(
        s(
          "circle",
          { cx: x, cy: y(v), r: slot >= 8 ? 3.5 : 2, fill: "currentColor" },
          s("title", {}, `${labels[i]}: ${one.name} ${scale.format(v)}`),
        ),
      );
      if (slot >= 40) {
        g.append(s("text", { class: "value", x, y: y(v) - 7, "text-anchor": "middle" }, scale.format(v)));
      }
    });
    svg.append(g);
  }
}
