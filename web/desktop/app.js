// The agent desktop: sign-in, then the desktop wired to the engine.
//
// Modules: api.js (the desktop's REST calls), socket.js (its WebSocket commands),
// store.js (state from events), views.js and dialogs.js (DOM); from the pages' shared
// helpers in /common/: the REST client, the reconnecting socket, DOM helpers, formats and
// the engine's codes in words (errors.js).
//
// The session token is kept in sessionStorage: it lasts as long as the tab, is not shared
// with other tabs or sent anywhere by the browser on its own, and goes away with the tab.

import { Api, login } from "./api.js";
import { DesktopSocket } from "./socket.js";
import { createStore } from "./store.js";
import { offerTenant, tenantOf } from "/common/api.js";
import { setText, isoText } from "/common/dom.js";
import { elapsed } from "/common/format.js";
import { explain, withdrawnReason } from "/common/errors.js";
import { Messages, PresenceView, OffersView, OwedView, ConversationsView } from "./views.js";
import { transferDialog, conferenceDialog, wrapupDialog, passwordDialog } from "./dialogs.js";

const SESSION_KEY = "switchboard.session";
const $ = (id) => document.getElementById(id);

// ----- sign-in -----

function savedSession() {
  try {
    const s = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
    if (s && s.token && (!s.expires_at || Date.parse(s.expires_at) > Date.now())) return s;
  } catch {
    // A damaged entry is as good as none.
  }
  sessionStorage.removeItem(SESSION_KEY);
  return null;
}

function showSignin(message) {
  $("desktop").hidden = true;
  $("signin").hidden = false;
  setText($("signin-error"), message || "");
  const form = $("password-form").hidden ? $("token-form") : $("password-form");
  form.querySelector("input").focus();
}

function setupSignin() {
  offerTenant($("signin-tenant"));
  const swap = (toToken) => {
    $("password-form").hidden = toToken;
    $("token-form").hidden = !toToken;
    setText($("signin-error"), "");
    (toToken ? $("signin-token") : $("signin-id")).focus();
  };
  $("use-token").addEventListener("click", () => swap(true));
  $("use-password").addEventListener("click", () => swap(false));

  $("password-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const id = $("signin-id").value.trim();
    const password = $("signin-password").value;
    if (!id || !password) return setText($("signin-error"), "Enter your agent id and password.");
    const button = e.target.querySelector('button[type="submit"]');
    button.disabled = true;
    setText($("signin-error"), "");
    try {
      const s = await login(id, password, tenantOf($("signin-tenant")));
      $("signin-password").value = "";
      begin({ token: s.token, kind: "session", expires_at: s.expires_at });
    } catch (err) {
      let words = explain(err);
      if (err.code === "too_many_attempts" && err.retryAfter) words += ` (about ${err.retryAfter} s)`;
      setText($("signin-error"), words);
      $("signin-password").select();
    } finally {
      button.disabled = false;
    }
  });

  $("token-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const token = $("signin-token").value.trim();
    if (!token) return setText($("signin-error"), "Paste the agent token.");
    $("signin-token").value = "";
    begin({ token, kind: "token", expires_at: null });
  });
}

// ----- the desktop -----

let desktop = null;

/** Starts the desktop for a token after checking it belongs to an agent. */
async function begin(session) {
  const api = new Api(session.token);
  try {
    await api.me();
  } catch (err) {
    sessionStorage.removeItem(SESSION_KEY);
    return showSignin(err.status === 401 || err.status === 403 ? explain(err) : `Cannot sign in: ${explain(err)}`);
  }
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  $("signin").hidden = true;
  $("desktop").hidden = false;
  desktop = new Desktop(api, session);
  desktop.start();
}

