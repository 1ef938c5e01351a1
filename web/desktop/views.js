// The desktop's views. Each one is built once and updated in place from the store, so a
// re-render never takes focus, selection or typed text away from the agent.
//
// Views call `actions` (app.js) for everything that talks to the engine.

import { h, fill, setText, show, iso, isoText, setParts, uid } from "/common/dom.js";
import { clock, dateTime, presenceLabel } from "/common/format.js";
import { endedReason, explain, stateReason } from "/common/errors.js";

// ----- messages to the person -----

export class Messages {
  constructor(root) {
    this.root = root;
  }

  /** Shows `text`; errors stay until dismissed, the rest go after 10 s. */
  show(text, kind = "info") {
    const item = h(
      "div",
      { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" },
      h("span", { text }),
      h("button", { type: "button", class: "dismiss", "aria-label": "Dismiss message", onclick: () => item.remove() }, "×"),
    );
    this.root.append(item);
    while (this.root.children.length > 5) this.root.firstElementChild.remove();
    if (kind !== "error") setTimeout(() => item.remove(), 10000);
  }

  clear() {
    this.root.replaceChildren();
  }
}

// ----- presence: name, state, timer, menu -----

export class PresenceView {
  /** `signal` ends the listeners on the page's fixed elements when the person signs out. */
  constructor(actions, signal) {
    this.actions = actions;
    this.button = document.getElementById("state-button");
    this.label = document.getElementById("state-label");
    this.timer = document.getElementById("state-timer");
    this.menu = document.getElementById("state-menu");
    this.name = document.getElementById("agent-name");
    this.rona = document.getElementById("rona-banner");
    this.ronaWhy = document.getElementById("rona-why");
    this.idleCodes = [];
    // The elements outlive a sign-in: without `signal`, a second sign-in in the same tab
    // would add a second click listener, and one click would open and close the menu.
    const opts = { signal };
    this.button.addEventListener("click", () => (this.menu.hidden ? this.open() : this.close()), opts);
    this.button.addEventListener(
      "keydown",
      (e) => {
        if (e.key === "ArrowDown" || e.key === "ArrowUp") {
          e.preventDefault();
          this.open(e.key === "ArrowUp" ? -1 : 0);
        }
      },
      opts,
    );
    this.menu.addEventListener("keydown", (e) => this.onMenuKey(e), opts);
    document.addEventListener(
      "click",
      (e) => {
        if (!this.menu.hidden && !this.menu.contains(e.target) && !this.button.contains(e.target)) this.close(false);
      },
      opts,
    );
    document.getElementById("rona-available").addEventListener("click", () => actions.setState("available"), opts);
  }

  setIdleCodes(codes) {
    this.idleCodes = codes;
  }

  items() {
    return [...this.menu.querySelectorAll('[role="menuitemradio"]')];
  }

  open(index = 0) {
    this.buildMenu();
    this.menu.hidden = false;
    this.button.setAttribute("aria-expanded", "true");
    const items = this.items();
    const checked = items.findIndex((i) => i.getAttribute("aria-checked") === "true");
    const at = index < 0 ? items.length - 1 : checked >= 0 ? checked : index;
    items[at]?.focus();
  }

  close(focusButton = true) {
    this.menu.hidden = true;
    this.button.setAttribute("aria-expanded", "false");
    if (focusButton) this.button.focus();
  }

  onMenuKey(e) {
    const items = this.items();
    const i = items.indexOf(document.activeElement);
    const move = (to) => {
      e.preventDefault();
      items[(to + items.length) % items.length].focus();
    };
    if (e.key === "ArrowDown") move(i + 1);
    else if (e.key === "ArrowUp") move(i - 1);
    else if (e.key === "Home") move(0);
    else if (e.key === "End") move(items.length - 1);
    else if (e.key === "Escape") {
      e.preventDefault();
      this.close();
    } else if (e.key === "Tab") this.close(false);
    else if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      document.activeElement?.click();
    }
  }

  buildMenu() {
    const agent = this.agent;
    const choice = (label, state, idleCode) => {
      const checked =
        agent && agent.state === state && (state !== "idle" || agent.idle_code === idleCode) ? "true" : "false";
      return h(
        "li",
        { role: "none" },
        h("button", {
          type: "button",
          role: "menuitemradio",
          "aria-checked": checked,
          tabindex: "-1",
          text: label,
          onclick: () => {
            this.close();
            this.actions.setState(state, idleCode);
          },
        }),
      );
    };
    fill(
      this.menu,
      choice("Available", "available"),
      this.idleCodes.map((c) => choice(c.label, "idle", c.code)),
      h("li", { role: "separator" }),
      choice("Log out", "logged_out"),
    );
  }

