// The load balancer and HTTPS recipe of docs/deployment.md, for real. deploy/nginx.conf (as
// docker-compose.yml mounts it, with its two upstreams pointed at local nodes) in front of
// two Redis-backed nodes: WebSocket and long-polling clients work through it, members on
// either side of it share rooms, and when the node behind it drains, clients reconnect
// through it to the other. deploy/nginx-tls.conf with a certificate made here: the page
// and Socket.IO over https:// and wss://, plain HTTP sent to HTTPS.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
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

/** deploy/<name> with each [from, to] swapped (each must be there), written to `dir`. */
function templated(name, swaps, dir) {
  let conf = readFileSync(path.join(REPO, 'deploy', name), 'utf8');
  for (const [from, to] of swaps) {
    assert.ok(conf.includes(from), `deploy/${name} no longer has "${from}", which this test swaps for "${to}"`);
    conf = conf.replaceAll(from, to);
  }
  const file = path.join(dir, name);
  writeFileSync(file, conf);
  return file;
}

/** nginx (not daemonised) with `conf` and its files under `dir`, once `probe()` is true. */
async function startNginx(conf, dir, probe) {
  mkdirSync(path.join(dir, 'logs'), { recursive: true });
  const child = spawn('nginx', ['-p', dir, '-c', conf, '-g', `daemon off; pid ${dir}/nginx.pid; error_log ${dir}/logs/error.log;`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  nginxes.push(child);
  const failed = new Promise((_, reject) => child.on('error', reject));
  const deadline = Date.now() + 10000;
  for (;;) {
    const up = await Promise.race([probe().catch(() => false), failed]).catch((e) => {
      throw e.code === 'ENOENT' ? new Error('nginx not found: apt-get install nginx-light (scripts/test.sh does)') : e;
    });
    if (up) return child;
    if (Date.now() > deadline) throw new Error(`nginx not answering: ${readFileSync(path.join(dir, 'logs', 'error.log'), 'utf8')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const nginxes = [];

before(async () => {
  redis = await startRedis();
  const prefix = `nginx-${uid('p')}:`;
  nodes = await Promise.all([0, 1].map(() => startServer({
    REDIS_URL: redis.url, REDIS_PREFIX: prefix, NODE_LEASE_SECS: '2', SHUTDOWN_GRACE_SECS: '4',
  })));
  const dir = mkdtempSync(path.join(os.tmpdir(), 'blindrelay-nginx-'));
  const port = await freePort();
  const conf = templated('nginx.conf', [
    ['server node1:3001', `server 127.0.0.1:${nodes[0].port}`],
    ['server node2:3001', `server 127.0.0.1:${nodes[1].port}`],
    ['listen 80;', `listen 127.0.0.1:${port};`],
  ], dir);
  lb = `http://127.0.0.1:${port}`;
  nginx = await startNginx(conf, dir,
    () => request('GET', `${lb}/health`, { timeoutMs: 500 }).then((r) => r.status === 200));
});

after(async () => {
  for (const s of reconnecting) s.close();
  await cleanup();
  for (const child of nginxes) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
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
  // A client as apps run it: reconnecting, and joining again on every connect with the
  // resume token of its first join's ack.
  const socket = io(lb, { transports: ['websocket'], forceNew: true, reconnectionDelay: 200, reconnectionDelayMax: 500 });
  reconnecting.push(socket);
  let joins = 0;
  let resumeToken;
  socket.on('connect', () => {
    socket.emit('join-session', { sessionId: c.link, userId: 'frank', publicKey: 'pk-frank', resumeToken }, (ack) => {
      if (ack && ack.ok) joins += 1;
      resumeToken = ack?.resumeToken ?? resumeToken;
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

/** GET over TLS, trusting only `ca`. Resolves {status, headers, text}. */
function httpsGet(url, ca) {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, agent: false }, (res) => {
      const parts = [];
      res.on('data', (c) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(parts).toString('utf8') }));
    });
    req.setTimeout(3000, () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
  });
}

test('HTTPS recipe (deploy/nginx-tls.conf): the page over https, Socket.IO over wss and polling, http sent to https', async () => {
  // A self-signed certificate for 127.0.0.1, made here (as the recipe's comment says).
  const dir = mkdtempSync(path.join(os.tmpdir(), 'blindrelay-tls-'));
  const [crt, key] = [path.join(dir, 'test.crt'), path.join(dir, 'test.key')];
  await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout', key, '-out', crt], { timeout: 10000 }).catch((e) => {
    throw e.code === 'ENOENT' ? new Error('openssl not found: apt-get install openssl') : e;
  });
  const ca = readFileSync(crt);

  const node = await startServer({ STATIC_DIR: path.join(REPO, 'static'), TRUSTED_PROXIES: '127.0.0.1' });
  const [tlsPort, httpPort] = [await freePort(), await freePort()];
  const conf = templated('nginx-tls.conf', [
    ['server 127.0.0.1:3001;', `server 127.0.0.1:${node.port};`],
    ['listen 80;', `listen 127.0.0.1:${httpPort};`],
    ['listen 443 ssl;', `listen 127.0.0.1:${tlsPort} ssl;`],
    ['/etc/letsencrypt/live/chat.example.com/fullchain.pem', crt],
    ['/etc/letsencrypt/live/chat.example.com/privkey.pem', key],
  ], dir);
  const site = `https://127.0.0.1:${tlsPort}`;
  await startNginx(conf, dir, () => httpsGet(`${site}/health`, ca).then((r) => r.status === 200));

  // The page, with the server's own security headers passed through, and HSTS.
  const page = await httpsGet(`${site}/`, ca);
  assert.equal(page.status, 200);
  assert.equal(page.text, readFileSync(path.join(REPO, 'static', 'index.html'), 'utf8'));
  assert.match(page.headers['content-security-policy'] ?? '', /script-src 'self'/);
  assert.equal(page.headers['strict-transport-security'], 'max-age=31536000');
  const script = await httpsGet(`${site}/js/app.js`, ca);
  assert.equal(script.status, 200);
  assert.match(script.headers['content-type'], /javascript/);

  // Plain HTTP: a redirect to the same path over HTTPS.
  const plain = await request('GET', `http://127.0.0.1:${httpPort}/some/path?x=1`);
  assert.equal(plain.status, 301);
  assert.equal(plain.headers.location, `https://127.0.0.1/some/path?x=1`);

  // Socket.IO through TLS: a WebSocket client (wss://) and one that starts with polling
  // and upgrades (socket.io-client's default), in one room with a direct member.
  const tls = { ca };
  const c = await createSession(node.url, { userId: 'alice' }, assert);
  const { socket: bob } = await joinAs(site, c.link, 'bob', assert, {}, { ...tls, transports: ['websocket'] });
  const { socket: carol } = await joinAs(site, c.link, 'carol', assert, {}, { ...tls, transports: undefined });
  assert.equal(bob.io.engine.transport.name, 'websocket');
  assert.match(bob.io.engine.transport.uri(), /^wss:\/\//);
  const heard = [c.socket, carol].map((s) => nextEvent(s, 'new-message', 3000, (m) => m.id === 'over-tls'));
  await expectOk(bob, 'send-message', { sessionId: c.sessionId, encrypted: 'sealed twice', clientMessageId: 'over-tls' }, assert);
  for (const m of await Promise.all(heard)) assert.equal(m.from, 'bob');
  const back = nextEvent(bob, 'new-message', 3000, (m) => m.id === 'to-bob');
  await expectOk(carol, 'send-message', { sessionId: c.sessionId, encrypted: 'back', clientMessageId: 'to-bob' }, assert);
  assert.equal((await back).encrypted, 'back');

  // A certificate the client does not trust is refused: TLS is really in the way.
  await assert.rejects(connect(site, { transports: ['websocket'], timeout: 2000 }));
});

test('docker-compose.yml wires what exists (tests/deploy/check_compose.py: services, settings, nginx -t, ports, named files)', async () => {
  const { stdout } = await promisify(execFile)('python3', [path.join(REPO, 'tests', 'deploy', 'check_compose.py')], { timeout: 30000 })
    .catch((e) => assert.fail(`${e.stderr || e.message}`));
  assert.match(stdout, /check_compose: ok/);
});
