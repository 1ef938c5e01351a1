// The REST client: the only module that builds HTTP requests. Every failure becomes an
// ApiError carrying the engine's `{status, code, message}`.

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message || code);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/** One request; `token` goes in the Authorization header, never in the URL. */
export async function request(method, path, { token, body } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
  } catch (e) {
    throw new ApiError(0, "network", String(e && e.message ? e.message : e));
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const err = (data && data.error) || {};
    throw new ApiError(res.status, err.code || `http_${res.status}`, err.message || res.statusText, res.headers.get("Retry-After"));
  }
  return data;
}

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

  wrapupReasons(q = "") {
    return this.get(`/api/v1/wrapup-reasons${q ? `?q=${encodeURIComponent(q)}` : ""}`);
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

/** Signs in with an id and a password: `{token, expires_at, kind, id, name}`. */
export function login(id, password) {
  return request("POST", "/api/v1/login", { body: { id, password } });
}
