// The supervisor page's Reports view: one queue's figures over a range of days
// (`GET /api/v1/reports/queues`) as totals, charts per interval and a table of the busy
// intervals; every agent's figures over the same days (`GET /api/v1/reports/agents`) as a
// table; and the conversations that arrived in those days as a CSV file
// (`GET /api/v1/reports/conversations`, `Accept: text/csv`), saved by the browser; and
// the customers' ratings of that queue's conversations in those days (the same records,
// `rated=true`), as a table.
//
// Days and hours are the browser's: the range runs from the first day's local midnight to
// the midnight after the last, and every request names the browser's time zone
// (`time_zone`), so the engine's intervals start where the page's days and hours do. The
// figures are the engine's as it sends them: the page adds nothing up and works out no
// rate of its own.

import { download, request } from "/common/api.js";
import { explain } from "/common/errors.js";
import { h, iso, isoText, setIso, setText, KeyedChildren } from "/common/dom.js";
import { clock, elapsed } from "/common/format.js";
import { chart, countScale, durationScale, percentScale } from "./charts.js";

const $ = (id) => document.getElementById(id);
const enc = encodeURIComponent;
const byName = new Intl.Collator().compare;

/** The browser's IANA time zone (without one, the engine's default: UTC). */
export const TIME_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

/** Words for "per interval", by interval. */
const PER = { "15m": "per 15 minutes", "1h": "per hour", "1d": "per day" };
/** The charts' heading, by interval. */
const PER_HEADING = { "15m": "Per 15 minutes", "1h": "Per hour", "1d": "Per day" };

const countFormat = new Intl.NumberFormat();
const percentFormat = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 0 });
const dayFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
/** When a conversation arrived or was rated. */
const when = new Intl.DateTimeFormat(undefined, { dateStyle: "short", timeStyle: "short" });
/** How many ratings the table shows at most (one page of records). */
const RATINGS_SHOWN = 100;

/** A count in the reader's locale. */
const count = (n) => countFormat.format(n ?? 0);
/** A percent figure (50 for 50 %) in the reader's locale; a dash for none. */
const percent = (p) => (p === null || p === undefined ? "—" : percentFormat.format(p / 100));
/**
 * A duration in ms written as the floor writes one ("m:ss"), to the nearest second (a
 * figure, not a ticking timer: a mean of 0.8 s reads 0:01); a dash for none.
 */
const duration = (ms) => (ms === null || ms === undefined ? "—" : elapsed(Math.round(ms / 1000) * 1000));

/** An error in the page's own words. */
const words = (message) => ({ code: "page", message });

/** "2026-12-06": the local date of `d`, as a date input holds it. */
function dateValue(d) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** The local midnight that starts day `value` ("2026-12-06"), or the one `days` later. */
function midnight(value, days = 0) {
  const [y, m, d] = value.split("-").map(Number);
  return new Date(y, m - 1, d + days);
}

/** How an interval's start is written: its day for days; its time, and the day when the range has several. */
function labeller(grain, oneDay) {
  const f =
    grain === "1d"
      ? new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" })
      : oneDay
        ? new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" })
        : new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  return (start) => f.format(new Date(start));
}

/** The index of the largest of `values` above zero (the first such), or -1. */
function largest(values) {
  let at = -1;
  values.forEach((v, i) => {
    if (v !== null && v !== undefined && v > 0 && (at < 0 || v > values[at])) at = i;
  });
  return at;
}

/** The index of the smallest of `values` that is a number (the first such), or -1. */
function smallest(values) {
  let at = -1;
  values.forEach((v, i) => {
    if (v !== null && v !== undefined && (at < 0 || v < values[at])) at = i;
  });
  return at;
}

/** The totals shown first, in order: [key, term, figure of a queue total]. */
const TILES = [
  ["sl", "Service level", (t) => percent(t.service_level_percent)],
  ["offered", "Offered", (t) => count(t.offered)],
  ["answered", "Answered", (t) => count(t.answered)],
  ["abandoned", "Abandoned", (t) => count(t.abandoned)],
  ["wait", "Mean wait", (t) => duration(t.wait_ms.mean)],
  ["p90", "90th percentile wait", (t) => duration(t.wait_ms.p90)],
  ["handle", "Mean handle", (t) => duration(t.handle_ms.mean)],
];

/** The charts, in order: [key, title, legend as [name, class]]. */
const CHARTS = [
  ["conversations", "Conversations", [["Offered", "c-offered"], ["Answered", "c-answered"], ["Abandoned", "c-abandoned"]]],
  ["sl", "Service level", [["Service level", "c-sl"]]],
  ["wait", "Wait until answered", [["Mean", "c-wait"], ["90th percentile", "c-p90"]]],
  ["handle", "Handle time", [["Mean", "c-handle"]]],
];

