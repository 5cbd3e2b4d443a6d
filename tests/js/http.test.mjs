// HTTP routes (R9), the Engine.IO handshake (R10) and CORS.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  startServer, cleanup, connect, expectOk, createSession, joinAs, reserve, request, health,
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
