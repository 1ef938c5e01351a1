// End-to-end test of the agent desktop and the demo customer page in Debian's Chromium.
// Run by tests/browser.rs: `node desktop.test.mjs '<json config>'` with
// {servers: {main, transfer, offer}, admin, chromium, screenshots, result}.
//
// Elements are found by role, label and visible text, as a person finds them. Every wait
// has a generous limit (no step depends on the machine being fast); the only deadlines
// that run out are the 1.5 s offers of the `transfer` and `offer` servers, where the test
// does not click.

import { chromium } from "playwright-core";
import { script } from "./script.mjs";
import { gone, until, visible } from "./waits.mjs";
import { fitsItsBox, readsLeftToRight } from "./layout.mjs";

const { cfg, tokens, pages, log, shot, step, runIn } = script("desktop", 480_000);

async function admin(base, method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: { Authorization: `Bearer ${cfg.admin}`, "Content-Type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await res.json().catch(() => null);
  return { status: res.status, data };
}

/** Creates an agent with a password (and keeps its token for the log check). */
async function createAgent(base, agent) {
  const r = await admin(base, "POST", "/api/v1/agents", agent);
  if (r.status !== 201) throw new Error(`create agent ${agent.id}: ${r.status} ${JSON.stringify(r.data)}`);
  tokens.add(r.data.token);
  return r.data;
}

async function newPage(browser, name, url) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => log(`${name} page error: ${e.message}`));
  page.on("console", (m) => {
    // Chromium's own console names the WebSocket URL; keep tokens out of the test output.
    if (m.type() === "error") log(`${name} console error: ${m.text().replace(/token=[^\s']+/g, "token=…")}`);
  });
  pages.push([name, page]);
  await page.goto(url);
  return page;
}

async function signIn(page, id, password) {
  await page.getByLabel("Agent id").fill(id);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await visible(page.getByRole("button", { name: /^State: / }));
  const session = await page.evaluate(() => sessionStorage.getItem("switchboard.session"));
  tokens.add(JSON.parse(session).token);
}

async function signInWithToken(page, token) {
  await page.getByRole("button", { name: "Use a token instead" }).click();
  await page.getByLabel("Agent token").fill(token);
  await page.getByRole("button", { name: "Sign in with token" }).click();
  await visible(page.getByRole("button", { name: /^State: / }));
}

async function chooseState(page, label) {
  await page.getByRole("button", { name: /^State: / }).click();
  await page.getByRole("menuitemradio", { name: label, exact: true }).click();
}

const stateIs = (page, label) => visible(page.getByRole("button", { name: `State: ${label}. Change state` }));
const connected = (page) => visible(page.getByRole("status").filter({ hasText: /^Connected$/ }));

async function customerPage(browser, name, url, customer) {
  const page = await newPage(browser, name, `${url}/demo/customer`);
  await page.getByLabel("Your name").fill(customer);
  return page;
}

async function customerSays(page, text) {
  const box = page.getByLabel("Message", { exact: true });
  await box.fill(text);
  await box.press("Enter");
  await visible(page.getByRole("log", { name: "Chat" }).getByText(text, { exact: true }));
}

const transcript = (page, customer) => page.getByRole("log", { name: `Transcript with ${customer}` });
const sees = (page, customer, text) => visible(transcript(page, customer).getByText(text, { exact: true }));
const customerSees = (page, text) => visible(page.getByRole("log", { name: "Chat" }).getByText(text, { exact: true }));
const panel = (page) => page.getByRole("tabpanel");

async function accept(page, title) {
  const offer = page.getByRole("dialog", { name: title });
  await visible(offer);
  await offer.getByRole("button", { name: "Accept" }).click();
  await gone(offer);
}

async function say(page, customer, text) {
  const box = page.getByLabel(`Message to ${customer}`);
  await box.fill(text);
  await box.press("Enter");
  await sees(page, customer, text);
  await until("the compose box to empty", async () => (await box.inputValue()) === "");
}

/** The Wrap Up dialog: filter, check what the filter left, submit. */
async function wrapUp(page, filter, reason, { only = false } = {}) {
  const dialog = page.getByRole("dialog", { name: "Wrap Up Reasons" });
  await visible(dialog);
  const select = dialog.getByLabel("Reason", { exact: true });
  if (filter) {
    await dialog.getByLabel("Filter reasons").fill(filter);
    await until(`the reasons filtered by "${filter}"`, async () => {
      const labels = await select.locator("option").allTextContents();
      return only ? labels.length === 1 && labels[0] === reason : labels.includes(reason);
    });
  }
  await select.selectOption({ label: reason });
  await dialog.getByRole("button", { name: "Submit Wrap Up" }).click();
  await gone(dialog);
}

