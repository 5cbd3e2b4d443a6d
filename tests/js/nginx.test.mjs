// The README's load balancer, for real: deploy/nginx.conf (as docker-compose.yml mounts
// it, with its two upstreams pointed at local nodes) in front of two Redis-backed nodes.
// WebSocket and long-polling clients work through it, members on either side of it share
// rooms, and when the node behind it drains, clients reconnect through it to the other.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { io } from 'socket.io-client';
import {
  REPO, startServer, cleanup, connect, nextEvent, uid, expectOk, createSession, joinAs,
  freePort, request,
} from './lib/server.mjs';
import { startRedis } from './lib/redis.mjs';

let redis;
let nodes;
let lb;
let nginx;
const reconnecting = [];

/** deploy/nginx.conf with its upstreams on `ports` and listening on `listen`. */
function localConfig(ports, listen, dir) {
  let conf = readFileSync(path.join(REPO, 'deploy', 'nginx.conf'), 'utf8');
  conf = conf.replace('server node1:3001', `server 127.0.0.1:${ports[0]}`)
    .replace('server node2:3001', `server 127.0.0.1:${ports[1]}`)
    .replace('listen 80;', `listen 127.0.0.1:${listen};`);
  assert.ok(conf.includes(`127.0.0.1:${ports[1]}`) && conf.includes(`listen 127.0.0.1:${listen}`),
    'deploy/nginx.conf no longer has the upstreams this test points at the local nodes');
  const file = path.join(dir, 'nginx.conf');
  writeFileSync(file, conf);
  return file;
}

before(async () => {
  redis = await startRedis();
  const prefix = `nginx-${uid('p')}:`;
  nodes = await Promise.all([0, 1].map(() => startServer({
    REDIS_URL: redis.url, REDIS_PREFIX: prefix, NODE_LEASE_SECS: '2', SHUTDOWN_GRACE_SECS: '4',
  })));
  const dir = mkdtempSync(path.join(os.tmpdir(), 'blindrelay-nginx-'));
  mkdirSync(path.join(dir, 'logs'));
  const port = await freePort();
  const conf = localConfig(nodes.map((n) => n.port), port, dir);
  nginx = spawn('nginx', ['-p', dir, '-c', conf, '-g', `daemon off; pid ${dir}/nginx.pid; error_log ${dir}/logs/error.log;`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const failed = new Promise((_, reject) => nginx.on('error', reject));
  lb = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 10000;
  for (;;) {
    const up = await Promise.race([
      request('GET', `${lb}/health`, { timeoutMs: 500 }).then((r) => r.status === 200, () => false),
      failed,
    ]).catch((e) => {
      throw e.code === 'ENOENT' ? new Error('nginx not found: apt-get install nginx-light (scripts/test.sh does)') : e;
    });
    if (up) break;
    if (Date.now() > deadline) throw new Error(`nginx not answering: ${readFileSync(path.join(dir, 'logs', 'error.log'), 'utf8')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
});

after(async () => {
  for (const s of reconnecting) s.close();
  await cleanup();
  if (nginx) {
    nginx.kill('SIGTERM');
    await new Promise((r) => nginx.once('exit', r));
  }
  await redis?.stop();
});

/** Which node a client reached: the one whose connection count rose. */
async function connections() {
  return Promise.all(nodes.map(async (n) => (await request('GET', `${n.url}/health`)).json.connections));
}

test('through nginx, WebSocket and long-polling clients share a room with members on either node', async () => {
  const c = await createSession(nodes[0].url, { userId: 'alice' }, assert);
  const { socket: bob } = await joinAs(nodes[1].url, c.link, 'bob', assert);
  // Carol over WebSocket through nginx, Dave over long-polling only (every request of
  // his Engine.IO session must reach the same node: ip_hash).
  const { socket: carol } = await joinAs(lb, c.link, 'carol', assert, {}, { transports: ['websocket'] });
  const { socket: dave } = await joinAs(lb, c.link, 'dave', assert, {}, { transports: ['polling'] });
  assert.equal(dave.io.engine.transport.name, 'polling');

  const at = (s) => nextEvent(s, 'new-message', 3000, (m) => m.id === 'through-lb');
  const seen = [at(c.socket), at(bob), at(carol)];
  await expectOk(dave, 'send-message', { sessionId: c.sessionId, encrypted: 'via nginx', clientMessageId: 'through-lb' }, assert);
  for (const m of await Promise.all(seen)) assert.equal(m.from, 'dave');
  const back = nextEvent(dave, 'new-message', 3000, (m) => m.id === 'to-dave');
  await expectOk(bob, 'send-message', { sessionId: c.sessionId, encrypted: 'to the poller', clientMessageId: 'to-dave' }, assert);
  assert.equal((await back).encrypted, 'to the poller');
});

test('when the node behind nginx drains, clients reconnect through nginx to the other node', async () => {
  // ip_hash sends every client of 127.0.0.1 to one node: find which.
  const before = await connections();
  const probe = await connect(lb, { transports: ['websocket'] });
  const during = await connections();
  const behind = during.findIndex((n, i) => n > before[i]);
  assert.ok(behind >= 0, `no node gained the connection: ${before} -> ${during}`);
  probe.close();
  const other = 1 - behind;

  const c = await createSession(nodes[other].url, { userId: 'erin' }, assert);
  // A client as apps run it: reconnecting, and joining again on every connect.
  const socket = io(lb, { transports: ['websocket'], forceNew: true, reconnectionDelay: 200, reconnectionDelayMax: 500 });
  reconnecting.push(socket);
  let joins = 0;
  socket.on('connect', () => {
    socket.emit('join-session', { sessionId: c.link, userId: 'frank', publicKey: 'pk-frank' }, (ack) => {
      if (ack && ack.ok) joins += 1;
    });
  });
  await nextEvent(socket, 'messages-history', 5000);

  const stopped = nodes[behind].stop(); // SIGTERM: the node drains
  const deadline = Date.now() + 15000;
  while (joins < 2) {
    if (Date.now() > deadline) throw new Error('the client did not rejoin through nginx');
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal((await stopped).code, 0);
  // It now talks through the surviving node, in the same room.
  const heard = nextEvent(c.socket, 'new-message', 3000, (m) => m.id === 'after-drain');
  socket.emit('send-message', { sessionId: c.sessionId, encrypted: 'moved', clientMessageId: 'after-drain' });
  assert.equal((await heard).from, 'frank');
});