  update(state) {
    const agent = state.agent;
    this.agent = agent;
    if (!agent) return;
    setText(this.name, agent.name);
    const label = presenceLabel(agent, this.idleCodes);
    setText(this.label, label);
    this.button.dataset.state = agent.state;
    this.button.setAttribute("aria-label", `State: ${label}. Change state`);
    this.timer.dataset.since = agent.state_since;
    const rona = agent.state === "rona";
    show(this.rona, rona);
    if (rona) setText(this.ronaWhy, stateReason(state.stateReason || "offer_expired"));
    if (!this.menu.hidden) this.buildMenu();
  }
}

// ----- offers -----

const OFFER_TITLE = {
  new: "New conversation",
  transfer: "Transfer",
  conference: "Conference invitation",
};

export class OffersView {
  constructor(root, actions) {
    this.root = root;
    this.actions = actions;
    this.cards = new Map();
  }

  update(state) {
    for (const [id, card] of this.cards) {
      if (!state.offers.has(id)) {
        card.remove();
        this.cards.delete(id);
      }
    }
    for (const [id, offer] of state.offers) {
      if (this.cards.has(id)) continue;
      const titleId = `offer-title-${id}`;
      const from = offer.from_agent ? ` from ${offer.from_agent}` : "";
      const accept = h("button", { type: "button", class: "primary", text: "Accept" });
      const card = h(
        "div",
        { class: `offer ${offer.kind}`, role: "dialog", "aria-modal": "false", "aria-labelledby": titleId },
        h("h2", { id: titleId, text: `${OFFER_TITLE[offer.kind] || "Offer"}${from}` }),
        h(
          "dl",
          {},
          h("dt", { text: "Queue Name" }),
          h("dd", {}, iso(offer.queue_name)),
          h("dt", { text: "Source Page" }),
          h("dd", {}, iso(offer.source_page)),
          h("dt", { text: "Customer" }),
          h("dd", {}, iso(offer.customer.name)),
          h("dt", { text: "Timer" }),
          h("dd", { class: "timer", dataset: { since: offer.offered_at } }),
        ),
        offer.text ? h("blockquote", { text: offer.text, dir: "auto" }) : null,
        // The transfer's or conference's note for this agent: internal, never the customer's.
        offer.note
          ? h(
              "section",
              { class: "offer-note", "aria-label": "Note" },
              h("h3", { text: offer.from_agent ? `Note from ${offer.from_agent}` : "Note" }),
              h("p", { text: offer.note, dir: "auto" }),
            )
          : null,
        accept,
      );
      accept.addEventListener("click", async () => {
        accept.disabled = true;
        await this.actions.accept(id);
        accept.disabled = false;
      });
      this.cards.set(id, card);
      this.root.append(card);
    }
    show(this.root, state.offers.size > 0);
  }
}

// ----- owed wrap-ups -----

export class OwedView {
  constructor(root, list, actions) {
    this.root = root;
    this.list = list;
    this.actions = actions;
  }

  update(state) {
    const owed = [...state.conversations.values()].filter((e) => e.owed);
    show(this.root, owed.length > 0);
    fill(
      this.list,
      owed.map((e) =>
        h(
          "li",
          {},
          h(
            "span",
            {},
            iso(e.conv.customer.name),
            `: ${e.conv.state === "ended" ? endedReason(e.conv.ended_reason) : "you left this conversation."}`,
          ),
          h("button", {
            type: "button",
            text: "Wrap Up",
            "aria-label": `Wrap up the conversation with ${isoText(e.conv.customer.name)}`,
            onclick: () => this.actions.openWrapup(e.conv.id),
          }),
        ),
      ),
    );
  }
}

// ----- conversations: tabs and panels -----

/** What the control pane says about a conversation. */
function status(e) {
  const c = e.conv;
  if (c.state === "ended") return e.owed ? "Ended, wrap-up owed" : "Ended";
  if (e.left) return "You left, wrap-up owed";
  if (c.conference_state === "conference_requested") return "Conference Requested";
  if (c.conference_state === "conference") return "Conference";
  if (c.state === "active") return "Active";
  return c.state;
}

