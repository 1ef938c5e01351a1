// A WebSocket to the engine that reconnects by itself: the agent desktop's and the
// supervisor page's.
//
// Each connection of either socket starts with the full state (`hello`, `snapshot`), so
// reconnecting resumes where the page was. Retries back off exponentially with jitter:
// the n-th retry waits a random time in the upper half of min(250 ms * 2^(n-1), 5 s), so a
// restarting engine is not met by every page at once, nor every page at the same instant.
// The count starts again once a connection brings its first frame.
//
// The token travels as `?token=` because browsers cannot set headers on a WebSocket
// (API.md). The engine never logs query strings; see docs/DECISIONS.md "Desktop token in
// the WebSocket URL" for what that means behind a proxy.

/** The first retry's ceiling. */
export const MIN_DELAY_MS = 250;
/** No retry waits longer. */
export const MAX_DELAY_MS = 5000;

/**
 * How long to wait before retry number `attempt` (1, 2, ...): a point chosen by
 * `random()` (in [0, 1)) in the upper half of min(MIN_DELAY_MS * 2^(attempt-1), MAX_DELAY_MS).
 * Never shorter than the previous retry's longest wait, until the ceiling.
 */
export function retryDelay(attempt, random = Math.random) {
  const ceiling = Math.min(MAX_DELAY_MS, MIN_DELAY_MS * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling * (0.5 + random() / 2));
}

/** True when a close says the socket's credential ended (API.md): retrying cannot help. */
export function credentialEnded(code, reason) {
  return code === 1008 && (reason === "credential_revoked" || reason === "session_expired");
}

/** The URL of the engine's socket at `path` on this origin, with `token`. */
export function socketUrl(path, token) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}${path}?token=${encodeURIComponent(token)}`;
}

export class ReconnectingSocket {
  /**
   * `url`: the socket's URL. `first`: the type of the frame every connection starts with
   * (`hello`, `snapshot`). `onFrame(frame)`: every frame, parsed (frames that are not JSON
   * are dropped). `onStatus(status, detail)`, status one of:
   * - `connecting` ({attempt}: 0 for the first connection),
   * - `open` (the first frame arrived and was handed to `onFrame`),
   * - `reconnecting` ({attempt, delayMs, code, reason}: the connection closed or failed;
   *   the next attempt follows in `delayMs`),
   * - `ended` ({code, reason}: the credential ended; no retry),
   * - `stopped` (`stop()` was called).
   */
  constructor({ url, first, onFrame, onStatus }) {
    this.url = url;
    this.first = first;
    this.onFrame = onFrame;
    this.onStatus = onStatus;
    this.ws = null;
    this.ready = false;
    this.stopped = true;
    this.attempt = 0;
    this.retryTimer = null;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  /** Closes for good (sign-out). */
  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    const ws = this.ws;
    this.ws = null;
    this.ready = false;
    if (ws) ws.close(1000, "signed out");
    this.onStatus("stopped", {});
  }

  /** Drops the current connection as a network failure would; reconnection follows. */
  drop() {
    if (this.ws) this.ws.close(4000, "dropped by the page");
  }

  /** Sends `frame` as JSON; false when not connected (nothing is queued). */
  send(frame) {
    if (!this.ws || !this.ready || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  connect() {
    clearTimeout(this.retryTimer);
    if (this.stopped) return;
    this.ready = false;
    this.onStatus("connecting", { attempt: this.attempt });
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.addEventListener("message", (e) => {
      if (ws !== this.ws) return;
      let frame;
      try {
        frame = JSON.parse(e.data);
      } catch {
        return;
      }
      const opening = !this.ready && frame.type === this.first;
      if (opening) {
        this.ready = true;
        this.attempt = 0;
      }
      this.onFrame(frame);
      if (opening) this.onStatus("open", {});
    });
    ws.addEventListener("close", (e) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.ready = false;
      if (this.stopped) return;
      if (credentialEnded(e.code, e.reason)) {
        this.stopped = true;
        this.onStatus("ended", { code: e.code, reason: e.reason });
        return;
      }
      this.attempt += 1;
      const delayMs = retryDelay(this.attempt);
      // Armed before the status goes out: a listener that stops the socket disarms it.
      this.retryTimer = setTimeout(() => this.connect(), delayMs);
      this.onStatus("reconnecting", { attempt: this.attempt, delayMs, code: e.code, reason: e.reason });
    });
  }
}
