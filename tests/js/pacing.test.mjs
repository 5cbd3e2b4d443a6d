// Bytes on the wire, bounded both ways: reads are paced (CONN_READ_BYTES_PER_SEC,
// READ_BYTES_PER_SEC), and a client that stops reading has its connection closed after
// PING_TIMEOUT_SECS without progress, so what is queued for it is let go.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import WebSocket from 'ws';
import {
  startServer, cleanup, connect, expectOk, nextEvent, uid, createSession,
} from './lib/server.mjs';

after(cleanup);

const openFds = (pid) => readdirSync(`/proc/${pid}/fd`).length;

/** A raw Engine.IO WebSocket client that joins, then never reads again. */
function joinThenStopReading(url, sessionId, userId) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`);
    ws.on('message', (data) => {
      const text = data.toString();
      if (text.startsWith('0')) ws.send('40');
      else if (text.startsWith('40')) ws.send(`420["join-session",${JSON.stringify({ sessionId, userId, publicKey: 'pk' })}]`);
      else if (text.startsWith('430')) {
        ws._socket.pause();
        resolve(ws);
      }
    });
    ws.on('error', reject);
  });
}

test('a client that stops reading: its connection is closed after PING_TIMEOUT_SECS without progress; others talk on', async () => {
  const srv = await startServer({ PING_INTERVAL_SECS: '2', PING_TIMEOUT_SECS: '2', CONN_READ_BYTES_PER_SEC: '0' });
  const pid = srv.child.pid;
  const room = await createSession(srv.url, { mode: 'private' }, assert);
  // An honest pair elsewhere, talking throughout.
  const pair = await createSession(srv.url, { mode: 'private' }, assert);
  const bob = await connect(srv.url);
  await expectOk(bob, 'join-session', { sessionId: pair.link, userId: uid('bob'), publicKey: 'pk' }, assert);
  const before = openFds(pid);

  const to = uid('stuck');
  const stuck = await joinThenStopReading(srv.url, room.link, to);
  // More than the kernel's buffers hold on loopback (up to 32 MiB received + 4 MiB sent):
  // the server's writes to it block.
  const big = 'q'.repeat(2 * 1024 * 1024);
  for (let i = 0; i < 24; i++) {
    await expectOk(room.socket, 'send-message', { sessionId: room.sessionId, to, encrypted: big }, assert);
  }
  const got = nextEvent(bob, 'new-message');
  await expectOk(pair.socket, 'send-message', { sessionId: pair.sessionId, encrypted: 'hello' }, assert);
  assert.equal((await got).encrypted, 'hello');

  // The server closes the stuck connection (a writer blocked on it would keep its
  // descriptor, and everything queued for it, for ever).
  const deadline = Date.now() + 20000;
  let fds = openFds(pid);
  while (fds > before && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    fds = openFds(pid);
  }
  assert.ok(fds <= before, `descriptors: ${fds}, ${before} before the stuck client joined`);
  stuck.terminate();
});

test('CONN_READ_BYTES_PER_SEC: a large message is read at the connection\'s pace', async () => {
  const srv = await startServer({ CONN_READ_BYTES_PER_SEC: String(1024 * 1024) });
  const room = await createSession(srv.url, { mode: 'group' }, assert);
  const started = Date.now();
  // 3 MiB at 1 MiB/s with 1 MiB ahead: about 2 s.
  await expectOk(room.socket, 'send-message', { sessionId: room.sessionId, encrypted: 'r'.repeat(3 * 1024 * 1024) }, assert);
  const took = Date.now() - started;
  assert.ok(took >= 1500, `read at its pace: ${took} ms`);
});
