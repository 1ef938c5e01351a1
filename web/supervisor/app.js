// The supervisor page: sign-in, then two views, chosen by the address's fragment: the
// live floor (`#floor`, the first) from the supervisor socket (`snapshot`, then `queue`,
// `agent` and `conversation` events, alone or in a `batch`), agents' presence set over
// REST, and a conversation's transcript read over REST while it is open; and the reports
// (`#reports`, in reports.js). Uses only the public API, and the pages' shared helpers in
// /common/.
//
// The tables are updated in place: one row element per queue and per agent, kept while the
// row is shown, whose cells are written only when their text changed; events and the
// one-second tick of the timers only mark the page for a redraw, and the redraws of one
// animation frame are one.

import { offerTenant, request, tenantOf } from "/common/api.js";
import { explain } from "/common/errors.js";
import { h, iso, isoText, setIso, setText, KeyedChildren } from "/common/dom.js";
import { elapsed, presenceWord } from "/common/format.js";
import { ReconnectingSocket, socketUrl } from "/common/socket.js";
import { ReportsView } from "./reports.js";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "switchboard.supervisor.token";
/** Why the last sign-in ended, shown once on the sign-in form. */
const ENDED_KEY = "switchboard.supervisor.ended";
/** Rows shown at once in the agent table (the search narrows them). */
const MAX_ROWS = 500;
const byName = new Intl.Collator().compare;

const state = {
  token: null,
  queues: new Map(),
  /** queue id -> local time (ms) when its `longest_wait_ms` was received */
  queueSeenAt: new Map(),
  agents: new Map(),
  /** Agent ids sorted by name; null when an agent came, went or was renamed. */
  agentOrder: null,
  conversations: new Map(),
  /** Entry points by id, with their Messenger `channel_state`. */
  entryPoints: new Map(),
  idleCodes: [],
  socket: null,
  open: null,
  openTimer: null,
  /** The animation frame a redraw waits for, if one is asked. */
  frame: null,
};

function showError(where, e) {
  setText($(where), e ? explain(e) : "");
}

/** An error in the page's own words (not an engine code). */
const words = (message) => ({ code: "page", message });

/** The Reports view; it names agents and lists queues as the floor knows them. */
const reports = new ReportsView({
  token: () => state.token,
  agentName: (id) => state.agents.get(id)?.name,
});

// ----- views -----

/** The views, by the address's fragment: [fragment, view element, nav link, title]. */
const VIEWS = [
  ["#floor", "floor-view", "nav-floor", "Floor"],
  ["#reports", "reports-view", "nav-reports", "Reports"],
];

/** Shows the view the address names (the floor when it names none). */
function showView() {
  const current = VIEWS.find(([hash]) => hash === location.hash) ?? VIEWS[0];
  for (const [hash, view, link] of VIEWS) {
    const on = hash === current[0];
    $(view).hidden = !on;
    if (on) $(link).setAttribute("aria-current", "page");
    else $(link).removeAttribute("aria-current");
  }
  setText($("view-title"), current[3]);
  document.title = `${current[3]} · Switchboard supervisor`;
  if (current[0] === "#reports") reports.show();
  else {
    reports.hide();
    scheduleRender();
  }
}
window.addEventListener("hashchange", showView);

// ----- sign-in -----

async function signInWith(token) {
  const me = await request("GET", "/api/v1/supervisors/me", { token });
  state.token = token;
  sessionStorage.setItem(TOKEN_KEY, token);
  $("who").replaceChildren(iso(me.name), ` (${me.id})`);
  $("signin").hidden = true;
  $("floor").hidden = false;
  showView();
  try {
    state.idleCodes = await request("GET", "/api/v1/idle-codes", { token });
  } catch (e) {
    showError("floor-error", e);
  }
  connect();
}

/** Back to sign-in, saying why (the credential ended). */
function signedOff(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.setItem(ENDED_KEY, message);
  location.reload();
}

