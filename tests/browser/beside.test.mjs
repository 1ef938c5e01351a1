// Issue 26, beside the agent, in Debian's Chromium: the customer's typing on the desktop,
// the `/` canned responses picker (by keyboard), internal notes (marked, never shown to
// the customer), a transfer's note in the receiving agent's offer, the customer's place
// in line in the demo chat, the notes marked in the supervisor page's transcript, and the
// customer's earlier conversations beside the chat (History) with a transcript opened.
// Run by tests/browser.rs with {servers: {main}, ...}.
//
// Elements are found by role, label and visible text, as a person finds them; every wait
// has a generous limit and no deadline runs out during the test.

import { chromium } from "playwright-core";
import { script } from "./script.mjs";
import { gone, until, visible } from "./waits.mjs";

const { cfg, base, tokens, pages, log, shot, step, call, runIn } = script("beside", 300_000);

async function newPage(browser, name, url) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => log(`${name} page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") log(`${name} console error: ${m.text().replace(/token=[^\s']+/g, "token=…")}`);
  });
  pages.push([name, page]);
  await page.goto(url);
  return page;
}

async function agentPage(browser, id, password) {
  const page = await newPage(browser, id, `${base}/`);
  await page.getByLabel("Agent id").fill(id);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await visible(page.getByRole("button", { name: /^State: / }));
  tokens.add(JSON.parse(await page.evaluate(() => sessionStorage.getItem("switchboard.session"))).token);
  await page.getByRole("button", { name: /^State: / }).click();
  await page.getByRole("menuitemradio", { name: "Available", exact: true }).click();
  await visible(page.getByRole("button", { name: "State: Available. Change state" }));
  return page;
}

const transcript = (page, customer) => page.getByRole("log", { name: `Transcript with ${customer}` });
const chat = (page) => page.getByRole("log", { name: "Chat" });

await runIn(chromium, run);

async function run(browser) {
  for (const a of [
    { id: "a1", name: "Ann Lee", queues: ["support"], password: "ann-password-1" },
    { id: "a2", name: "Bob", queues: ["support"], password: "bob-password-1" },
  ]) {
    tokens.add((await call("POST", "/api/v1/agents", cfg.admin, a)).token);
  }
  await call("POST", "/api/v1/canned-responses", cfg.admin, {
    id: "hello",
    code: "hello",
    text: "Hi {{customer.first_name}}, this is {{agent.first_name}} from {{queue.name}}.",
  });
  await call("POST", "/api/v1/canned-responses", cfg.admin, {
    id: "help",
    code: "help",
    text: "How can I help, {{customer.first_name}}?",
  });
  await call("POST", "/api/v1/canned-responses", cfg.admin, { id: "bye", code: "bye", text: "Goodbye!" });
  const ann = await agentPage(browser, "a1", "ann-password-1");
  const bob = await agentPage(browser, "a2", "bob-password-1");
  const carol = await newPage(browser, "carol", `${base}/demo/customer`);
  await carol.getByLabel("Your name").fill("Carol Smith");
  const carolBox = carol.getByLabel("Message", { exact: true });

  await step("Carol writes; Ann accepts", async () => {
    await carolBox.fill("Hello, my parcel is late");
    await carolBox.press("Enter");
    await visible(chat(carol).getByText("Hello, my parcel is late", { exact: true }));
    const offer = ann.getByRole("dialog", { name: "New conversation" });
    await visible(offer);
    await offer.getByRole("button", { name: "Accept" }).click();
    await gone(offer);
    await visible(transcript(ann, "Carol Smith").getByText("Hello, my parcel is late", { exact: true }));
  });

  await step("Carol types: Ann sees it, and it goes when Carol stops", async () => {
    await carolBox.click();
    await carolBox.pressSequentially("It was due", { delay: 30 });
    const typing = ann.getByRole("status").filter({ hasText: "Carol Smith is typing…" });
    await visible(typing);
    await shot(ann, "beside-01-customer-typing");
    // The page says `off` after 2.5 s without a keystroke; the desktop then shows nothing.
    await gone(typing);
    // Typing again, then emptying the box: it stops showing at once, not after a pause.
    await carolBox.pressSequentially(" yesterday", { delay: 30 });
    await visible(typing);
    await carolBox.fill("");
    await gone(typing);
  });

  await step("`/` and letters offer canned responses, chosen by keyboard, edited, sent", async () => {
    const box = ann.getByLabel("Message to Carol Smith");
    await box.click();
    await box.pressSequentially("/he", { delay: 30 });
    const list = ann.getByRole("listbox", { name: "Canned responses" });
    await visible(list);
    await until("the two matching responses, filled", async () => {
      const options = await list.getByRole("option").allTextContents();
      return (
        options.length === 2 &&
        options[0].startsWith("/hello") &&
        options[0].includes("Hi Carol, this is Ann from Support.") &&
        options[1].startsWith("/help")
      );
    });
    if ((await list.getByRole("option", { name: /^\/bye/ }).count()) !== 0) throw new Error("bye listed");
    await shot(ann, "beside-02-canned-picker");
    await box.press("ArrowDown");
    await visible(list.getByRole("option", { name: /^\/help/, selected: true }));
    await box.press("ArrowUp");
    await visible(list.getByRole("option", { name: /^\/hello/, selected: true }));
    await box.press("Enter");
    await gone(list);
    await until("the filled text in the box", async () => (await box.inputValue()) === "Hi Carol, this is Ann from Support.");
    await box.press("End");
    await box.pressSequentially(" Let me look.", { delay: 10 });
    await box.press("Enter");
    const said = "Hi Carol, this is Ann from Support. Let me look.";
    await visible(transcript(ann, "Carol Smith").getByText(said, { exact: true }));
    await visible(chat(carol).getByText(said, { exact: true }));
    // Escape closes the list and leaves the letters.
    await box.pressSequentially("/by", { delay: 30 });
    await visible(list);
    await box.press("Escape");
    await gone(list);
    if ((await box.inputValue()) !== "/by") throw new Error("Escape changed the text");
    await box.fill("");
  });

  await step("an internal note is marked and never reaches Carol", async () => {
    await ann.getByLabel("Internal note", { exact: true }).check();
    const box = ann.getByLabel("Internal note on the conversation with Carol Smith");
    await box.fill("VIP: second late parcel this month");
    await box.press("Enter");
    const note = transcript(ann, "Carol Smith").getByRole("article", { name: /^Internal note by Ann Lee \(you\)/ });
    await visible(note);
    await visible(note.getByText("VIP: second late parcel this month", { exact: true }));
    await shot(ann, "beside-03-internal-note");
    await ann.getByLabel("Internal note", { exact: true }).uncheck();
    await ann.getByLabel("Message to Carol Smith").fill("One moment please.");
    await ann.getByLabel("Message to Carol Smith").press("Enter");
    await visible(chat(carol).getByText("One moment please.", { exact: true }));
    if (await chat(carol).getByText("VIP", { exact: false }).count()) throw new Error("Carol sees the note");
    await shot(carol, "beside-04-customer-without-note");
  });

  await step("a transfer with a note: Bob's offer shows it; his transcript marks the notes", async () => {
    await ann.getByRole("tabpanel").getByRole("button", { name: "Transfer" }).click();
    const dialog = ann.getByRole("dialog", { name: "Transfer the conversation with Carol Smith" });
    await visible(dialog);
    await dialog.getByLabel("An agent").check();
    const agent = dialog.getByLabel("Agent", { exact: true });
    await until("Bob listed as Available", async () =>
      (await agent.locator("option").allTextContents()).includes("Bob (a2) - Available"),
    );
    await agent.selectOption({ label: "Bob (a2) - Available" });
    await dialog.getByLabel("Note for the receiving agent (optional)").fill("Wants a refund, not a voucher");
    await shot(ann, "beside-05-transfer-with-note");
    await dialog.getByRole("button", { name: "Transfer", exact: true }).click();
    const offer = bob.getByRole("dialog", { name: "Transfer from a1" });
    await visible(offer);
    const note = offer.getByRole("region", { name: "Note" });
    await visible(note.getByText("Note from a1", { exact: true }));
    await visible(note.getByText("Wants a refund, not a voucher", { exact: true }));
    await shot(bob, "beside-06-offer-with-note");
    await offer.getByRole("button", { name: "Accept" }).click();
    await gone(offer);
    const t = transcript(bob, "Carol Smith");
    await visible(t.getByRole("article", { name: /^Internal note by Ann Lee/ }).getByText("VIP: second late parcel this month"));
    await visible(t.getByRole("article", { name: /^Internal note by Ann Lee/ }).getByText("Wants a refund, not a voucher"));
    await shot(bob, "beside-07-notes-after-transfer");
  });

  await step("a customer who waits is told its place in line, in the demo chat", async () => {
    // Ann owes a wrap-up and Bob has Carol: both slots are taken, so Dan waits.
    await call("PATCH", "/api/v1/queues/support", cfg.admin, {
      place_updates: {
        templates: {
          default: {
            text: "You are number {{position}} in line; about {{wait_minutes}} min.",
            text_without_wait: "You are number {{position}} in line.",
          },
        },
      },
    });
    const dan = await newPage(browser, "dan", `${base}/demo/customer`);
    await dan.getByLabel("Your name").fill("Dan");
    const box = dan.getByLabel("Message", { exact: true });
    await box.fill("Is anyone there?");
    await box.press("Enter");
    await visible(chat(dan).getByText("You are number 1 in line.", { exact: true }));
    await shot(dan, "beside-09-place-in-line");
  });

  await step("the supervisor's transcript marks the notes", async () => {
    const sup = await call("POST", "/api/v1/supervisors", cfg.admin, { id: "s1", name: "Sue" });
    tokens.add(sup.token);
    const page = await newPage(browser, "supervisor", `${base}/supervisor`);
    await page.getByRole("button", { name: "Use a token instead" }).click();
    await page.getByLabel("Supervisor token").fill(sup.token);
    await page.getByRole("button", { name: "Sign in with token" }).click();
    await visible(page.getByRole("status").filter({ hasText: "Live" }));
    const bobRow = page
      .getByRole("table", { name: "Agents" })
      .getByRole("row")
      .filter({ has: page.getByRole("rowheader", { name: "Bob", exact: true }) });
    await bobRow.getByRole("button", { name: /^c-/ }).first().click();
    const t = page.getByRole("region", { name: /Conversation/ });
    const item = t.getByRole("listitem").filter({ hasText: "VIP: second late parcel this month" });
    await visible(item);
    await visible(item.getByText("Internal note", { exact: true }));
    await shot(page, "beside-08-supervisor-transcript");
  });

  // Issue 26 item 6. A queue and an entry point of their own, so that Dan, who waits in
  // support, is not offered to Cleo.
  await call("POST", "/api/v1/queues", cfg.admin, { id: "sales", name: "Sales" });
  await call("POST", "/api/v1/entry-points", cfg.admin, { id: "shop-page", name: "Shop Page", queue: "sales" });
  tokens.add(
    (await call("POST", "/api/v1/agents", cfg.admin, { id: "a3", name: "Cleo Park", queues: ["sales"], password: "cleo-password-1" }))
      .token,
  );
  const cleo = await agentPage(browser, "a3", "cleo-password-1");
  const emaWrites = (text) =>
    call("POST", "/api/v1/conversations", cfg.admin, { entry_point: "shop-page", customer: { id: "u-ema", name: "Ema Stone" }, text });
  const take = async () => {
    const offer = cleo.getByRole("dialog", { name: "New conversation" });
    await visible(offer);
    await offer.getByRole("button", { name: "Accept" }).click();
    await gone(offer);
  };
  const history = cleo.getByRole("complementary", { name: "History" });

  await step("History: a first conversation has none; it is answered, noted, wrapped up", async () => {
    await emaWrites("Where is my order 1234?");
    await take();
    await visible(transcript(cleo, "Ema Stone").getByText("Where is my order 1234?", { exact: true }));
    await visible(history.getByText("No earlier conversations.", { exact: true }));
    if ((await history.getByRole("listitem").count()) !== 0) throw new Error("a first conversation has history");
    await shot(cleo, "beside-10-history-empty");
    const box = cleo.getByLabel("Message to Ema Stone");
    await box.fill("It ships tomorrow.");
    await box.press("Enter");
    await visible(transcript(cleo, "Ema Stone").getByText("It ships tomorrow.", { exact: true }));
    await cleo.getByLabel("Internal note", { exact: true }).check();
    const note = cleo.getByLabel("Internal note on the conversation with Ema Stone");
    await note.fill("Promised shipping tomorrow");
    await note.press("Enter");
    await visible(transcript(cleo, "Ema Stone").getByRole("article", { name: /^Internal note by Cleo Park/ }));
    await cleo.getByLabel("Internal note", { exact: true }).uncheck();
    await cleo.getByRole("tabpanel").getByRole("button", { name: "End", exact: true }).click();
    const dialog = cleo.getByRole("dialog", { name: "Wrap Up Reasons" });
    await visible(dialog);
    await dialog.getByLabel("Reason", { exact: true }).selectOption({ label: "Resolved" });
    await dialog.getByRole("button", { name: "Submit Wrap Up" }).click();
    await gone(dialog);
    await gone(cleo.getByRole("tab", { name: /Ema Stone/ }));
  });

  await step("History: Ema writes again; the earlier conversation is beside it, its transcript opens read-only", async () => {
    await emaWrites("The order did not ship");
    await take();
    await visible(transcript(cleo, "Ema Stone").getByText("The order did not ship", { exact: true }));
    const items = history.getByRole("listitem");
    await until("one earlier conversation listed", async () => (await items.count()) === 1);
    const earlier = history.getByRole("button", { name: /, Cleo Park: Resolved$/ });
    await visible(earlier);
    // Its date and time as the browser writes them, with the agent and the reason.
    const when = await earlier.locator("time").textContent();
    if (!/\d/.test(when) || !(await earlier.textContent()).includes("Resolved")) throw new Error(`item reads "${await earlier.textContent()}"`);
    await shot(cleo, "beside-11-history-list");
    await earlier.click();
    const opened = history.getByRole("region", { name: /^Earlier conversation, / });
    await visible(opened);
    await visible(opened.getByText("Read-only: this conversation has ended", { exact: true }));
    await visible(opened.getByRole("heading", { name: `Earlier conversation, ${when}` }));
    const log = opened.getByRole("log", { name: /^Transcript of the earlier conversation of / });
    await visible(log.getByText("Where is my order 1234?", { exact: true }));
    await visible(log.getByText("It ships tomorrow.", { exact: true }));
    const note = log.getByRole("article", { name: /^Internal note by Cleo Park/ });
    await visible(note.getByText("Promised shipping tomorrow", { exact: true }));
    await visible(note.getByText("Internal note", { exact: true }));
    // Read-only: no box or button writes in it; the chat with Ema goes on beside it.
    if ((await opened.getByRole("textbox").count()) !== 0) throw new Error("the earlier transcript can be written in");
    if ((await earlier.getAttribute("aria-current")) !== "true") throw new Error("the opened item is not marked");
    await shot(cleo, "beside-12-history-transcript");
    const box = cleo.getByLabel("Message to Ema Stone");
    await box.fill("I see it was promised for yesterday; let me check.");
    await box.press("Enter");
    await visible(transcript(cleo, "Ema Stone").getByText("I see it was promised for yesterday; let me check.", { exact: true }));
    await opened.getByRole("button", { name: "Close the earlier conversation" }).click();
    await gone(opened);
  });
}
