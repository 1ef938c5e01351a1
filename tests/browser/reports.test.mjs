// The supervisor page's Reports view (issue 25 item 4) in Debian's Chromium. Run by
// tests/browser.rs: `node reports.test.mjs '<json config>'` with {servers: {main}, admin,
// chromium, screenshots, result}. Conversations run to completion over REST first; then a
// supervisor opens Reports and reads the totals, the charts, the intervals and the agent
// table, changes the interval, the queue and the days, and exports the CSV. Elements are
// found by role, label and visible text; every wait has a generous limit.

import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";
import { script } from "./script.mjs";
import { fitsItsBox } from "./layout.mjs";
import { gone, until, visible, WAIT } from "./waits.mjs";

const { cfg, base, tokens, pages, log, shot, step, call, runIn } = script("reports", 300_000);
const admin = (method, path, body) => call(method, path, cfg.admin, body);
const conv = (id, what) => `/api/v1/conversations/${id}/${what}`;

/** The CSV export's columns (docs/API-NOTES.md "Reports"). */
const CSV_HEADER =
  "id,channel,entry_point,source_page,customer_id,customer_name,queues,agents,arrived_at,first_offered_at," +
  "accepted_at,first_agent_reply_at,ended_at,wrapped_up_at,ended_reason,outcome,wrapup_reason,rona_count," +
  "transfers,wait_ms,handle_ms,agent_wrapup_reasons,guests,satisfaction,satisfaction_at";

/**
 * A time zone whose clock is between 02:00 and 22:00 now, for the browser: the test's
 * conversations and the page's "today" then fall on one day there. The three zones' night
 * hours do not overlap, so one always fits.
 */
function zoneAwayFromMidnight() {
  for (const zone of ["Europe/Paris", "America/New_York", "Asia/Tokyo"]) {
    const hour = Number(new Intl.DateTimeFormat("en-GB", { timeZone: zone, hour: "2-digit", hourCycle: "h23" }).format(new Date()));
    if (hour >= 2 && hour < 22) return zone;
  }
  throw new Error("no zone away from midnight");
}

/** Day `offset` days from today in `zone`, as a date input holds it ("2026-12-06"). */
function day(zone, offset = 0) {
  return new Intl.DateTimeFormat("en-CA", { timeZone: zone }).format(new Date(Date.now() + offset * 86_400_000));
}

const region = (page, name) => page.getByRole("region", { name, exact: true });
const row = (page, table, name) =>
  page.getByRole("table", { name: table }).getByRole("row").filter({ has: page.getByRole("rowheader", { name, exact: true }) });
const cells = async (r) => r.getByRole("cell").allTextContents();

await runIn(chromium, run);