// ----- the test -----

await runIn(chromium, run);

async function run(browser) {
  const main = cfg.servers.main;
  await createAgent(main, { id: "a1", name: "Ann", queues: ["support"], capacity: 2, password: "ann-password-1" });
  const bob = await createAgent(main, { id: "a2", name: "Bob", queues: ["support"], capacity: 2, password: "bob-password-1" });

  const ann = await newPage(browser, "ann", main);
  const bobPage = await newPage(browser, "bob", main);

  await step("sign-in: a wrong password is refused with a clear message", async () => {
    await ann.getByLabel("Agent id").fill("a1");
    await ann.getByLabel("Password", { exact: true }).fill("not-the-password");
    await ann.getByRole("button", { name: "Sign in", exact: true }).click();
    await visible(ann.getByText("Wrong agent id or password."));
    await shot(ann, "01-signin-refused");
  });

  await step("sign-in with a password, and with a token instead", async () => {
    await signIn(ann, "a1", "ann-password-1");
    await visible(ann.getByText("Ann", { exact: true }));
    await stateIs(ann, "Logged out");
    await signInWithToken(bobPage, bob.token);
    await stateIs(bobPage, "Logged out");
    await connected(ann);
  });

  await step("state menu: Available, with a timer since state_since", async () => {
    await chooseState(ann, "Available");
    await stateIs(ann, "Available");
    await until("the state timer", async () => /^\d+:\d\d$/.test(await ann.locator("#state-timer").textContent()));
  });

  const uma = await customerPage(browser, "uma", main, "Uma");
  await step("offer popover: Queue Name, Source Page, customer, timer; Accept", async () => {
    await customerSays(uma, "Where is my order?");
    await visible(uma.getByText("Waiting for an agent…"));
    const offer = ann.getByRole("dialog", { name: "New conversation" });
    await visible(offer);
    await visible(offer.getByText("Queue Name"));
    await visible(offer.getByText("Support", { exact: true }));
    await visible(offer.getByText("Source Page"));
    await visible(offer.getByText("Demo Page", { exact: true }));
    await visible(offer.getByText("Uma", { exact: true }));
    await until("the offer timer", async () => /^\d+:\d\d$/.test(await offer.locator(".timer").textContent()));
    await shot(ann, "02-offer");
    // A reloaded desktop draws the same offer from `hello` alone (its `offers`).
    await ann.reload();
    await connected(ann);
    await visible(offer);
    for (const text of ["Support", "Demo Page", "Uma", "Where is my order?"]) {
      await visible(offer.getByText(text, { exact: true }));
    }
    await until("the offer timer after the reload", async () => /^\d+:\d\d$/.test(await offer.locator(".timer").textContent()));
    await accept(ann, "New conversation");
    await visible(ann.getByRole("tab", { name: "Uma" }));
    await sees(ann, "Uma", "Where is my order?");
    await visible(panel(ann).getByText("Active", { exact: true }));
  });

  await step("send with Enter; Shift+Enter adds a line; the customer sees replies live", async () => {
    await say(ann, "Uma", "On its way!");
    await customerSees(uma, "On its way!");
    const box = ann.getByLabel("Message to Uma");
    await box.fill("Line one");
    await box.press("Shift+Enter");
    await box.type("Line two");
    if ((await box.inputValue()) !== "Line one\nLine two") throw new Error("Shift+Enter did not add a line");
    await box.press("Enter");
    await sees(ann, "Uma", "Line one\nLine two");
    await customerSaysAndAgentSees();
    async function customerSaysAndAgentSees() {
      await customerSays(uma, "Thank you");
      await sees(ann, "Uma", "Thank you");
    }
    await shot(ann, "03-conversation");
    await shot(uma, "04-customer");
  });

  await step("logging out while holding a conversation is refused in words", async () => {
    await chooseState(ann, "Log out");
    await visible(ann.getByText("You cannot log out while you hold conversations."));
    await stateIs(ann, "Available");
  });

  const vic = await customerPage(browser, "vic", main, "Vic");
  await step("a second conversation in its own tab; unread counts", async () => {
    await customerSays(vic, "Hello, I need help");
    await accept(ann, "New conversation");
    await visible(ann.getByRole("tab", { name: "Vic", selected: true }));
    await customerSays(uma, "Are you still there?");
    await visible(ann.getByRole("tab", { name: "Uma 1 unread" }));
    await shot(ann, "05-tabs-unread");
    await ann.getByRole("tab", { name: /^Uma/ }).click();
    await visible(ann.getByRole("tab", { name: "Uma", exact: true, selected: true }));
    await sees(ann, "Uma", "Are you still there?");
  });

  await step("reconnect in the middle of a chat: resumes from hello, keeps typed text", async () => {
    const box = ann.getByLabel("Message to Uma");
    await box.fill("Draft kept across the reconnect");
    // The network refuses the desktop's socket until `down` is false. (Going offline in
    // Chromium does not stop WebSockets, so the page could reconnect before anyone saw it
    // try; the route makes the outage last as long as the step needs.)
    let down = true;
    let reconnected = 0;
    await ann.routeWebSocket(/\/api\/v1\/agents\/me\/ws/, (ws) => {
      if (down) return ws.close({ code: 4001, reason: "network down" });
      reconnected += 1;
      ws.connectToServer();
    });
    await ann.evaluate(() => window.switchboardDesktop.dropConnection());
    await visible(ann.getByRole("status").filter({ hasText: /reconnecting/i }));
    await customerSays(uma, "Written while the agent was away");
    await shot(ann, "06-reconnecting");
    down = false;
    await until("a new WebSocket", async () => reconnected > 0);
    await connected(ann);
    await sees(ann, "Uma", "Written while the agent was away");
    if ((await box.inputValue()) !== "Draft kept across the reconnect") throw new Error("the draft was lost");
    await box.press("Enter");
    await sees(ann, "Uma", "Draft kept across the reconnect");
    await customerSees(uma, "Draft kept across the reconnect");
  });

  await step("transfer taken: to an agent, refresh shows presence; then Wrap Up", async () => {
    await chooseState(bobPage, "Available");
    await stateIs(bobPage, "Available");
    await ann.getByRole("tab", { name: /^Vic/ }).click();
    await panel(ann).getByRole("button", { name: "Transfer" }).click();
    const dialog = ann.getByRole("dialog", { name: "Transfer the conversation with Vic" });
    await visible(dialog);
    const queue = dialog.getByLabel("Queue", { exact: true });
    await until("the queue list", async () =>
      (await queue.locator("option").allTextContents()).some((l) => l.startsWith("Support (")),
    );
    await dialog.getByLabel("An agent").check();
    await dialog.getByRole("button", { name: "Refresh lists" }).click();
    const agent = dialog.getByLabel("Agent", { exact: true });
    await until("Bob listed as Available", async () =>
      (await agent.locator("option").allTextContents()).includes("Bob (a2) - Available"),
    );
    await agent.selectOption({ label: "Bob (a2) - Available" });
    await shot(ann, "07-transfer-dialog");
    await dialog.getByRole("button", { name: "Transfer", exact: true }).click();
    await accept(bobPage, "Transfer from a1");
    await visible(bobPage.getByRole("tab", { name: "Vic" }));
    await sees(bobPage, "Vic", "Hello, I need help");
    await visible(ann.getByRole("dialog", { name: "Wrap Up Reasons" }));
    await shot(ann, "08-wrapup-after-transfer");
    await wrapUp(ann, "fol", "Follow-up needed", { only: true });
    await gone(ann.getByRole("tab", { name: /^Vic/ }));
  });

  await step("conference: requested, joined, the guest writes and exits", async () => {
    await ann.getByRole("tab", { name: /^Uma/ }).click();
    await panel(ann).getByRole("button", { name: "Conference", exact: true }).click();
    const dialog = ann.getByRole("dialog", { name: "Conference on the conversation with Uma" });
    await visible(dialog);
    await dialog.getByLabel("Search agents").fill("bo");
    const agent = dialog.getByLabel("Available agent");
    await until("Bob in the search result", async () => {
      const labels = await agent.locator("option").allTextContents();
      return labels.length === 1 && labels[0] === "Bob (a2) - Available";
    });
    await dialog.getByRole("button", { name: "Conference", exact: true }).click();
    await gone(dialog);
    await visible(panel(ann).getByText("Conference Requested", { exact: true }));
    await shot(ann, "09-conference-requested");
    await accept(bobPage, "Conference invitation from a1");
    await visible(panel(ann).getByText("Conference", { exact: true }));
    await sees(ann, "Uma", "Bob has joined the chat");
    await bobPage.getByRole("tab", { name: /^Uma/ }).click();
    await sees(bobPage, "Uma", "Bob has joined the chat");
    await say(bobPage, "Uma", "Bob here, I can help");
    await sees(ann, "Uma", "Bob here, I can help");
    await customerSees(uma, "Bob here, I can help");
    await visible(panel(ann).getByRole("button", { name: "End Conference" }));
    await shot(ann, "10-conference-host");
    await shot(bobPage, "11-conference-guest");
    await panel(bobPage).getByRole("button", { name: "Exit Conference" }).click();
    await wrapUp(bobPage, "esc", "Escalated", { only: true });
    await sees(ann, "Uma", "Bob has left the chat");
    await visible(panel(ann).getByText("Active", { exact: true }));
  });

  await step("end conference: both owe a wrap-up; an owed wrap-up stays visible", async () => {
    await panel(ann).getByRole("button", { name: "Conference", exact: true }).click();
    const dialog = ann.getByRole("dialog", { name: "Conference on the conversation with Uma" });
    await until("Bob offered for the conference", async () =>
      (await dialog.getByLabel("Available agent").locator("option").allTextContents()).includes("Bob (a2) - Available"),
    );
    await dialog.getByRole("button", { name: "Conference", exact: true }).click();
    await accept(bobPage, "Conference invitation from a1");
    await visible(panel(ann).getByText("Conference", { exact: true }));
    await panel(ann).getByRole("button", { name: "End Conference" }).click();
    const annWrap = ann.getByRole("dialog", { name: "Wrap Up Reasons" });
    await visible(annWrap);
    await annWrap.getByRole("button", { name: "Later" }).click();
    await visible(ann.getByRole("region", { name: "Wrap-up owed" }).getByText(/Uma/));
    await bobPage.getByRole("tab", { name: /^Uma/ }).click();
    await visible(panel(bobPage).getByText("Ended, wrap-up owed"));
    await visible(bobPage.getByRole("region", { name: "Wrap-up owed" }));
    await shot(bobPage, "12-owed-wrapup");
    await visible(uma.getByText("The chat has ended."));
    await bobPage
      .getByRole("region", { name: "Wrap-up owed" })
      .getByRole("button", { name: "Wrap up the conversation with Uma" })
      .click();
    await wrapUp(bobPage, "", "Resolved");
    await ann.getByRole("region", { name: "Wrap-up owed" }).getByRole("button", { name: /Wrap up/ }).click();
    await wrapUp(ann, "oth", "Other", { only: true });
    await gone(ann.getByRole("region", { name: "Wrap-up owed" }));
    await visible(ann.getByText("No conversations yet."));
  });

  await step("end, then wrap up with the search filter", async () => {
    await bobPage.getByRole("tab", { name: /^Vic/ }).click();
    await panel(bobPage).getByRole("button", { name: "End", exact: true }).click();
    const dialog = bobPage.getByRole("dialog", { name: "Wrap Up Reasons" });
    await visible(dialog);
    await dialog.getByLabel("Filter reasons").fill("RES");
    await until("only Resolved left", async () => {
      const labels = await dialog.getByLabel("Reason", { exact: true }).locator("option").allTextContents();
      return labels.length === 1 && labels[0] === "Resolved";
    });
    await shot(bobPage, "13-wrapup-filter");
    await wrapUp(bobPage, "", "Resolved");
    await visible(vic.getByText("The chat has ended."));
    await visible(bobPage.getByText("No conversations yet."));
  });

  await step("the agent changes its own password", async () => {
    await ann.getByRole("button", { name: "Password" }).click();
    const dialog = ann.getByRole("dialog", { name: "Change your password" });
    await dialog.getByLabel("Current password").fill("ann-password-1");
    // The form knows the engine's minimum (from `hello`) and says it before sending.
    await dialog.getByLabel("New password (at least 10 characters)").fill("too-short");
    await dialog.getByLabel("New password again").fill("too-short");
    await dialog.getByRole("button", { name: "Change password" }).click();
    await visible(dialog.getByRole("alert").filter({ hasText: "The new password needs at least 10 characters." }));
    await dialog.getByLabel("New password (at least 10 characters)").fill("ann-password-2");
    await dialog.getByLabel("New password again").fill("ann-password-2");
    await dialog.getByRole("button", { name: "Change password" }).click();
    await gone(dialog);
    await visible(ann.getByText("Your password has been changed."));
  });

  await step("sign out ends the session; the new password signs in", async () => {
    await ann.getByRole("button", { name: "Sign out" }).click();
    await visible(ann.getByText("You signed out."));
    await gone(ann.getByRole("button", { name: "Sign out" }));
    await visible(ann.getByLabel("Agent id"));
    const old = JSON.parse(await ann.evaluate(() => sessionStorage.getItem("switchboard.session")) || "null");
    if (old) throw new Error("the session stayed in sessionStorage after sign-out");
    await signIn(ann, "a1", "ann-password-2");
    await stateIs(ann, "Logged out");
  });

  await step("a password reset by the admin ends the open desktop at once, with the reason", async () => {
    const r = await admin(main, "PUT", "/api/v1/agents/a1/password", { password: "ann-password-3" });
    if (r.status !== 204) throw new Error(`password reset: ${r.status} ${JSON.stringify(r.data)}`);
    await visible(ann.getByText(/Your sign-in was ended/));
    await visible(ann.getByLabel("Agent id"));
    await shot(ann, "19-signed-out-elsewhere");
    await signIn(ann, "a1", "ann-password-3");
    await stateIs(ann, "Logged out");
  });

  await hostileNames(ann);
  await transferNotTaken(browser);
  await offerExpires(browser);
}

