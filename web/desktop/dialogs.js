// The Transfer, Conference and Wrap Up dialogs: native <dialog> elements (modal, focus
// kept inside, Escape closes, focus returns to the opener), filled when opened.

import { h, fill, uid, iso, isoText } from "/common/dom.js";
import { explain } from "/common/errors.js";
import { agentOption } from "./views.js";

/** Opens `dialog` with `content` (`title`: text and nodes); returns helpers for its error line and closing. */
function open(dialog, titleId, title, content) {
  const error = h("p", { class: "error", role: "alert" });
  fill(dialog, h("h2", { id: titleId }, title), content, error);
  if (!dialog.open) dialog.showModal();
  return {
    error: (e) => (error.textContent = e ? explain(e) : ""),
    close: () => dialog.close(),
  };
}

function field(label, control) {
  const id = control.id || uid("f");
  control.id = id;
  return h("div", { class: "field" }, h("label", { for: id, text: label }), control);
}

function refreshButton(onclick) {
  return h("button", {
    type: "button",
    class: "icon",
    "aria-label": "Refresh lists",
    title: "Refresh lists",
    text: "⟳",
    onclick,
  });
}

/** Calls `fn` at most once per `ms` of quiet typing. */
function debounce(fn, ms) {
  let t = null;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}

/**
 * A select filled from `fetchItems(query)` as the user types in `search`; the first item
 * is chosen. Returns the loader, to call once when the dialog opens.
 */
function searchablePicker({ ui, search, select, fetchItems, valueOf, labelOf, empty }) {
  async function load() {
    ui.error(null);
    try {
      const items = await fetchItems(search.value.trim());
      fill(
        select,
        items.length
          ? items.map((item) => h("option", { value: valueOf(item), text: labelOf(item) }))
          : h("option", { value: "", text: empty, disabled: true }),
      );
      select.value = items.length ? valueOf(items[0]) : "";
    } catch (e) {
      ui.error(e);
    }
  }
  search.addEventListener("input", debounce(load, 150));
  return load;
}

/**
 * On submit: `check()` names what is missing (or nothing), then `action()` runs with the
 * button disabled; on success the dialog closes and `after()` follows.
 */
function onSubmit({ form, ui, submit, check, action, after = () => {} }) {
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    ui.error(null);
    const missing = check();
    if (missing) return ui.error({ message: missing });
    submit.disabled = true;
    try {
      await action();
      ui.close();
      after();
    } catch (err) {
      ui.error(err);
    } finally {
      submit.disabled = false;
    }
  });
}

/** A button that closes the dialog `dialogUi()` returns (read when clicked). */
const cancel = (dialogUi, text = "Cancel") => h("button", { type: "button", text, onclick: () => dialogUi().close() });

/** The longest note a transfer or conference request carries (the engine checks it too). */
const NOTE_MAX_CHARS = 1000;

/** An optional note for the receiving agent, shown in its offer. */
function noteField(id) {
  const note = h("textarea", { id, rows: "2", maxlength: String(NOTE_MAX_CHARS) });
  return { note, field: field("Note for the receiving agent (optional)", note) };
}

/** The body's `note`, or nothing when the agent left it empty. */
const withNote = (note, body) => (note.value.trim() ? { ...body, note: note.value } : body);

/** Transfer to a queue or an agent; on success, the Wrap Up dialog follows. */
export async function transferDialog({ dialog, api, name, me, idleCodes, transfer, afterTransfer }) {
  const queueRadio = h("input", { type: "radio", name: "transfer-to", value: "queue", checked: true });
  const agentRadio = h("input", { type: "radio", name: "transfer-to", value: "agent" });
  const queue = h("select", { id: "transfer-queue" });
  const agent = h("select", { id: "transfer-agent" });
  const queueField = field("Queue", queue);
  const agentField = field("Agent", agent);
  const { note, field: noteBox } = noteField("transfer-note");
  const submit = h("button", { type: "submit", class: "primary", text: "Transfer" });
  const choose = () => {
    queueField.hidden = !queueRadio.checked;
    agentField.hidden = !agentRadio.checked;
  };
  queueRadio.addEventListener("change", choose);
  agentRadio.addEventListener("change", choose);
  const form = h(
    "form",
    { method: "dialog" },
    h(
      "fieldset",
      {},
      h("legend", { text: "Transfer to" }),
      h("label", { class: "inline" }, queueRadio, " A queue"),
      h("label", { class: "inline" }, agentRadio, " An agent"),
    ),
    h("div", { class: "with-icon" }, h("div", {}, queueField, agentField), refreshButton(() => load())),
    noteBox,
    h("div", { class: "buttons" }, submit, cancel(() => ui)),
  );
  const ui = open(dialog, "transfer-title", ["Transfer the conversation with ", iso(name)], form);
  choose();

  async function load() {
    ui.error(null);
    try {
      const [queues, agents] = await Promise.all([api.queues(), api.agents()]);
      const keepQ = queue.value;
      const keepA = agent.value;
      fill(
        queue,
        queues.map((q) =>
          h("option", { value: q.id, text: `${isoText(q.name)} (${q.waiting} waiting, ${q.agents_available} available)` }),
        ),
      );
      fill(
        agent,
        agents
          .filter((a) => a.id !== me)
          .map((a) =>
            h("option", {
              value: a.id,
              text: agentOption(a, idleCodes),
              disabled: !a.eligible,
            }),
          ),
      );
      if (keepQ) queue.value = keepQ;
      if (keepA) agent.value = keepA;
      if (!agent.value || agent.selectedOptions[0]?.disabled) {
        const first = [...agent.options].find((o) => !o.disabled);
        if (first) agent.value = first.value;
      }
    } catch (e) {
      ui.error(e);
    }
  }

  const target = () => (queueRadio.checked ? { queue: queue.value } : { agent: agent.value });
  onSubmit({
    form,
    ui,
    submit,
    check: () => (Object.values(target())[0] ? null : "Choose where to transfer the conversation."),
    action: () => transfer(withNote(note, target())),
    after: afterTransfer,
  });
  await load();
}