class Desktop {
  constructor(api, session) {
    this.api = api;
    this.session = session;
    this.store = createStore();
    this.messages = new Messages($("messages"));
    this.idleCodes = [];
    const actions = this.actions();
    // Ends the views' listeners on the page's fixed elements at sign-out (`end`).
    this.listening = new AbortController();
    this.presence = new PresenceView(actions, this.listening.signal);
    this.offers = new OffersView($("offers"), actions);
    this.owed = new OwedView($("owed"), $("owed-list"), actions);
    this.conversations = new ConversationsView(actions, this.store, this.listening.signal);
    this.store.subscribe((state) => this.render(state));
    this.socket = new DesktopSocket({
      token: session.token,
      onEvent: (frame) => this.onEvent(frame),
      onStatus: (status, detail) => this.onStatus(status, detail),
    });
    this.signout = () => this.signOut();
    $("signout").addEventListener("click", this.signout);
    this.password = () =>
      passwordDialog({
        dialog: $("password-dialog"),
        minChars: this.store.state.passwordMinChars,
        change: (current, next) => this.api.changePassword(current, next),
        done: () => this.messages.show("Your password has been changed.", "info"),
      });
    $("change-password").addEventListener("click", this.password);
    this.ticker = setInterval(() => this.tick(), 1000);
    // A page-side hook to drop the connection, as a network failure would (tests use it).
    window.switchboardDesktop = { dropConnection: () => this.socket.drop() };
  }

  async start() {
    try {
      this.idleCodes = await this.api.idleCodes();
    } catch (e) {
      this.messages.show(explain(e), "error");
    }
    this.presence.setIdleCodes(this.idleCodes);
    this.socket.start();
  }

  render(state) {
    this.presence.update(state);
    this.offers.update(state);
    this.owed.update(state);
    this.conversations.update(state);
    this.tick();
  }

  /** Every timer on the page counts up from its `data-since`. */
  tick() {
    const now = Date.now();
    for (const el of document.querySelectorAll("[data-since]")) {
      const since = Date.parse(el.dataset.since);
      if (!Number.isNaN(since)) setText(el, elapsed(now - since));
    }
  }

  onEvent(frame) {
    const hadSelection = this.store.state.selected;
    const notice = this.store.apply(frame);
    if (notice) this.messages.show(this.describe(notice), "info");
    if (frame.type === "conversation" && frame.conversation.id !== hadSelection) {
      this.conversations.focusCompose(frame.conversation.id);
    }
  }

  describe(notice) {
    // Plain text (a toast): the customer's name is isolated by characters, not an element.
    if (notice.key === "offer_withdrawn") return `The offer of ${isoText(notice.customer)}'s conversation ${withdrawnReason(notice.reason)}.`;
    if (notice.key === "conference_not_accepted") return `${notice.agent} did not accept the conference on ${isoText(notice.customer)}'s conversation.`;
    return "";
  }

  async onStatus(status, detail = {}) {
    const el = $("connection");
    el.dataset.status = status;
    if (status === "open") {
      setText(el, "Connected");
      this.store.setConnection("open");
    } else if (status === "connecting") {
      setText(el, detail.attempt ? "Reconnecting…" : "Connecting…");
    } else if (status === "ended") {
      // The credential ended (signed out elsewhere, token reissued, a new password, the
      // session expired): reconnecting cannot help.
      this.end(
        detail.reason === "session_expired"
          ? "Your session expired. Sign in again."
          : "Your sign-in was ended (signed out elsewhere, or a new password or token). Sign in again.",
      );
    } else if (status === "reconnecting") {
      setText(el, "Connection lost; reconnecting…");
      this.store.setConnection("reconnecting");
      // Repeated failures may mean the session ended: ask REST, which can say 401.
      if (detail.attempt >= 2) {
        try {
          await this.api.me();
        } catch (e) {
          if (e.status === 401 || e.status === 403) this.end(explain(e));
        }
      }
    } else if (status === "stopped") {
      setText(el, "");
    }
  }

  /** Runs a desktop command; shows the refusal in words. Resolves true on success. */
  async run(type, fields) {
    try {
      await this.socket.command(type, fields);
      return true;
    } catch (e) {
      this.messages.show(explain(e), "error");
      return false;
    }
  }