offerTenant($("signin-tenant"));
$("use-token").addEventListener("click", () => {
  $("password-form").hidden = true;
  $("token-form").hidden = false;
});
$("use-password").addEventListener("click", () => {
  $("token-form").hidden = true;
  $("password-form").hidden = false;
});
$("password-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  showError("signin-error", null);
  try {
    const s = await request("POST", "/api/v1/login", {
      body: {
        id: $("signin-id").value.trim(),
        password: $("signin-password").value,
        kind: "supervisor",
        tenant: tenantOf($("signin-tenant")),
      },
    });
    await signInWith(s.token);
  } catch (e) {
    showError("signin-error", e.code === "invalid_credentials" ? words("Wrong supervisor id or password.") : e);
  }
});
$("token-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  showError("signin-error", null);
  try {
    await signInWith($("signin-token").value.trim());
  } catch (e) {
    showError("signin-error", e.status === 403 ? words("That is not a supervisor token.") : e);
  }
});
$("signout").addEventListener("click", async () => {
  try {
    await request("POST", "/api/v1/logout", { token: state.token });
  } catch {
    // A token (not a session) cannot sign out; forgetting it is enough.
  }
  if (state.socket) state.socket.stop();
  sessionStorage.removeItem(TOKEN_KEY);
  location.reload();
});

// ----- the live socket -----

function connect() {
  state.socket = new ReconnectingSocket({
    url: socketUrl("/api/v1/supervisors/me/ws", state.token),
    first: "snapshot",
    onFrame: (frame) => {
      apply(frame, Date.now());
      scheduleRender();
    },
    onStatus,
  });
  state.socket.start();
}

async function onStatus(status, detail) {
  if (status === "connecting") setText($("link"), detail.attempt ? "Reconnecting…" : "Connecting…");
  else if (status === "open") setText($("link"), "Live");
  else if (status === "ended") {
    // The credential ended (signed out elsewhere, reissued, a new password, expired).
    signedOff(detail.reason === "session_expired" ? "Your session expired; sign in again." : "Your sign-in was ended; sign in again.");
  } else if (status === "reconnecting") {
    setText($("link"), "Reconnecting…");
    // A refused handshake says nothing about why: after repeated failures, ask REST, which
    // can say the credential no longer works (401).
    if (detail.attempt >= 2) {
      try {
        await request("GET", "/api/v1/supervisors/me", { token: state.token });
      } catch (e) {
        if (e.status === 401) signedOff("Your sign-in was ended; sign in again.");
      }
    }
  }
}

/** Applies one frame of the supervisor socket to the page's state. */
function apply(ev, now) {
  switch (ev.type) {
    case "snapshot":
      state.queues = new Map(ev.queues.map((q) => [q.id, q]));
      state.queueSeenAt = new Map(ev.queues.map((q) => [q.id, now]));
      state.agents = new Map(ev.agents.map((a) => [a.id, a]));
      state.agentOrder = null;
      state.conversations = new Map(ev.conversations.map((c) => [c.id, c]));
      state.entryPoints = new Map((ev.entry_points || []).map((e) => [e.id, e]));
      break;
    case "entry_point":
      state.entryPoints.set(ev.entry_point.id, ev.entry_point);
      break;
    case "batch":
      for (const one of ev.events || []) apply(one, now);
      break;
    case "queue":
      state.queues.set(ev.queue.id, ev.queue);
      state.queueSeenAt.set(ev.queue.id, now);
      break;
    case "agent":
      setAgent(ev.agent);
      break;
    case "conversation":
      if (ev.conversation.state === "ended") state.conversations.delete(ev.conversation.id);
      else state.conversations.set(ev.conversation.id, ev.conversation);
      if (state.open === ev.conversation.id) loadTranscript();
      break;
    // Any other type is one this page does not show.
  }
}

function setAgent(agent) {
  const known = state.agents.get(agent.id);
  if (!known || known.name !== agent.name) state.agentOrder = null;
  state.agents.set(agent.id, agent);
}

