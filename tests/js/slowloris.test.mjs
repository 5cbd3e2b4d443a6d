// Connections that hold descriptors without doing anything: partial headers, idle
// keep-alive, and Engine.IO handshakes that never connect a namespace. The node keeps
// answering /health and an honest pair keeps talking, even held to 1,024 descriptors.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import {
  startServer, cleanup, connect, createSession, joinAs, expectOk, nextEvent, request, uid,
} from './lib/server.mjs';

after(cleanup);

/** Opens a TCP connection and sends the start of a request, never its end. */
function partial(port) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.write('GET /health HTTP/1.1\r\nHost: x\r\n');
      resolve(s);
    });
    s.on('error', () => {});
    s.once('error', reject);
  });
}

async function honestPair(url) {
  const A = await createSession(url, {}, assert);
  const { socket: B } = await joinAs(url, A.link, uid('bob'), assert);
  return async () => {
    const got = nextEvent(B, 'new-message');
    await expectOk(A.socket, 'send-message', { sessionId: A.sessionId, encrypted: 'still here' }, assert);
    assert.equal((await got).encrypted, 'still here');
  };
}

async function healthWithin(url, ms) {
  const t0 = Date.now();
  const r = await request('GET', `${url}/health`, { timeoutMs: ms });
  assert.equal(r.status, 200);
  return Date.now() - t0;
}

test('a request whose headers never end is closed after the header deadline (10 s)', { timeout: 30000 }, async () => {
  const srv = await startServer();
  const s = await partial(srv.port);
  const t0 = Date.now();
  await new Promise((resolve) => s.once('close', resolve));
  const held = Date.now() - t0;
  assert.ok(held >= 8000 && held < 15000, `closed after ${held} ms`);
});

test('1,500 partial-header connections at 1,024 descriptors: /health answers, the pair talks', { timeout: 60000 }, async () => {
  const srv = await startServer({}, { nofile: 1024 });
  const talk = await honestPair(srv.url);
  const held = [];
  for (let i = 0; i < 1500; i++) held.push(await partial(srv.port).catch(() => null));
  assert.ok(held.filter(Boolean).length > 1024, 'the attack opened more connections than descriptors');
  for (let i = 0; i < 3; i++) assert.ok(await healthWithin(srv.url, 2000) < 2000);
  await talk();
  for (const s of held) s?.destroy();
  assert.ok(srv.child.exitCode === null, 'the node is alive');
});

test('Engine.IO handshakes that never connect a namespace: beyond twice IP_CONNECTS_*, 429; another address is served', { timeout: 30000 }, async () => {
  const srv = await startServer({ TRUSTED_PROXIES: '127.0.0.1', IP_CONNECTS_PER_SEC: '1', IP_CONNECTS_BURST: '5' });
  const handshake = (ip) => request('GET', `${srv.url}/socket.io/?EIO=4&transport=polling`, {
    headers: { 'x-forwarded-for': ip },
  });
  const codes = [];
  for (let i = 0; i < 20; i++) codes.push((await handshake('198.51.100.7')).status);
  const ok = codes.filter((c) => c === 200).length;
  assert.ok(ok >= 10 && ok <= 12, `handshakes admitted: ${ok} (${codes})`);
  assert.ok(codes.slice(12).every((c) => c === 429), `${codes}`);
  assert.equal((await handshake('198.51.100.8')).status, 200);
  const s = await connect(srv.url, { extraHeaders: { 'x-forwarded-for': '198.51.100.9' } });
  assert.ok(s.connected);
});
