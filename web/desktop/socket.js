// The desktop WebSocket: the pages' reconnecting socket (/common/socket.js, backoff
// included) with commands that resolve on their `reply`.
//
// Each connection starts with `hello` (the agent's full state), so reconnecting resumes
// where the desktop was: the store replaces its state from `hello`, and what the agent
// typed lives outside that state (see store.js drafts). Commands go out with a
// `request_id` and resolve or reject when the matching `reply` arrives.

import { ApiError } from "/common/api.js";
import { ReconnectingSocket, socketUrl } from "/common/socket.js";

export class DesktopSocket {
  /**
   * `onEvent(frame)` for every server frame but `reply`; `onStatus(status, detail)` as
   * ReconnectingSocket says it: `connecting`, `open` (hello received), `reconnecting`
   * ({attempt, delayMs, code, reason}), `ended` (the credential ended), `stopped`.
   */
  constructor({ token, onEvent, onStatus }) {
    this.pending = new Map();
    this.nextId = 1;
    this.socket = new ReconnectingSocket({
      url: socketUrl("/api/v1/agents/me/ws", token),
      first: "hello",
      onFrame: (frame) => (frame.type === "reply" ? this.settle(frame) : onEvent(frame)),
      onStatus: (status, detail) => {
        if (status === "reconnecting" || status === "ended") {
          this.failPending(
            "connection_lost",
            "the connection dropped before the engine answered; check the conversation before trying again",
          );
        }
        onStatus(status, detail);
      },
    });
  }

  start() {
    this.socket.start();
  }

  /** Closes for good (sign-out). */
  stop() {
    this.failPending("not_connected", "signed out");
    this.socket.stop();
  }

  /** Drops the current connection as a network failure would; reconnection follows. */
  drop() {
    this.socket.drop();
  }

  /** Sends a command; resolves on `reply.ok`, rejects with an ApiError otherwise. */
  command(type, fields = {}) {
    const request_id = `r${this.nextId++}`;
    if (!this.socket.send({ type, request_id, ...fields })) {
      return Promise.reject(new ApiError(0, "not_connected", "not connected"));
    }
    return new Promise((resolve, reject) => {
      this.pending.set(request_id, { resolve, reject });
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
