// End-to-end test of the supervisor page in Debian's Chromium. Run by tests/browser.rs:
// `node supervisor.test.mjs '<json config>'` with {servers: {main}, admin, chromium,
// screenshots, result}. Elements are found by role, label and visible text; every wait
// has a generous limit.

import { chromium } from "playwright-core";
import { script } from "./script.mjs";
import { gone, until, visible } from "./waits.mjs";
import { fitsItsBox, readsLeftToRight } from "./layout.mjs";

const { cfg, base, tokens, pages, log, shot, step, call, runIn } = script("supervisor", 300_000);
const admin = (method, path, body) => call(method, path, cfg.admin, body);

async function newPage(browser, name) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => log(`${name} page error: ${e.message}`));
  pages.push([name, page]);
  await page.goto(`${base}/supervisor`);
  return page;
}

const row = (page, table, name) => page.getByRole("table", { name: table }).getByRole("row").filter({ has: page.getByRole("rowheader", { name, exact: true }) });
const cells = async (r) => r.getByRole("cell").allTextContents();


await runIn(chromium, run);

async function run(browser) {
  const sup = await admin("POST", "/api/v1/supervisors", { id: "s1", name: "Sue", password: "sue-password-1" });
  tokens.add(sup.token);
  const ann = await admin("POST", "/api/v1/agents", { id: "a1", name: "Ann", queues: ["support"] });
  const bob = await admin("POST", "/api/v1/agents", { id: "a2", name: "Bob", queues: ["support"] });
  tokens.add(ann.token);
  tokens.add(bob.token);
  const page = await newPage(browser, "sue");

  await step("sign in with id and password; the floor shows queues and agents", async () => {
    await page.getByLabel("Supervisor id").fill("s1");
    await page.getByLabel("Password", { exact: true }).fill("wrong-password-1");
    await page.getByRole("button", { name: "Sign in", exact: true }).click();
    await visible(page.getByRole("alert").filter({ hasText: "Wrong supervisor id or password." }));
    await page.getByLabel("Password", { exact: true }).fill("sue-password-1");
    await page.getByRole("button", { name: "Sign in", exact: true }).click();
    await visible(page.getByRole("heading", { name: "Floor" }));
    await visible(page.getByRole("status").filter({ hasText: "Live" }));
    tokens.add(await page.evaluate(() => sessionStorage.getItem("switchboard.supervisor.token")));
    await visible(row(page, "Queues", "Support"));
    await visible(row(page, "Agents", "Ann"));
    await visible(row(page, "Agents", "Bob"));
    const annCells = await cells(row(page, "Agents", "Ann"));
    if (!annCells[0].startsWith("Logged out")) throw new Error(`Ann: ${annCells}`);
    await shot(page, "supervisor-01-floor");
  });

  let cid;
  await step("a customer waits: the queue shows it, the longest wait ticks", async () => {
    const c = await admin("POST", "/api/v1/conversations", { entry_point: "demo-page", customer: { id: "u1", name: "Uma" }, text: "hello there" });
    cid = c.id;
    const q = row(page, "Queues", "Support");
    await until("1 waiting", async () => (await cells(q))[0] === "1");
    const first = (await cells(q))[1];
    await until("the longest wait to tick", async () => (await cells(q))[1] !== first);
    await shot(page, "supervisor-02-waiting");
  });

  await step("the state menu sets Ann available; she is offered the conversation", async () => {
    await row(page, "Agents", "Ann").getByLabel("State for Ann").selectOption({ label: "Available" });
    const r = row(page, "Agents", "Ann");
    await visible(r.getByRole("button", { name: cid }));
    await until("Ann's load 1 / 1", async () => (await cells(r))[1] === "1 / 1");
    await until("nobody waiting", async () => (await cells(row(page, "Queues", "Support")))[0] === "0");
    const audit = await call("GET", "/api/v1/audit?agent=a1", sup.token);
    if (audit[0].by !== "s1" || audit[0].to !== "available") throw new Error(`audit: ${JSON.stringify(audit)}`);
  });

  await step("a click on the conversation shows its transcript, live", async () => {
    await call("POST", `/api/v1/conversations/${cid}/accept`, ann.token);
    await row(page, "Agents", "Ann").getByRole("button", { name: cid }).click();
    const t = page.getByRole("region", { name: /Conversation/ });
    await visible(t.getByText("hello there"));
    await call("POST", `/api/v1/conversations/${cid}/messages`, ann.token, { text: "Hi Uma, how can I help?" });
    await admin("POST", `/api/v1/conversations/${cid}/messages`, { text: "my order is late" });
    await visible(t.getByText("Hi Uma, how can I help?"));
    await visible(t.getByText("my order is late"));
    await shot(page, "supervisor-03-transcript");
  });

  await step("logging out an agent who holds a conversation is refused in words", async () => {
    await row(page, "Agents", "Ann").getByLabel("State for Ann").selectOption({ label: "Logged out" });
    await visible(page.getByRole("alert").filter({ hasText: "Ann holds conversations and cannot be logged out." }));
    await row(page, "Agents", "Bob").getByLabel("State for Bob").selectOption({ label: "Idle: Break" });
    await until("Bob idle", async () => (await cells(row(page, "Agents", "Bob")))[0].startsWith("Idle (break)"));
  });

  await step("the search narrows the agent table", async () => {
    await page.getByLabel("Search agents").fill("bo");
    await gone(row(page, "Agents", "Ann"));
    await visible(row(page, "Agents", "Bob"));
    await shot(page, "supervisor-04-search");
    await page.getByLabel("Search agents").fill("");
    await visible(row(page, "Agents", "Ann"));
  });

  await step("rows are updated in place: an agent keeps its row element across updates", async () => {
    const bobRow = row(page, "Agents", "Bob");
    // Marks the row and its menu as nodes (a property no redraw would copy to a new node).
    await bobRow.evaluate((tr) => (tr.keptMark = "bob-row"));
    await bobRow.getByLabel("State for Bob").evaluate((s) => (s.keptMark = "bob-menu"));
    const first = (await cells(bobRow))[0];
    await until("Bob's state timer to tick", async () => (await cells(bobRow))[0] !== first);
    await call("PUT", "/api/v1/agents/me/state", bob.token, { state: "available" });
    await until("Bob available", async () => (await cells(bobRow))[0].startsWith("Available"));
    const kept = await bobRow.evaluate((tr) => [tr.keptMark, tr.querySelector("select").keptMark]);
    if (kept[0] !== "bob-row" || kept[1] !== "bob-menu") throw new Error(`Bob's row was rebuilt: ${kept}`);
    const names = await page.getByRole("table", { name: "Agents" }).getByRole("rowheader").allTextContents();
    if (names.join(",") !== "Ann,Bob") throw new Error(`agent rows: ${names}`);
  });

  await step("a U+202E name and a 6,000-character word stay inside the transcript", async () => {
    const name = "Mallory \u202Egnp.exe";
    const c = await admin("POST", "/api/v1/conversations", {
      entry_point: "demo-page",
      customer: { id: "u-bidi", name },
      text: "W".repeat(6000),
    });
    await admin("POST", `/api/v1/conversations/${c.id}/messages`, { text: "where is my order" });
    await call("PUT", "/api/v1/agents/me/state", bob.token, { state: "available" });
    await row(page, "Agents", "Bob").getByRole("button", { name: c.id }).click();
    const t = page.getByRole("region", { name: /Conversation/ });
    await visible(t.getByText("where is my order"));
    await fitsItsBox(t, "the supervisor transcript");
    await fitsItsBox(t.getByRole("listitem").first(), "the customer's long message");
    await fitsItsBox(page.getByRole("table", { name: "Agents" }), "the agent table");
    // The author's name comes before the text in one line: the text still reads left to right.
    await readsLeftToRight(t.getByRole("listitem").nth(1), "order");
    await readsLeftToRight(t.getByRole("heading"), "with");
    await shot(page, "supervisor-05-hostile-transcript");
  });

  await step("Swagger UI loads under its Content-Security-Policy", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const docs = await context.newPage();
    pages.push(["docs", docs]);
    // Violations are reported as events; collect them from before the first script runs.
    await docs.addInitScript(() => {
      window.cspViolations = [];
      document.addEventListener("securitypolicyviolation", (e) =>
        window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`),
      );
    });
    const res = await docs.goto(`${base}/api/docs/`);
    const csp = res.headers()["content-security-policy"] || "";
    if (!csp.includes("default-src 'none'")) throw new Error(`Swagger UI without the policy: ${csp}`);
    await visible(docs.getByText("/api/v1/login"));
    await visible(docs.locator(".opblock").first());
    const violations = await docs.evaluate(() => window.cspViolations);
    if (violations.length) throw new Error(`Swagger UI broke its policy: ${violations.join("; ")}`);
    await shot(docs, "supervisor-06-api-docs");
  });

  await step("a supervisor token signs in too", async () => {
    const other = await newPage(browser, "token");
    await other.getByRole("button", { name: "Use a token instead" }).click();
    await other.getByLabel("Supervisor token").fill(sup.token);
    await other.getByRole("button", { name: "Sign in with token" }).click();
    await visible(other.getByRole("status").filter({ hasText: "Live" }));
    await visible(row(other, "Agents", "Ann").getByRole("button", { name: cid }));
  });

  await step("the retry delays grow: each in the upper half of 250 ms doubling, up to 5 s", async () => {
    const delays = await page.evaluate(async () => {
      const { retryDelay } = await import("/common/socket.js");
      return [1, 2, 3, 4, 5, 6, 7, 20].map((n) => [retryDelay(n, () => 0), retryDelay(n, () => 0.999999)]);
    });
    const want = [[125, 250], [250, 500], [500, 1000], [1000, 2000], [2000, 4000], [2500, 5000], [2500, 5000], [2500, 5000]];
    if (JSON.stringify(delays) !== JSON.stringify(want)) throw new Error(`retry delays: ${JSON.stringify(delays)}`);
  });

  await step("the page reconnects after the server closes its socket, waiting longer each time", async () => {
    // The page's socket goes through a route that stands for the server: it passes
    // connections through to the engine, or closes them at once while `refusing`. It
    // counts every connection the page opens and when.
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const p = await context.newPage();
    p.on("pageerror", (e) => log(`reconnect page error: ${e.message}`));
    pages.push(["reconnect", p]);
    const attempts = [];
    let refusing = false;
    let live = null;
    await p.routeWebSocket(/\/api\/v1\/supervisors\/me\/ws/, (ws) => {
      attempts.push(Date.now());
      if (refusing) return ws.close({ code: 1013, reason: "try again later" });
      live = { page: ws, server: ws.connectToServer() };
    });
    await p.goto(`${base}/supervisor`);
    await p.getByRole("button", { name: "Use a token instead" }).click();
    await p.getByLabel("Supervisor token").fill(sup.token);
    await p.getByRole("button", { name: "Sign in with token" }).click();
    await visible(p.getByRole("status").filter({ hasText: "Live" }));
    await row(p, "Agents", "Ann").evaluate((tr) => (tr.keptMark = "ann-row"));
    if (attempts.length !== 1) throw new Error(`${attempts.length} connections before any close`);

    // The server closes the socket and refuses the next five connections.
    refusing = true;
    const closedAt = Date.now();
    // 1013 "try again later", as the engine closes a socket that fell behind.
    await live.page.close({ code: 1013, reason: "try again later" });
    await live.server.close();
    await visible(p.getByRole("status").filter({ hasText: "Reconnecting…" }));
    await until("five refused connections", async () => attempts.length >= 6, 60_000);
    refusing = false;
    await until("a sixth connection", async () => attempts.length >= 7, 60_000);
    await visible(p.getByRole("status").filter({ hasText: "Live" }));
    // Each retry waits at least half its ceiling (250 ms doubling, 5 s at most): a slow
    // machine only waits longer, so these floors hold however loaded it is. A page that
    // retried every second would fail the last two. A small allowance covers how late a
    // connection reaches the route.
    const waits = attempts.slice(1, 7).map((t, i) => t - (i === 0 ? closedAt : attempts[i]));
    const floors = [125, 250, 500, 1000, 2000, 2500];
    log(`waits between connections: ${waits.join(", ")} ms`);
    waits.forEach((w, i) => {
      if (w < floors[i] - 100) throw new Error(`retry ${i + 1} came after ${w} ms, under ${floors[i]}: ${waits}`);
    });
    // Back live: the snapshot refilled the same rows, and events flow again.
    const kept = await row(p, "Agents", "Ann").evaluate((tr) => tr.keptMark);
    if (kept !== "ann-row") throw new Error("Ann's row was rebuilt by the reconnect");
    await call("PUT", "/api/v1/agents/me/state", bob.token, { state: "idle", idle_code: "break" });
    await until("Bob idle after the reconnect", async () => (await cells(row(p, "Agents", "Bob")))[0].startsWith("Idle (break)"));
    await shot(p, "supervisor-07-reconnected");
  });
}
