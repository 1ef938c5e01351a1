// How the pages write times, durations and presence: one way on every page.

/** "m:ss" under an hour, "h:mm:ss" above; negative times count as 0. */
export function elapsed(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

/** "14:05" local time of an RFC 3339 instant. */
export function clock(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

/** Date and time of an RFC 3339 instant in the browser's locale and time zone, e.g. "3 Mar 2026, 14:05". */
export function dateTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

/** The words of the engine's presence states (API.md: `state`). */
export const PRESENCE = { available: "Available", idle: "Idle", rona: "RONA", logged_out: "Logged out" };

/** The word of a presence state; an unknown one as the engine wrote it. */
export function presenceWord(state) {
  return PRESENCE[state] || state;
}

/** The label of an agent's presence: an idle code's label (from `idleCodes`) for `idle`. */
export function presenceLabel(agent, idleCodes) {
  if (!agent) return "";
  if (agent.state === "idle") {
    const code = idleCodes.find((c) => c.code === agent.idle_code);
    return code ? code.label : agent.idle_code || PRESENCE.idle;
  }
  return presenceWord(agent.state);
}