const ATTACHMENT = { image: "Image", audio: "Audio", video: "Video", file: "File", location: "Location", sticker: "Sticker", fallback: "Link" };

/** Only web links are followed; anything else (javascript:, data:) is shown as text. */
function safeUrl(url) {
  try {
    const u = new URL(url, location.href);
    return u.protocol === "https:" || u.protocol === "http:" ? u.href : null;
  } catch {
    return null;
  }
}

/** Typing goes off after this long without a keystroke. */
const TYPING_PAUSE_MS = 2000;
/** While the agent keeps typing, `typing` on is repeated this often (the engine's bound). */
const TYPING_REPEAT_MS = 3000;

const DELIVERY = {
  pending: "Sending",
  sent: "Sent",
  delivered: "Delivered",
  read: "Read",
  failed: "Failed",
  not_sent: "Not sent (outside Messenger's 24-hour window)",
};

class ConversationPanel {
  constructor(id, actions, store) {
    this.id = id;
    this.actions = actions;
    this.store = store;
    this.messages = new Map();
    const tabId = `tab-${id}`;
    const panelId = `panel-${id}`;
    this.badge = h("span", { class: "badge", hidden: true });
    this.tabName = h("bdi", {});
    this.tab = h(
      "button",
      {
        type: "button",
        role: "tab",
        id: tabId,
        "aria-controls": panelId,
        onclick: () => store.select(id),
      },
      this.tabName,
      this.badge,
    );
    this.title = h("h2", {});
    this.meta = h("p", { class: "meta" });
    this.status = h("span", { class: "status", role: "status" });
    this.controls = h("div", { class: "controls", role: "toolbar", "aria-label": "Conversation actions" });
    this.ended = h("p", { class: "ended", hidden: true });
    // "<customer> is typing…" while the engine says so (issue 26 item 8).
    this.typingLine = h("p", { class: "typing", role: "status", "aria-live": "polite" });
    this.transcript = h("div", { class: "transcript", role: "log", "aria-live": "polite", tabindex: "0" });
    const composeId = `compose-${id}`;
    this.composeLabel = h("label", { for: composeId, class: "visually-hidden" });
    this.compose = h("textarea", {
      id: composeId,
      rows: "3",
      placeholder: "Write a message. Enter sends, Shift+Enter adds a line.",
    });
    this.compose.value = store.state.drafts.get(id) || "";
    this.compose.addEventListener("input", () => {
      store.state.drafts.set(id, this.compose.value);
      // A note is for the agents: the customer is not shown that anyone types.
      if (!this.noteMode.checked) this.typed();
    });
    this.compose.addEventListener("keydown", (e) => {
      if (this.picker.keydown(e)) return;
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.send();
      }
    });
    // `/` and letters: the canned responses whose code matches (issue 26 item 4).
    this.picker = new CannedPicker(this.compose, () => this.actions.cannedResponses(this.id), (text) => {
      store.state.drafts.set(id, this.compose.value);
      return text;
    });
    this.compose.addEventListener("input", () => this.picker.update());
    this.compose.addEventListener("blur", () => setTimeout(() => this.picker.close(), 150));
    this.sendButton = h("button", { type: "button", class: "primary", text: "Send", onclick: () => this.send() });
    // Internal note mode: what is written goes to the transcript for the agents only.
    this.noteMode = h("input", { type: "checkbox", id: `note-mode-${id}` });
    this.noteMode.addEventListener("change", () => this.modeChanged());
    this.noteToggle = h("label", { class: "note-toggle", for: `note-mode-${id}` }, this.noteMode, " Internal note");
    this.fileInput = h("input", { type: "file", hidden: true, tabindex: "-1", "aria-hidden": "true" });
    this.fileInput.addEventListener("change", () => this.sendFiles());
    this.attachButton = h("button", { type: "button", text: "Attach File", onclick: () => this.fileInput.click() });
    // The seq of the last customer message that `seen` was sent for.
    this.seenSeq = 0;
    // The customer's earlier conversations, beside the chat (issue 26 item 6).
    this.history = new HistoryView(id, actions, (m) => this.message(m, this.me));
    this.panel = h(
      "section",
      { role: "tabpanel", id: panelId, "aria-labelledby": tabId, class: "panel", hidden: true },
      h("div", { class: "panel-head" }, h("div", {}, this.title, this.meta), this.status),
      this.controls,
      this.ended,
      h(
        "div",
        { class: "panel-body" },
        h(
          "div",
          { class: "chat" },
          this.transcript,
          this.typingLine,
          this.picker.list,
          h("div", { class: "compose" }, this.composeLabel, this.compose, h("div", { class: "compose-actions" }, this.sendButton, this.attachButton, this.noteToggle), this.fileInput),
        ),
        this.history.root,
      ),
    );
  }

  /**
   * The agent typed: `typing` on at once (the engine shows it at most once every few
   * seconds), then off after TYPING_PAUSE_MS without a keystroke, or on send.
   */
  typed() {
    if (!this.canWrite) return;
    const now = Date.now();
    if (!this.typingSince || now - this.typingSince >= TYPING_REPEAT_MS) {
      this.typingSince = now;
      this.actions.typing(this.id, true);
    }
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => this.stopTyping(), TYPING_PAUSE_MS);
  }

  stopTyping() {
    clearTimeout(this.typingTimer);
    if (!this.typingSince) return;
    this.typingSince = 0;
    if (this.canWrite) this.actions.typing(this.id, false);
  }

  async sendFiles() {
    const files = [...this.fileInput.files];
    this.fileInput.value = "";
    this.attachButton.disabled = true;
    for (const f of files) await this.actions.sendFile(this.id, f);
    this.attachButton.disabled = !this.canWrite;
  }

  /** Switches the box between a message to the customer and an internal note. */
  modeChanged() {
    const note = this.noteMode.checked;
    if (note) this.stopTyping();
    this.compose.classList.toggle("noting", note);
    setText(this.sendButton, note ? "Add Note" : "Send");
    this.compose.placeholder = note
      ? "Write an internal note: only agents see it. Enter adds it, Shift+Enter adds a line."
      : "Write a message. Enter sends, Shift+Enter adds a line.";
    if (this.name) setText(this.composeLabel, note ? `Internal note on the conversation with ${this.name}` : `Message to ${this.name}`);
  }

  async send() {
    const text = this.compose.value;
    if (!text.trim() || this.sending) return;
    const note = this.noteMode.checked;
    if (!note) this.stopTyping();
    this.sending = true;
    this.sendButton.disabled = true;
    const ok = await (note ? this.actions.note(this.id, text) : this.actions.send(this.id, text));
    this.sending = false;
    this.sendButton.disabled = !this.canWrite;
    // The text leaves the box only once the engine has it; typing meanwhile is kept.
    if (ok && this.compose.value === text) {
      this.compose.value = "";
      this.store.state.drafts.delete(this.id);
    }
  }

  button(label, onclick, extra = {}) {
    return h("button", { type: "button", text: label, onclick, ...extra });
  }

  update(e, me, selected) {
    const c = e.conv;
    const name = c.customer.name;
    setText(this.tabName, name);
    this.tab.setAttribute("aria-selected", selected ? "true" : "false");
    this.tab.tabIndex = selected ? 0 : -1;
    this.tab.dataset.state = e.owed ? "owed" : c.state;
    const unread = selected ? 0 : e.unread;
    show(this.badge, unread > 0);
    setText(this.badge, String(unread));
    this.badge.setAttribute("aria-label", `${unread} unread`);
    this.panel.hidden = !selected;

    setParts(this.title, "Conversation with ", iso(name));
    const meta = [c.source_page && ["Source Page: ", iso(c.source_page)], c.queue_name && ["Queue: ", iso(c.queue_name)]].filter(Boolean);
    setParts(this.meta, meta.flatMap((part, i) => (i ? [" · ", ...part] : part)));
    setText(this.status, status(e));
    this.status.dataset.status = status(e);
    this.name = isoText(name);
    setText(this.composeLabel, this.noteMode.checked ? `Internal note on the conversation with ${this.name}` : `Message to ${this.name}`);

    const host = c.owner === me && !e.left;
    const guest = c.guest === me && !e.left;
    const active = c.state === "active";
    const buttons = [];
    if (active && host) {
      buttons.push(this.button("Transfer", () => this.actions.openTransfer(this.id)));
      buttons.push(
        this.button("Conference", () => this.actions.openConference(this.id), {
          disabled: c.conference_state !== "none",
        }),
      );
      if (c.conference_state !== "none") buttons.push(this.button("End Conference", () => this.actions.endConference(this.id)));
      buttons.push(this.button("End", () => this.actions.end(this.id), { class: "danger" }));
    }
    if (active && guest) buttons.push(this.button("Exit Conference", () => this.actions.exitConference(this.id)));
    if (e.owed) buttons.push(this.button("Wrap Up", () => this.actions.openWrapup(this.id), { class: "primary" }));
    const signature = buttons.map((b) => `${b.textContent}:${b.disabled}`).join("|");
    if (signature !== this.signature) {
      // Rebuild only when the set of actions changed, and keep focus on the same action.
      const focused = this.controls.contains(document.activeElement) ? document.activeElement.textContent : null;
      fill(this.controls, buttons);
      this.signature = signature;
      if (focused) [...this.controls.children].find((b) => b.textContent === focused && !b.disabled)?.focus();
    }

    show(this.ended, c.state === "ended" || e.left);
    setText(this.ended, c.state === "ended" ? endedReason(c.ended_reason) : "You left this conversation; it goes on without you.");

    this.canWrite = active && (host || guest);
    this.compose.disabled = !this.canWrite;
    this.sendButton.disabled = !this.canWrite || !!this.sending;
    this.attachButton.disabled = !this.canWrite;
    this.noteMode.disabled = !this.canWrite;
    this.attachButton.setAttribute("aria-label", `Attach a file for ${isoText(name)}`);
    if (!this.canWrite) clearTimeout(this.typingTimer);

    this.transcript.setAttribute("aria-label", `Transcript with ${isoText(name)}`);
    this.renderTranscript(c.transcript || [], me);
    this.me = me;
    // Read when the agent serves the customer and looks at the chat: on its first showing,
    // and again each time the tab is chosen (a conversation before it may have been
    // wrapped up since).
    if (selected && this.canWrite && !this.wasSelected) this.history.load();
    this.wasSelected = selected;
    this.showTyping(e, name);

    // Shown with a customer message not seen yet: tell the customer (Messenger's mark_seen).
    const lastCustomer = (c.transcript || []).reduce((seq, m) => (m.author.kind === "customer" ? m.seq : seq), 0);
    if (selected && this.canWrite && lastCustomer > this.seenSeq && document.visibilityState !== "hidden") {
      this.seenSeq = lastCustomer;
      this.actions.seen(this.id);
    }
  }

  /** The customer's typing, until the time the engine gave; then it goes by itself. */
  showTyping(e, name) {
    const left = (e.typingUntil || 0) - Date.now();
    const typing = left > 0 && e.conv.state !== "ended";
    setParts(this.typingLine, ...(typing ? [iso(name), " is typing…"] : []));
    clearTimeout(this.typingExpiry);
    if (typing) this.typingExpiry = setTimeout(() => this.showTyping(e, name), left + 50);
  }

  renderTranscript(transcript, me) {
    const atBottom = this.transcript.scrollHeight - this.transcript.scrollTop - this.transcript.clientHeight < 40;
    let added = false;
    for (const m of transcript) {
      const known = this.messages.get(m.seq);
      if (known) {
        this.updateDelivery(known, m);
        continue;
      }
      const el = this.message(m, me);
      this.messages.set(m.seq, el);
      this.transcript.append(el);
      added = true;
    }
    if (added && atBottom) this.transcript.scrollTop = this.transcript.scrollHeight;
  }

  message(m, me) {
    const kind = m.author.kind;
    const mine = kind === "agent" && m.author.id === me;
    const who0 = kind === "system" ? "System" : mine ? `${isoText(m.author.name)} (you)` : isoText(m.author.name);
    // An internal note says so wherever it shows (issue 26 item 5).
    const who = m.internal ? `Internal note by ${who0}` : who0;
    const attachments = (m.attachments || []).map((a) => {
      const label = ATTACHMENT[a.type] || a.type;
      const url = safeUrl(a.url);
      return h(
        "li",
        { class: `attachment ${a.type}` },
        url
          ? h("a", { href: url, target: "_blank", rel: "noopener noreferrer", text: `${label} attachment` })
          : h("span", { text: `${label} attachment` }),
      );
    });
    const delivery = h("span", { class: "delivery" });
    const el = h(
      "article",
      { class: `msg ${kind}${mine ? " mine" : ""}${m.internal ? " note" : ""}`, "aria-label": `${who} at ${clock(m.at)}` },
      h(
        "header",
        {},
        m.internal ? h("span", { class: "note-mark", text: "Internal note" }) : null,
        h("span", { class: "author" }, kind === "system" ? "System" : iso(m.author.name), mine ? " (you)" : null),
        h("time", { datetime: m.at, text: clock(m.at) }),
        delivery,
      ),
      // dir=auto: a customer writing Arabic or Hebrew reads right-to-left, on its own line.
      m.text ? h("p", { class: "text", text: m.text, dir: "auto" }) : null,
      attachments.length ? h("ul", { class: "attachments", "aria-label": "Attachments" }, attachments) : null,
    );
    el.delivery = delivery;
    this.updateDelivery(el, m);
    return el;
  }

  updateDelivery(el, m) {
    if (!m.delivery) return;
    const text = m.delivery === "failed" && m.delivery_error ? `Failed: ${m.delivery_error}` : DELIVERY[m.delivery] || m.delivery;
    setText(el.delivery, text);
    el.delivery.dataset.delivery = m.delivery;
  }
}

