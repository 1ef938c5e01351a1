// The desktop and the supervisor page on a Messenger page, in Debian's Chromium. Run by
// tests/browser.rs: `node messenger.test.mjs '<json config>'` with {servers: {main},
// admin, chromium, screenshots, result, messenger: {app_secret, page_id, psid,
// page_token, expired_token}}; the server's Graph API is `switchboard-fake-graph`, whose
// requests tests/browser.rs reads afterwards.
//
// An agent signs in, takes a Messenger customer's message (a signed webhook), and while it
// types in the conversation's box the customer is shown `typing_on`; the conversation
// shown with the new message sends `mark_seen`; a file attached with the Attach File
// button joins the transcript and goes out (the desktop shows it `Sent`). Then the page's
// token is refused (190): the supervisor page says so, and stops saying so once a good
// token is set. Elements are found by role, label and visible text.

import { chromium } from "playwright-core";
import { createHmac } from "node:crypto";
import { script } from "./script.mjs";
import { gone, until, visible } from "./waits.mjs";

const { cfg, tokens, pages, log, shot, step, call, runIn } = script("messenger", 300_000);
const m = cfg.messenger;
const report = {};
const admin = (method, path, body) => call(method, path, cfg.admin, body);

/** Meta's webhook delivery of one text message, signed with the app secret. */
async function customerWrites(mid, text) {
  const now = Date.now();
  const body = JSON.stringify({
    object: "page",
    entry: [{ id: m.page_id, time: now, messaging: [{ sender: { id: m.psid }, recipient: { id: m.page_id }, timestamp: now, message: { mid, text } }] }],
  });
  const signature = "sha256=" + createHmac("sha256", m.app_secret).update(body).digest("hex");
  const res = await fetch(`${cfg.servers.main}/webhooks/messenger`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Hub-Signature-256": signature },
    body,
  });
  if (res.status !== 200) throw new Error(`webhook: ${res.status} ${await res.text()}`);
}

async function newPage(browser, name, path) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => log(`${name} page error: ${e.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error") log(`${name} console error: ${msg.text().replace(/token=[^\s']+/g, "token=…")}`);
  });
  pages.push([name, page]);
  await page.goto(cfg.servers.main + path);
  return page;
}

await runIn(chromium, run, report);

async function run(browser) {
  await admin("PATCH", "/api/v1/entry-points/demo-page", { page_access_token: m.page_token });
  const agent = await admin("POST", "/api/v1/agents", { id: "a1", name: "Ann", queues: ["support"], password: "ann-password-1" });
  tokens.add(agent.token);
  const sup = await admin("POST", "/api/v1/supervisors", { id: "s1", name: "Sue" });
  tokens.add(sup.token);

  const ann = await newPage(browser, "ann", "/");
  const customer = `Messenger user ${m.psid.slice(-4)}`;
  const transcript = ann.getByRole("log", { name: `Transcript with ${customer}` });

  await step("sign in, Available, take the Messenger customer's message", async () => {
    await ann.getByLabel("Agent id").fill("a1");
    await ann.getByLabel("Password", { exact: true }).fill("ann-password-1");
    await ann.getByRole("button", { name: "Sign in", exact: true }).click();
    await visible(ann.getByRole("button", { name: /^State: / }));
    tokens.add(JSON.parse(await ann.evaluate(() => sessionStorage.getItem("switchboard.session"))).token);
    await ann.getByRole("button", { name: /^State: / }).click();
    await ann.getByRole("menuitemradio", { name: "Available", exact: true }).click();
    await visible(ann.getByRole("button", { name: "State: Available. Change state" }));
    await customerWrites("m-browser-1", "Can you see my photo?");
    const offer = ann.getByRole("dialog", { name: "New conversation" });
    await visible(offer);
    await offer.getByRole("button", { name: "Accept" }).click();
    await gone(offer);
    await visible(transcript.getByText("Can you see my photo?", { exact: true }));
  });

  await step("typing in the box shows typing to the customer; the shown message is marked seen", async () => {
    const box = ann.getByLabel(`Message to ${customer}`);
    await box.click();
    const started = Date.now();
    await box.pressSequentially("Let me look at it", { delay: 30 });
    report.typing_ms = Date.now() - started;
    await shot(ann, "messenger-01-typing");
  });

  await step("Attach File sends an image: it joins the transcript and goes out", async () => {
    const chooser = ann.waitForEvent("filechooser");
    await ann.getByRole("button", { name: `Attach a file for ${customer}` }).click();
    const png = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==", "base64");
    await (await chooser).setFiles({ name: "receipt.png", mimeType: "image/png", buffer: png });
    const link = transcript.getByRole("link", { name: "Image attachment" });
    await visible(link);
    await until("the file to be Sent", async () => (await transcript.locator('[data-delivery="sent"]').count()) > 0);
    // The link serves the image back to the agent.
    const href = await link.getAttribute("href");
    const res = await fetch(new URL(href, cfg.servers.main));
    if (res.status !== 200 || res.headers.get("content-type") !== "image/png") throw new Error(`file: ${res.status}`);
    await shot(ann, "messenger-02-attachment-sent");
  });

  await step("sending ends typing", async () => {
    const box = ann.getByLabel(`Message to ${customer}`);
    await box.fill("Got it, thank you");
    await box.press("Enter");
    await visible(transcript.getByText("Got it, thank you", { exact: true }));
  });

  const supPage = await newPage(browser, "sue", "/supervisor");
  await step("a refused page token shows on the supervisor page, and goes away with a new one", async () => {
    await supPage.getByRole("button", { name: "Use a token instead" }).click();
    await supPage.getByLabel("Supervisor token").fill(sup.token);
    await supPage.getByRole("button", { name: "Sign in with token" }).click();
    await visible(supPage.getByRole("status").filter({ hasText: /^Live$/ }));
    const alert = supPage.getByRole("region", { name: "Channels needing attention" });
    await admin("PATCH", "/api/v1/entry-points/demo-page", { page_access_token: m.expired_token });
    const box = ann.getByLabel(`Message to ${customer}`);
    await box.fill("Are you still there?");
    await box.press("Enter");
    await visible(alert.getByText(/its access token was refused/));
    await visible(alert.getByText("Demo Page", { exact: true }));
    await shot(supPage, "messenger-03-supervisor-unauthorized");
    await admin("PATCH", "/api/v1/entry-points/demo-page", { page_access_token: m.page_token });
    await gone(alert);
    await until("the waiting message to be Sent", async () => (await transcript.locator('[data-delivery="sent"]').count()) >= 3);
  });
}
