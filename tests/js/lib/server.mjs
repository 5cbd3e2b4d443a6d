// Test harness: spawns the real blindrelay binary and drives it with the official
// socket.io-client. Synchronisation is always on acks and events; the only bounded
// waits are for negative assertions (noEvent) and for expiry (the thing under test).

import { spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { io } from 'socket.io-client';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '..', '..', '..');
export const BIN = process.env.BLINDRELAY_BIN || path.join(REPO, 'target', 'debug', 'blindrelay');

/** Settings the server reads; removed from the inherited environment so that only the
 *  test's own values apply. */
const SERVER_VARS = [
  'PORT', 'HOST', 'CLIENT_URL', 'SESSION_TTL_SECS', 'REAPER_INTERVAL_SECS',
  'MAX_PAYLOAD_BYTES', 'HISTORY_MAX_MESSAGES', 'HISTORY_MAX_BYTES', 'MAX_SESSIONS',
  'MAX_GROUP_MEMBERS', 'ADMIN_TOKEN', 'METRICS_TOKEN', 'SHUTDOWN_GRACE_SECS', 'DEBUG',
  'PING_INTERVAL_SECS', 'PING_TIMEOUT_SECS', 'PRESENCE_GRACE_SECS',
  'LOG_FORMAT', 'STATIC_DIR', 'RUST_LOG', 'HEALTHCHECK_URL', 'REDIS_PREFIX', 'NODE_LEASE_SECS',
  'SOCKET_EVENTS_PER_SEC', 'SOCKET_EVENTS_BURST', 'SOCKET_BYTES_PER_SEC', 'SOCKET_BYTES_BURST', 'SOCKET_QUEUED_BYTES', 'INFLIGHT_BYTES_PER_IP', 'INFLIGHT_BYTES_TOTAL',
  'IP_CONNECTS_PER_SEC', 'IP_CONNECTS_BURST', 'IP_RESERVES_PER_SEC', 'IP_RESERVES_BURST',
  'IP_JOIN_FAILURES_PER_MIN', 'IP_JOIN_FAILURES_BURST', 'JOIN_FAILURES_PER_SESSION',
  'JOIN_LOCKOUT_SECS', 'MAX_CONNECTIONS', 'MAX_CONNECTIONS_PER_IP', 'HISTORY_TOTAL_MAX_BYTES',
  'JOIN_TIMEOUT_SECS', 'CONNECT_TIMEOUT_SECS', 'MAX_BUFFERED_PACKETS', 'TRUSTED_PROXIES',
  'STORE_DIGEST_KEY', 'UNUSED_SESSION_TTL_SECS', 'REPLAY_BYTES_PER_IP', 'REPLAY_BYTES_TOTAL', 'CONN_READ_BYTES_PER_SEC', 'READ_BYTES_PER_SEC',
];

/** The digest key of every test server: nodes of one deployment must share it. */
export const TEST_DIGEST_KEY = 'test-digest-key-for-the-js-suite-0123456789';

const servers = new Set();
const clients = new Set();

/** A random id that is valid for sessionId / userId. */
export function uid(prefix = 'id') {
  return `${prefix}-${randomBytes(6).toString('hex')}`;
}

/** A free TCP port on 127.0.0.1 (bind to port 0, read it, close). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts the server. `env` overrides the defaults (a value of `undefined` removes a
 * variable). `nofile` starts it with that many file descriptors at most (`ulimit -n`,
 * through bash). Resolves once `GET /health` answers 200.
 */