async function run(browser) {
  const zone = zoneAwayFromMidnight();
  const today = day(zone);
  log(`the browser's time zone: ${zone}, today ${today}`);

  // ----- what happened: four conversations in queue Sales, run to completion -----
  // With a satisfaction survey (docs/API-NOTES.md "Satisfaction"): each served customer is asked.
  await admin("POST", "/api/v1/queues", {
    id: "sales",
    name: "Sales",
    service_level_ms: 2000,
    survey: { templates: { default: { question: "How did we do? 1 (poor) to 5 (great).", thanks: "Thank you." } } },
  });
  await admin("POST", "/api/v1/entry-points", { id: "sales-web", name: "Sales web", queue: "sales" });
  const sup = await admin("POST", "/api/v1/supervisors", { id: "s1", name: "Sue", password: "sue-password-1" });
  const ann = (await admin("POST", "/api/v1/agents", { id: "a1", name: "Ann", queues: ["sales"] })).token;
  const bob = (await admin("POST", "/api/v1/agents", { id: "a2", name: "Bob", queues: ["sales"] })).token;
  for (const t of [sup.token, ann, bob]) tokens.add(t);
  const setState = (token, state) =>
    call("PUT", "/api/v1/agents/me/state", token, state === "idle" ? { state, idle_code: "break" } : { state });
  const arrives = async (id, name, text) =>
    (await admin("POST", "/api/v1/conversations", { entry_point: "sales-web", customer: { id, name }, text })).id;
  // The offer is made by the engine as it routes: accepted once it is there.
  const accept = (id, token) => until(`the offer of ${id}`, () => call("POST", conv(id, "accept"), token).then(() => true));
  const close = async (id, token) => {
    await call("POST", conv(id, "end"), token);
    await call("POST", conv(id, "wrapup"), token, { reason: "resolved" });
  };
  /** The conversations by customer. */
  const ids = {};

  await step("Ann answers Carol at once and Bob Dave; Erin waits while they talk", async () => {
    await setState(ann, "available");
    ids.carol = await arrives("u-carol", "Carol", "Where is my parcel?");
    await accept(ids.carol, ann);
    await call("POST", conv(ids.carol, "messages"), ann, { text: "Hello Carol, let me look." });
    // Ann's one slot is taken: Dave goes to Bob.
    await setState(bob, "available");
    ids.dave = await arrives("u-dave", "Dave", "I want to upgrade");
    await accept(ids.dave, bob);
    await call("POST", conv(ids.dave, "messages"), bob, { text: "Hello Dave, which plan?" });
    // Nobody is free: Erin waits.
    ids.erin = await arrives("u-erin", "Erin", "Is anybody there?");
    // The conversations' length and Erin's wait are the figures under test: Erin has to
    // wait longer than the queue's 2 s.
    await new Promise((r) => setTimeout(r, 2500));
  });

  await step("Ann closes Carol's and answers Erin; Bob closes Dave's; Fred leaves unanswered", async () => {
    await close(ids.carol, ann);
    // Ann is free first: Erin goes to her while Bob still talks to Dave.
    await accept(ids.erin, ann);
    await close(ids.dave, bob);
    await setState(bob, "idle");
    await call("POST", conv(ids.erin, "messages"), ann, { text: "Hello Erin, sorry for the wait." });
    await close(ids.erin, ann);
    await setState(ann, "idle");
    ids.fred = await arrives("u-fred", "Fred", "Hello?");
    // The admin ends it as the customer: Fred left before anyone accepted.
    await call("POST", conv(ids.fred, "end"), cfg.admin);
  });

  await step("Carol rates her conversation 4: no new conversation, the rating on its record", async () => {
    const answered = await admin("POST", "/api/v1/conversations", { entry_point: "sales-web", customer: { id: "u-carol", name: "Carol" }, text: "4" });
    if (answered.id !== ids.carol) throw new Error(`the answer went to ${answered.id}, not ${ids.carol}`);
    const rated = await admin("GET", "/api/v1/reports/conversations?rated=true");
    if (rated.records.length !== 1 || rated.records[0].satisfaction?.rating !== 4) throw new Error(`rated records: ${JSON.stringify(rated)}`);
  });

  // ----- the supervisor reads the reports -----
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, timezoneId: zone, acceptDownloads: true });
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  await page.addInitScript(() => {
    window.cspViolations = [];
    document.addEventListener("securitypolicyviolation", (e) => window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  const reportUrls = [];
  page.on("request", (r) => {
    if (r.url().includes("/api/v1/reports/")) reportUrls.push(r.url());
  });
  pages.push(["sue", page]);
  await page.goto(`${base}/supervisor`);

  await step("sign in and open Reports from the bar", async () => {
    await page.getByLabel("Supervisor id").fill("s1");
    await page.getByLabel("Password", { exact: true }).fill("sue-password-1");
    await page.getByRole("button", { name: "Sign in", exact: true }).click();
    await visible(page.getByRole("heading", { name: "Floor", level: 1 }));
    tokens.add(await page.evaluate(() => sessionStorage.getItem("switchboard.supervisor.token")));
    const nav = page.getByRole("navigation", { name: "Views" });
    if ((await nav.getByRole("link", { name: "Floor" }).getAttribute("aria-current")) !== "page") throw new Error("Floor is not the current view");
    await nav.getByRole("link", { name: "Reports" }).click();
    await visible(page.getByRole("heading", { name: "Reports", level: 1 }));
    if ((await nav.getByRole("link", { name: "Reports" }).getAttribute("aria-current")) !== "page") throw new Error("Reports is not marked current");
    if ((await page.getByRole("table", { name: "Queues" }).count()) !== 0) throw new Error("the floor's tables show under Reports");
  });

  const control = (label) => page.getByLabel(label, { exact: true });
  const totals = region(page, "Totals");
  await step("the controls default to today, by the hour, the first queue by name; the totals add up", async () => {
    const days = [await control("From").inputValue(), await control("To").inputValue()];
    if (days.join(" ") !== `${today} ${today}`) throw new Error(`From and To: ${days}`);
    const interval = await control("Interval").locator("option:checked").textContent();
    if (interval !== "1 hour") throw new Error(`interval: ${interval}`);
    const queue = await control("Queue").locator("option:checked").textContent();
    if (queue !== "Sales") throw new Error(`queue: ${queue}`);
    await visible(totals.getByText("Offered 4", { exact: true }));
    await visible(totals.getByText("Answered 3", { exact: true }));
    await visible(totals.getByText("Abandoned 1", { exact: true }));
    // Carol and Dave within 2 s of 4 offered; Erin answered later, Fred abandoned.
    await visible(totals.getByText("Service level 50%", { exact: true }));
    await visible(totals.getByText(/^Mean wait \d+:\d\d$/));
    // The 90th percentile is Erin's wait: 2.5 s or more, never a second less than asked.
    await visible(totals.getByText(/^90th percentile wait 0:0[2-9]$/));
    await visible(totals.getByText(/^Mean handle \d+:\d\d$/));
    await visible(totals.getByText(`Service level: answered within 0:02 of arrival`, { exact: false }));
    // Every request names the browser's time zone, and the range starts at its midnight.
    const asked = reportUrls.filter((u) => u.includes("/reports/queues"));
    if (!asked.length || !asked.every((u) => u.includes(`time_zone=${encodeURIComponent(zone)}`))) {
      throw new Error(`report requests without time_zone=${zone}: ${asked}`);
    }
  });

  const charts = region(page, "Per hour");
  await step("the charts are images named by their figures", async () => {
    await visible(charts.getByRole("img", { name: /^Conversations per hour, .+: 4 offered, 3 answered, 1 abandoned; most offered: \d at / }));
    await visible(charts.getByRole("img", { name: /^Service level per hour, .+: 50% over the range; lowest \d+% at / }));
    await visible(charts.getByRole("img", { name: /^Wait until answered per hour, .+: mean \d+:\d\d, 90th percentile 0:0[2-9] over the range/ }));
    await visible(charts.getByRole("img", { name: /^Handle time per hour, .+: mean \d+:\d\d over the range/ }));
    // 24 hours on the axis, and bars where conversations were.
    const bars = await charts.getByRole("img", { name: /^Conversations/ }).locator("rect").count();
    if (bars < 3) throw new Error(`${bars} bars in the conversations chart`);
    for (const title of ["Conversations", "Service level", "Wait until answered", "Handle time"]) {
      await visible(charts.getByRole("heading", { name: title, level: 3 }));
    }
  });

  await step("the table of intervals lists the busy hours, adding up to the totals", async () => {
    await charts.getByText("Figures per interval").click();
    const table = page.getByRole("table", { name: "Figures per interval" });
    await visible(table);
    const rows = await table.getByRole("row").all();
    let offered = 0;
    for (const r of rows.slice(1)) offered += Number((await cells(r))[0]);
    if (offered !== 4) throw new Error(`the intervals offer ${offered}`);
  });

  await step("the agent table: each agent by name, with what they handled", async () => {
    const names = await page.getByRole("table", { name: "Agents" }).getByRole("rowheader").allTextContents();
    if (names.join(",") !== "Ann,Bob") throw new Error(`agent rows: ${names}`);
    const headers = await page.getByRole("table", { name: "Agents" }).getByRole("columnheader").allTextContents();
    const want = ["Agent", "Handled", "Handle time", "Mean handle", "Time available", "Time idle", "Time in RONA", "Occupancy", "RONAs"];
    if (headers.join("|") !== want.join("|")) throw new Error(`agent columns: ${headers}`);
    const a = await cells(row(page, "Agents", "Ann"));
    const b = await cells(row(page, "Agents", "Bob"));
    log(`Ann: ${a.join(" | ")}; Bob: ${b.join(" | ")}`);
    if (a[0] !== "2" || b[0] !== "1") throw new Error(`handled: Ann ${a[0]}, Bob ${b[0]}`);
    if (a[7] !== "0" || b[7] !== "0") throw new Error(`RONAs: Ann ${a[7]}, Bob ${b[7]}`);
    for (const c of [...a.slice(1, 6), ...b.slice(1, 6)]) if (!/^\d+:\d\d$/.test(c)) throw new Error(`a duration: ${c}`);
    for (const c of [a[6], b[6]]) if (!/^[\d,]+%$/.test(c)) throw new Error(`occupancy: ${c}`);
    await fitsItsBox(page.getByRole("table", { name: "Agents" }), "the agent table");
    await fitsItsBox(charts, "the charts");
    await shot(page, "reports-01-today-by-hour");
  });

  await step("the Ratings table: Carol's 4 of 5, served by Ann; nobody else answered", async () => {
    const ratings = page.getByRole("table", { name: "Ratings" });
    await visible(ratings);
    const headers = await ratings.getByRole("columnheader").allTextContents();
    if (headers.join("|") !== "Customer|Agent|Arrived|Rated|Rating") throw new Error(`rating columns: ${headers}`);
    const names = await ratings.getByRole("rowheader").allTextContents();
    if (names.join(",") !== "Carol") throw new Error(`rated rows: ${names}`);
    const c = await cells(row(page, "Ratings", "Carol"));
    if (c[0] !== "Ann" || c[3] !== "4 of 5") throw new Error(`Carol's rating row: ${c.join(" | ")}`);
    await fitsItsBox(region(page, "Ratings"), "the ratings table");
    await page.getByRole("heading", { name: "Ratings", level: 2 }).scrollIntoViewIfNeeded();
    await shot(page, "reports-07-ratings");
  });

  await step("another queue has no ratings, said in words", async () => {
    await control("Queue").selectOption({ label: "Support" });
    await visible(page.getByText("No customer rated a conversation of this queue in this range."));
    await control("Queue").selectOption({ label: "Sales" });
    await visible(row(page, "Ratings", "Carol"));
  });

  await step("by the day: one interval, the same totals", async () => {
    await control("Interval").selectOption({ label: "1 day" });
    const perDay = region(page, "Per day");
    await visible(perDay.getByRole("img", { name: /^Conversations per day, .+: 4 offered, 3 answered, 1 abandoned; most offered: 4 at / }));
    await visible(totals.getByText("Offered 4", { exact: true }));
    const rows = page.getByRole("table", { name: "Figures per interval" }).getByRole("row");
    await until("one day in the table", async () => (await rows.count()) === 2);
    await shot(page, "reports-02-today-by-day");
    await control("Interval").selectOption({ label: "15 minutes" });
    await visible(region(page, "Per 15 minutes").getByRole("img", { name: /^Conversations per 15 minutes, / }));
    await shot(page, "reports-03-today-by-quarter-hour");
    await control("Interval").selectOption({ label: "1 hour" });
    await visible(charts.getByRole("img", { name: /^Conversations per hour, / }));
  });

  await step("another queue: nothing offered, said in words", async () => {
    await control("Queue").selectOption({ label: "Support" });
    await visible(totals.getByText("Offered 0", { exact: true }));
    await visible(totals.getByText("Service level —", { exact: true }));
    await visible(charts.getByRole("img", { name: /^Conversations per hour, .+: 0 offered, 0 answered, 0 abandoned\.$/ }));
    await visible(charts.getByRole("img", { name: /^Service level per hour, .+: no conversation was offered\.$/ }));
    await visible(page.getByText("No conversation arrived in this range."));
    // The agent table does not depend on the queue.
    if ((await cells(row(page, "Agents", "Ann")))[0] !== "2") throw new Error("Ann's figures changed with the queue");
    await shot(page, "reports-04-empty-queue");
    await control("Queue").selectOption({ label: "Sales" });
    await visible(totals.getByText("Offered 4", { exact: true }));
  });

  await step("a first day after the last is refused in words; yesterday and today add up alike", async () => {
    await control("From").fill(day(zone, 1));
    await visible(page.getByRole("alert").filter({ hasText: "The first day (From) is after the last day (To)." }));
    await shot(page, "reports-05-bad-range");
    await control("From").fill(day(zone, -1));
    await gone(page.getByRole("alert").filter({ hasText: "The first day (From) is after the last day (To)." }));
    await visible(totals.getByText("Offered 4", { exact: true }));
    await visible(charts.getByRole("img", { name: /^Conversations per hour, [^:]+–[^:]+: 4 offered/ }));
    await control("From").fill(today);
    await visible(charts.getByRole("img", { name: /^Conversations per hour, [^:–]+: 4 offered/ }));
  });

  await step("Export CSV downloads the day's conversations", async () => {
    const [download] = await Promise.all([
      page.waitForEvent("download", { timeout: WAIT }),
      page.getByRole("button", { name: "Export CSV" }).click(),
    ]);
    const name = download.suggestedFilename();
    if (name !== `switchboard-conversations-${today}.csv`) throw new Error(`file name: ${name}`);
    const text = readFileSync(await download.path(), "utf8");
    const lines = text.split(/\r?\n/).filter((l) => l !== "");
    if (lines[0] !== CSV_HEADER) throw new Error(`CSV header: ${lines[0]}`);
    if (lines.length !== 1 + Object.keys(ids).length) throw new Error(`CSV of ${lines.length - 1} rows: ${text}`);
    for (const id of Object.values(ids)) if (!lines.some((l) => l.startsWith(`${id},`))) throw new Error(`${id} missing from the CSV`);
    const outcomes = lines.slice(1).map((l) => l.split(",")[15]).sort();
    if (outcomes.join(",") !== "abandoned,handled,handled,handled") throw new Error(`outcomes: ${outcomes}`);
    await visible(page.getByRole("status").filter({ hasText: `Downloaded ${name}.` }));
  });

  await step("a narrow window: the view stays inside it", async () => {
    await page.setViewportSize({ width: 720, height: 900 });
    await fitsItsBox(region(page, "Agents"), "the agent table, narrow");
    await fitsItsBox(charts, "the charts, narrow");
    await fitsItsBox(totals, "the totals, narrow");
    await fitsItsBox(region(page, "Ratings"), "the ratings table, narrow");
    await shot(page, "reports-06-narrow");
  });

  await step("back to the floor, live", async () => {
    await page.getByRole("navigation", { name: "Views" }).getByRole("link", { name: "Floor" }).click();
    await visible(page.getByRole("heading", { name: "Floor", level: 1 }));
    await visible(row(page, "Agents", "Ann"));
    if (await page.getByRole("heading", { name: "Totals" }).count()) throw new Error("the reports show on the floor");
  });

  const violations = await page.evaluate(() => window.cspViolations);
  problems.push(...violations.map((v) => `CSP violation: ${v}`));
  if (problems.length) throw new Error(problems.join("; "));
}