/** Asks for a redraw at the next animation frame; asking again before it is free. */
function scheduleRender() {
  if (state.frame !== null) return;
  state.frame = requestAnimationFrame(() => {
    state.frame = null;
    render();
  });
}

// ----- the floor -----

/** The time of the redraw under way: every timer of one redraw counts to the same instant. */
let drawnAt = 0;

const sortedQueues = () => [...state.queues.values()].sort((a, b) => byName(a.name, b.name) || byName(a.id, b.id));

function render() {
  drawnAt = Date.now();
  if (!state.agentOrder) {
    state.agentOrder = [...state.agents.values()].sort((a, b) => byName(a.name, b.name) || byName(a.id, b.id)).map((a) => a.id);
    reports.namesChanged();
  }
  reports.setQueues(sortedQueues());
  // The floor's tables wait while the reports are shown; showing the floor redraws them.
  if ($("floor-view").hidden) return;
  renderQueues();
  renderAgents();
  renderChannels();
}

/** One line per Facebook Page whose token the Graph API refused (`channel_state`). */
function renderChannels() {
  const down = [...state.entryPoints.values()].filter((e) => e.channel_state === "unauthorized");
  const key = down.map((e) => `${e.id}:${e.name}`).join("|");
  if (key === renderChannels.key) return;
  renderChannels.key = key;
  $("channels").hidden = down.length === 0;
  $("channel-alerts").replaceChildren(
    ...down.map((e) =>
      h("li", {}, "Facebook Page ", iso(e.name), ` (entry point ${e.id}): its access token was refused; its messages wait until the admin sets a new one.`),
    ),
  );
}

const queueRows = new KeyedChildren($("queue-rows"), {
  create: () => {
    const cells = {
      name: h("th", { scope: "row" }),
      waiting: h("td", { class: "num" }),
      wait: h("td", { class: "num" }),
      available: h("td", { class: "num" }),
    };
    const tr = h("tr", {}, cells.name, cells.waiting, cells.wait, cells.available);
    tr.cells_ = cells;
    return tr;
  },
  update: (tr, id) => {
    const q = state.queues.get(id);
    const c = tr.cells_;
    const seen = state.queueSeenAt.get(q.id) ?? drawnAt;
    setIso(c.name, q.name);
    setText(c.waiting, q.waiting);
    setText(c.wait, q.waiting > 0 ? elapsed(q.longest_wait_ms + (drawnAt - seen)) : "—");
    setText(c.available, q.agents_available);
  },
});

function renderQueues() {
  queueRows.show(sortedQueues().map((q) => q.id));
}

/** The presence menu of agent `id`, made once with its row. */
function stateMenu(id) {
  const select = h("select", {});
  select.append(h("option", { value: "" }, "Choose…"));
  select.append(h("option", { value: "available" }, "Available"));
  for (const c of state.idleCodes) select.append(h("option", { value: `idle:${c.code}` }, `Idle: ${c.label}`));
  select.append(h("option", { value: "logged_out" }, "Logged out"));
  select.addEventListener("change", async () => {
    const v = select.value;
    if (!v) return;
    const name = state.agents.get(id)?.name ?? id;
    const body = v.startsWith("idle:") ? { state: "idle", idle_code: v.slice(5) } : { state: v };
    showError("floor-error", null);
    try {
      const a = await request("PUT", `/api/v1/agents/${encodeURIComponent(id)}/state`, { token: state.token, body });
      const known = state.agents.get(a.id);
      if (known) setAgent({ ...known, ...a });
      scheduleRender();
    } catch (e) {
      showError("floor-error", e.code === "agent_busy" ? words(`${isoText(name)} holds conversations and cannot be logged out.`) : e);
    }
    select.value = "";
  });
  return select;
}

