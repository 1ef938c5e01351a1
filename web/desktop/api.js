// The desktop's REST calls, on the pages' shared client (/common/api.js).

import { request } from "/common/api.js";

/** The calls the desktop makes with one agent token (a session token or an agent token). */
export class Api {
  constructor(token) {
    this.token = token;
  }

  get(path) {
    return request("GET", path, { token: this.token });
  }

  /** The token's agent with offers, conversations and owed wrap-ups (401/403 if not an agent's). */
  me() {
    return this.get("/api/v1/agents/me");
  }

  idleCodes() {
    return this.get("/api/v1/idle-codes");
  }

  queues() {
    return this.get("/api/v1/queues");
  }

  /** Agents, filtered (`{state, queue, q}`), sorted by id. */
  agents(filter = {}) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(filter)) if (v) params.set(k, v);
    const qs = params.toString();
    return this.get(`/api/v1/agents${qs ? `?${qs}` : ""}`);
  }

  /** The canned responses for this agent, each `filled` for conversation `id`. */
  cannedResponses(id) {
    return this.get(`/api/v1/canned-responses?conversation=${encodeURIComponent(id)}`);
  }

  /** The customer's earlier conversations beside conversation `id`, newest first (issue 26 item 6). */
  history(id) {
    return this.get(`/api/v1/conversations/${encodeURIComponent(id)}/history`);
  }

  /** One conversation with its transcript: here, an earlier one of the customer the agent serves. */
  conversation(id) {
    return this.get(`/api/v1/conversations/${encodeURIComponent(id)}`);
  }

  wrapupReasons(q = "") {
    return this.get(`/api/v1/wrapup-reasons${q ? `?q=${encodeURIComponent(q)}` : ""}`);
  }

  /** Sends `file` (a File) in conversation `id`: the message with its attachment. */
  sendFile(id, file) {
    const form = new FormData();
    form.append("file", file, file.name);
    return request("POST", `/api/v1/conversations/${encodeURIComponent(id)}/attachments`, { token: this.token, form });
  }

  /** Changes the signed-in agent's own password. */
  changePassword(current, next) {
    return request("PUT", "/api/v1/agents/me/password", { token: this.token, body: { current, new: next } });
  }

  /** Ends the session (a session token stops working; an agent token is not affected). */
  logout() {
    return request("POST", "/api/v1/logout", { token: this.token });
  }
}

/** Signs in with an id and a password (in `tenant`, if given): `{token, expires_at, kind, id, name}`. */
export function login(id, password, tenant) {
  return request("POST", "/api/v1/login", { body: { id, password, tenant } });
}
