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
  const data = json(await res.text());
  if (!res.ok) throw refusal(res, data);
  return data;
}

/**
 * A GET of a file the engine writes (`accept`, e.g. `text/csv`), as a Blob to save; the
 * token goes in the Authorization header, as with `request`. A refusal is an ApiError.
 */
export async function download(path, { token, accept }) {
  const headers = { Accept: accept };
  if (token) headers.Authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(path, { method: "GET", headers, cache: "no-store", credentials: "omit" });
  } catch (e) {
    throw new ApiError(0, "network", String(e && e.message ? e.message : e));
  }
  if (!res.ok) throw refusal(res, json(await res.text()));
  try {
    return await res.blob();
  } catch (e) {
    // The engine cuts a streamed body short when its store fails midway.
    throw new ApiError(0, "download_cut", String(e && e.message ? e.message : e));
  }
}

/** A body as JSON, or null when it is empty or not JSON. */
function json(text) {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** The ApiError of a refused answer, from the engine's `{"error": {code, message}}`. */
function refusal(res, data) {
  const err = (data && data.error) || {};
  return new ApiError(res.status, err.code || `http_${res.status}`, err.message || res.statusText, res.headers.get("Retry-After"));
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
