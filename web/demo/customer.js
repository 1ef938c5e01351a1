// The demo customer chat: writes through the demo entry point and polls the customer's
// view of the conversation for replies (src/api/demo.rs). No admin token: the customer is
// a random key kept in this tab's sessionStorage. Elements come from the pages' shared
// helpers (/common/dom.js).

import { h, iso } from "/common/dom.js";

const KEY = "switchboard.demo.key";
const CONVERSATION = "switchboard.demo.conversation";
const POLL_MS = 1000;
const $ = (id) => document.getElementById(id);
// `/demo/customer?tenant=ID` chats with that tenant (contact centre); default otherwise.
const TENANT = new URLSearchParams(location.search).get("tenant");

function customerKey() {
  let key = sessionStorage.getItem(KEY);
  if (!key) {
    const bytes = crypto.getRandomValues(new Uint8Array(32));
    key = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
    sessionStorage.setItem(KEY, key);
  }
  return key;
}

async function call(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: {
      Authorization: `Bearer ${customerKey()}`,
      ...(TENANT ? { "X-Switchboard-Tenant": TENANT } : {}),
      ...(body ? { "Content-Type": "application/json" } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
    cache: "no-store",
  });
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const err = (data && data.error) || {};
    throw new Error(err.message || `the server answered ${res.status}`);
  }
  return data;
}

let conversation = sessionStorage.getItem(CONVERSATION);
let lastSeq = 0;
let ended = false;
// The name of the agent who wrote last, for the status line.
let agentName = null;
let timer = null;

/** The status line: strings and nodes (an agent's name goes in a <bdi>). */
function status(...parts) {
  $("chat-status").replaceChildren(...parts);
}

function render(view) {
  const log = $("chat-log");
  for (const m of view.messages) {
    if (m.seq <= lastSeq) continue;
    lastSeq = m.seq;
    const kind = m.author.kind;
    if (kind === "agent") agentName = m.author.name;
    const who = kind === "customer" ? "You" : kind === "system" ? "System" : m.author.name;
    const look = kind === "customer" ? "agent mine" : kind === "system" ? "system" : "customer";
    log.append(
      h(
        "article",
        { class: `msg ${look}` },
        h("header", {}, h("span", { class: "author" }, iso(who))),
        // dir=auto: a right-to-left message reads right-to-left, on its own line.
        h("p", { class: "text", dir: "auto", text: m.text }),
      ),
    );
    log.scrollTop = log.scrollHeight;
  }
  ended = view.state === "ended";
  $("customer-end").hidden = ended;
  if (ended) {
    status("The chat has ended. Write again to start a new conversation.");
    sessionStorage.removeItem(CONVERSATION);
  } else if (view.state === "active") {
    if (agentName) status("Chatting with ", iso(agentName), ".");
    else status("An agent is with you.");
  } else {
    status("Waiting for an agent…");
  }
}

async function poll() {
  clearTimeout(timer);
  if (!conversation) return;
  try {
    const view = await call("GET", `/demo/api/conversations/${encodeURIComponent(conversation)}?after=${lastSeq}`);
    render(view);
    $("chat-error").textContent = "";
  } catch (e) {
    $("chat-error").textContent = `Cannot reach the chat: ${e.message}`;
  }
  if (!ended) timer = setTimeout(poll, POLL_MS);
}

async function send() {
  const box = $("customer-message");
  const text = box.value;
  if (!text.trim()) return;
  const name = $("customer-name").value.trim() || "Demo Customer";
  clearTimeout(typingTimer);
  typingSince = 0;
  try {
    const view = await call("POST", "/demo/api/messages", { name, text });
    box.value = "";
    $("chat-error").textContent = "";
    if (view.id !== conversation) {
      // A new conversation (the last one ended): start its log afresh.
      conversation = view.id;
      sessionStorage.setItem(CONVERSATION, conversation);
      lastSeq = 0;
      agentName = null;
      $("chat-log").replaceChildren();
    }
    render(view);
    poll();
  } catch (e) {
    $("chat-error").textContent = `Not sent: ${e.message}`;
  }
}

// Typing: `on` at the first keystroke and again every TYPING_REPEAT_MS while it goes on,
// `off` after TYPING_PAUSE_MS without one (a message ends it by itself). The engine bounds
// how often agents are told, whatever the page sends. Only in a conversation that is open.
const TYPING_REPEAT_MS = 3000;
const TYPING_PAUSE_MS = 2500;
let typingSince = 0;
let typingTimer = null;

function typing(on) {
  if (!conversation || ended) return;
  call("POST", `/demo/api/conversations/${encodeURIComponent(conversation)}/typing`, { on }).catch(() => {});
}

$("customer-message").addEventListener("input", () => {
  // An emptied box is not typing: say it stopped, if it had said it started.
  if (!$("customer-message").value.trim()) {
    clearTimeout(typingTimer);
    if (typingSince) typing(false);
    typingSince = 0;
    return;
  }
  const now = Date.now();
  if (!typingSince || now - typingSince >= TYPING_REPEAT_MS) {
    typingSince = now;
    typing(true);
  }
  clearTimeout(typingTimer);
  typingTimer = setTimeout(() => {
    typingSince = 0;
    typing(false);
  }, TYPING_PAUSE_MS);
});

$("customer-send").addEventListener("click", send);
$("customer-message").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    send();
  }
});
$("customer-end").addEventListener("click", async () => {
  if (!conversation) return;
  try {
    render(await call("POST", `/demo/api/conversations/${encodeURIComponent(conversation)}/end`));
  } catch (e) {
    $("chat-error").textContent = `Cannot end the chat: ${e.message}`;
  }
});

poll();
