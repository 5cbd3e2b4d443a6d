// Faults (issue #7): a client whose transport dies halfway through a large upload, and a
// server out of file descriptors. The real binary, the official socket.io-client.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import {
  startServer, cleanup, connect, emitAck, expectOk, createSession, joinAs, nextEvent,
  health, waitHealth, uid, closeClient,
} from './lib/server.mjs';

after(cleanup);

/** The net.Socket under a socket.io-client connected over WebSocket (the `ws` package). */
function rawSocket(client) {
  const transport = client.io.engine.transport;
  assert.equal(transport.name, 'websocket');
  const raw = transport.ws?._socket;
  assert.ok(raw, 'the WebSocket transport exposes its TCP socket');
  return raw;
}

/** A masked client-to-server WebSocket text frame header for `length` payload bytes,
 *  and the masking key. */
function frameHeader(length) {
  const mask = randomBytes(4);
  const header = Buffer.alloc(14);
  header[0] = 0x81; // FIN, text
  header[1] = 0x80 | 127; // masked, 64-bit length
  header.writeBigUInt64BE(BigInt(length), 2);
  mask.copy(header, 10);
  return { header, mask };
}

function masked(payload, mask) {
  const out = Buffer.alloc(payload.length);
  for (let i = 0; i < payload.length; i++) out[i] = payload[i] ^ mask[i % 4];
  return out;
}

/** Writes `bytes` on `socket` and resolves once they are handed to the kernel. */
function write(socket, bytes) {
  return new Promise((resolve, reject) => socket.write(bytes, (e) => (e ? reject(e) : resolve())));
}

/** A message that `from` sends and `to` must receive (new-message), acked ok. */
async function relayed(from, to, sessionId, text) {
  const got = nextEvent(to, 'new-message', 3000, (m) => m.encrypted === text);
  await expectOk(from, 'send-message', { sessionId, encrypted: text }, assert);
  return got;
}

test('a transport that closes halfway through a large message: nothing stored, the server and other sessions unaffected', async () => {
  const srv = await startServer();
  // Session A: alice and bob; bob's upload dies halfway. Session B: carol and dave.
  const a = await createSession(srv.url, { userId: 'alice' }, assert);
  const { socket: bob, ack: bobAck } = await joinAs(srv.url, a.link, 'bob', assert, {}, { transports: ['websocket'] });
  const b = await createSession(srv.url, { userId: 'carol' }, assert);
  const dave = (await joinAs(srv.url, b.link, 'dave', assert)).socket;
  await relayed(bob, a.socket, a.sessionId, 'before');

  const aliceGot = [];
  a.socket.on('new-message', (m) => aliceGot.push(m));
  const before = (await health(srv.url)).connections;

  // A 4 MiB send-message frame (under MAX_PAYLOAD_BYTES, 20 MiB): header and half the
  // payload, then the TCP connection closes.
  const body = JSON.stringify(['send-message', { sessionId: a.sessionId, encrypted: 'x'.repeat(4 << 20) }]);
  const payload = Buffer.from(`42${body}`);
  const { header, mask } = frameHeader(payload.length);
  const raw = rawSocket(bob);
  await write(raw, Buffer.concat([header, masked(payload.subarray(0, payload.length >> 1), mask)]));
  raw.destroy();

  // The server handles bob's disconnect (its connection count drops) ...
  await waitHealth(srv.url, (h) => h.connections === before - 1);
  // ... and stored nothing of the half message: a new member's history holds only
  // 'before', and alice received nothing after it.
  const erin = await connect(srv.url);
  const erinHistory = nextEvent(erin, 'messages-history');
  await expectOk(erin, 'join-session', { sessionId: a.link, userId: 'erin' }, assert);
  assert.deepEqual((await erinHistory).map((m) => m.encrypted), ['before']);
  assert.equal(aliceGot.length, 0, 'alice received part of the upload');

  // Both sessions keep working, and bob can come back.
  await relayed(a.socket, erin, a.sessionId, 'after in A');
  await relayed(dave, b.socket, b.sessionId, 'after in B');
  const bob2 = (await joinAs(srv.url, a.link, 'bob', assert, { resumeToken: bobAck.resumeToken })).socket;
  await relayed(bob2, a.socket, a.sessionId, 'bob is back');
  assert.equal(srv.child.exitCode, null, 'the server is still running');
  assert.doesNotMatch(srv.output(), /panicked/);
});