const agentRows = new KeyedChildren($("agent-rows"), {
  create: (id) => {
    const cells = {
      name: h("th", { scope: "row" }),
      state: h("td"),
      load: h("td", { class: "num" }),
      conversations: h("td"),
      menu: stateMenu(id),
    };
    const tr = h("tr", {}, cells.name, cells.state, cells.load, cells.conversations, h("td", {}, cells.menu));
    tr.cells_ = cells;
    return tr;
  },
  update: (tr, id) => {
    const a = state.agents.get(id);
    const c = tr.cells_;
    setIso(c.name, a.name);
    const label = `State for ${isoText(a.name)}`;
    if (c.menu.getAttribute("aria-label") !== label) c.menu.setAttribute("aria-label", label);
    const word = presenceWord(a.state);
    const presence = a.state === "idle" && a.idle_code ? `${word} (${a.idle_code})` : word;
    setText(c.state, `${presence} · ${elapsed(drawnAt - Date.parse(a.state_since))}`);
    const stateClass = `state-${a.state}`;
    if (c.state.className !== stateClass) c.state.className = stateClass;
    setText(c.load, `${a.load} / ${a.capacity}`);
    const held = [...a.offers, ...a.conversations, ...a.wrapups];
    const key = held.join(" ");
    if (c.conversations.heldKey !== key) {
      c.conversations.heldKey = key;
      c.conversations.replaceChildren(
        ...held.map((cid) => h("button", { type: "button", class: "conv", onclick: () => openConversation(cid) }, cid)),
      );
    }
  },
});

function renderAgents() {
  const q = $("agent-search").value.trim().toLowerCase();
  const shown = [];
  let matching = 0;
  for (const id of state.agentOrder) {
    const a = state.agents.get(id);
    if (q && !a.name.toLowerCase().includes(q) && !a.id.toLowerCase().includes(q)) continue;
    matching += 1;
    if (shown.length < MAX_ROWS) shown.push(id);
  }
  agentRows.show(shown);
  setText($("agents-more"), matching > shown.length ? `${matching - shown.length} more; search to narrow.` : "");
}

// ----- a conversation's transcript -----

async function loadTranscript() {
  const id = state.open;
  if (!id) return;
  try {
    const c = await request("GET", `/api/v1/conversations/${encodeURIComponent(id)}`, { token: state.token });
    if (state.open !== id) return;
    $("transcript-title").replaceChildren(`Conversation ${c.id} with `, iso(c.customer.name));
    $("transcript-meta").replaceChildren(iso(c.queue_name), ` · ${c.state}${c.owner ? ` · owner ${c.owner}` : ""}`);
    $("transcript-messages").replaceChildren(
      ...c.transcript.map((m) =>
        h(
          "li",
          m.internal ? { class: "note" } : {},
          // An internal note is the agents' own: marked so here as on the desktop.
          m.internal ? h("span", { class: "note-mark" }, "Internal note") : null,
          h("span", { class: "author" }, iso(m.author.name || m.author.kind), ":"),
          // dir=auto: a right-to-left message reads right-to-left.
          h("span", { class: "text", dir: "auto" }, m.text),
        ),
      ),
    );
  } catch (e) {
    showError("floor-error", e);
  }
}

function openConversation(id) {
  state.open = id;
  $("transcript").hidden = false;
  loadTranscript();
  clearInterval(state.openTimer);
  // Messages are not on the supervisor socket: the open transcript is read again each second.
  state.openTimer = setInterval(loadTranscript, 1000);
}

$("transcript-close").addEventListener("click", () => {
  state.open = null;
  clearInterval(state.openTimer);
  $("transcript").hidden = true;
});
$("agent-search").addEventListener("input", scheduleRender);
// Timers tick every second, on the floor.
setInterval(() => {
  if (!$("floor").hidden && !$("floor-view").hidden) scheduleRender();
}, 1000);

const ended = sessionStorage.getItem(ENDED_KEY);
if (ended) {
  sessionStorage.removeItem(ENDED_KEY);
  setText($("signin-error"), ended);
}
const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) {
  signInWith(saved).catch(() => sessionStorage.removeItem(TOKEN_KEY));
}
