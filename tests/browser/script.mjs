// What a browser test script shares (tests/browser.rs runs each with node and a JSON
// config: {servers: {main, ...}, admin, operator, chromium, screenshots, result}): the
// config, logged steps, screenshots, the tokens it used, its result file, its failure
// (a screenshot of every page it opened), and REST calls to the main server.

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** The script named `name` (it prefixes failure screenshots), failing past `limitMs`. */
export function script(name, limitMs) {
  const cfg = JSON.parse(process.argv[2]);
  const base = cfg.servers.main;
  const tokens = new Set();
  const pages = [];
  let current = "start";
  mkdirSync(cfg.screenshots, { recursive: true });

  const log = (...a) => console.log(`[${new Date().toISOString().slice(11, 23)}]`, ...a);
  const shot = (page, file) => page.screenshot({ path: join(cfg.screenshots, `${file}.png`), fullPage: true });

  async function step(title, fn) {
    current = title;
    log(`step: ${title}`);
    await fn();
  }

  async function fail(err) {
    console.error(`FAILED in step "${current}": ${err && err.stack ? err.stack : err}`);
    for (const [p, page] of pages) await shot(page, `FAILED-${name}-${p}`).catch(() => {});
    writeFileSync(cfg.result, JSON.stringify({ passed: false, step: current, tokens: [...tokens] }));
    process.exit(1);
  }
  setTimeout(() => fail(new Error(`the script ran for more than ${limitMs / 60_000} minutes`)), limitMs).unref();

  /** A REST call to the main server; throws on a status of 300 or more. */
  async function call(method, path, token, body) {
    const res = await fetch(base + path, {
      method,
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: body ? JSON.stringify(body) : undefined,
    });
    const data = await res.json().catch(() => null);
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(data)}`);
    return data;
  }

  /**
   * Runs `run(browser)` in Chromium and writes the result: passed (with the fields of
   * `extra` as they are then), or the failure.
   */
  async function runIn(chromium, run, extra = {}) {
    const browser = await chromium.launch({ executablePath: cfg.chromium, headless: true, args: FLAGS });
    try {
      await run(browser);
      writeFileSync(cfg.result, JSON.stringify({ passed: true, tokens: [...tokens], ...extra }));
      log("PASSED");
    } catch (e) {
      await fail(e);
    } finally {
      await browser.close();
    }
  }

  return { cfg, base, tokens, pages, log, shot, step, fail, call, runIn };
}