/**
 * The customer's earlier conversations beside a conversation (issue 26 item 6), as the
 * engine lists them (`GET .../history`: newest first, agents, wrap-up reason): each a
 * button with its date and time in the browser's locale, its agents and its wrap-up
 * reason. A click shows that conversation's transcript under the list, read-only and
 * marked as an earlier conversation, its internal notes marked as everywhere. The engine
 * answers only while the agent is in the conversation (owner or guest).
 */
class HistoryView {
  constructor(id, actions, messageOf) {
    this.id = id;
    this.actions = actions;
    this.messageOf = messageOf;
    this.openId = null;
    this.listKey = null;
    const titleId = `history-title-${id}`;
    const earlierTitleId = `earlier-title-${id}`;
    this.status = h("p", { class: "history-status", role: "status" });
    this.list = h("ul", { class: "history-list", "aria-labelledby": titleId, hidden: true });
    this.earlierWhen = h("span", { class: "earlier-when" });
    this.earlierTitle = h("h4", { id: earlierTitleId }, "Earlier conversation", this.earlierWhen);
    this.earlierLog = h("div", { class: "transcript earlier-transcript", role: "log", tabindex: "0" });
    this.earlier = h(
      "section",
      { class: "earlier", "aria-labelledby": earlierTitleId, hidden: true },
      h(
        "div",
        { class: "earlier-head" },
        this.earlierTitle,
        h("button", { type: "button", class: "quiet", text: "Close", "aria-label": "Close the earlier conversation", onclick: () => this.close() }),
      ),
      h("p", { class: "earlier-mark", text: "Read-only: this conversation has ended" }),
      this.earlierLog,
    );
    this.root = h("aside", { class: "history", "aria-labelledby": titleId }, h("h3", { id: titleId, text: "History" }), this.status, this.list, this.earlier);
    setText(this.status, "Earlier conversations show while you are in this conversation.");
  }