export async function startServer(env = {}, { readyTimeoutMs = 15000, nofile } = {}) {
  const port = await freePort();
  const base = { ...process.env };
  for (const k of SERVER_VARS) delete base[k];
  const merged = {
    ...base,
    PORT: String(port),
    HOST: '127.0.0.1',
    CLIENT_URL: '*',
    // Teardown of the per-file servers: keep the drain linger short.
    SHUTDOWN_GRACE_SECS: '2',
    // Departures are announced 1 s after a disconnect (default 10 s), so tests of
    // user-left need not wait; tests of the grace itself set it.
    PRESENCE_GRACE_SECS: '1',
    STORE_DIGEST_KEY: TEST_DIGEST_KEY,
    // With REDIS_URL in the environment (the suite's Redis run), each server gets its
    // own key prefix unless the test shares one on purpose (several nodes, one cluster).
    ...(process.env.REDIS_URL ? { REDIS_PREFIX: `test-${uid('p')}:` } : {}),
    ...env,
  };
  for (const [k, v] of Object.entries(merged)) if (v === undefined) delete merged[k];

  // A fresh working directory, so that no stray .env file is read.
  const cwd = mkdtempSync(path.join(os.tmpdir(), 'blindrelay-js-'));
  const [cmd, args] = nofile === undefined
    ? [BIN, []]
    : ['bash', ['-c', 'ulimit -n "$1" && exec "$0"', BIN, String(nofile)]];
  const child = spawn(cmd, args, { cwd, env: merged, stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks = [];
  child.stdout.on('data', (c) => chunks.push(c));
  child.stderr.on('data', (c) => chunks.push(c));
  // BLINDRELAY_LOG_DIR keeps every server's output in a file, to read after a failure.
  if (process.env.BLINDRELAY_LOG_DIR) {
    const log = createWriteStream(path.join(process.env.BLINDRELAY_LOG_DIR, `server-${port}.log`));
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
  }
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  const spawnError = new Promise((_, reject) => child.on('error', reject));
  spawnError.catch(() => {});

  // A server that dies on its own is a finding: say so, with what it printed.
  exited.then((r) => {
    if (!server.stopped) {
      process.stderr.write(`\n[blindrelay on port ${port} exited unexpectedly: ${JSON.stringify(r)}]\n${server.output().slice(-4000)}\n`);
    }
  });

  const url = `http://127.0.0.1:${port}`;
  const server = {
    url,
    port,
    child,
    exited,
    output: () => Buffer.concat(chunks).toString('utf8'),
    stopped: false,
    /** SIGTERM, then waits for the process to exit; resolves {code, signal, ms}. */
    async stop() {
      servers.delete(server);
      if (server.stopped) return exited;
      server.stopped = true;
      const t0 = Date.now();
      child.kill('SIGTERM');
      const r = await exited;
      return { ...r, ms: Date.now() - t0 };
    },
  };
  servers.add(server);

  const deadline = Date.now() + readyTimeoutMs;
  let early = null;
  exited.then((r) => { early = r; });
  for (;;) {
    if (early) {
      throw new Error(`server exited early (${JSON.stringify(early)}):\n${server.output()}`);
    }
    try {
      const r = await Promise.race([request('GET', `${url}/health`, { timeoutMs: 500 }), spawnError]);
      if (r.status === 200) break;
    } catch (e) {
      if (e && e.code === 'ENOENT') throw new Error(`server binary not found: ${BIN}`);
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`server not ready within ${readyTimeoutMs} ms:\n${server.output()}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  return server;
}

/**
 * Minimal HTTP client (node:http lets a test set Origin freely).
 * Resolves {status, headers, text, json}.
 */
export function request(method, url, { headers = {}, body, timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    let payload = body;
    const h = { ...headers };
    if (body !== undefined && typeof body !== 'string' && !Buffer.isBuffer(body)) {
      payload = JSON.stringify(body);
      h['content-type'] ??= 'application/json';
    }
    const req = http.request(url, { method, headers: h, agent: false }, (res) => {
      const parts = [];
      res.on('data', (c) => parts.push(c));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

export async function health(url) {
  const r = await request('GET', `${url}/health`);
  if (r.status !== 200) throw new Error(`/health answered ${r.status}`);
  return r.json;
}

/** POST /api/reserve-session. */
export function reserve(url, body) {
  return request('POST', `${url}/api/reserve-session`, { body });
}

/**
 * A connected socket.io client. `opts.transports` defaults to what the original app
 * uses; pass `transports: undefined` explicitly for socket.io-client's default
 * (polling, then upgrade).
 */
export function connect(url, opts = {}) {
  const options = {
    transports: ['websocket', 'polling'],
    forceNew: true,
    reconnection: false,
    timeout: 5000,
    ...opts,
  };
  if ('transports' in opts && opts.transports === undefined) delete options.transports;
  const socket = io(url, options);
  clients.add(socket);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error('connect timed out'));
    }, 5000);
    socket.once('connect', () => { clearTimeout(timer); resolve(socket); });
    socket.once('connect_error', (e) => { clearTimeout(timer); socket.close(); reject(e); });
  });
}

export const NO_PAYLOAD = Symbol('no payload');

/** Emits with an acknowledgement; rejects if none arrives within timeoutMs. */
export function emitAck(socket, event, payload, timeoutMs = 3000) {
  const s = socket.timeout(timeoutMs);
  return payload === NO_PAYLOAD ? s.emitWithAck(event) : s.emitWithAck(event, payload);
}

/**
 * The next payload of `name` on `socket` (optionally the next one matching `pred`).
 * Call it BEFORE the action that triggers the event.
 */
export function nextEvent(socket, name, timeoutMs = 3000, pred = () => true) {
  return new Promise((resolve, reject) => {
    const onEvent = (...args) => {
      if (!pred(...args)) return;
      clearTimeout(timer);
      socket.off(name, onEvent);
      resolve(args[0]);
    };
    const timer = setTimeout(() => {
      socket.off(name, onEvent);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for '${name}'`));
    }, timeoutMs);
    socket.on(name, onEvent);
  });
}