test('an HTTP long-polling POST cut halfway through a large message: the session is closed, nothing stored', async () => {
  const srv = await startServer();
  const a = await createSession(srv.url, { userId: 'alice' }, assert);
  const bob = (await joinAs(srv.url, a.link, 'bob', assert, {}, { transports: ['polling'] })).socket;
  const b = await createSession(srv.url, { userId: 'carol' }, assert);
  const dave = (await joinAs(srv.url, b.link, 'dave', assert)).socket;
  await relayed(bob, a.socket, a.sessionId, 'before');
  const aliceGot = [];
  a.socket.on('new-message', (m) => aliceGot.push(m));
  const bobGone = nextEvent(bob, 'disconnect', 5000);
  const before = (await health(srv.url)).connections;

  // An Engine.IO polling POST announcing a 4 MiB packet; half of it, then the TCP
  // connection closes.
  const payload = Buffer.from(`42${JSON.stringify(['send-message', { sessionId: a.sessionId, encrypted: 'x'.repeat(4 << 20) }])}`);
  const req = http.request(`${srv.url}/socket.io/?EIO=4&transport=polling&sid=${bob.io.engine.id}`, {
    method: 'POST',
    agent: false,
    headers: { 'content-type': 'text/plain;charset=UTF-8', 'content-length': payload.length },
  });
  const failed = new Promise((resolve) => req.on('error', resolve));
  await new Promise((resolve) => req.write(payload.subarray(0, payload.length >> 1), resolve));
  req.destroy();
  await failed;

  // The server closes bob's Engine.IO session (a cut body is a transport error) ...
  assert.equal(await bobGone, 'transport error');
  await waitHealth(srv.url, (h) => h.connections === before - 1);
  // ... and stored nothing of it.
  const erin = await connect(srv.url);
  const erinHistory = nextEvent(erin, 'messages-history');
  await expectOk(erin, 'join-session', { sessionId: a.link, userId: 'erin' }, assert);
  assert.deepEqual((await erinHistory).map((m) => m.encrypted), ['before']);
  assert.equal(aliceGot.length, 0, 'alice received part of the upload');
  await relayed(a.socket, erin, a.sessionId, 'after in A');
  await relayed(dave, b.socket, b.sessionId, 'after in B');
  assert.equal(srv.child.exitCode, null, 'the server is still running');
  assert.doesNotMatch(srv.output(), /panicked/);
});

test('a lone surrogate escape in encrypted is relayed verbatim (found by the payloads fuzz target)', async () => {
  const srv = await startServer();
  const a = await createSession(srv.url, { userId: 'alice' }, assert);
  const bob = (await joinAs(srv.url, a.link, 'bob', assert)).socket;
  // JSON.stringify writes a lone surrogate as the escape "\ud83d" (well-formed JSON).
  const text = 'half an emoji: \ud83d';
  const got = await relayed(a.socket, bob, a.sessionId, text);
  assert.equal(got.encrypted, text);
  const erin = await connect(srv.url);
  const history = nextEvent(erin, 'messages-history');
  await expectOk(erin, 'join-session', { sessionId: a.link, userId: 'erin' }, assert);
  assert.deepEqual((await history).map((m) => m.encrypted), [text]);
});

test('out of file descriptors: the server keeps serving its clients, refuses no one for good, and recovers', async (t) => {
  const srv = await startServer({}, { nofile: 64 });
  const a = await createSession(srv.url, { userId: 'alice', transports: ['websocket'] }, assert);
  const bob = (await joinAs(srv.url, a.link, 'bob', assert, {}, { transports: ['websocket'] })).socket;

  // Open WebSocket clients until one cannot connect: the server cannot accept (EMFILE).
  const extra = [];
  let refused = null;
  for (let i = 0; i < 100 && !refused; i++) {
    try {
      extra.push(await connect(srv.url, { transports: ['websocket'], timeout: 2000 }));
    } catch (e) {
      refused = e;
    }
  }
  assert.ok(refused, `still accepting after ${extra.length} extra connections`);
  assert.ok(extra.length > 10, `only ${extra.length} connections before running out`);
  assert.match(srv.output(), /Too many open files/, 'the accept loop met EMFILE');
  t.diagnostic(`ulimit -n 64: ${extra.length} extra connections accepted, then EMFILE`);

  // Connected clients are still served, both ways, and the extra ones too.
  await relayed(a.socket, bob, a.sessionId, 'while exhausted');
  await relayed(bob, a.socket, a.sessionId, 'while exhausted, back');
  const last = extra[extra.length - 1];
  const ack = await emitAck(last, 'get-public-keys', { sessionId: a.sessionId });
  assert.equal(ack.error, 'NOT_IN_SESSION');

  // Once the extra connections close, new clients are accepted again (the accept loop
  // retries every second) and fully work.
  for (const c of extra) c.close();
  let fresh = null;
  const deadline = Date.now() + 15000;
  while (!fresh) {
    try {
      fresh = await connect(srv.url, { transports: ['websocket'], timeout: 2000 });
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`no new connection accepted after the others closed: ${e.message}`);
    }
  }
  const history = nextEvent(fresh, 'messages-history');
  await expectOk(fresh, 'join-session', { sessionId: a.link, userId: 'carol' }, assert);
  assert.deepEqual((await history).map((m) => m.encrypted), ['while exhausted', 'while exhausted, back']);
  await relayed(fresh, a.socket, a.sessionId, 'after');
  await waitHealth(srv.url, (h) => h.connections === 3, 10000);
  assert.equal(srv.child.exitCode, null, 'the server is still running');
  assert.doesNotMatch(srv.output(), /panicked/);
});

test('clients that connect and leave at once are never left counted, though their disconnect may be handled before their connect', async () => {
  const srv = await startServer({ IP_CONNECTS_PER_SEC: '0', MAX_CONNECTIONS_PER_IP: '0' });
  const wsUrl = `${srv.url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`;
  // Connects the namespace ("40") and drops the TCP connection as soon as that is written.
  const flash = () => new Promise((resolve) => {
    const ws = new WebSocket(wsUrl);
    ws.on('message', (data) => {
      if (data.toString().startsWith('0')) ws.send('40', () => ws.terminate());
    });
    ws.on('close', resolve);
    ws.on('error', resolve);
  });
  for (let round = 0; round < 10; round++) await Promise.all(Array.from({ length: 30 }, flash));
  // Each was counted and uncounted, or never counted: none stays (the soak found 50 that did).
  await waitHealth(srv.url, (h) => h.connections === 0, 5000);
});