/** A customer name with U+202E and a 6,000-character word stay inside their boxes. */
async function hostileNames(ann) {
  const main = cfg.servers.main;
  // An unterminated RIGHT-TO-LEFT OVERRIDE: without isolation it mirrors every word after
  // the name in the same line ("Mallory" then "exe.gnp" shown for "png.exe").
  const name = "Mallory \u202Egnp.exe";
  const word = "W".repeat(6000);
  await step("a U+202E name and a 6,000-character word: offer card, transcript, dialogs", async () => {
    // Bob leaves, so that the offer comes to Ann.
    const out = await admin(main, "PUT", "/api/v1/agents/a2/state", { state: "logged_out" });
    if (out.status !== 200) throw new Error(`Bob logged out: ${out.status} ${JSON.stringify(out.data)}`);
    await chooseState(ann, "Available");
    await stateIs(ann, "Available");
    const r = await admin(main, "POST", "/api/v1/conversations", {
      entry_point: "demo-page",
      customer: { id: "u-bidi", name },
      text: word,
    });
    if (r.status !== 201) throw new Error(`conversation: ${r.status} ${JSON.stringify(r.data)}`);
    const offer = ann.getByRole("dialog", { name: "New conversation" });
    await visible(offer);
    await fitsItsBox(offer, "the offer card");
    await fitsItsBox(offer.locator("blockquote"), "the offer's text");
    await fitsItsBox(offer.locator("dl"), "the offer's fields");
    await readsLeftToRight(offer, "Source Page");
    await shot(ann, "16-hostile-offer");
    await accept(ann, "New conversation");
    // The accessible names carry the name isolated (FSI ... PDI), so find by place.
    const log = panel(ann).getByRole("log");
    await visible(log.locator("article"));
    await fitsItsBox(log, "the transcript");
    await fitsItsBox(log.locator("article").first(), "the customer's message");
    await fitsItsBox(panel(ann), "the conversation panel");
    await readsLeftToRight(panel(ann).getByRole("heading"), "Conversation with");
    const box = panel(ann).getByRole("textbox");
    await box.fill("Hello, how can I help?");
    await box.press("Enter");
    await visible(log.getByText("Hello, how can I help?", { exact: true }));
    await readsLeftToRight(log, "Hello,");
    await readsLeftToRight(ann.getByRole("tablist"), "Mallory");
    await shot(ann, "17-hostile-transcript");
    await panel(ann).getByRole("button", { name: "End", exact: true }).click();
    const dialog = ann.getByRole("dialog", { name: "Wrap Up Reasons" });
    await visible(dialog);
    // The words after the name in the same sentence still read left to right.
    await readsLeftToRight(dialog, "Choose");
    await fitsItsBox(dialog, "the Wrap Up dialog");
    await shot(ann, "18-hostile-wrapup");
    await dialog.getByRole("button", { name: "Later" }).click();
    const owed = ann.getByRole("region", { name: "Wrap-up owed" });
    await visible(owed);
    await readsLeftToRight(owed, "agent.");
    await fitsItsBox(owed, "the owed wrap-up");
    await owed.getByRole("button", { name: /Wrap up/ }).click();
    await wrapUp(ann, "", "Resolved");
    await gone(owed);
  });
}

