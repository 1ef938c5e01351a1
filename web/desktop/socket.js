// The desktop WebSocket with automatic reconnection.
//
// Each connection starts with `hello` (the agent's full state), so reconnecting resumes
// where the desktop was: the store replaces its state from `hello`, and what the agent
// typed lives outside that state (see store.js drafts). Commands go out with a
// `request_id` and resolve or reject when the matching `reply` arrives.
//
// The token travels as `?token=` because browsers cannot set headers on a WebSocket
// (API.md). The engine never logs query strings; see docs/DECISIONS.md "Desktop token in
// the WebSocket URL" for what that means behind a proxy.

import { ApiError } from "./api.js";

const MIN_DELAY_MS = 250;
const MAX_DELAY_MS = 5000;

export class DesktopSocket {
  /**
   * `onEvent(frame)` for every server frame but `reply`; `onStatus(status, detail)` with
   * status `connecting`, `open` (hello received), `reconnecting` ({attempt, delayMs}),
   * `stopped`.
   */
  constructor({ token, onEvent, onStatus }) {
    this.token = token;
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.ws = null;
    this.ready = false;
    this.stopped = true;
    this.attempt = 0;
    this.retryTimer = null;
    this.pending = new Map();
    this.nextId = 1;
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    return `${scheme}://${location.host}/api/v1/agents/me/ws?token=${encodeURIComponent(this.token)}`;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  /** Closes for good (sign-out). */
  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    if (this.ws) this.ws.close(1000, "signed out");
    this.ws = null;
    this.failPending("not_connected", "signed out");
    this.onStatus("stopped");
  }

  /** Drops the current connection as a network failure would; reconnection follows. */
  drop() {
    if (this.ws) this.ws.close(4000, "dropped by the page");
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.ready = false;
    this.onStatus("connecting", { attempt: this.attempt });
    const ws = new WebSocket(this.url());
    this.ws = ws;
    ws.addEventListener("message", (e) => {
      if (ws !== this.ws) return;
      let frame;
      try {
        frame = JSON.parse(e.data);
      } catch {
        return;
      }
      if (frame.type === "reply") {
        this.settle(frame);
        return;
      }
      if (frame.type === "hello") {
        this.ready = true;
        this.attempt = 0;
        this.onEvent(frame);
        this.onStatus("open");
        return;
      }
      this.onEvent(frame);
    });
    ws.addEventListener("close", (e) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.ready = false;
      this.failPending(
        "connection_lost",
        "the connection dropped before the engine answered; check the conversation before trying again",
      );
      if (this.stopped) return;
      this.attempt += 1;
      const base = Math.min(MAX_DELAY_MS, MIN_DELAY_MS * 2 ** (this.attempt - 1));
      const delayMs = Math.round(base * (0.5 + Math.random() / 2));
      this.onStatus("reconnecting", { attempt: this.attempt, delayMs, code: e.code, reason: e.reason });
      this.retryTimer = setTimeout(() => this.connect(), delayMs);
    });
  }

  /** Sends a command; resolves on `reply.ok`, rejects with an ApiError otherwise. */
  command(type, fields = {}) {
    if (!this.ws || !this.ready || this.ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new ApiError(0, "not_connected", "not connected"));
    }
    const request_id = `r${this.nextId++}`;
    return new Promise((resolve, reject) => {
      this.pending.set(request_id, { resolve, reject });
      this.ws.send(JSON.stringify({ type, request_id, ...fields }));
    });
  }

  settle(reply) {
    const p = this.pending.get(reply.request_id);
    if (!p) return;
    this.pending.delete(reply.request_id);
    if (reply.ok) {
      p.resolve();
    } else {
      const err = reply.error || {};
      const status = err.code === "store_unavailable" || err.code === "engine_unavailable" ? 503 : 409;
      p.reject(new ApiError(status, err.code || "refused", err.message || ""));
    }
  }

  failPending(code, message) {
    for (const p of this.pending.values()) p.reject(new ApiError(0, code, message));
    this.pending.clear();
  }
}
