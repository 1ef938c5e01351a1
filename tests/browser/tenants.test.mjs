// End-to-end test of signing in to a tenant in Debian's Chromium. Run by tests/browser.rs:
// `node tenants.test.mjs '<json config>'` with {servers: {main}, admin, operator, chromium,
// screenshots, result}. The sign-in forms ask for the contact centre only once the
// deployment has more than one; an agent and a supervisor of tenant `acme` sign in with
// it and see acme's floor only.

import { chromium } from "playwright-core";
import { script } from "./script.mjs";
import { gone, visible } from "./waits.mjs";

const { cfg, base, tokens, pages, log, shot, step, call, runIn } = script("tenants", 180_000);
tokens.add(cfg.operator);

async function newPage(browser, name, path) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => log(`${name} page error: ${e.message}`));
  pages.push([name, page]);
  await page.goto(base + path);
  return page;
}

const PASSWORD = "correct horse battery staple";

async function run(browser) {
  let desk;
  await step("one tenant: the sign-in forms do not ask for a contact centre", async () => {
    desk = await newPage(browser, "desk", "/");
    await visible(desk.getByLabel("Agent id"));
    // The form asked the engine; give it the time to answer, then look.
    await desk.waitForLoadState("networkidle");
    if (await desk.getByLabel("Contact centre").isVisible()) throw new Error("asked with one tenant");
  });

  let acme;
  await step("the operator creates tenant acme; its admin staffs it", async () => {
    const t = await call("POST", "/api/v1/tenants", cfg.operator, { id: "acme", name: "Acme" });
    acme = t.admin_token;
    tokens.add(acme);
    await call("POST", "/api/v1/queues", acme, { id: "q1", name: "Acme Support" });
    await call("POST", "/api/v1/agents", acme, { id: "a1", name: "Ann of Acme", queues: ["q1"], password: PASSWORD });
    await call("POST", "/api/v1/supervisors", acme, { id: "s1", name: "Sue of Acme", password: PASSWORD });
    // The same id in tenant default, a different person.
    await call("POST", "/api/v1/agents", cfg.admin, { id: "a1", name: "Dan of Default", queues: [], password: PASSWORD });
  });

  await step("two tenants: the agent signs in to acme by naming it", async () => {
    await desk.reload();
    const centre = desk.getByLabel("Contact centre");
    await visible(centre);
    await desk.getByLabel("Agent id").fill("a1");
    await desk.getByLabel("Password").fill(PASSWORD);
    await centre.fill("nowhere");
    await desk.getByRole("button", { name: "Sign in", exact: true }).click();
    await visible(desk.getByRole("alert").filter({ hasText: /wrong|password/i }));
    await shot(desk, "tenants-01-unknown-centre");
    await desk.getByLabel("Password").fill(PASSWORD);
    await centre.fill("acme");
    await desk.getByRole("button", { name: "Sign in", exact: true }).click();
    await visible(desk.getByText("Ann of Acme"));
    await gone(desk.getByLabel("Agent id"));
    await shot(desk, "tenants-02-agent-in-acme");
  });

  await step("without a contact centre the same id is tenant default's agent", async () => {
    const other = await newPage(browser, "other", "/");
    await visible(other.getByLabel("Contact centre"));
    await other.getByLabel("Agent id").fill("a1");
    await other.getByLabel("Password").fill(PASSWORD);
    await other.getByRole("button", { name: "Sign in", exact: true }).click();
    await visible(other.getByText("Dan of Default"));
  });

  await step("the supervisor of acme signs in to acme and sees acme's floor only", async () => {
    const sup = await newPage(browser, "sup", "/supervisor");
    await visible(sup.getByLabel("Contact centre"));
    await sup.getByLabel("Supervisor id").fill("s1");
    await sup.getByLabel("Password").fill(PASSWORD);
    await sup.getByLabel("Contact centre").fill("acme");
    await sup.getByRole("button", { name: "Sign in", exact: true }).click();
    const agents = sup.getByRole("table", { name: "Agents" });
    await visible(agents.getByRole("rowheader", { name: "Ann of Acme" }));
    if ((await agents.getByRole("rowheader").count()) !== 1) throw new Error("another tenant's agent is listed");
    await visible(sup.getByRole("table", { name: "Queues" }).getByText("Acme Support"));
    await shot(sup, "tenants-03-supervisor-in-acme");
  });
}

await runIn(chromium, run);