/** A transfer that nobody takes: the invited agent goes to RONA, the conversation is dropped. */
async function transferNotTaken(browser) {
  const base = cfg.servers.transfer;
  await createAgent(base, { id: "b1", name: "Bea", queues: ["support"], password: "bea-password-1" });
  await createAgent(base, { id: "b2", name: "Cid", queues: ["support"], password: "cid-password-1" });
  const bea = await newPage(browser, "bea", base);
  const cid = await newPage(browser, "cid", base);
  const wes = await customerPage(browser, "wes", base, "Wes");
  await step("transfer not taken: RONA with why, dropped, back to Available", async () => {
    await signIn(bea, "b1", "bea-password-1");
    await signIn(cid, "b2", "cid-password-1");
    await chooseState(bea, "Available");
    await stateIs(bea, "Available");
    await customerSays(wes, "Can someone help?");
    await accept(bea, "New conversation");
    await chooseState(cid, "Available");
    await stateIs(cid, "Available");
    await panel(bea).getByRole("button", { name: "Transfer" }).click();
    const dialog = bea.getByRole("dialog", { name: "Transfer the conversation with Wes" });
    await dialog.getByLabel("An agent").check();
    const agent = dialog.getByLabel("Agent", { exact: true });
    await until("Cid listed", async () => (await agent.locator("option").allTextContents()).includes("Cid (b2) - Available"));
    await agent.selectOption({ label: "Cid (b2) - Available" });
    await dialog.getByRole("button", { name: "Transfer", exact: true }).click();
    await visible(cid.getByRole("dialog", { name: "Transfer from b1" }));
    // Nobody clicks: the 1.5 s deadline passes.
    await gone(cid.getByRole("dialog", { name: "Transfer from b1" }));
    const rona = cid.getByRole("alert").filter({ hasText: "RONA (Redirection On No Answer)" });
    await visible(rona);
    await visible(rona.getByText("You did not accept an offer before its deadline."));
    await stateIs(cid, "RONA");
    await shot(cid, "14-rona-after-transfer");
    await visible(wes.getByText("The chat has ended."));
    await rona.getByRole("button", { name: "Available" }).click();
    await stateIs(cid, "Available");
    await gone(rona);
    await wrapUp(bea, "", "Other");
  });
}