/** Invite an available agent to a conference. */
export async function conferenceDialog({ dialog, api, name, me, idleCodes, conference }) {
  const search = h("input", { type: "search", id: "conference-search", autocomplete: "off" });
  const agent = h("select", { id: "conference-agent" });
  const { note, field: noteBox } = noteField("conference-note");
  const submit = h("button", { type: "submit", class: "primary", text: "Conference" });
  const form = h(
    "form",
    { method: "dialog" },
    field("Search agents", search),
    h("div", { class: "with-icon" }, field("Available agent", agent), refreshButton(() => load())),
    noteBox,
    h("div", { class: "buttons" }, submit, cancel(() => ui)),
  );
  const ui = open(dialog, "conference-title", ["Conference on the conversation with ", iso(name)], form);
  const load = searchablePicker({
    ui,
    search,
    select: agent,
    fetchItems: async (q) =>
      (await api.agents({ eligible: true, q })).filter((a) => a.id !== me),
    valueOf: (a) => a.id,
    labelOf: (a) => agentOption(a, idleCodes),
    empty: "No available agent matches",
  });
  onSubmit({
    form,
    ui,
    submit,
    check: () => (agent.value ? null : "Choose an available agent."),
    action: () => conference(withNote(note, { agent: agent.value })),
  });
  search.focus();
  await load();
}

/** Choose a wrap-up reason (filtered by the search field) and submit it. */
export async function wrapupDialog({ dialog, api, name, wrapup }) {
  const search = h("input", { type: "search", id: "wrapup-search", autocomplete: "off" });
  const reason = h("select", { id: "wrapup-reason" });
  const submit = h("button", { type: "submit", class: "primary", text: "Submit Wrap Up" });
  const form = h(
    "form",
    { method: "dialog" },
    h("p", {}, "Conversation with ", iso(name), ". Choose why it ended; the wrap-up stays owed until you submit it."),
    field("Filter reasons", search),
    field("Reason", reason),
    h("div", { class: "buttons" }, submit, cancel(() => ui, "Later")),
  );
  const ui = open(dialog, "wrapup-title", "Wrap Up Reasons", form);
  const load = searchablePicker({
    ui,
    search,
    select: reason,
    fetchItems: (q) => api.wrapupReasons(q),
    valueOf: (r) => r.code,
    labelOf: (r) => r.label,
    empty: "No reason matches",
  });
  onSubmit({
    form,
    ui,
    submit,
    check: () => (reason.value ? null : "Choose a reason."),
    action: () => wrapup(reason.value),
  });
  search.focus();
  await load();
}

/**
 * The agent changes its own password (current, new twice). `minChars`: the shortest new
 * password the engine accepts (`hello.password_min_chars`), or null before the first
 * `hello`; the engine checks it either way, and its refusal is shown in words.
 */
export async function passwordDialog({ dialog, minChars, change, done }) {
  const attrs = (id, autocomplete) => ({ type: "password", id, autocomplete, required: true });
  const current = h("input", attrs("password-current", "current-password"));
  const next = h("input", attrs("password-new", "new-password"));
  const again = h("input", attrs("password-again", "new-password"));
  const submit = h("button", { type: "submit", class: "primary", text: "Change password" });
  const form = h(
    "form",
    { method: "dialog" },
    field("Current password", current),
    field(minChars ? `New password (at least ${minChars} characters)` : "New password", next),
    field("New password again", again),
    h("div", { class: "buttons" }, submit, cancel(() => ui)),
  );
  const ui = open(dialog, "password-title", "Change your password", form);
  onSubmit({
    form,
    ui,
    submit,
    check: () => {
      // Characters as the engine counts them (code points), not UTF-16 units.
      if (minChars && [...next.value].length < minChars) return `The new password needs at least ${minChars} characters.`;
      if (next.value !== again.value) return "The two new passwords differ.";
      return null;
    },
    action: () => change(current.value, next.value),
    after: done,
  });
  current.focus();
}
