// Bytes on the wire, bounded both ways: reads are paced (CONN_READ_BYTES_PER_SEC,
// READ_BYTES_PER_SEC), and a client that stops reading has its connection closed after
// PING_TIMEOUT_SECS without progress, so what is queued for it is let go.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
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

// ---------------------------------------------------------------------------------------
// Clients that make the server owe them replies and read them in a trickle: every reply
// is bytes the server holds for that client until it reads. Each attacker reads for
// 20 ms a second (so no write of the server's waits long without progress), two at once,
// for 20 s, while an honest pair elsewhere keeps talking. The node may grow by 64 MiB
// at most, and the attackers are closed.

const rssBytes = (pid) => {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'));
  return Number(line.split(/\s+/)[1]) * 1024;
};

/** A raw WebSocket at the Engine.IO endpoint that reads only 20 ms of every second. */
function trickleReader(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`);
    ws.closedBy = null;
    ws.on('close', () => { ws.closedBy ??= Date.now(); });
    ws.on('error', () => {});
    ws.once('message', () => { // the Engine.IO open packet
      ws.send('40');
      const reads = setInterval(() => {
        if (ws.readyState !== WebSocket.OPEN) return clearInterval(reads);
        ws._socket.resume();
        setTimeout(() => ws._socket?.pause(), 20);
      }, 1000);
      ws._socket.pause();
      ws.stopReads = () => clearInterval(reads);
      resolve(ws);
    });
    ws.once('error', reject);
  });
}

/** Runs `flood(ws)` on every open socket whenever its own buffer has room, for `ms`. */
async function floodFor(sockets, flood, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const open = sockets.filter((ws) => ws.readyState === WebSocket.OPEN);
    for (const ws of open) {
      for (let i = 0; i < 200 && ws.bufferedAmount < 1024 * 1024; i++) flood(ws);
    }
    await new Promise((r) => (open.length ? setImmediate(r) : setTimeout(r, 50)));
  }
}

/** An honest pair that sends a message every 200 ms; resolves how many were delivered. */
async function honestPair(url) {
  const room = await createSession(url, { mode: 'group' }, assert);
  const bob = await connect(url);
  await expectOk(bob, 'join-session', { sessionId: room.link, userId: uid('bob'), publicKey: 'pk' }, assert);
  let delivered = 0;
  bob.on('new-message', () => { delivered += 1; });
  let sending = true;
  const loop = (async () => {
    let sent = 0;
    while (sending) {
      await expectOk(room.socket, 'send-message', { sessionId: room.sessionId, encrypted: `m${sent}` }, assert);
      sent += 1;
      await new Promise((r) => setTimeout(r, 200));
    }
    return sent;
  })();
  return {
    async stop() {
      sending = false;
      const sent = await loop;
      await nextEvent(bob, 'new-message', 3000, () => delivered >= sent).catch(() => {});
      return { sent, delivered };
    },
  };
}

for (const [what, flood] of [
  ['WebSocket pings (each obliges a pong frame)', (ws) => ws.ping('p'.repeat(125))],
  ['events with acks (each obliges an ack, an error one once rate limited)', (ws) => ws.send(`421["get-public-keys",${JSON.stringify({ sessionId: 'abcdef12' })}]`)],
  ['Engine.IO pings (each a text frame to parse)', (ws) => ws.send('2')],
]) {
  test(`slow readers flooding ${what}: the node grows by 64 MiB at most and they are closed; an honest pair talks on`, { timeout: 60000 }, async () => {
    const srv = await startServer({ SOCKET_EVENTS_PER_SEC: '30' });
    const pid = srv.child.pid;
    const pair = await honestPair(srv.url);
    const rssBefore = rssBytes(pid);
    const attackers = await Promise.all([trickleReader(srv.url), trickleReader(srv.url)]);
    let peak = rssBefore;
    const sampler = setInterval(() => { peak = Math.max(peak, rssBytes(pid)); }, 100);
    const started = Date.now();
    await floodFor(attackers, flood, 20000);
    // Closed by the server: within the flood, or within a heartbeat round after it.
    const deadline = Date.now() + 25000;
    while (attackers.some((ws) => ws.closedBy === null) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    clearInterval(sampler);
    peak = Math.max(peak, rssBytes(pid));
    for (const ws of attackers) ws.stopReads?.();
    const { sent, delivered } = await pair.stop();
    const grew = (peak - rssBefore) / (1024 * 1024);
    assert.ok(grew <= 64, `the node grew by ${grew.toFixed(1)} MiB`);
    for (const ws of attackers) {
      assert.notEqual(ws.closedBy, null, 'the server closed the attacker');
      ws.terminate();
    }
    assert.ok(sent >= 20, `the honest pair kept sending (${sent} sent)`);
    assert.equal(delivered, sent, 'every message of the honest pair arrived');
    process.stdout.write(`# ${what}: +${grew.toFixed(1)} MiB peak, closed after ${attackers.map((ws) => ws.closedBy - started).join(' and ')} ms\n`);
  });
}