  name(id) {
    const e = this.store.state.conversations.get(id);
    return e ? e.conv.customer.name : id;
  }

  actions() {
    return {
      setState: (state, idle_code) => this.run("set_state", idle_code ? { state, idle_code } : { state }),
      accept: (id) => this.run("accept", { conversation_id: id }),
      send: (id, text) => this.run("send", { conversation_id: id, text }),
      note: (id, text) => this.run("note", { conversation_id: id, text }),
      // Canned responses for the `/` picker, filled by the engine for this conversation.
      cannedResponses: (id) => this.api.cannedResponses(id),
      // The customer's earlier conversations beside one, and one's transcript (issue 26 item 6).
      history: (id) => this.api.history(id),
      earlierConversation: (id) => this.api.conversation(id),
      sendFile: async (id, file) => {
        try {
          await this.api.sendFile(id, file);
          return true;
        } catch (e) {
          this.messages.show(`${file.name}: ${explain(e)}`, "error");
          return false;
        }
      },
      // Typing and seen are hints for the customer: a refusal is not the agent's concern.
      typing: (id, on) => this.socket.command("typing", { conversation_id: id, on }).catch(() => {}),
      seen: (id) => this.socket.command("seen", { conversation_id: id }).catch(() => {}),
      end: async (id) => {
        if (await this.run("end", { conversation_id: id })) this.actions().openWrapup(id);
      },
      endConference: async (id) => {
        if (await this.run("end_conference", { conversation_id: id })) this.actions().openWrapup(id);
      },
      exitConference: async (id) => {
        if (await this.run("exit_conference", { conversation_id: id })) {
          this.store.leftConversation(id);
          this.actions().openWrapup(id);
        }
      },
      openTransfer: (id) =>
        transferDialog({
          dialog: $("transfer-dialog"),
          api: this.api,
          name: this.name(id),
          me: this.store.state.agent.id,
          idleCodes: this.idleCodes,
          transfer: (target) => this.socket.command("transfer", { conversation_id: id, ...target }),
          afterTransfer: () => {
            this.store.leftConversation(id);
            this.actions().openWrapup(id);
          },
        }),
      openConference: (id) =>
        conferenceDialog({
          dialog: $("conference-dialog"),
          api: this.api,
          name: this.name(id),
          me: this.store.state.agent.id,
          idleCodes: this.idleCodes,
          conference: async (target) => {
            await this.socket.command("conference", { conversation_id: id, ...target });
            this.store.conferenceRequested(id);
          },
        }),
      openWrapup: (id) =>
        wrapupDialog({
          dialog: $("wrapup-dialog"),
          api: this.api,
          name: this.name(id),
          wrapup: async (reason) => {
            await this.socket.command("wrapup", { conversation_id: id, reason });
            this.store.wrappedUp(id);
          },
        }),
    };
  }

  /** Sign out: log the presence out (refused while holding conversations), end the session. */
  async signOut() {
    const agent = this.store.state.agent;
    if (agent && agent.state !== "logged_out") {
      if (!(await this.run("set_state", { state: "logged_out" }))) return;
    }
    if (this.session.kind === "session") {
      try {
        await this.api.logout();
      } catch {
        // The session ends with the tab anyway.
      }
    }
    this.end("You signed out.");
  }

  /** Leaves the desktop for the sign-in page. */
  end(message) {
    this.socket.stop();
    clearInterval(this.ticker);
    $("signout").removeEventListener("click", this.signout);
    $("change-password").removeEventListener("click", this.password);
    this.listening.abort();
    for (const d of document.querySelectorAll("dialog[open]")) d.close();
    this.messages.clear();
    this.store.reset();
    for (const id of ["tabs", "panels", "offers", "owed-list", "state-menu"]) $(id).replaceChildren();
    sessionStorage.removeItem(SESSION_KEY);
    delete window.switchboardDesktop;
    desktop = null;
    showSignin(message);
  }
}

setupSignin();
const saved = savedSession();
if (saved) begin(saved);
else showSignin();
