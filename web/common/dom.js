// Small DOM helpers shared by the pages (the agent desktop, the supervisor page, the demo
// customer page). No framework: elements are built once and updated in place, so focus,
// selection and typed text survive every update.

/**
 * Builds an element. `props`: attributes (strings), `on*` listeners (functions),
 * `class`, `text`, `dataset` (object); children: nodes or strings (null/false skipped).
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "text") {
      el.textContent = value;
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Sets text only when it changed (keeps screen readers from re-announcing). */
export function setText(el, value) {
  const s = String(value);
  if (el.textContent !== s) el.textContent = s;
}

/** Shows or hides an element. */
export function show(el, visible) {
  el.hidden = !visible;
}

/** A unique-enough id for request ids and element ids. */
let counter = 0;
export function uid(prefix = "id") {
  counter += 1;
  return `${prefix}-${Date.now().toString(36)}-${counter}`;
}

// ----- names and texts that clients control -----
//
// Names (agents, customers, queues, pages) and message texts come from outside: one with a
// bidi override (U+202E) or right-to-left letters must not reorder the words around it,
// and one long unbroken word must not push its box wider than the page.

/** A client-controlled value as an isolated inline element (`<bdi>`, styled to wrap). */
export function iso(value) {
  return h("bdi", { text: value ?? "" });
}

// Bidi controls and right-to-left scripts (Hebrew, Arabic, Syriac, Thaana, NKo, ...).
const BIDI = /[\u0590-\u08ff\u200e\u200f\u202a-\u202e\u2066-\u2069\ufb1d-\ufdff\ufe70-\ufefc]|[\ud802\ud803\ud83a\ud83b]/;

/**
 * A client-controlled value for an attribute or an `<option>`, where no element can
 * isolate it: wrapped in FIRST STRONG ISOLATE ... POP DIRECTIONAL ISOLATE (the text form
 * of `<bdi>`) when it holds anything that could reorder its surroundings; unchanged
 * otherwise, so that plain names read and match exactly as they are.
 */
export function isoText(value) {
  const s = String(value ?? "");
  return BIDI.test(s) ? `\u2068${s}\u2069` : s;
}

/** Makes `el`'s content the client-controlled `value`, isolated (`iso`), only when it changed. */
export function setIso(el, value) {
  const s = String(value ?? "");
  if (el.isoValue === s) return;
  el.isoValue = s;
  el.replaceChildren(iso(s));
}

/** Replaces `el`'s children with `parts` (strings and nodes) only when their text changed. */
export function setParts(el, ...parts) {
  const flat = parts.flat().filter((p) => p !== null && p !== undefined && p !== false);
  const key = flat.map((p) => (p instanceof Node ? `<${p.nodeName}>${p.textContent}` : String(p))).join("\u0000");
  if (el.partsKey === key) return;
  el.partsKey = key;
  fill(el, flat);
}

/**
 * The element children of `parent` kept in step with a list of keys (ids), in place: an
 * element is made once for a key (`create(key)`), brought up to date on every `show`
 * (`update(el, key)`, which should write only what changed), and kept for as long as its
 * key is shown, so a table row keeps its identity, its focus and an open menu across
 * updates. Elements move only where the order changed; a key no longer shown loses its
 * element. `parent` holds nothing else.
 */
export class KeyedChildren {
  constructor(parent, { create, update }) {
    this.parent = parent;
    this.create = create;
    this.update = update;
    /** key -> element, for the keys shown now */
    this.elements = new Map();
  }

  /** Shows exactly `keys` (distinct), in that order. */
  show(keys) {
    const wanted = new Set(keys);
    for (const [key, el] of this.elements) {
      if (!wanted.has(key)) {
        el.remove();
        this.elements.delete(key);
      }
    }
    // Every child left is a wanted key's: walk them in order, moving only what is out of place.
    let cursor = this.parent.firstElementChild;
    for (const key of keys) {
      let el = this.elements.get(key);
      if (!el) {
        el = this.create(key);
        this.elements.set(key, el);
      }
      this.update(el, key);
      if (el === cursor) cursor = cursor.nextElementSibling;
      else this.parent.insertBefore(el, cursor);
    }
  }

  /** The element shown for `key`, if any. */
  get(key) {
    return this.elements.get(key);
  }

  /** Removes every element. */
  clear() {
    for (const el of this.elements.values()) el.remove();
    this.elements.clear();
  }
}