/** The Reports view. `page.token()` is the supervisor's token; `page.agentName(id)` an agent's name, when the floor knows it. */

/**
 * Table rows kept by key in `tbody`: each a row header and `columns` number cells;
 * `fill(header, key)` names the row in its header and returns the cells' texts.
 */
function figureRows(tbody, columns, fill) {
  return new KeyedChildren(tbody, {
    create: () => {
      const tr = h("tr", {}, h("th", { scope: "row" }));
      for (let i = 0; i < columns; i += 1) tr.append(h("td", { class: "num" }));
      return tr;
    },
    update: (tr, key) => {
      const [header, ...cells] = tr.children;
      fill(header, key).forEach((text, i) => setText(cells[i], text));
    },
  });
}

export class ReportsView {
  constructor(page) {
    this.page = page;
    /** The latest load asked; an answer to an older one is dropped. */
    this.seq = 0;
    /** A report was asked for since the view was first shown. */
    this.loaded = false;
    this.visible = false;
    this.exporting = false;
    /** The queue list's ids and names as last shown. */
    this.queuesKey = null;
    /** Queue names by id, as the floor knows them. */
    this.queueNames = new Map();
    /** The agents report last shown, by agent id. */
    this.agentFigures = new Map();
    /** The queue report's busy intervals last shown, by start, with their label. */
    this.intervalFigures = new Map();

    const today = dateValue(new Date());
    $("report-from").value = today;
    $("report-to").value = today;
    $("report-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.load();
    });
    for (const id of ["report-from", "report-to", "report-interval", "report-queue"]) {
      $(id).addEventListener("change", () => this.load());
    }
    $("report-export").addEventListener("click", () => this.exportCsv());

    this.tiles = new Map();
    for (const [key, term] of TILES) {
      const dd = h("dd", {}, "—");
      // The space keeps term and figure apart as text ("Offered 3"), as a reader hears them.
      $("totals").append(h("div", { class: `tile tile-${key}` }, h("dt", {}, term), " ", dd));
      this.tiles.set(key, dd);
    }
    this.plots = new Map();
    for (const [key, title, legend] of CHARTS) {
      const plot = h("div", { class: "plot" });
      const titleId = `chart-${key}-title`;
      $("charts").append(
        h(
          "figure",
          { class: "chart-box", "aria-labelledby": titleId },
          h(
            "figcaption",
            {},
            h("h3", { id: titleId }, title),
            h("ul", { class: "legend" }, ...legend.map(([name, cls]) => h("li", { class: cls }, h("span", { class: "swatch", "aria-hidden": "true" }), name))),
          ),
          plot,
        ),
      );
      this.plots.set(key, plot);
    }