/** Resolves if `name` does NOT arrive within `ms`; rejects with the payload if it does.
 *  A bounded wait, for negative assertions only. */
export function noEvent(socket, name, ms = 300) {
  return new Promise((resolve, reject) => {
    const onEvent = (payload) => {
      clearTimeout(timer);
      socket.off(name, onEvent);
      reject(new Error(`unexpected '${name}': ${JSON.stringify(payload)}`));
    };
    const timer = setTimeout(() => {
      socket.off(name, onEvent);
      resolve();
    }, ms);
    socket.on(name, onEvent);
  });
}

/** Records every payload of `name` on `socket` from now on; `.stop()` detaches. */
export function collect(socket, name) {
  const list = [];
  const on = (p) => list.push(p);
  socket.on(name, on);
  Object.defineProperty(list, 'stop', { value: () => socket.off(name, on), enumerable: false });
  return list;
}

/**
 * A round trip on `socket` that resolves once the server has answered an event sent
 * after everything before it: the server handles one socket's events in order and sends
 * their answers in order, so anything it emitted on this socket for earlier events has
 * arrived when this ack does. The event is a get-public-keys for a session named
 * 'barrier' (which no test joins): its answer is a NOT_IN_SESSION ack, and never a
 * session-error. Returns the ack.
 */
export async function barrier(socket) {
  const ack = await emitAck(socket, 'get-public-keys', { sessionId: 'barrier' });
  if (ack?.ok !== false) throw new Error(`barrier: expected a refusal ack, got ${JSON.stringify(ack)}`);
  return ack;
}

/**
 * Emits with an ack and expects `{ok:false, error:code, message}` as the ack. A refused
 * `join-session` is ALSO answered with `session-error {error:code, message}` (the same
 * message); any other refused event with the ack alone: no session-error may arrive on
 * the socket up to a barrier round trip after the ack (the End2End Chat app treats every
 * session-error as fatal). Returns the ack.
 */