/** A new offer that expires: RONA, then back to Available by keyboard alone. */
async function offerExpires(browser) {
  const base = cfg.servers.offer;
  await createAgent(base, { id: "c1", name: "Dee", queues: ["support"], password: "dee-password-1" });
  const dee = await newPage(browser, "dee", base);
  const xia = await customerPage(browser, "xia", base, "Xia");
  await step("offer expires: RONA shown with why; keyboard back to Available", async () => {
    await signIn(dee, "c1", "dee-password-1");
    const stateButton = dee.getByRole("button", { name: /^State: / });
    await stateButton.focus();
    await dee.keyboard.press("ArrowDown");
    await visible(dee.getByRole("menu", { name: "Change state" }));
    // The menu opens on the current state (Log out); Home goes to the first choice.
    await dee.keyboard.press("Home");
    await dee.keyboard.press("Enter");
    await stateIs(dee, "Available");
    await customerSays(xia, "Hi there");
    await visible(dee.getByRole("dialog", { name: "New conversation" }));
    await gone(dee.getByRole("dialog", { name: "New conversation" }));
    await visible(dee.getByText("The offer of Xia's conversation expired."));
    await stateIs(dee, "RONA");
    await visible(dee.getByRole("alert").filter({ hasText: "You did not accept an offer before its deadline." }));
    await shot(dee, "15-rona");
    // The customer leaves, so no new offer comes once the agent is Available again.
    await xia.getByRole("button", { name: "End chat" }).click();
    await visible(xia.getByText("The chat has ended."));
    await stateButton.focus();
    await dee.keyboard.press("ArrowDown");
    await visible(dee.getByRole("menuitemradio", { name: "Available" }));
    await dee.keyboard.press("Enter");
    await stateIs(dee, "Available");
    await gone(dee.getByRole("alert").filter({ hasText: "RONA (Redirection On No Answer)" }));
  });
}
