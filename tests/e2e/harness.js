// Test harness: the real server binary on a free port, headless Debian Chromium driven by
// playwright-core, a recorder of everything the pages send, and page helpers.
// Synchronisation is by polling /health, waiting on page selectors, events and acks: no
// fixed sleeps. Every page runs under the server's Content-Security-Policy; any violation
// fails the suite (stopSuite).

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '../..');
export const STATIC_DIR = path.join(REPO, 'static');
export const ARTIFACTS = path.join(here, 'artifacts');
export const BIN = process.env.BLINDRELAY_BIN
  ? path.resolve(process.env.BLINDRELAY_BIN)
  : path.resolve(here, '../../target/debug/blindrelay');
export const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';

fs.mkdirSync(ARTIFACTS, { recursive: true });

/** The viewports the tests use: a 390 px phone, and a desktop. */
export const PHONE = { width: 390, height: 844 };
export const DESKTOP = { width: 1280, height: 800 };

/** The policy the server sends with every response (docs/protocol.md "HTTP routes"). */
export const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
  + "media-src 'self' blob:; connect-src 'self'; font-src 'self'; manifest-src 'self'; frame-ancestors 'none'; "
  + "base-uri 'none'; form-action 'none'";

/** Every Content-Security-Policy violation seen by any page of this test file. */
export const cspViolations = [];

/** A TCP port nobody listens on right now. */
export async function freePort() {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address();
  srv.close();
  await once(srv, 'close');
  return port;
}

/** The blindrelay binary, serving STATIC_DIR. */
export class Server {
  /** `dataDir`: another server's (`server.dataDir`), for the same node started again. */
  constructor({ port, env = {}, dataDir } = {}) {
    this.port = port;
    this.env = env;
    this.dataDir = dataDir;
    this.log = '';
    this.proc = null;
  }

  get origin() {
    return `http://127.0.0.1:${this.port}`;
  }