export async function expectError(socket, event, payload, code, assert) {
  const what = `${event} ${describe(payload)}`;
  const checkAck = (ack) => {
    assert.equal(ack?.ok, false, `${what}: ack should be ok:false, got ${JSON.stringify(ack)}`);
    assert.equal(ack.error, code, `${what}: ack error, got ${JSON.stringify(ack)}`);
    assert.equal(typeof ack.message, 'string', `${what}: ack message`);
  };
  if (event === 'join-session') {
    const errEvent = nextEvent(socket, 'session-error');
    const ack = await emitAck(socket, event, payload);
    checkAck(ack);
    const ev = await errEvent;
    assert.equal(ev?.error, code, `${what}: session-error, got ${JSON.stringify(ev)}`);
    assert.equal(ev.message, ack.message, `${what}: session-error message, got ${JSON.stringify(ev)}`);
    return ack;
  }
  const errors = collect(socket, 'session-error');
  try {
    const ack = await emitAck(socket, event, payload);
    checkAck(ack);
    await barrier(socket);
    assert.deepEqual([...errors], [], `${what}: a refused ${event} must not be answered with session-error`);
    return ack;
  } finally {
    errors.stop();
  }
}

/** Emits with an ack and expects `{ok:true, ...}`. Returns the ack. */
export async function expectOk(socket, event, payload, assert) {
  const ack = await emitAck(socket, event, payload);
  assert.equal(ack?.ok, true, `${event} ${describe(payload)}: expected ok, got ${JSON.stringify(ack)}`);
  return ack;
}

function describe(payload) {
  if (payload === NO_PAYLOAD) return '(no payload)';
  const s = JSON.stringify(payload);
  return s && s.length > 120 ? `${s.slice(0, 120)}...` : String(s);
}

/** Polls `/health` until `pred(health)` holds (state the server reaches asynchronously,
 *  e.g. a disconnect handled). */
export async function waitHealth(url, pred, timeoutMs = 3000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const h = await health(url);
    if (pred(h)) return h;
    if (Date.now() > deadline) throw new Error(`health condition not met: ${JSON.stringify(h)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Closes a client and waits until the server has handled its disconnect (its
 *  `connections` count dropped). */
export async function closeClient(url, socket) {
  const before = (await health(url)).connections;
  socket.close();
  clients.delete(socket);
  await waitHealth(url, (h) => h.connections <= before - 1);
}

/** Disconnects every client and stops every server this file started. */
export async function cleanup() {
  for (const c of clients) c.close();
  clients.clear();
  await Promise.all([...servers].map((s) => s.stop()));
}

/** Creator joins a fresh session (created by the join, or reserved first). */
export async function createSession(url, {
  mode = 'group', reserveFirst = false, userId = uid('creator'), displayName = 'Creator',
  publicKey = `pk-${userId}`, transports, sessionId = uid('sess'), password,
} = {}, assert) {
  const key = randomBytes(16).toString('hex');
  const authKey = mode === 'password' ? `${key}:${password ?? uid('pw')}` : key;
  if (reserveFirst) {
    const r = await reserve(url, { sessionId, authKey, chatMode: mode });
    assert.equal(r.status, 200, r.text);
  }
  const opts = transports === undefined ? {} : { transports };
  const socket = await connect(url, opts);
  const ack = await expectOk(socket, 'join-session', {
    sessionId, userId, displayName, publicKey, isCreator: true, authKey,
    ...(reserveFirst ? {} : { chatMode: mode }),
  }, assert);
  assert.equal(ack.isCreator, true);
  const pw = mode === 'password' ? authKey.slice(authKey.indexOf(':') + 1) : undefined;
  // What a joiner puts in sessionId.
  const link = mode === 'password' ? `${sessionId}:password:${pw}` : `${sessionId}:${authKey}`;
  // resumeToken: what the creator presents to join again beside this socket (a second tab).
  return { sessionId, authKey, link, socket, userId, pw, resumeToken: ack.resumeToken };
}

/** A non-creator joins by link; returns {socket, ack}. */
export async function joinAs(url, link, userId, assert, extra = {}, opts = {}) {
  const socket = await connect(url, opts);
  const ack = await expectOk(socket, 'join-session', {
    sessionId: link, userId, displayName: extra.displayName ?? userId,
    publicKey: `pk-${userId}`, ...extra,
  }, assert);
  return { socket, ack };
}
