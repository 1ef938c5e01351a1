// The supervisor page: sign-in, then the live floor from the supervisor socket
// (`snapshot`, then `queue`, `agent` and `conversation` events), agents' presence set
// over REST, and a conversation's transcript read over REST while it is open.
// Uses only the public API.

import { request } from "/assets/api.js";
import { explain } from "/assets/errors.js";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "switchboard.supervisor.token";
/** Why the last sign-in ended, shown once on the sign-in form. */
const ENDED_KEY = "switchboard.supervisor.ended";
/** Rows shown at once in the agent table (the search narrows them). */
const MAX_ROWS = 500;

const state = {
  token: null,
  queues: new Map(),
  /** queue id -> local time (ms) when its `longest_wait_ms` was received */
  queueSeenAt: new Map(),
  agents: new Map(),
  conversations: new Map(),
  idleCodes: [],
  socket: null,
  open: null,
  openTimer: null,
  renderPending: false,
};

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

/**
 * A client-controlled value (agent, customer or queue name) as an isolated element: a
 * bidi override (U+202E) or right-to-left letters in it cannot reorder the words around
 * it. styles.css wraps it however long.
 */
function bdi(text) {
  const e = document.createElement("bdi");
  e.textContent = text ?? "";
  return e;
}

// Bidi controls and right-to-left scripts.
const BIDI = /[\u0590-\u08ff\u200e\u200f\u202a-\u202e\u2066-\u2069\ufb1d-\ufdff\ufe70-\ufefc]|[\ud802\ud803\ud83a\ud83b]/;

/** The same for attributes and plain text: FIRST STRONG ISOLATE ... POP DIRECTIONAL ISOLATE when needed. */
function isoText(value) {
  const s = String(value ?? "");
  return BIDI.test(s) ? `\u2068${s}\u2069` : s;
}

function duration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const m = Math.floor(s / 60);
  const h = Math.floor(m / 60);
  const pad = (n) => String(n).padStart(2, "0");
  return h > 0 ? `${h}:${pad(m % 60)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

const STATE_WORDS = { available: "Available", idle: "Idle", rona: "RONA", logged_out: "Logged out" };

function showError(where, e) {
  $(where).textContent = e ? explain(e) : "";
}

// ----- sign-in -----

async function signInWith(token) {
  const me = await request("GET", "/api/v1/supervisors/me", { token });
  state.token = token;
  sessionStorage.setItem(TOKEN_KEY, token);
  $("who").replaceChildren(bdi(me.name), ` (${me.id})`);
  $("signin").hidden = true;
  $("floor").hidden = false;
  try {
    state.idleCodes = await request("GET", "/api/v1/idle-codes", { token });
  } catch (e) {
    showError("floor-error", e);
  }
  connect();
}

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
      body: { id: $("signin-id").value.trim(), password: $("signin-password").value, kind: "supervisor" },
    });
    await signInWith(s.token);
  } catch (e) {
    showError("signin-error", e.code === "invalid_credentials" ? { code: "x", message: "Wrong supervisor id or password." } : e);
  }
});
$("token-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  showError("signin-error", null);
  try {
    await signInWith($("signin-token").value.trim());
  } catch (e) {
    showError("signin-error", e.status === 403 ? { code: "x", message: "That is not a supervisor token." } : e);
  }
});
$("signout").addEventListener("click", async () => {
  try {
    await request("POST", "/api/v1/logout", { token: state.token });
  } catch {
    // A token (not a session) cannot sign out; forgetting it is enough.
  }
  sessionStorage.removeItem(TOKEN_KEY);
  location.reload();
});

// ----- the live socket -----

function connect() {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/v1/supervisors/me/ws?token=${encodeURIComponent(state.token)}`;
  const ws = new WebSocket(url);
  state.socket = ws;
  $("link").textContent = "Connecting…";
  ws.onmessage = (m) => {
    let ev;
    try {
      ev = JSON.parse(m.data);
    } catch {
      return;
    }
    onEvent(ev);
  };
  ws.onclose = (c) => {
    if (state.socket !== ws) return;
    // The credential ended (signed out elsewhere, reissued, a new password, expired):
    // back to sign-in, with the reason in words.
    if (c.code === 1008 && (c.reason === "credential_revoked" || c.reason === "session_expired")) {
      sessionStorage.removeItem(TOKEN_KEY);
      sessionStorage.setItem(ENDED_KEY, c.reason === "session_expired" ? "Your session expired; sign in again." : "Your sign-in was ended; sign in again.");
      location.reload();
      return;
    }
    $("link").textContent = "Reconnecting…";
    if (c.code === 1008 || c.code === 4401) return;
    // Back off as the desktop does (250 ms doubling to 5 s, with jitter), so that a
    // restarting server is not met by every supervisor page at once, every second.
    state.attempt = (state.attempt || 0) + 1;
    const base = Math.min(5000, 250 * 2 ** (state.attempt - 1));
    setTimeout(connect, Math.round(base * (0.5 + Math.random() / 2)));
  };
}