  async start() {
    if (!fs.existsSync(BIN)) throw new Error(`server binary not found: ${BIN} (set BLINDRELAY_BIN)`);
    this.port ??= await freePort();
    // Its own snapshot folder, kept across its restarts (as the same command in the same
    // working directory would), never shared with another test's server.
    this.dataDir ??= fs.mkdtempSync(path.join(os.tmpdir(), 'blindrelay-e2e-data-'));
    const proc = spawn(BIN, [], {
      env: {
        ...process.env,
        PORT: String(this.port),
        DATA_DIR: this.dataDir,
        HOST: '127.0.0.1',
        STATIC_DIR,
        LOG_FORMAT: 'json',
        RUST_LOG: 'info',
        SHUTDOWN_GRACE_SECS: '1',
        ...this.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc = proc;
    this.exited = once(proc, 'exit');
    proc.stdout.on('data', (d) => { this.log += d; });
    proc.stderr.on('data', (d) => { this.log += d; });
    await this.waitHealthy();
    return this;
  }

  /** Polls GET /health until it answers 200 (or the process dies, or 20 s pass). */
  async waitHealthy(timeoutMs = 20_000) {
    const deadline = Date.now() + timeoutMs;
    let dead = false;
    this.exited.then(() => { dead = true; });
    for (;;) {
      if (dead) throw new Error(`server exited before answering /health:\n${this.log}`);
      try {
        const res = await fetch(`${this.origin}/health`);
        if (res.ok) {
          const body = await res.json();
          if (body.status === 'ok') return body;
        }
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`server did not answer /health in time:\n${this.log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Ends the process (SIGKILL simulates a crash) and waits for it. */
  async kill(signal = 'SIGKILL') {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill(signal);
    await this.exited;
  }

  async stop() {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** The server and browser a test file shares: `before(async () => ({ server, browser } =
 *  await startSuite()))` and `after(() => stopSuite({ server, browser }))`. */
export async function startSuite() {
  const server = await new Server().start();
  const browser = await launchBrowser();
  return { server, browser };
}

export async function stopSuite({ server, browser }) {
  await browser?.close();
  await server?.stop();
  if (cspViolations.length) throw new Error(`Content-Security-Policy violations:\n${cspViolations.join('\n')}`);
}

/** `args`: more Chromium flags (a fake microphone, say) for one test file's browser. */
export function launchBrowser({ args = [] } = {}) {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      ...args,
    ],
  });
}

/**
 * Everything the pages send: WebSocket frames and HTTP request bodies (Socket.IO polling,
 * the reservation), plus every request URL and its headers.
 */
export class Recorder {
  constructor() {
    this.sent = [];
    this.requests = [];
  }

  attach(page, label) {
    page.on('websocket', (ws) => {
      ws.on('framesent', (f) => {
        const data = typeof f.payload === 'string' ? f.payload : Buffer.from(f.payload).toString('latin1');
        this.sent.push({ label, kind: 'ws', at: Date.now(), data });
      });
    });
    page.on('request', (req) => {
      this.requests.push({ label, url: req.url(), headers: req.headers() });
      const body = req.postData();
      if (body) this.sent.push({ label, kind: 'http', at: Date.now(), url: req.url(), data: body });
    });
  }

  /** Socket.IO event frames sent, decoded: [{label, event, payload}]. */
  events(label) {
    const out = [];
    for (const f of this.sent) {
      if (label && f.label !== label) continue;
      // Engine.IO polling bodies join packets with \x1e. An event is "42…", or "45<n>-…"
      // when it has n binary attachments (files), sent as frames of their own.
      for (const packet of f.data.split('\x1e')) {
        const m = /^4(?:2|5\d+-)\d*(\[.*)$/s.exec(packet);
        if (!m) continue;
        try {
          const [event, payload] = JSON.parse(m[1]);
          out.push({ label: f.label, at: f.at, event, payload });
        } catch {
          // not JSON: ignore
        }
      }
    }
    return out;
  }

  /** Every string that left the pages, URLs and headers included. */
  everything() {
    return [
      ...this.sent.map((f) => f.data),
      ...this.requests.map((r) => `${r.url}\n${JSON.stringify(r.headers)}`),
    ];
  }
}

/**
 * Records every violation of the policy the server sends with the page (screens.test.js
 * checks that it is `CSP`): the browser's `securitypolicyviolation` events and its console.
 */
async function watchCsp(context) {
  await context.exposeBinding('reportCspViolation', ({ page }, text) => {
    cspViolations.push(text);
    page?.problems?.push(`csp: ${text}`);
  });
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      window.reportCspViolation(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'} (${e.sourceFile}:${e.lineNumber})`);
    });
  });
}

/**
 * A new browser context (a separate person) with one page on `url`; `touch` makes it a phone
 * (a touch screen and no mouse, as `pointer: coarse` tells the page).
 */
export async function openPerson(browser, { label, url, recorder, viewport = { width: 1100, height: 820 }, touch = false }) {
  const context = await browser.newContext({ viewport, acceptDownloads: true, ...(touch ? { hasTouch: true, isMobile: true } : {}) });
  await watchCsp(context);
  const { page } = await openTab(context, { label, url, recorder });
  return { context, page, label };
}

/** Another tab of the same browser (the same person's storage), on `url`. */
export async function openTab(context, { label, url, recorder }) {
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  recorder?.attach(page, label);
  page.problems = [];
  page.on('pageerror', (err) => page.problems.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (/Content Security Policy|Refused to/i.test(msg.text())) cspViolations.push(`console: ${msg.text()}`);
    if (msg.type() !== 'error') return;
    // A polling request socket.io-client had in flight when its session ended (it was
    // refused, or the page left the room) is answered 400 "Session ID unknown"; the
    // browser logs that, but nothing failed. Every other error is a problem.
    const where = msg.location()?.url ?? '';
    if (/status of 400/.test(msg.text()) && /\/socket\.io\/\?.*\bsid=/.test(where)) return;
    page.problems.push(`console: ${msg.text()}`);
  });
  // Any request that is not to our server would be an external request.
  page.on('request', (req) => {
    const u = new URL(req.url());
    if (!['blob:', 'data:'].includes(u.protocol) && u.origin !== new URL(url).origin) {
      page.problems.push(`external request: ${req.url()}`);
    }
  });
  if (url) await page.goto(url);
  return { context, page, label };
}

