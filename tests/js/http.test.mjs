// HTTP routes (R9), the Engine.IO handshake (R10), CORS, and what every answer carries:
// security headers, compression and caching of the web client's files, the 404 page.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import {
  REPO, startServer, cleanup, connect, expectOk, createSession, joinAs, reserve, request, health,
  uid, closeClient,
} from './lib/server.mjs';

const TOKEN = `admin-${randomBytes(12).toString('hex')}`;
let srv; // ADMIN_TOKEN set
let plain; // no ADMIN_TOKEN
before(async () => {
  [srv, plain] = await Promise.all([startServer({ ADMIN_TOKEN: TOKEN }), startServer()]);
});
after(cleanup);

const hex = () => randomBytes(16).toString('hex');

test('R9: GET /health has status, uptime, sessions, activeSessions, connections, timestamp', async () => {
  const r = await request('GET', `${srv.url}/health`);
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'] ?? '', /application\/json/);
  const h = r.json;
  assert.equal(h.status, 'ok');
  for (const k of ['uptime', 'sessions', 'activeSessions', 'connections', 'timestamp']) {
    assert.equal(typeof h[k], 'number', `${k} must be a number: ${r.text}`);
  }
  assert.ok(Math.abs(h.timestamp - Date.now()) < 60000, 'timestamp in ms since the epoch');
  assert.ok(h.uptime >= 0 && h.uptime < 3600, 'uptime in seconds');

  // The counters follow what happens.
  const before0 = await health(srv.url);
  assert.equal((await reserve(srv.url, { sessionId: uid('h'), authKey: hex() })).status, 200);
  const h1 = await health(srv.url);
  assert.equal(h1.sessions, before0.sessions + 1, 'a reservation is a session');
  assert.equal(h1.activeSessions, before0.activeSessions, 'but not an active one');
  const c = await createSession(srv.url, {}, assert);
  const h2 = await health(srv.url);
  assert.equal(h2.sessions, before0.sessions + 2);
  assert.equal(h2.activeSessions, before0.activeSessions + 1);
  assert.equal(h2.connections, before0.connections + 1);
  await closeClient(srv.url, c.socket);
  const h3 = await health(srv.url);
  assert.equal(h3.connections, before0.connections);
  assert.equal(h3.activeSessions, before0.activeSessions);
  assert.equal(h3.sessions, before0.sessions + 2);
});

test('R9: POST /api/reserve-session: 200, 400, 409, 413', async () => {
  const sessionId = uid('r');
  const authKey = hex();
  const ok = await reserve(srv.url, { sessionId, authKey });
  assert.equal(ok.status, 200);
  assert.equal(ok.json.success, true);
  assert.equal(ok.json.sessionId, sessionId);
  assert.equal(ok.json.chatMode, 'group', 'default mode');
  assert.equal(typeof ok.json.message, 'string');
  assert.ok(!ok.text.includes(authKey), 'the key is not echoed');

  for (const mode of ['private', 'password']) {
    const r = await reserve(srv.url, { sessionId: uid('r'), authKey: `${hex()}:${hex()}`, chatMode: mode });
    assert.equal(r.status, 200);
    assert.equal(r.json.chatMode, mode);
  }

  const dup = await reserve(srv.url, { sessionId, authKey: hex() });
  assert.equal(dup.status, 409, dup.text);
  assert.equal(dup.json?.code, 'SESSION_EXISTS');
  assert.equal(typeof dup.json?.error, 'string');
  // A session created by a creator's join exists too.
  const live = await createSession(srv.url, {}, assert);
  assert.equal((await reserve(srv.url, { sessionId: live.sessionId, authKey: hex() })).status, 409);

  const bad = [
    {}, { authKey: hex() }, { sessionId: uid('r') }, { sessionId: uid('r'), authKey: '' },
    { sessionId: '', authKey: hex() }, { sessionId: 'bad id!', authKey: hex() },
    { sessionId: 'a'.repeat(129), authKey: hex() },
    { sessionId: uid('r'), authKey: hex(), chatMode: 'secret' },
    { sessionId: 5, authKey: hex() }, { sessionId: uid('r'), authKey: 5 },
    { sessionId: uid('r'), authKey: hex(), chatMode: 5 },
  ];
  const wrong = [];
  for (const body of bad) {
    const r = await reserve(srv.url, body);
    if (r.status !== 400 || r.json?.code !== 'BAD_REQUEST' || typeof r.json?.error !== 'string') {
      wrong.push(`${JSON.stringify(body)} -> ${r.status} ${r.text}`);
    }
  }
  for (const raw of ['not json', '[]', 'null', '"str"']) {
    const r = await request('POST', `${srv.url}/api/reserve-session`, { body: raw, headers: { 'content-type': 'application/json' } });
    if (r.status !== 400) wrong.push(`raw ${raw} -> ${r.status} ${r.text}`);
  }

  const before0 = (await health(srv.url)).sessions;
  const huge = await reserve(srv.url, { sessionId: uid('r'), authKey: 'k'.repeat(20 * 1024) });
  assert.equal(huge.status, 413);
  assert.equal((await health(srv.url)).sessions, before0, 'nothing reserved');

  assert.deepEqual(wrong, [], 'every malformed reservation is a 400 {error, code:"BAD_REQUEST"}');
});

