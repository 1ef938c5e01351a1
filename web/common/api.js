// The REST client of every page: the only code that builds HTTP requests. Every failure
// becomes an ApiError carrying the engine's `{status, code, message}` (errors.js says it
// in words).

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message || code);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/**
 * One request; `token` goes in the Authorization header, never in the URL. `body` is sent
 * as JSON; `form` (a FormData, e.g. a file) as multipart/form-data instead.
 */
export async function request(method, path, { token, body, form } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      // The browser sets multipart's Content-Type (with its boundary) itself.
      body: form !== undefined ? form : body === undefined ? undefined : JSON.stringify(body),
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

/**
 * Shows the sign-in form's tenant field (`input` and its label) when the deployment has
 * more than one tenant (`GET /api/v1/login`). Without an answer the form works as before.
 */
export async function offerTenant(input) {
  try {
    const form = await request("GET", "/api/v1/login");
    const ask = form.ask_tenant === true;
    input.hidden = !ask;
    for (const label of input.labels) label.hidden = !ask;
  } catch {
    // The field stays hidden: tenant `default`.
  }
}

/** The tenant the sign-in form names, or undefined (tenant `default`). */
export function tenantOf(input) {
  const t = input.hidden ? "" : input.value.trim();
  return t || undefined;
}