export async function screenshot(page, name) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

// ---- page helpers ----

/** Fills the create form and creates a room; returns the share link. */
export async function createRoom(page, { mode, name, password, shot }) {
  await page.locator('#view-home').waitFor();
  await page.check(`#mode-${mode}`);
  await page.fill('#create-name', name);
  if (mode === 'password') {
    await page.fill('#create-password', password);
    await page.fill('#create-password2', password);
  }
  if (shot) await screenshot(page, shot);
  await page.click('#create-submit');
  await page.locator('#view-room').waitFor();
  await page.locator('#conn[data-state="joined"]').waitFor();
  return page.inputValue('#share-link');
}

/** Opens a link and joins with a name (and password). Does not wait for success. */
export async function openLinkAndJoin(page, link, { name, password, shot }) {
  await page.goto(link);
  await page.locator('#view-join').waitFor();
  await page.fill('#join-name', name);
  if (password !== undefined) await page.fill('#join-password', password);
  if (shot) await screenshot(page, shot);
  await page.click('#join-submit');
}

export async function joinRoom(page, link, opts) {
  await openLinkAndJoin(page, link, opts);
  await page.locator('#view-room').waitFor();
  await page.locator('#conn[data-state="joined"]').waitFor();
}

/** Attaches files through the Attach button's file picker and sends them from the preview. */
export async function sendFiles(page, files) {
  await page.setInputFiles('#file-input', files);
  await page.locator('#attach-preview:not([hidden])').waitFor();
  await page.click('#attach-send');
  await page.locator('#attach-preview[hidden]').waitFor({ state: 'attached' });
}

/** On a phone the members and safety numbers are folded away above the log: unfolds them. */
export async function showPeople(page) {
  const toggle = page.locator('#people-toggle');
  if (await toggle.isVisible() && await toggle.getAttribute('aria-expanded') !== 'true') await toggle.click();
}

/** Opens the room's "More" menu and clicks one of its items. */
export async function menuItem(page, id) {
  if (!(await page.locator('#more-menu[open]').count())) await page.click('#more-menu summary');
  await page.click(`#${id}`);
}

/** Answers the page's confirmation dialog (with a new password when it asks for one). */
export async function confirmDialog(page, { password } = {}) {
  await page.locator('#confirm-dialog[open]').waitFor();
  if (password !== undefined) {
    await page.fill('#confirm-password', password);
    await page.fill('#confirm-password2', password);
  }
  await page.click('#confirm-ok');
  await page.locator('#confirm-dialog:not([open])').waitFor({ state: 'attached' });
}

/** Sends a text message and waits for the server's ack (status "Sent"). */
export async function sendText(page, text) {
  await page.fill('#message-input', text);
  await page.press('#message-input', 'Enter');
  await page.locator('.msg.mine[data-state="sent"] .body', { hasText: text }).waitFor();
}

/** Waits until `text` is shown decrypted as someone else's message. */
export async function waitForMessage(page, text, from) {
  const msg = page.locator('.msg.theirs', { has: page.locator('.body', { hasText: text }) });
  await msg.first().waitFor();
  if (from) {
    const who = await msg.first().locator('.who').textContent();
    if (who !== from) throw new Error(`message "${text}" shown from "${who}", expected "${from}"`);
  }
  return msg.first();
}

export async function bannerText(page) {
  await page.locator('#banner:not([hidden])').waitFor();
  return page.locator('#banner-text').textContent();
}

/** Asserts that none of `secrets` appears in anything the pages sent (and no originalContent). */
export function assertNothingLeaked(recorder, secrets, { serverLog } = {}) {
  const all = recorder.everything();
  if (all.length === 0) throw new Error('nothing was recorded');
  for (const s of secrets) {
    for (const data of all) {
      if (data.includes(s)) throw new Error(`leaked ${JSON.stringify(s)} in: ${data.slice(0, 300)}`);
    }
    if (serverLog?.includes(s)) throw new Error(`the server log holds ${JSON.stringify(s)}`);
  }
  for (const data of all) {
    if (data.includes('originalContent')) throw new Error(`a frame holds originalContent: ${data.slice(0, 300)}`);
  }
}