test('R9: GET /sessions is 404 without ADMIN_TOKEN or with a wrong bearer; never shows keys', async () => {
  assert.equal((await request('GET', `${plain.url}/sessions`)).status, 404);
  assert.equal((await request('GET', `${plain.url}/sessions`, { headers: { authorization: 'Bearer ' } })).status, 404);
  assert.equal((await request('GET', `${plain.url}/sessions`, { headers: { authorization: `Bearer ${TOKEN}` } })).status, 404);
  assert.equal((await request('GET', `${srv.url}/sessions`)).status, 404);
  for (const auth of [`Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`, TOKEN, `Basic ${TOKEN}`, 'Bearer']) {
    const r = await request('GET', `${srv.url}/sessions`, { headers: { authorization: auth } });
    assert.equal(r.status, 404, `authorization "${auth}"`);
    assert.ok(!r.text.includes('sess'), 'nothing listed');
  }

  // Sessions with distinctive keys: reserved, active group, password with a hash.
  const reservedKey = `RESERVEDKEY${hex()}`;
  assert.equal((await reserve(srv.url, { sessionId: uid('adm'), authKey: reservedKey })).status, 200);
  const pwHash = `PWHASH${hex()}`;
  const p = await createSession(srv.url, { mode: 'password', password: pwHash }, assert);
  const g = await createSession(srv.url, {}, assert);
  await joinAs(srv.url, g.link, 'bob', assert);
  await expectOk(g.socket, 'set-session-key', { sessionId: g.sessionId, encryptedKeys: { bob: `WRAPPED${hex()}` } }, assert);
  await expectOk(g.socket, 'send-message', { sessionId: g.sessionId, encrypted: `CIPHER${hex()}`, originalContent: `PLAIN${hex()}` }, assert);

  const r = await request('GET', `${srv.url}/sessions`, { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(r.status, 200);
  assert.equal(typeof r.json.count, 'number');
  assert.ok(Array.isArray(r.json.sessions));
  const ids = r.json.sessions.map((s) => s.sessionId);
  assert.ok(ids.includes(g.sessionId) && ids.includes(p.sessionId));
  for (const secret of [reservedKey, p.authKey, pwHash, g.authKey, 'WRAPPED', 'CIPHER', 'PLAIN', 'pk-']) {
    assert.ok(!r.text.includes(secret), `/sessions leaks ${secret}`);
  }
});

test('R10: Engine.IO handshake over polling: pingInterval 10000, pingTimeout 10000 (PING_INTERVAL_SECS / PING_TIMEOUT_SECS)', async () => {
  const r = await request('GET', `${srv.url}/socket.io/?EIO=4&transport=polling`);
  assert.equal(r.status, 200);
  assert.equal(r.text[0], '0', `open packet: ${r.text}`);
  const open = JSON.parse(r.text.slice(1));
  assert.equal(typeof open.sid, 'string');
  assert.deepEqual(open.upgrades, ['websocket']);
  assert.equal(open.pingInterval, 10000);
  assert.equal(open.pingTimeout, 10000);
  assert.equal(open.maxPayload, 20 * 1024 * 1024, 'maxPayload = MAX_PAYLOAD_BYTES default, 20 MiB');
  // EIO=3 (socket.io-client 2.x) is not what the app speaks; it must not crash anything.
  await request('GET', `${srv.url}/socket.io/?EIO=3&transport=polling`);
  assert.equal((await health(srv.url)).status, 'ok');
  // The settings set both values.
  const tuned = await startServer({ PING_INTERVAL_SECS: '3', PING_TIMEOUT_SECS: '4' });
  try {
    const t = await request('GET', `${tuned.url}/socket.io/?EIO=4&transport=polling`);
    const o = JSON.parse(t.text.slice(1));
    assert.deepEqual([o.pingInterval, o.pingTimeout], [3000, 4000]);
  } finally {
    await tuned.stop();
  }
});

test('CORS: CLIENT_URL governs /health, the HTTP API and Socket.IO polling', async () => {
  const c = await startServer({ CLIENT_URL: 'http://allowed.example,http://other.example' });
  try {
    const good = { origin: 'http://allowed.example' };
    const evil = { origin: 'http://evil.example' };
    const targets = [
      ['GET', '/health'],
      ['GET', '/socket.io/?EIO=4&transport=polling'],
    ];
    for (const [m, p] of targets) {
      const ok = await request(m, `${c.url}${p}`, { headers: good });
      assert.equal(ok.status, 200, `${p}: ${ok.text}`);
      assert.equal(ok.headers['access-control-allow-origin'], 'http://allowed.example', `${p} allowed origin`);
      assert.equal(ok.headers['access-control-allow-credentials'], 'true', `${p} credentials`);
      const no = await request(m, `${c.url}${p}`, { headers: evil });
      assert.equal(no.headers['access-control-allow-origin'], undefined, `${p} must not allow evil.example`);
    }
    // The second listed origin, and the reservation route with a preflight.
    const other = await request('GET', `${c.url}/health`, { headers: { origin: 'http://other.example' } });
    assert.equal(other.headers['access-control-allow-origin'], 'http://other.example');
    const pre = await request('OPTIONS', `${c.url}/api/reserve-session`, {
      headers: { ...good, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    assert.ok(pre.status < 300, `preflight ${pre.status}`);
    assert.equal(pre.headers['access-control-allow-origin'], 'http://allowed.example');
    assert.match(pre.headers['access-control-allow-methods'] ?? '', /POST/);
    const preEvil = await request('OPTIONS', `${c.url}/api/reserve-session`, {
      headers: { ...evil, 'access-control-request-method': 'POST' },
    });
    assert.equal(preEvil.headers['access-control-allow-origin'], undefined);
    const res = await request('POST', `${c.url}/api/reserve-session`, { headers: good, body: { sessionId: uid('c'), authKey: hex() } });
    assert.equal(res.status, 200);
    assert.equal(res.headers['access-control-allow-origin'], 'http://allowed.example');

    // A node client (no Origin header) still connects over polling and websocket.
    const s = await connect(c.url, { transports: ['polling'] });
    assert.equal(s.connected, true);
  } finally {
    await c.stop();
  }
});

test('CORS: CLIENT_URL=* reflects any origin (credentials allowed)', async () => {
  const r = await request('GET', `${plain.url}/socket.io/?EIO=4&transport=polling`, { headers: { origin: 'http://anything.example' } });
  assert.equal(r.status, 200);
  assert.equal(r.headers['access-control-allow-origin'], 'http://anything.example');
  assert.equal(r.headers['access-control-allow-credentials'], 'true');
});

// ---- Headers, compression and caching (issue #14) ----

const STATIC = path.join(REPO, 'static');

/** The exact headers every answer carries (src/http.rs SECURITY_HEADERS). */
const SECURITY = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; font-src 'self'; manifest-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(self), geolocation=()',
};

/** GET/HEAD/POST with the raw body bytes (no decoding), for compression checks. */
function raw(method, url, headers = {}, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const parts = [];
      res.on('data', (c) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.setTimeout(5000, () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

function decode(r) {
  switch (r.headers['content-encoding']) {
    case 'br': return zlib.brotliDecompressSync(r.body);
    case 'gzip': return zlib.gunzipSync(r.body);
    case undefined: return r.body;
    default: throw new Error(`unexpected content-encoding ${r.headers['content-encoding']}`);
  }
}

let web; // serves the repository's static/
test('security headers on every answer: page, files, 404s, API JSON, errors, metrics, Socket.IO polling', async () => {
  web = await startServer({ STATIC_DIR: STATIC, ADMIN_TOKEN: TOKEN });
  const cases = [
    ['GET', '/', 200],
    ['GET', '/index.html', 200],
    ['GET', '/app.css', 200],
    ['GET', '/js/app.js', 200],
    ['HEAD', '/', 200],
    ['GET', '/no/such/page', 404],
    ['GET', '/health', 200],
    ['GET', '/ready', 200],
    ['GET', '/metrics', 200],
    ['GET', '/sessions', 404],
    ['POST', '/api/reserve-session', 400],
    ['GET', '/api/reserve-session', 405],
  ];
  const wrong = [];
  for (const [method, p, status] of cases) {
    const r = await raw(method, `${web.url}${p}`, method === 'POST' ? { 'content-type': 'application/json' } : {}, method === 'POST' ? '{}' : undefined);
    if (r.status !== status) wrong.push(`${method} ${p}: status ${r.status}, expected ${status}`);
    for (const [name, value] of Object.entries(SECURITY)) {
      if (r.headers[name] !== value) wrong.push(`${method} ${p}: ${name} = ${JSON.stringify(r.headers[name])}`);
    }
  }
  assert.deepEqual(wrong, []);
  // API answers are never cached; files are revalidated (see below).
  assert.equal((await raw('GET', `${web.url}/health`)).headers['cache-control'], 'no-store');
  assert.equal((await raw('GET', `${web.url}/metrics`)).headers['cache-control'], 'no-store');
});

test('static files: compressed with br or gzip as asked, identical once decoded; Socket.IO polling is not compressed and still works', async () => {
  for (const file of ['index.html', 'js/app.js', 'app.css']) {
    const onDisk = readFileSync(path.join(STATIC, file));
    for (const [accept, expected] of [['br', 'br'], ['gzip', 'gzip'], ['gzip, deflate, br', 'br'], ['identity', undefined], [undefined, undefined]]) {
      const r = await raw('GET', `${web.url}/${file}`, accept ? { 'accept-encoding': accept } : {});
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-encoding'], expected, `${file} with accept-encoding ${accept}`);
      assert.match(r.headers.vary ?? '', /accept-encoding/i, `${file}: Vary names Accept-Encoding`);
      assert.ok(decode(r).equals(onDisk), `${file} with ${accept}: the bytes on disk`);
      if (expected) assert.ok(r.body.length < onDisk.length * 0.6, `${file}: ${r.body.length} of ${onDisk.length} bytes with ${expected}`);
    }
  }
  // Engine.IO polling answers itself, outside the compressed router, even when the
  // client accepts compression; and a polling-only client still connects and talks.
  const hs = await raw('GET', `${web.url}/socket.io/?EIO=4&transport=polling`, { 'accept-encoding': 'gzip, br' });
  assert.equal(hs.status, 200);
  assert.equal(hs.headers['content-encoding'], undefined, 'polling bodies are not compressed');
  assert.equal(hs.body.toString()[0], '0', 'an Engine.IO open packet, readable as is');
  const c = await createSession(web.url, { transports: ['polling'] }, assert);
  const { socket: bob } = await joinAs(web.url, c.link, 'bob', assert, {}, { transports: ['polling'] });
  const got = new Promise((resolve) => bob.once('new-message', resolve));
  await expectOk(c.socket, 'send-message', { sessionId: c.sessionId, encrypted: 'x'.repeat(5000), clientMessageId: 'poll-1' }, assert);
  assert.equal((await got).encrypted.length, 5000);
});

test('static files: Cache-Control no-cache (never immutable) with Last-Modified; a 304 when unchanged; a changed file shows at the next load', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'blindrelay-static-'));
  writeFileSync(path.join(dir, 'index.html'), '<!doctype html><title>one</title>');
  writeFileSync(path.join(dir, 'app.js'), 'export const v = 1;\n');
  utimesSync(path.join(dir, 'app.js'), new Date(Date.now() - 60000), new Date(Date.now() - 60000));
  const s = await startServer({ STATIC_DIR: dir });
  try {
    for (const p of ['/', '/index.html', '/app.js']) {
      const r = await raw('GET', `${s.url}${p}`);
      assert.equal(r.status, 200);
      assert.equal(r.headers['cache-control'], 'no-cache', `${p}: revalidated at every load`);
      assert.ok(r.headers['last-modified'], `${p}: Last-Modified`);
    }
    const first = await raw('GET', `${s.url}/app.js`, { 'accept-encoding': 'gzip' });
    const again = await raw('GET', `${s.url}/app.js`, { 'if-modified-since': first.headers['last-modified'], 'accept-encoding': 'gzip' });
    assert.equal(again.status, 304, 'unchanged: 304');
    assert.equal(again.body.length, 0);
    assert.equal(again.headers['content-security-policy'], SECURITY['content-security-policy']);
    writeFileSync(path.join(dir, 'app.js'), 'export const v = 2;\n');
    const changed = await raw('GET', `${s.url}/app.js`, { 'if-modified-since': first.headers['last-modified'] });
    assert.equal(changed.status, 200, 'changed since: the new file');
    assert.equal(changed.body.toString(), 'export const v = 2;\n');
  } finally {
    await s.stop();
  }
});

test('unknown paths: a 404 page that says what happened (the web client\'s own 404.html when it has one)', async () => {
  const r = await raw('GET', `${web.url}/room/abc`);
  assert.equal(r.status, 404);
  assert.match(r.headers['content-type'], /^text\/html/);
  const page = r.body.toString();
  assert.match(page, /Page not found/);
  assert.match(page, /href="\/"/, 'a way back to the start page');
  assert.doesNotMatch(page, /<script|style=/, 'nothing the policy would block');
  // GET /sessions without its token is the same page as any missing path.
  const adm = await raw('GET', `${web.url}/sessions`);
  assert.equal(adm.status, 404);
  assert.equal(adm.body.toString(), page);

  // Without a 404.html of the web client's, a page of the server's own.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'blindrelay-static-'));
  writeFileSync(path.join(dir, 'index.html'), '<!doctype html><title>home</title>');
  const s = await startServer({ STATIC_DIR: dir });
  try {
    const builtIn = await raw('GET', `${s.url}/nowhere`);
    assert.equal(builtIn.status, 404);
    assert.match(builtIn.headers['content-type'], /^text\/html/);
    assert.match(builtIn.body.toString(), /Page not found[^]*href="\/"/);
    writeFileSync(path.join(dir, '404.html'), '<!doctype html><title>lost</title><p>Our own page</p>');
    const own = await raw('GET', `${s.url}/nowhere`);
    assert.equal(own.status, 404);
    assert.match(own.body.toString(), /Our own page/);
  } finally {
    await s.stop();
  }
});

test('a missing STATIC_DIR: the server starts, warns loudly, and the page says there is no web client', async () => {
  const missing = path.join(os.tmpdir(), `blindrelay-no-static-${uid('d')}`);
  const s = await startServer({ STATIC_DIR: missing });
  try {
    const r = await raw('GET', `${s.url}/`);
    assert.equal(r.status, 404);
    assert.match(r.body.toString(), /No web page here/);
    assert.equal(r.headers['content-security-policy'], SECURITY['content-security-policy']);
    assert.match(s.output(), /WARN.*no web client.*STATIC_DIR/i, `the start-up warning:\n${s.output()}`);
    // The relay itself still serves.
    await createSession(s.url, {}, assert);
  } finally {
    await s.stop();
  }
});