  /** Reads the list (again); a failure leaves what was shown and says why. */
  async load() {
    if (this.loading) return;
    this.loading = true;
    if (this.listKey === null) setText(this.status, "Reading earlier conversations…");
    try {
      const answer = await this.actions.history(this.id);
      this.render(answer.conversations || []);
    } catch (e) {
      if (this.listKey === null) setText(this.status, `Earlier conversations could not be read. ${explain(e)}`);
    } finally {
      this.loading = false;
    }
  }

  render(list) {
    const key = list.map((c) => c.id).join(" ");
    setText(this.status, list.length ? `${list.length} earlier conversation${list.length === 1 ? "" : "s"}` : "No earlier conversations.");
    this.status.classList.toggle("visually-hidden", list.length > 0);
    show(this.list, list.length > 0);
    if (key === this.listKey) return;
    this.listKey = key;
    fill(
      this.list,
      list.map((c) => h("li", {}, this.item(c))),
    );
  }

  item(c) {
    const when = dateTime(c.arrived_at);
    const agents = c.agents.length ? c.agents.map((a) => a.name || a.id) : [];
    const reason = c.wrapup_label || c.wrapup_reason || OUTCOME[c.outcome] || c.outcome;
    const who = agents.length ? agents.map(isoText).join(", ") : "no agent";
    const button = h(
      "button",
      {
        type: "button",
        class: "history-item",
        "aria-label": `${when}, ${who}: ${reason}`,
        "aria-current": c.id === this.openId ? "true" : null,
        onclick: () => this.open(c, button),
      },
      h("time", { datetime: c.arrived_at, text: when }),
      h("span", { class: "who" }, agents.length ? agents.flatMap((n, i) => (i ? [", ", iso(n)] : [iso(n)])) : "No agent"),
      h("span", { class: "reason", text: reason }),
    );
    return button;
  }

