// The desktop's state, changed only by `apply(frame)` (server events) and a few local
// actions. Views subscribe and update themselves from it.
//
// `hello` replaces everything the engine knows (presence, offers, conversations, owed
// wrap-ups); what only the page knows (drafts, unread counts, the selected tab) is kept
// across it, which is how a reconnect resumes without losing what the agent typed.
// Offers are held in the `offer` frame's shape, which `hello.offers` has too: the engine
// says what an offer shows, the page derives nothing from a conversation.

/** A conversation as the desktop holds it. */
function entry(conv, old) {
  return {
    conv,
    // Unread messages while the tab was not in view.
    unread: old ? old.unread : 0,
    // The agent owes a wrap-up for it.
    owed: false,
    // The agent left it (transfer, exit) while it goes on without them.
    left: false,
  };
}

export function createStore() {
  const state = {
    agent: null,
    // Why the engine last changed the agent's state (e.g. `offer_expired`), until the agent changes it.
    stateReason: null,
    offers: new Map(),
    conversations: new Map(),
    selected: null,
    drafts: new Map(),
    connection: "connecting",
    // The shortest new password the engine accepts (`hello.password_min_chars`), once known.
    passwordMinChars: null,
  };
  const listeners = new Set();
  const notify = (hint) => {
    for (const fn of listeners) fn(state, hint);
  };

  const conv = (id) => state.conversations.get(id);
  const me = () => (state.agent ? state.agent.id : null);

  function ensureSelected() {
    if (state.selected && state.conversations.has(state.selected)) return;
    const first = state.conversations.keys().next();
    state.selected = first.done ? null : first.value;
  }

  function hello(frame) {
    // `agent.offers` holds the offered conversations whole; `frame.offers` the same offers
    // as `offer` frames carry them.
    const { offers: _conversations, conversations, wrapups, ...agent } = frame.agent;
    const old = state.conversations;
    state.agent = agent;
    state.passwordMinChars = frame.password_min_chars ?? null;
    state.offers = new Map(frame.offers.map((o) => [o.conversation_id, o]));
    state.conversations = new Map();
    for (const c of conversations) state.conversations.set(c.id, entry(c, old.get(c.id)));
    for (const c of wrapups) {
      const e = state.conversations.get(c.id) || entry(c, old.get(c.id));
      e.owed = true;
      e.left = c.state !== "ended" && c.owner !== agent.id && c.guest !== agent.id;
      state.conversations.set(c.id, e);
    }
    if (agent.state !== "rona") state.stateReason = null;
    ensureSelected();
  }

  /** Applies one server frame. Returns a notice for the person, if the frame deserves one. */
  function apply(frame) {
    let notice = null;
    const id = frame.conversation_id;
    const e = id ? conv(id) : null;
    switch (frame.type) {
      case "hello":
        hello(frame);
        break;
      case "state_changed":
        Object.assign(state.agent, {
          state: frame.state,
          idle_code: frame.idle_code,
          state_since: frame.state_since,
        });
        state.stateReason = frame.reason || null;
        break;
      case "offer":
        state.offers.set(id, frame);
        break;
      case "offer_withdrawn": {
        const offer = state.offers.get(id);
        state.offers.delete(id);
        if (offer && frame.reason !== "accepted_elsewhere") {
          notice = { kind: "info", key: "offer_withdrawn", reason: frame.reason, customer: offer.customer.name };
        }
        break;
      }
      case "conversation": {
        const c = frame.conversation;
        const next = entry(c, e);
        next.owed = e ? e.owed : false;
        state.conversations.set(c.id, next);
        state.offers.delete(c.id);
        state.selected = c.id;
        break;
      }
      case "message":
        if (e) {
          const t = e.conv.transcript;
          if (!t.some((m) => m.seq === frame.message.seq)) {
            t.push(frame.message);
            t.sort((a, b) => a.seq - b.seq);
            const mine = frame.message.author.kind === "agent" && frame.message.author.id === me();
            if (!mine && (state.selected !== id || document.hidden)) e.unread += 1;
            // The customer's message ends its typing (the engine's rule; shown at once).
            if (frame.message.author.kind === "customer") e.typingUntil = 0;
          }
        }
        break;
      case "customer_typing":
        // Shown until the engine's `until`, unless an `off` or a message comes first.
        if (e) e.typingUntil = frame.on && frame.until ? Date.parse(frame.until) : 0;
        break;
      case "message_status":
        if (e) {
          const m = e.conv.transcript.find((x) => x.seq === frame.seq);
          if (m) {
            m.delivery = frame.delivery;
            m.delivery_error = frame.delivery_error || null;
          }
        }
        break;
      case "participant_joined":
        if (e) {
          e.conv.guest = frame.agent;
          e.conv.conference_state = "conference";
        }
        break;
      case "participant_left":
        if (e) {
          e.conv.guest = null;
          e.conv.conference_state = "none";
        }
        break;
      case "conference_not_accepted":
        if (e) {
          e.conv.conference_state = "none";
          notice = { kind: "info", key: "conference_not_accepted", agent: frame.agent, customer: e.conv.customer.name };
        }
        break;
      case "conversation_ended":
        if (e) {
          e.conv.state = "ended";
          e.conv.ended_reason = frame.reason;
          e.conv.guest = null;
          e.conv.conference_state = "none";
        }
        break;
      case "wrapup_required":
        if (e) {
          e.owed = true;
          if (e.conv.state !== "ended") e.left = true;
        } else {
          // Owed for a conversation this desktop never showed (e.g. auto-accepted elsewhere):
          // the next hello carries it whole; keep a placeholder until then.
          state.conversations.set(id, {
            conv: { id, state: "ended", customer: { id: "", name: id }, transcript: [], conference_state: "none" },
            unread: 0,
            owed: true,
            left: true,
          });
        }
        ensureSelected();
        break;
      default:
        return null;
    }
    notify(frame.type);
    return notice;
  }

  return {
    state,
    apply,
    subscribe(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    select(id) {
      state.selected = id;
      const e = conv(id);
      if (e) e.unread = 0;
      notify("select");
    },
    setConnection(status) {
      state.connection = status;
      notify("connection");
    },
    /** Local marks after a command succeeded (the engine sends no event for these). */
    conferenceRequested(id) {
      const e = conv(id);
      if (e && e.conv.conference_state === "none") e.conv.conference_state = "conference_requested";
      notify("conference");
    },
    leftConversation(id) {
      const e = conv(id);
      if (e) {
        e.left = e.conv.state !== "ended";
        e.owed = true;
      }
      notify("left");
    },
    wrappedUp(id) {
      state.conversations.delete(id);
      state.drafts.delete(id);
      ensureSelected();
      notify("wrapup");
    },
    reset() {
      state.agent = null;
      state.offers.clear();
      state.conversations.clear();
      state.drafts.clear();
      state.selected = null;
      state.stateReason = null;
      notify("reset");
    },
  };
}