function onEvent(ev) {
  const now = Date.now();
  switch (ev.type) {
    case "snapshot":
      state.attempt = 0;
      state.queues = new Map(ev.queues.map((q) => [q.id, q]));
      state.queueSeenAt = new Map(ev.queues.map((q) => [q.id, now]));
      state.agents = new Map(ev.agents.map((a) => [a.id, a]));
      state.conversations = new Map(ev.conversations.map((c) => [c.id, c]));
      $("link").textContent = "Live";
      break;
    case "queue":
      state.queues.set(ev.queue.id, ev.queue);
      state.queueSeenAt.set(ev.queue.id, now);
      break;
    case "agent":
      state.agents.set(ev.agent.id, ev.agent);
      break;
    case "conversation":
      if (ev.conversation.state === "ended") state.conversations.delete(ev.conversation.id);
      else state.conversations.set(ev.conversation.id, ev.conversation);
      if (state.open === ev.conversation.id) loadTranscript();
      break;
    default:
      return;
  }
  scheduleRender();
}

function scheduleRender() {
  if (state.renderPending) return;
  state.renderPending = true;
  setTimeout(() => {
    state.renderPending = false;
    render();
  }, 100);
}

// ----- views -----

function render() {
  renderQueues();
  renderAgents();
}

function renderQueues() {
  const now = Date.now();
  const rows = [...state.queues.values()].sort((a, b) => a.name.localeCompare(b.name));
  $("queue-rows").replaceChildren(
    ...rows.map((q) => {
      const seen = state.queueSeenAt.get(q.id) || now;
      const wait = q.waiting > 0 ? q.longest_wait_ms + (now - seen) : 0;
      return el(
        "tr",
        {},
        el("th", { scope: "row" }, bdi(q.name)),
        el("td", { class: "num" }, String(q.waiting)),
        el("td", { class: "num" }, q.waiting > 0 ? duration(wait) : "—"),
        el("td", { class: "num" }, String(q.agents_available)),
      );
    }),
  );
}

function stateMenu(agent) {
  const select = el("select", { "aria-label": `State for ${isoText(agent.name)}` });
  select.append(el("option", { value: "" }, "Choose…"));
  select.append(el("option", { value: "available" }, "Available"));
  for (const c of state.idleCodes) select.append(el("option", { value: `idle:${c.code}` }, `Idle: ${c.label}`));
  select.append(el("option", { value: "logged_out" }, "Logged out"));
  select.addEventListener("change", async () => {
    const v = select.value;
    if (!v) return;
    const body = v.startsWith("idle:") ? { state: "idle", idle_code: v.slice(5) } : { state: v };
    showError("floor-error", null);
    try {
      const a = await request("PUT", `/api/v1/agents/${encodeURIComponent(agent.id)}/state`, { token: state.token, body });
      const known = state.agents.get(a.id);
      if (known) state.agents.set(a.id, { ...known, ...a });
      scheduleRender();
    } catch (e) {
      showError("floor-error", e.code === "agent_busy" ? { code: "x", message: `${isoText(agent.name)} holds conversations and cannot be logged out.` } : e);
    }
    select.value = "";
  });
  return select;
}

function renderAgents() {
  const now = Date.now();
  const q = $("agent-search").value.trim().toLowerCase();
  const all = [...state.agents.values()]
    .filter((a) => !q || a.name.toLowerCase().includes(q) || a.id.toLowerCase().includes(q))
    .sort((a, b) => a.name.localeCompare(b.name));
  const rows = all.slice(0, MAX_ROWS);
  $("agents-more").textContent = all.length > rows.length ? `${all.length - rows.length} more; search to narrow.` : "";
  $("agent-rows").replaceChildren(
    ...rows.map((a) => {
      const since = Date.parse(a.state_since);
      const words = STATE_WORDS[a.state] || a.state;
      const label = a.state === "idle" && a.idle_code ? `${words} (${a.idle_code})` : words;
      const convs = [...a.offers, ...a.conversations, ...a.wrapups];
      return el(
        "tr",
        {},
        el("th", { scope: "row" }, bdi(a.name)),
        el("td", { class: `state-${a.state}` }, `${label} · ${duration(now - since)}`),
        el("td", { class: "num" }, `${a.load} / ${a.capacity}`),
        el(
          "td",
          {},
          ...convs.map((id) =>
            el("button", { type: "button", class: "conv", onclick: () => openConversation(id) }, id),
          ),
        ),
        el("td", {}, stateMenu(a)),
      );
    }),
  );
}

// ----- a conversation's transcript -----

async function loadTranscript() {
  const id = state.open;
  if (!id) return;
  try {
    const c = await request("GET", `/api/v1/conversations/${encodeURIComponent(id)}`, { token: state.token });
    if (state.open !== id) return;
    $("transcript-title").replaceChildren(`Conversation ${c.id} with `, bdi(c.customer.name));
    $("transcript-meta").replaceChildren(bdi(c.queue_name), ` · ${c.state}${c.owner ? ` · owner ${c.owner}` : ""}`);
    $("transcript-messages").replaceChildren(
      ...c.transcript.map((m) =>
        el(
          "li",
          {},
          el("span", { class: "author" }, bdi(m.author.name || m.author.kind), ":"),
          // dir=auto: a right-to-left message reads right-to-left.
          el("span", { class: "text", dir: "auto" }, m.text),
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
// Timers tick every second.
setInterval(() => {
  if (!$("floor").hidden) render();
}, 1000);

const ended = sessionStorage.getItem(ENDED_KEY);
if (ended) {
  sessionStorage.removeItem(ENDED_KEY);
  $("signin-error").textContent = ended;
}
const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) {
  signInWith(saved).catch(() => sessionStorage.removeItem(TOKEN_KEY));
}