  /** Shows the transcript of earlier conversation `c`, read-only. */
  async open(c, button) {
    this.openId = c.id;
    for (const b of this.list.querySelectorAll("button")) b.removeAttribute("aria-current");
    button.setAttribute("aria-current", "true");
    const when = dateTime(c.arrived_at);
    setText(this.earlierWhen, when);
    // Its name in one phrase (the date shows on a line of its own).
    this.earlierTitle.setAttribute("aria-label", `Earlier conversation, ${when}`);
    this.earlierLog.setAttribute("aria-label", `Transcript of the earlier conversation of ${when}`);
    fill(this.earlierLog, h("p", { class: "hint", text: "Reading the transcript…" }));
    this.earlier.hidden = false;
    let words = null;
    let conv = null;
    try {
      conv = await this.actions.earlierConversation(c.id);
    } catch (e) {
      words =
        e.status === 404
          ? "This transcript is no longer kept."
          : e.status === 403
            ? "Earlier transcripts can be read only while you are in the conversation with this customer."
            : explain(e);
    }
    if (this.openId !== c.id) return;
    if (words) fill(this.earlierLog, h("p", { class: "error", text: words }));
    else fill(this.earlierLog, (conv.transcript || []).map((m) => this.messageOf(m)));
    this.earlierLog.scrollTop = 0;
  }