    this.agentRows = figureRows($("report-agent-rows"), 8, (name, id) => {
      const t = this.agentFigures.get(id);
      setIso(name, this.page.agentName(id) ?? id);
      const p = t.presence_ms || {};
      return [
        count(t.handled),
        duration(t.handle_ms.total),
        duration(t.handle_ms.mean),
        duration(p.available ?? 0),
        duration(p.idle ?? 0),
        duration(p.rona ?? 0),
        percent(t.occupancy_percent),
        count(t.ronas),
      ];
    });
    /** The rated records last shown, by conversation id. */
    this.ratings = new Map();
    this.ratingRows = new KeyedChildren($("report-rating-rows"), {
      create: () => h("tr", {}, h("th", { scope: "row" }), h("td", { class: "text" }), h("td"), h("td"), h("td", { class: "num" })),
      update: (tr, id) => {
        const r = this.ratings.get(id);
        const [customer, agent, arrived, rated, rating] = tr.children;
        setIso(customer, r.customer.name);
        // The agent that served it last: the last owner of the transfer chain.
        const owners = r.agents.filter((a) => !a.guest);
        const last = owners.length ? owners[owners.length - 1].agent : null;
        setIso(agent, last === null ? "—" : (this.page.agentName(last) ?? last));
        setText(arrived, when.format(new Date(r.arrived_at)));
        setText(rated, when.format(new Date(r.satisfaction.at)));
        setText(rating, `${r.satisfaction.rating} of 5`);
      },
    });
    this.intervalRows = figureRows($("report-interval-rows"), 7, (name, start) => {
      const { label, f } = this.intervalFigures.get(start);
      setText(name, label);
      return [
        count(f.offered),
        count(f.answered),
        count(f.abandoned),
        percent(f.service_level_percent),
        duration(f.wait_ms.mean),
        duration(f.wait_ms.p90),
        duration(f.handle_ms.mean),
      ];
    });
  }

  /** The view is shown: the first time, its report is asked for. */
  show() {
    this.visible = true;
    if (!this.loaded) this.load();
  }

  hide() {
    this.visible = false;
  }

  /** The queues the floor knows (`[{id, name}]`, in the order to list them), for the queue menu. */
  setQueues(queues) {
    const key = queues.map((q) => `${q.id}\u0000${q.name}`).join("\u0001");
    if (key === this.queuesKey) return;
    this.queuesKey = key;
    this.queueNames = new Map(queues.map((q) => [q.id, q.name]));
    const select = $("report-queue");
    const chosen = select.value;
    select.replaceChildren(...queues.map((q) => h("option", { value: q.id }, isoText(q.name))));
    if (queues.some((q) => q.id === chosen)) select.value = chosen;
    // The queue list came after the view was opened: its report can now be asked for.
    if (this.visible && !this.loaded) this.load();
  }

  /** Agents' names changed on the floor: the table shows them. */
  namesChanged() {
    if (this.agentFigures.size) this.showAgents();
    if (this.ratings.size) this.ratingRows.show([...this.ratings.keys()]);
  }

  /** The chosen days as the engine's range, or a refusal in words. */
  range() {
    const from = $("report-from").value;
    const to = $("report-to").value;
    if (!from || !to) throw words("Choose the first and the last day.");
    if (from > to) throw words("The first day (From) is after the last day (To).");
    return {
      fromDate: from,
      toDate: to,
      from: midnight(from).toISOString(),
      to: midnight(to, 1).toISOString(),
      text: dayFormat.formatRange(midnight(from), midnight(to)),
    };
  }

  fail(e) {
    setText($("report-status"), "");
    setText($("report-error"), explain(e));
  }

  async load() {
    const seq = ++this.seq;
    setText($("report-error"), "");
    let r;
    try {
      r = this.range();
    } catch (e) {
      return this.fail(e);
    }
    const queue = $("report-queue").value;
    if (!queue) {
      setText($("report-status"), "There is no queue to report on yet.");
      return;
    }
    this.loaded = true;
    const grain = $("report-interval").value;
    const token = this.page.token();
    const range = `from=${enc(r.from)}&to=${enc(r.to)}&time_zone=${enc(TIME_ZONE)}`;
    setText($("report-status"), "Loading…");
    try {
      const [queues, agents, rated] = await Promise.all([
        request("GET", `/api/v1/reports/queues?${range}&interval=${grain}&queue=${enc(queue)}`, { token }),
        // The table shows each agent's total only: whole days keep the answer small, and
        // over days that start at local midnight the totals are the same.
        request("GET", `/api/v1/reports/agents?${range}&interval=1d`, { token }),
        request(
          "GET",
          `/api/v1/reports/conversations?from=${enc(r.from)}&to=${enc(r.to)}&queue=${enc(queue)}&rated=true&limit=${RATINGS_SHOWN}`,
          { token },
        ),
      ]);
      if (seq !== this.seq) return;
      this.draw(queues.queues[0], this.queueNames.get(queue) ?? queue, r, grain);
      this.agentFigures = new Map(agents.agents.map((a) => [a.agent, a.total]));
      this.showAgents();
      this.showRatings(rated);
      setText($("report-status"), `Figures as of ${clock(new Date().toISOString())}.`);
    } catch (e) {
      if (seq === this.seq) this.fail(e);
    }
  }

  /** One queue's report: the totals, the charts, the busy intervals. */
  draw(q, queueName, r, grain) {
    const per = PER[grain] ?? "per interval";
    const t = q.total;
    $("totals-scope").replaceChildren(
      iso(queueName),
      `, ${r.text} (${TIME_ZONE}). Service level: answered within ${duration(q.service_level_ms)} of arrival, out of every conversation offered.`,
    );
    for (const [key, , figure] of TILES) setText(this.tiles.get(key), figure(t));
    setText($("charts-title"), PER_HEADING[grain] ?? "Per interval");

    const label = labeller(grain, r.fromDate === r.toDate);
    const labels = q.intervals.map((i) => label(i.start));
    const at = (i) => labels[i];
    const of = (pick) => q.intervals.map(pick);

    const offered = of((i) => i.offered);
    const busiest = largest(offered);
    this.plot("conversations", {
      kind: "bars",
      labels,
      series: [
        { name: "offered", cls: "c-offered", values: offered },
        { name: "answered", cls: "c-answered", values: of((i) => i.answered) },
        { name: "abandoned", cls: "c-abandoned", values: of((i) => i.abandoned) },
      ],
      scale: countScale(Math.max(0, ...offered, ...of((i) => i.answered), ...of((i) => i.abandoned))),
      summary:
        `Conversations ${per}, ${r.text}: ${count(t.offered)} offered, ${count(t.answered)} answered, ${count(t.abandoned)} abandoned` +
        (busiest >= 0 ? `; most offered: ${count(offered[busiest])} at ${at(busiest)}.` : "."),
      empty: "No conversation was offered.",
    });

    const sl = of((i) => i.service_level_percent);
    const lowest = smallest(sl);
    this.plot("sl", {
      kind: "line",
      labels,
      series: [{ name: "service level", cls: "c-sl", values: sl }],
      scale: percentScale(percent),
      summary:
        t.service_level_percent === null
          ? `Service level ${per}, ${r.text}: no conversation was offered.`
          : `Service level ${per}, ${r.text}: ${percent(t.service_level_percent)} over the range; lowest ${percent(sl[lowest])} at ${at(lowest)}.`,
      empty: "No conversation was offered.",
    });

    const mean = of((i) => i.wait_ms.mean);
    const p90 = of((i) => i.wait_ms.p90);
    const longest = largest(p90);
    this.plot("wait", {
      kind: "bars",
      labels,
      series: [
        { name: "mean wait", cls: "c-wait", values: mean },
        { name: "90th percentile wait", cls: "c-p90", values: p90 },
      ],
      scale: durationScale(Math.max(0, ...mean.filter(Number.isFinite), ...p90.filter(Number.isFinite)), duration),
      summary:
        t.wait_ms.count === 0
          ? `Wait until answered ${per}, ${r.text}: no conversation was answered.`
          : `Wait until answered ${per}, ${r.text}: mean ${duration(t.wait_ms.mean)}, 90th percentile ${duration(t.wait_ms.p90)} over the range` +
            (longest >= 0 ? `; longest 90th percentile ${duration(p90[longest])} at ${at(longest)}.` : "."),
      empty: "No conversation was answered.",
    });

    const handle = of((i) => i.handle_ms.mean);
    const slowest = largest(handle);
    this.plot("handle", {
      kind: "bars",
      labels,
      series: [{ name: "mean handle time", cls: "c-handle", values: handle }],
      scale: durationScale(Math.max(0, ...handle.filter(Number.isFinite)), duration),
      summary:
        t.handle_ms.count === 0
          ? `Handle time ${per}, ${r.text}: no conversation was handled.`
          : `Handle time ${per}, ${r.text}: mean ${duration(t.handle_ms.mean)} over the range` +
            (slowest >= 0 ? `; longest mean ${duration(handle[slowest])} at ${at(slowest)}.` : "."),
      empty: "No conversation was handled.",
    });

    // The table lists the intervals something happened in; the charts show them all.
    const busy = q.intervals.map((f, i) => ({ f, label: labels[i] })).filter(({ f }) => f.offered > 0 || f.refused > 0);
    this.intervalFigures = new Map(busy.map((b) => [b.f.start, b]));
    this.intervalRows.show(busy.map((b) => b.f.start));
    setText($("report-intervals-none"), busy.length ? "" : "No conversation arrived in this range.");
  }

  plot(key, spec) {
    this.plots.get(key).replaceChildren(chart(spec));
  }

  /** The agent table, by name (an agent the floor does not know by its id). */
  showAgents() {
    const name = (id) => this.page.agentName(id) ?? id;
    const ids = [...this.agentFigures.keys()].sort((a, b) => byName(name(a), name(b)) || byName(a, b));
    this.agentRows.show(ids);
    setText($("report-agents-none"), ids.length ? "" : "There are no agents.");
  }

  /** The rated conversations of a records page (`rated=true`), in the engine's order. */
  showRatings(page) {
    this.ratings = new Map(page.records.map((r) => [r.id, r]));
    this.ratingRows.show(page.records.map((r) => r.id));
    setText(
      $("report-ratings-none"),
      page.records.length === 0
        ? "No customer rated a conversation of this queue in this range."
        : page.next
          ? `The first ${count(RATINGS_SHOWN)} ratings are shown; Export CSV has every one.`
          : "",
    );
  }

  /** Saves the conversations that arrived in the chosen days, from every queue, as CSV. */
  async exportCsv() {
    if (this.exporting) return;
    setText($("report-error"), "");
    let r;
    try {
      r = this.range();
    } catch (e) {
      return this.fail(e);
    }
    this.exporting = true;
    setText($("report-status"), "Preparing the CSV file…");
    try {
      const blob = await download(`/api/v1/reports/conversations?from=${enc(r.from)}&to=${enc(r.to)}`, {
        token: this.page.token(),
        accept: "text/csv",
      });
      const days = r.fromDate === r.toDate ? r.fromDate : `${r.fromDate}-to-${r.toDate}`;
      const file = `switchboard-conversations-${days}.csv`;
      const url = URL.createObjectURL(blob);
      const a = h("a", { href: url, download: file, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      // The browser reads the file after the click returns: the URL is freed a while later.
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      setText($("report-status"), `Downloaded ${file}.`);
    } catch (e) {
      this.fail(e);
    } finally {
      this.exporting = false;
    }
  }
}
