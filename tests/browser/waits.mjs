// Waiting as the browser tests share it: how long a step may take, polling until a
// condition holds, and an element shown or gone.

/** The longest a step waits (ms). */
export const WAIT = 20_000;

/** Waits until `fn()` is truthy (polling); `what` names it in the failure. */
export async function until(what, fn, timeout = WAIT) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits until the first element of `locator` is visible. */
export const visible = (locator) => locator.first().waitFor({ state: "visible", timeout: WAIT });
/** Waits until the first element of `locator` is hidden or gone. */
export const gone = (locator) => locator.first().waitFor({ state: "hidden", timeout: WAIT });