  close() {
    const opened = this.list.querySelector('button[aria-current="true"]');
    this.openId = null;
    this.earlier.hidden = true;
    fill(this.earlierLog);
    if (opened) {
      opened.removeAttribute("aria-current");
      opened.focus();
    }
  }
}

/** An earlier conversation's outcome in words, when it has no wrap-up reason. */
const OUTCOME = { handled: "Handled", abandoned: "Abandoned", transferred: "Transferred", closed_inactive: "Closed for inactivity" };

/**
 * The canned responses picker of a compose box: typing `/` (at the start of the box or
 * after a space) and letters lists the responses whose code starts with them (then those
 * whose code contains them); Up and Down move, Enter or Tab puts the chosen one's text,
 * filled by the engine for this conversation, in place of `/letters`, to edit before
 * sending; Escape closes the list. The box names the list (`aria-controls`) and the
 * option chosen (`aria-activedescendant`) for assistive technology.
 */
export class CannedPicker {
  constructor(box, load, inserted) {
    this.box = box;
    this.load = load;
    this.inserted = inserted;
    this.items = [];
    this.active = 0;
    this.listId = uid("canned");
    this.list = h("ul", { class: "canned", role: "listbox", id: this.listId, "aria-label": "Canned responses", hidden: true });
    // The box stays a textbox (a textarea may take no other role); it names the list it
    // completes from and, while the list is open, the option chosen.
    box.setAttribute("aria-autocomplete", "list");
    box.setAttribute("aria-controls", this.listId);
    this.responses = null;
    this.loadedAt = 0;
  }

  /** `/letters` before the caret, with where it starts, or null. */
  query() {
    const upTo = this.box.value.slice(0, this.box.selectionStart);
    const m = /(^|\s)\/([a-z0-9_-]*)$/.exec(upTo);
    return m ? { start: upTo.length - m[2].length - 1, letters: m[2] } : null;
  }

  async update() {
    const q = this.query();
    if (!q) return this.close();
    // Read once per opening of the list, and again after half a minute.
    if (!this.responses || Date.now() - this.loadedAt > 30000) {
      try {
        this.responses = await this.load();
        this.loadedAt = Date.now();
      } catch {
        this.responses = [];
      }
    }
    const again = this.query();
    if (!again) return this.close();
    const l = again.letters;
    const starts = this.responses.filter((r) => r.code.startsWith(l));
    const contains = this.responses.filter((r) => !r.code.startsWith(l) && r.code.includes(l));
    this.items = [...starts, ...contains].slice(0, 8);
    this.active = 0;
    this.render();
  }

  render() {
    const open = this.items.length > 0;
    this.list.hidden = !open;
    fill(
      this.list,
      this.items.map((r, i) =>
        h(
          "li",
          {
            role: "option",
            id: `${this.listId}-${i}`,
            "aria-selected": i === this.active ? "true" : "false",
            // mousedown, not click: it comes before the box loses focus.
            onmousedown: (e) => {
              e.preventDefault();
              this.choose(i);
            },
          },
          h("span", { class: "code", text: `/${r.code}` }),
          h("span", { class: "preview", text: r.filled ?? r.text, dir: "auto" }),
        ),
      ),
    );
    if (open) this.box.setAttribute("aria-activedescendant", `${this.listId}-${this.active}`);
    else this.box.removeAttribute("aria-activedescendant");
  }

  close() {
    this.items = [];
    this.render();
  }

  /** Handles a key while the list is open; true when it was the picker's. */
  keydown(e) {
    if (this.list.hidden || !this.items.length) return false;
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      const n = this.items.length;
      this.active = (this.active + (e.key === "ArrowDown" ? 1 : n - 1)) % n;
      this.render();
      return true;
    }
    if ((e.key === "Enter" || e.key === "Tab") && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      this.choose(this.active);
      return true;
    }
    if (e.key === "Escape") {
      e.preventDefault();
      this.close();
      return true;
    }
    return false;
  }

  /** Puts response `i`'s text in place of `/letters`, the caret after it. */
  choose(i) {
    const r = this.items[i];
    const q = this.query();
    if (!r || !q) return this.close();
    const text = r.filled ?? r.text;
    const v = this.box.value;
    const end = this.box.selectionStart;
    this.box.value = v.slice(0, q.start) + text + v.slice(end);
    const caret = q.start + text.length;
    this.box.setSelectionRange(caret, caret);
    this.inserted(text);
    this.close();
    this.box.focus();
  }
}

export class ConversationsView {
  /** `signal`: as for [`PresenceView`], the tab list outlives a sign-in. */
  constructor(actions, store, signal) {
    this.actions = actions;
    this.store = store;
    this.tabs = document.getElementById("tabs");
    this.panels = document.getElementById("panels");
    this.empty = document.getElementById("empty");
    this.views = new Map();
    this.tabs.addEventListener(
      "keydown",
      (e) => {
        const ids = [...this.views.keys()];
        const i = ids.indexOf(store.state.selected);
        let to = null;
        if (e.key === "ArrowRight") to = (i + 1) % ids.length;
        else if (e.key === "ArrowLeft") to = (i - 1 + ids.length) % ids.length;
        else if (e.key === "Home") to = 0;
        else if (e.key === "End") to = ids.length - 1;
        if (to === null || !ids.length) return;
        e.preventDefault();
        store.select(ids[to]);
        this.views.get(ids[to]).tab.focus();
      },
      { signal },
    );
  }

  update(state) {
    const me = state.agent ? state.agent.id : null;
    for (const [id, view] of this.views) {
      if (!state.conversations.has(id)) {
        view.tab.remove();
        view.panel.remove();
        this.views.delete(id);
      }
    }
    for (const [id, e] of state.conversations) {
      let view = this.views.get(id);
      if (!view) {
        view = new ConversationPanel(id, this.actions, this.store);
        this.views.set(id, view);
        this.tabs.append(view.tab);
        this.panels.append(view.panel);
      }
      if (id === state.selected) e.unread = 0;
      view.update(e, me, id === state.selected);
    }
    show(this.empty, state.conversations.size === 0);
    show(this.tabs, state.conversations.size > 0);
  }

  /** Puts the cursor in the selected conversation's compose box. */
  focusCompose(id) {
    const view = this.views.get(id);
    if (view && !view.compose.disabled) view.compose.focus();
  }
}

/** Text for one agent in a picker: name, id and presence. */
export function agentOption(a, idleCodes) {
  const label = presenceLabel(a, idleCodes);
  // `eligible` is the engine's word on whether the agent may take an offer now.
  const full = a.state === "available" && !a.eligible ? `${label}, no free slot` : label;
  return `${isoText(a.name)} (${a.id}) - ${full}`;
}
